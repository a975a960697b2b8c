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

from collector.timeutil import parse_iso
from parsers.base import ParseContext
from parsers.record import Record
from parsers.shell_command import fold_lines

NOT_BEFORE = "Not before: previous dated history line"
NOT_AFTER = "Not after: history file last modified"
MAX_COMMAND_CHARS = 1 << 20


@dataclass
class HistoryEntry:
    """One command as the shell stored it (possibly several physical lines)."""

    command: str
    offset: int
    line_number: int
    time: int | None = None
    extra: dict[str, object] | None = None


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
