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
#: Warnings kept per file: a hostile file can hold one problem per line, and every warning kept
#: costs memory until the parse stage writes them. The rest are counted and summed up in one.
MAX_WARNINGS = 1000


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
    _kept: list[dict[str, Any]] = field(default_factory=list, init=False, repr=False)
    #: Warnings past MAX_WARNINGS: how many, the offset of the first, the last one's (message, offset).
    _dropped: int = field(default=0, init=False, repr=False)
    _first_dropped_offset: int | None = field(default=None, init=False, repr=False)
    _last_dropped: tuple[str, int | None] = field(default=("", None), init=False, repr=False)

    def warn(self, message: str, offset: int | None = None) -> None:
        """Record a problem with this file (path and byte offset are added); past
        :data:`MAX_WARNINGS` it is only counted, so memory stays bounded whatever the file holds."""
        if len(self._kept) < MAX_WARNINGS:
            self._kept.append(self._warning(message, offset))
            return
        if not self._dropped:
            self._first_dropped_offset = offset
        self._dropped += 1
        self._last_dropped = (message, offset)

    @property
    def warnings(self) -> list[dict[str, Any]]:
        """The warnings of this file: the first :data:`MAX_WARNINGS`, then (when there were more)
        one that says how many were not kept, where they started and what the last one was.

        The summary is made when the list is read, so it comes after everything the parsers
        reported, however many parsers read the file.
        """
        if not self._dropped:
            return self._kept
        last, last_offset = self._last_dropped
        where = f" at offset {last_offset}" if last_offset is not None else ""
        summary = self._warning(f"{self._dropped} more warnings like these were not kept (only the "
                                f"first {MAX_WARNINGS} of a file are); the last one{where}: {last}",
                                self._first_dropped_offset)
        return [*self._kept, summary]

    def _warning(self, message: str, offset: int | None) -> dict[str, Any]:
        return {"path": _writable(self.provenance.source_path),
                "bundle_path": self.provenance.bundle_path,
                "offset": offset, "message": _writable(message)}

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

    @classmethod
    def companions(cls, entry: dict[str, Any], manifest: list[dict[str, Any]]) -> list[str]:
        """Bundle paths besides its own file that parsing ``entry`` reads (a carved run is compared
        with the messages still present), so a worker given one file can fetch them too."""
        return []

    @abc.abstractmethod
    def parse(self, fh: BinaryIO, ctx: ParseContext) -> Iterator[Record]:
        """Yield records from the open file ``fh``."""
