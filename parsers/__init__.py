"""Artifact parsers: each format in, :class:`~parsers.record.Record` objects out.

Importing this package registers every parser; ``tests/parsers/test_init_imports.py`` checks that
no parser module is left out of the list below.
"""

from __future__ import annotations

# Registration: one parser module per line, in alphabetical order.
from parsers import (
    apple_mail,  # noqa: F401
    bash_history,  # noqa: F401
    dovecot,  # noqa: F401
    emlx,  # noqa: F401
    evtx,  # noqa: F401
    evtx_carve,  # noqa: F401
    exchange_logs,  # noqa: F401
    filestat,  # noqa: F401
    fish_history,  # noqa: F401
    m365_audit,  # noqa: F401
    maildir,  # noqa: F401
    mbox,  # noqa: F401
    mft,  # noqa: F401
    outlook_pst,  # noqa: F401
    prefetch,  # noqa: F401
    psreadline_history,  # noqa: F401
    thunderbird,  # noqa: F401
    usnjrnl,  # noqa: F401
    windows_mail,  # noqa: F401
    zsh_history,  # noqa: F401
)
from parsers.base import REGISTRY, ParseContext, Parser
from parsers.record import Provenance, Record

__all__ = ["REGISTRY", "ParseContext", "Parser", "Provenance", "Record"]
