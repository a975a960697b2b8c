"""Parser registry and the context handed to every parser.

A parser subclasses :class:`Parser`, sets ``NAME`` (and optionally ``ARTIFACTS`` and a
:meth:`Parser.sniff`), and is registered by being imported in ``parsers/__init__.py``. Parsers
yield :class:`Record` objects and report problems through :meth:`ParseContext.warn`; they never
stop a run.
"""

from __future__ import annotations

import abc
import dataclasses
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, BinaryIO, ClassVar

from parsers.record import Provenance, Record

REGISTRY: dict[str, type[Parser]] = {}


def _writable(text: str) -> str:
    """``text`` with lone surrogates (undecodable evidence bytes) as ``\\udcxx`` escapes, so that
    ``parse_warnings.jsonl`` can always be written as UTF-8."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return text.encode("utf-8", "backslashreplace").decode("utf-8")
    return text


@dataclass
class ParseContext:
    """Everything a parser may know about the file besides its bytes."""

    provenance: Provenance
    host: str | None = None
    user: str | None = None
    #: The manifest line of the file (times, inode, deleted flag...).
    entry: dict[str, Any] = field(default_factory=dict)
    warnings: list[dict[str, Any]] = field(default_factory=list)

    def warn(self, message: str, offset: int | None = None) -> None:
        """Record a problem with this file (path and byte offset are added)."""
        self.warnings.append({"path": _writable(self.provenance.source_path),
                              "bundle_path": self.provenance.bundle_path,
                              "offset": offset, "message": _writable(message)})

    def provenance_at(self, offset: int | None) -> Provenance:
        """This file's provenance with a byte offset."""
        return dataclasses.replace(self.provenance, offset=offset)


class Parser(abc.ABC):
    """Base class: one artifact format in, records out."""

    NAME: ClassVar[str]
    DESCRIPTION: ClassVar[str] = ""
    #: data_type prefixes this parser emits (documentation and ``list parsers``).
    DATA_TYPES: ClassVar[tuple[str, ...]] = ()

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if getattr(cls, "NAME", None):
            if cls.NAME in REGISTRY:
                raise ValueError(f"duplicate parser name {cls.NAME}")
            REGISTRY[cls.NAME] = cls

    @classmethod
    def sniff(cls, head: bytes, name: str) -> bool:
        """Whether a loose file whose first bytes are ``head`` is in this parser's format."""
        return False

    @abc.abstractmethod
    def parse(self, fh: BinaryIO, ctx: ParseContext) -> Iterator[Record]:
        """Yield records from the open file ``fh``."""
