"""PowerShell PSReadLine history (``ConsoleHost_history.txt``), every user and system profile.

PSReadLine appends one command per line and writes a multi-line command with a backtick at the
end of every line but the last; those lines are joined back (backtick removed, newline kept),
as PSReadLine itself reads them. The file holds no times at all, so every entry is undated: it
keeps its order and carries the file's last modification as "not after" (parsers/history.py).
Windows writes CRLF, sometimes a UTF-8 byte-order mark; both are removed, nothing else is.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import BinaryIO

from parsers.base import ParseContext, Parser
from parsers.history import MAX_COMMAND_CHARS, HistoryEntry, bounded_lines, decode_line, history_records
from parsers.record import Record

DATA_TYPE = "shell:powershell:command"
TIME_DESC = "Command Executed Time"  # never used: the file has no times
_BOM = b"\xef\xbb\xbf"
_NAME = re.compile(r"(^|_)history\.txt$", re.IGNORECASE)


def iter_psreadline_entries(fh: BinaryIO, ctx: ParseContext) -> Iterator[HistoryEntry]:
    """Yield one entry per command, joining backtick-continued lines, streaming."""
    current: HistoryEntry | None = None
    offset = 0
    for number, (line_offset, raw, end) in enumerate(bounded_lines(fh, ctx), 1):
        offset = end
        body = raw.rstrip(b"\r\n")
        if number == 1 and body.startswith(_BOM):
            body = body[len(_BOM):]
        text = decode_line(body)
        continued = text.endswith("`")
        if continued:
            text = text[:-1]
        if current is None:
            current = HistoryEntry(command=text, offset=line_offset, line_number=number,
                                   extra={"physical_lines": 1})
        else:
            if len(current.command) < MAX_COMMAND_CHARS:
                current.command += "\n" + text
            current.extra["physical_lines"] += 1  # type: ignore[index,operator]
        if not continued:
            yield current
            current = None
    if current is not None:
        ctx.warn("file ends inside a backtick-continued command", offset)
        yield current


class PSReadLineHistoryParser(Parser):
    """PowerShell PSReadLine history files."""

    NAME = "psreadline_history"
    DESCRIPTION = "PowerShell PSReadLine ConsoleHost_history.txt (backtick continuations joined, undated)"
    DATA_TYPES = (DATA_TYPE,)

    @classmethod
    def sniff(cls, head: bytes, name: str) -> bool:
        return bool(_NAME.search(name)) and "host" in name.lower()

    def parse(self, fh: BinaryIO, ctx: ParseContext) -> Iterator[Record]:
        yield from history_records(iter_psreadline_entries(fh, ctx), ctx, DATA_TYPE, self.NAME,
                                   TIME_DESC, track_cwd=False)
