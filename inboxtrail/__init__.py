"""inboxtrail: did someone clear mailbox data to hide what they did? (ATT&CK T1070.008)."""

from __future__ import annotations

from collector import __version__

__all__ = ["__version__"]
