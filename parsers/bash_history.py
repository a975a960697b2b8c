"""Bash history (``~/.bash_history``), with or without ``#<epoch>`` timestamp lines.

With ``HISTTIMEFORMAT`` set, bash writes ``#1791900005`` before each command. Files are often
desynchronised (timestamps switched on mid-life, or sessions that wrote without them), so each
line is judged on its own: a ``#epoch`` line dates the next command; a command line with no
timestamp before it is its own undated entry unless it obviously continues the previous command
(open quote, trailing backslash or operator).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import BinaryIO

from collector.timeutil import from_posix
from parsers.base import ParseContext, Parser
from parsers.history import MAX_COMMAND_CHARS, HistoryEntry, decode_line, history_records, is_incomplete
from parsers.record import Record

_EPOCH = re.compile(rb"^#(\d{1,11})\s*$")
TIME_DESC = "Command Executed Time"


def iter_bash_entries(fh: BinaryIO, ctx: ParseContext) -> Iterator[HistoryEntry]:
    """Yield one :class:`HistoryEntry` per command, streaming line by line."""
    pending_time: int | None = None
    current: HistoryEntry | None = None
    offset = 0
    for number, raw in enumerate(fh, 1):
        line_offset = offset
        offset += len(raw)
        body = raw.rstrip(b"\r\n")
        match = _EPOCH.match(body)
        if match:
            if current is not None:
                yield current
                current = None
            if pending_time is not None:
                ctx.warn("timestamp line without a command", line_offset)
            pending_time = from_posix(int(match.group(1)))
            continue
        text = decode_line(body)
        if current is not None and pending_time is None and is_incomplete(current.command):
            if len(current.command) < MAX_COMMAND_CHARS:
                current.command += "\n" + text
            continue
        if current is not None:
            yield current
        current = HistoryEntry(command=text, offset=line_offset, line_number=number, time=pending_time)
        pending_time = None
    if current is not None:
        yield current
    if pending_time is not None:
        ctx.warn("file ends with a timestamp line and no command", offset)


class BashHistoryParser(Parser):
    """Bash history files."""

    NAME = "bash_history"
    DESCRIPTION = "Bash history with or without #epoch (HISTTIMEFORMAT) lines"
    DATA_TYPES = ("shell:bash:command",)

    @classmethod
    def sniff(cls, head: bytes, name: str) -> bool:
        lowered = name.lower()
        if "bash_history" in lowered or lowered in (".sh_history", "sh_history"):
            return True
        lines = head.split(b"\n")[:20]
        return sum(1 for line in lines if _EPOCH.match(line.rstrip(b"\r"))) >= 2

    def parse(self, fh: BinaryIO, ctx: ParseContext) -> Iterator[Record]:
        yield from history_records(iter_bash_entries(fh, ctx), ctx, "shell:bash:command",
                                   self.NAME, TIME_DESC)
