"""Artifact parsers: each format in, :class:`~parsers.record.Record` objects out.

Importing this package registers every parser; ``tests/parsers/test_init_imports.py`` checks that
no parser module is left out of the list below.
"""

from __future__ import annotations

from parsers import bash_history, filestat, mbox, zsh_history  # noqa: F401  (registration)
from parsers.base import REGISTRY, ParseContext, Parser
from parsers.record import Provenance, Record

__all__ = ["REGISTRY", "ParseContext", "Parser", "Provenance", "Record"]
