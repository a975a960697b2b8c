"""Fish history (``~/.local/share/fish/fish_history``): fish's YAML-like format since fish 2.0.

Each entry is ``- cmd: <command>`` followed by ``  when: <epoch>`` and optionally ``  paths:``
with ``    - <path>`` items (arguments fish saw were paths). Fish escapes a newline in a command as
``\\n`` and a backslash as ``\\\\`` so that an entry stays on one physical line; both are undone
here, and any other backslash is kept as written (lossless). A line fish would not write is kept
on the entry it follows (``unparsed_lines``) with a warning, so no line is dropped.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import BinaryIO

from collector.timeutil import from_posix
from parsers.base import ParseContext, Parser
from parsers.history import MAX_COMMAND_CHARS, HistoryEntry, bounded_lines, decode_line, history_records
from parsers.record import Record

_CMD = re.compile(rb"^- cmd:(?: (.*))?$", re.DOTALL)
_WHEN = re.compile(rb"^ +when: *(-?\d{1,12}) *$")
_PATHS = re.compile(rb"^ +paths: *$")
_PATH_ITEM = re.compile(rb"^ +- (.*)$", re.DOTALL)
TIME_DESC = "Command Start Time"
DATA_TYPE = "shell:fish:command"
_MAX_LIST = 1000


def unescape_fish(raw: bytes) -> bytes:
    """Undo fish 2.0's escaping: ``\\n`` is a newline and ``\\\\`` a backslash; nothing else."""
    if b"\\" not in raw:
        return raw
    out = bytearray()
    i = 0
    while i < len(raw):
        byte = raw[i]
        if byte == 0x5C and i + 1 < len(raw) and raw[i + 1] in (0x5C, 0x6E):
            out.append(0x5C if raw[i + 1] == 0x5C else 0x0A)
            i += 2
            continue
        out.append(byte)
        i += 1
    return bytes(out)


def iter_fish_entries(fh: BinaryIO, ctx: ParseContext) -> Iterator[HistoryEntry]:
    """Yield one entry per ``- cmd:`` line, with its time and paths, streaming."""
    current: HistoryEntry | None = None
    in_paths = False
    for number, (line_offset, raw, _) in enumerate(bounded_lines(fh, ctx), 1):
        body = raw.rstrip(b"\r\n")
        match = _CMD.match(body)
        if match:
            if current is not None:
                yield current
            command = decode_line(unescape_fish(match.group(1) or b""))
            current = HistoryEntry(command=command[:MAX_COMMAND_CHARS], offset=line_offset,
                                   line_number=number, extra={})
            in_paths = False
            continue
        if not body.strip():
            continue  # fish never writes blank lines; nothing to keep but the byte count
        when = _WHEN.match(body)
        item = _PATH_ITEM.match(body) if in_paths else None
        if current is not None and when:
            try:
                current.time = from_posix(int(when.group(1)))
            except (OverflowError, ValueError):
                ctx.warn(f"unusable fish 'when' value {when.group(1)!r}", line_offset)
                _keep(current, body)
            in_paths = False
        elif current is not None and _PATHS.match(body):
            in_paths = True
        elif current is not None and item:
            paths = current.extra.setdefault("paths", [])  # type: ignore[union-attr]
            if len(paths) < _MAX_LIST:
                paths.append(decode_line(unescape_fish(item.group(1))))
        else:
            ctx.warn(f"line {number} is not fish history syntax; kept on the previous entry", line_offset)
            if current is None:
                current = HistoryEntry(command="", offset=line_offset, line_number=number, extra={})
            _keep(current, body)
            in_paths = False
    if current is not None:
        yield current


def _keep(entry: HistoryEntry, body: bytes) -> None:
    lines = entry.extra.setdefault("unparsed_lines", [])  # type: ignore[union-attr]
    if len(lines) < _MAX_LIST:
        lines.append(decode_line(body))


class FishHistoryParser(Parser):
    """Fish shell history files."""

    NAME = "fish_history"
    DESCRIPTION = "Fish history ('- cmd:' / 'when:' / 'paths:' entries, fish escaping undone)"
    DATA_TYPES = (DATA_TYPE,)

    @classmethod
    def sniff(cls, head: bytes, name: str) -> bool:
        if name.lower() == "fish_history":
            return True
        return head.startswith(b"- cmd:") and b"\n  when:" in head

    def parse(self, fh: BinaryIO, ctx: ParseContext) -> Iterator[Record]:
        yield from history_records(iter_fish_entries(fh, ctx), ctx, DATA_TYPE, self.NAME, TIME_DESC)
