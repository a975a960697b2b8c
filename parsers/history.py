"""What every shell-history parser shares: entries in, records with honest time bounds out.

A history line without its own time is never dropped and never given an invented one. It keeps its
position (``order``) and carries the bounds that are actually known: the previous dated line of
the same file ("not before") and the file's last modification ("not after"). The current directory
is tracked through ``cd`` so that ``cd /var/mail; rm carol`` can be resolved by the rules.
"""

from __future__ import annotations

import posixpath
import shlex
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import BinaryIO, TextIO

from collector.timeutil import parse_iso
from parsers.base import ParseContext
from parsers.record import Record
from parsers.shell_command import fold_lines

NOT_BEFORE = "Not before: previous dated history line"
NOT_AFTER = "Not after: history file last modified"
MAX_COMMAND_CHARS = 1 << 20
#: A history line longer than this is cut: a 2 GB single line must not be read into memory.
MAX_LINE_BYTES = 1 << 20


@dataclass
class HistoryEntry:
    """One command as the shell stored it (possibly several physical lines)."""

    command: str
    offset: int
    line_number: int
    time: int | None = None
    extra: dict[str, object] | None = None


def bounded_lines(fh: BinaryIO, ctx: ParseContext,
                  limit: int = MAX_LINE_BYTES) -> Iterator[tuple[int, bytes, int]]:
    """(start offset, line, end offset) of each line of ``fh``, streaming in bounded memory.

    A line longer than ``limit`` bytes is cut to its first ``limit`` bytes with a warning at its
    offset; the rest of it is read in ``limit``-sized pieces and dropped, never held. Offsets stay
    those of the file.
    """
    offset = 0
    while True:
        raw = fh.readline(limit)
        if not raw:
            return
        start = offset
        offset += len(raw)
        if len(raw) == limit and not raw.endswith(b"\n"):
            skipped = 0
            while True:
                rest = fh.readline(limit)
                offset += len(rest)
                skipped += len(rest)
                if not rest or rest.endswith(b"\n"):
                    break
            if skipped:
                ctx.warn(f"line of {len(raw) + skipped} bytes cut to its first {limit} bytes", start)
        yield start, raw, offset


def bounded_text_lines(text: TextIO, ctx: ParseContext, limit: int = MAX_LINE_BYTES) -> Iterator[str]:
    """Lines of a text stream, each cut to ``limit`` characters like :func:`bounded_lines` does."""
    while True:
        line = text.readline(limit)
        if not line:
            return
        if len(line) == limit and not line.endswith("\n"):
            skipped = 0
            while True:
                rest = text.readline(limit)
                skipped += len(rest)
                if not rest or rest.endswith("\n"):
                    break
            if skipped:
                ctx.warn(f"line of {limit + skipped} characters cut to its first {limit}")
        yield line


def decode_line(raw: bytes) -> str:
    """Decode losslessly: invalid UTF-8 bytes survive as surrogate escapes, never as U+FFFD."""
    return raw.decode("utf-8", "surrogateescape")


def is_incomplete(command: str) -> bool:
    """Whether a command obviously continues on the next line (open quote, trailing operator)."""
    stripped = command.rstrip()
    if stripped.endswith(("\\", "|", "&&", "||")):
        return True
    try:
        shlex.split(fold_lines(command)[0], comments=False)  # here-document bodies left out
    except ValueError:
        return True
    return False


def _track_cwd(command: str, cwd: str | None, home: str | None) -> str | None:
    parts = command.strip().split()
    if not parts or parts[0] not in ("cd", "pushd"):
        return cwd
    target = parts[1] if len(parts) > 1 else (home or None)
    if target is None or target == "-":
        return None
    if target.startswith("~"):
        target = (home or "~") + target[1:] if target == "~" or target.startswith("~/") else None
        if target is None or target.startswith("~"):
            return None
    if target.startswith("$"):
        return None
    if not target.startswith("/"):
        if cwd is None:
            return None
        target = posixpath.join(cwd, target)
    return posixpath.normpath(target)


def history_records(entries: Iterable[HistoryEntry], ctx: ParseContext, data_type: str,
                    parser: str, time_desc: str, track_cwd: bool = True) -> Iterator[Record]:
    """Turn history entries into records with times, bounds, cwd and home attributes.

    ``track_cwd=False`` for shells whose ``cd`` is not POSIX (PowerShell's ``cd .\\x``).
    """
    mtime_text = ctx.entry.get("mtime")
    mtime = parse_iso(mtime_text) if mtime_text else None
    home = ctx.entry.get("home")
    cwd: str | None = home if track_cwd else None
    previous_time: int | None = None
    for order, entry in enumerate(entries):
        attributes: dict[str, object] = {"command": entry.command, "line_number": entry.line_number,
                                         "shell": data_type.split(":")[1]}
        if home:
            attributes["home"] = home
        if cwd:
            attributes["cwd"] = cwd
        if entry.extra:
            attributes.update(entry.extra)
        timestamps: dict[str, int] = {}
        bounds: dict[str, int] = {}
        if entry.time is not None:
            timestamps[time_desc] = entry.time
            previous_time = entry.time
        else:
            if previous_time is not None:
                bounds[NOT_BEFORE] = previous_time
            if mtime is not None:
                bounds[NOT_AFTER] = mtime
        summary = entry.command.replace("\n", " ⏎ ")
        yield Record(
            data_type=data_type, message=summary, provenance=ctx.provenance_at(entry.offset),
            parser=parser, order=order, timestamps=timestamps, time_bounds=bounds,
            attributes=attributes, host=ctx.host, user=ctx.user)
        cwd = _track_cwd(entry.command, cwd, home) if track_cwd else None
