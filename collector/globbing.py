"""Glob artifact path patterns over any :class:`FileSystemView`, live and deleted entries alike.

Patterns are absolute POSIX paths whose segments may hold ``*``, ``?`` and ``[...]``; a segment
``**`` matches any depth (bounded). Intermediate symbolic links are never traversed: a link where a
directory was expected is reported, so a hostile link cannot lead collection out of the tree.
"""

from __future__ import annotations

import fnmatch
import functools
import re
from collections.abc import Iterator
from dataclasses import dataclass

from collector.source import FileSystemView, SourceFile

MAX_RECURSION_DEPTH = 16
_GLOB_CHARS = re.compile(r"[*?\[]")


@dataclass(frozen=True)
class GlobHit:
    """An entry matched by a pattern (a regular file, a deleted entry or a symlink)."""

    entry: SourceFile
    pattern: str


@dataclass(frozen=True)
class GlobMiss:
    """A pattern that matched nothing, with the reason (missing directory, symlink...)."""

    pattern: str
    reason: str


@functools.lru_cache(maxsize=512)
def _matcher(segment: str, case_sensitive: bool) -> re.Pattern[str]:
    flags = 0 if case_sensitive else re.IGNORECASE
    return re.compile(fnmatch.translate(segment), flags)


def _join(base: str, name: str) -> str:
    return f"{base.rstrip('/')}/{name}"


def glob(fs: FileSystemView, pattern: str, with_deleted: bool = True) -> Iterator[GlobHit | GlobMiss]:
    """Yield every file matching ``pattern`` in ``fs``, then a miss if there was none.

    Args:
        fs: the file system to search.
        pattern: absolute pattern such as ``/var/mail/*`` or ``/home/*/.mozilla/**``.
        with_deleted: also list unallocated entries the file system still holds, including the
            contents of deleted directories.
    """
    segments = [s for s in pattern.split("/") if s]
    found = False
    reasons: list[str] = []
    walker = _Walker(fs, pattern, with_deleted, reasons)
    for item in walker.walk("/", segments, 0, deleted_dir=False):
        found = True
        yield item
    if not found:
        reason = reasons[0] if reasons else "no matching file"
        yield GlobMiss(pattern=pattern, reason=reason)


class _Walker:
    """One pattern's walk. In a deleted directory every child comes from the deleted listing."""

    def __init__(self, fs: FileSystemView, pattern: str, with_deleted: bool, reasons: list[str]) -> None:
        self.fs, self.pattern, self.with_deleted, self.reasons = fs, pattern, with_deleted, reasons
        self._deleted_cache: dict[str, list[SourceFile]] = {}

    def _deleted(self, base: str) -> list[SourceFile]:
        """Deleted entries of ``base``, listed once per walk (``**`` asks for them twice)."""
        if not self.with_deleted:
            return []
        if base not in self._deleted_cache:
            try:
                self._deleted_cache[base] = list(self.fs.deleted_entries(base))
            except OSError as exc:
                self.reasons.append(f"deleted entries of {base} unreadable: {exc}")
                self._deleted_cache[base] = []
        return self._deleted_cache[base]

    def _matches(self, segment: str, name: str) -> bool:
        if _GLOB_CHARS.search(segment):
            return bool(_matcher(segment, self.fs.case_sensitive).fullmatch(name))
        return name == segment if self.fs.case_sensitive else name.casefold() == segment.casefold()

    def walk(self, base: str, segments: list[str], depth: int, deleted_dir: bool,
             listing: list[SourceFile] | None = None) -> Iterator[GlobHit]:
        """Yield the hits of ``segments`` under ``base``.

        ``listing`` is ``base``'s allocated entries when the caller has them already (``**``
        lists a directory once for matching its entries and for descending into them).
        """
        if not segments:
            return
        head, rest = segments[0], segments[1:]
        if head == "**":
            if depth >= MAX_RECURSION_DEPTH:
                self.reasons.append(f"recursion limit {MAX_RECURSION_DEPTH} reached under {base}")
                return
            # '**' matches zero directories, then any one directory followed by '**' again.
            children = self._deleted(base) if deleted_dir else _children(self.fs, base, self.reasons)
            yield from self.walk(base, rest or ["*"], depth, deleted_dir,
                                 listing=None if deleted_dir else children)
            for child in children:
                if child.kind == "dir":
                    yield from self.walk(child.location, segments, depth + 1, deleted_dir)
            if not deleted_dir:  # deleted folders inside a live one
                for child in self._deleted(base):
                    if child.kind == "dir":
                        yield GlobHit(entry=child, pattern=self.pattern)  # the folder is evidence too
                        yield from self.walk(child.location, segments, depth + 1, True)
            return

        if deleted_dir:
            candidates = [c for c in self._deleted(base) if self._matches(head, c.name)]
        elif _GLOB_CHARS.search(head):
            if listing is None:
                listing = _children(self.fs, base, self.reasons)
            candidates = [c for c in listing if self._matches(head, c.name)]
        else:
            entry = self.fs.stat(_join(base, head))
            if entry is None:
                self.reasons.append(f"{_join(base, head)} does not exist")
            candidates = [entry] if entry is not None else []

        for entry in candidates:
            if rest:
                if entry.kind == "dir":
                    yield from self.walk(entry.location, rest, depth, deleted_dir or entry.deleted)
                elif entry.kind == "symlink":
                    # Recorded, not followed: the examiner sees where it pointed.
                    yield GlobHit(entry=entry, pattern=self.pattern)
            elif entry.kind in ("file", "symlink", "other") or entry.deleted:
                yield GlobHit(entry=entry, pattern=self.pattern)

        if deleted_dir or not self.with_deleted:
            return
        for entry in self._deleted(base):  # deleted names in a live directory
            if not self._matches(head, entry.name):
                continue
            if not rest:
                yield GlobHit(entry=entry, pattern=self.pattern)
            elif entry.kind == "dir":
                yield from self.walk(entry.location, rest, depth, True)


def _children(fs: FileSystemView, base: str, reasons: list[str]) -> list[SourceFile]:
    try:
        return list(fs.list_dir(base))
    except FileNotFoundError:
        reasons.append(f"{base} does not exist")
    except NotADirectoryError:
        reasons.append(f"{base} is not a directory")
    except OSError as exc:
        reasons.append(f"{base} unreadable: {exc.strerror or exc}")
    return []
