"""Glob artifact path patterns over any :class:`FileSystemView`, live and deleted entries alike.

Patterns are absolute POSIX paths whose segments may hold ``*``, ``?`` and ``[...]``; a segment
``**`` matches any depth (bounded). Intermediate symbolic links are never traversed: a link where a
directory was expected is reported, so a hostile link cannot lead collection out of the tree.
"""

from __future__ import annotations

import fnmatch
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
        with_deleted: also list unallocated entries the file system still holds.
    """
    segments = [s for s in pattern.split("/") if s]
    found = False
    reasons: list[str] = []
    for item in _walk(fs, "/", segments, pattern, with_deleted, reasons, 0):
        found = True
        yield item
    if not found:
        reason = reasons[0] if reasons else "no matching file"
        yield GlobMiss(pattern=pattern, reason=reason)


def _walk(fs: FileSystemView, base: str, segments: list[str], pattern: str, with_deleted: bool,
          reasons: list[str], depth: int) -> Iterator[GlobHit]:
    if not segments:
        return
    head, rest = segments[0], segments[1:]
    if head == "**":
        if depth >= MAX_RECURSION_DEPTH:
            reasons.append(f"recursion limit {MAX_RECURSION_DEPTH} reached under {base}")
            return
        # '**' matches zero directories, then any one directory followed by '**' again.
        if rest:
            yield from _walk(fs, base, rest, pattern, with_deleted, reasons, depth)
        else:
            yield from _walk(fs, base, ["*"], pattern, with_deleted, reasons, depth)
        for child in _children(fs, base, reasons):
            if child.kind == "dir":
                yield from _walk(fs, child.location, segments, pattern, with_deleted, reasons,
                                 depth + 1)
        return

    if _GLOB_CHARS.search(head):
        regex = _matcher(head, fs.case_sensitive)
        candidates = [c for c in _children(fs, base, reasons) if regex.fullmatch(c.name)]
    else:
        entry = fs.stat(_join(base, head))
        if entry is None:
            reasons.append(f"{_join(base, head)} does not exist")
        candidates = [entry] if entry is not None else []
        regex = None

    for entry in candidates:
        if rest:
            if entry.kind == "dir":
                yield from _walk(fs, entry.location, rest, pattern, with_deleted, reasons, depth)
            elif entry.kind == "symlink":
                # Recorded, not followed: the examiner sees where it pointed.
                yield GlobHit(entry=entry, pattern=pattern)
        elif entry.kind in ("file", "symlink", "other"):
            yield GlobHit(entry=entry, pattern=pattern)

    if with_deleted and not rest:
        regex = regex or _matcher(head, fs.case_sensitive)
        try:
            deleted = list(fs.deleted_entries(base))
        except OSError as exc:
            reasons.append(f"deleted entries of {base} unreadable: {exc}")
            deleted = []
        for entry in deleted:
            if entry.kind != "dir" and regex.fullmatch(entry.name):
                yield GlobHit(entry=entry, pattern=pattern)


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
