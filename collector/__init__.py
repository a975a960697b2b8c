"""Read-only acquisition of mail-clearing artifacts from disk images, live hosts and loose files."""

from __future__ import annotations

__version__ = "0.1.0"
