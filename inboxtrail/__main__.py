"""``python -m inboxtrail``."""

from __future__ import annotations

import sys

from inboxtrail.cli import main

sys.exit(main())
