"""Bash history (``~/.bash_history``), with or without ``#<epoch>`` timestamp lines; also the
plain-text histories of sh, ash (busybox) and ksh, whose format is the same, and the binary one
of mksh/pdksh (``AB CD`` magic, NUL-terminated records).

With ``HISTTIMEFORMAT`` set, bash writes ``#1791900005`` before each command. Files are often
desynchronised (timestamps switched on mid-life, or sessions that wrote without them), so each
line is judged on its own: a ``#epoch`` line dates the next command; a command line with no
timestamp before it is its own undated entry unless it obviously continues the previous command
(open quote, trailing backslash or operator) or is the body of a here-document the previous
command opened (``mail -f box <<EOF`` / ``d *`` / ``EOF`` is one command, as bash stored it).
"""

from __future__ import annotations

import posixpath
import re
from collections.abc import Iterator
from typing import BinaryIO

from collector.timeutil import from_posix
from parsers.base import ParseContext, Parser
from parsers.history import (
    MAX_COMMAND_CHARS,
    HistoryEntry,
    bounded_lines,
    decode_line,
    history_records,
    is_incomplete,
)
from parsers.record import Record
from parsers.shell_command import heredoc_delimiters

_EPOCH = re.compile(rb"^#(\d{1,11})\s*$")
TIME_DESC = "Command Executed Time"
#: A here-document body longer than this is not trusted to be one: its lines become entries.
HEREDOC_MAX_LINES = 1000
#: An open quote is not trusted to go on for longer than this (and re-checking a growing command
#: on every line must stay cheap on a 2 GB file).
MAX_CONTINUED_LINES = 200
#: ksh93 starts its history file with these two bytes (the rest is text, one command per line).
_KSH93_MAGIC = b"\x81\x01"
#: mksh (and old pdksh/OpenBSD ksh) write a binary file starting with these two bytes.
_PDKSH_MAGIC = b"\xab\xcd"
_PDKSH_COMMAND = 0xFF
_SHELL_BY_NAME = {".ash_history": "ash", ".ksh_history": "ksh", ".mksh_history": "mksh",
                  ".sh_history": "sh", "sh_history": "sh"}


def shell_for(source_path: str) -> str:
    """The shell a history file belongs to, from its name (bash unless known otherwise)."""
    return _SHELL_BY_NAME.get(posixpath.basename(source_path).lower(), "bash")


class _Reader:
    """The line-by-line state machine (kept in an object so buffered lines can be replayed)."""

    def __init__(self, ctx: ParseContext) -> None:
        self.ctx = ctx
        self.pending_time: int | None = None
        self.current: HistoryEntry | None = None
        #: Open here-documents of ``current`` and the lines buffered while waiting for their end.
        self.delimiters: list[tuple[str, bool]] = []
        self.buffer: list[tuple[int, int, str]] = []
        #: Physical lines joined to ``current`` because it looked unfinished (open quote...).
        self.continued = 0

    def _start(self, text: str, offset: int, number: int, heredocs: bool = True) -> Iterator[HistoryEntry]:
        if self.current is not None:
            yield self.current
        self.current = HistoryEntry(command=text, offset=offset, line_number=number, time=self.pending_time)
        self.pending_time = None
        self.continued = 0
        self.delimiters = heredoc_delimiters(text) if heredocs else []

    def _give_up_heredoc(self) -> Iterator[HistoryEntry]:
        """The here-document never ended: its lines are commands of their own after all."""
        buffered, self.buffer, self.delimiters = self.buffer, [], []
        for offset, number, text in buffered:
            yield from self.line(text, offset, number, heredocs=False)

    def epoch(self, value: int, offset: int) -> Iterator[HistoryEntry]:
        if self.buffer:
            yield from self._give_up_heredoc()
        if self.current is not None:
            yield self.current
            self.current = None
            self.delimiters = []
        if self.pending_time is not None:
            self.ctx.warn("timestamp line without a command", offset)
        self.pending_time = from_posix(value)

    def line(self, text: str, offset: int, number: int, heredocs: bool = True) -> Iterator[HistoryEntry]:
        current = self.current
        if current is not None and self.delimiters and self.pending_time is None:
            self.buffer.append((offset, number, text))
            delimiter, strip_tabs = self.delimiters[0]
            if (text.lstrip("\t") if strip_tabs else text) == delimiter:
                self.delimiters.pop(0)
                if not self.delimiters:
                    body = "\n".join(t for _, _, t in self.buffer)
                    self.buffer = []
                    if len(current.command) < MAX_COMMAND_CHARS:
                        current.command += "\n" + body
            elif len(self.buffer) > HEREDOC_MAX_LINES:
                yield from self._give_up_heredoc()
            return
        if (current is not None and self.pending_time is None and self.continued < MAX_CONTINUED_LINES
                and len(current.command) < MAX_COMMAND_CHARS and is_incomplete(current.command)):
            current.command += "\n" + text
            self.continued += 1
            if self.continued == MAX_CONTINUED_LINES:
                self.ctx.warn(f"command continued over {MAX_CONTINUED_LINES} lines; the next line starts "
                              "a new entry", offset)
            if heredocs:
                self.delimiters = heredoc_delimiters(text)
            return
        yield from self._start(text, offset, number, heredocs)

    def finish(self, offset: int) -> Iterator[HistoryEntry]:
        if self.buffer:
            yield from self._give_up_heredoc()
        if self.current is not None:
            yield self.current
            self.current = None
        if self.pending_time is not None:
            self.ctx.warn("file ends with a timestamp line and no command", offset)


def iter_pdksh_entries(fh: BinaryIO, ctx: ParseContext) -> Iterator[HistoryEntry]:
    """mksh/pdksh binary history: magic ``AB CD``, then ``FF <number:4, big endian> <command> 00``.

    A command may hold newlines (it is NUL-terminated); bytes that do not fit the layout are kept
    as an entry of their own with a warning rather than dropped.
    """
    offset = len(fh.read(len(_PDKSH_MAGIC)))
    buffer = b""
    line_number = 1
    eof = False
    while not eof:
        chunk = fh.read(1 << 16)
        eof = not chunk
        buffer += chunk
        pos = 0
        while pos < len(buffer):
            header = 5 if buffer[pos] == _PDKSH_COMMAND else 0
            end = buffer.find(b"\0", pos + header) if len(buffer) - pos >= header else -1
            if end < 0:
                if not eof and len(buffer) - pos <= MAX_COMMAND_CHARS:
                    break  # the rest of this record is in the next chunk
                end = len(buffer)
                ctx.warn("pdksh history ends inside a record" if eof else
                         "pdksh history record longer than 1 MiB; split", offset)
            extra: dict[str, object] = {}
            if header and end - pos >= header:
                extra["history_number"] = int.from_bytes(buffer[pos + 1:pos + 5], "big")
            elif not (eof and end == len(buffer)):
                header = 0
                ctx.warn("pdksh history record without its FF marker; kept as is", offset)
            text = decode_line(buffer[pos + header:end])
            yield HistoryEntry(command=text, offset=offset, line_number=line_number, extra=extra)
            line_number += text.count("\n") + 1
            offset += end + 1 - pos if end < len(buffer) else end - pos
            pos = end + 1
        buffer = buffer[pos:]


def iter_bash_entries(fh: BinaryIO, ctx: ParseContext) -> Iterator[HistoryEntry]:
    """Yield one :class:`HistoryEntry` per command, streaming line by line."""
    reader = _Reader(ctx)
    offset = 0
    for number, (line_offset, raw, end) in enumerate(bounded_lines(fh, ctx), 1):
        offset = end
        body = raw.rstrip(b"\r\n")
        if number == 1 and body.startswith(_KSH93_MAGIC):
            body = body[len(_KSH93_MAGIC):]
        match = _EPOCH.match(body)
        if match:
            yield from reader.epoch(int(match.group(1)), line_offset)
        else:
            yield from reader.line(decode_line(body), line_offset, number)
    yield from reader.finish(offset)


class BashHistoryParser(Parser):
    """Bash history files (and sh/ash/ksh/mksh plain-text histories)."""

    NAME = "bash_history"
    DESCRIPTION = "Bash history with or without #epoch (HISTTIMEFORMAT) lines; sh/ash/ksh/mksh text histories"
    DATA_TYPES = ("shell:bash:command", "shell:sh:command", "shell:ash:command", "shell:ksh:command",
                  "shell:mksh:command")

    @classmethod
    def sniff(cls, head: bytes, name: str) -> bool:
        lowered = name.lower()
        if "bash_history" in lowered or lowered in _SHELL_BY_NAME:
            return True
        lines = head.split(b"\n")[:20]
        return sum(1 for line in lines if _EPOCH.match(line.rstrip(b"\r"))) >= 2

    def parse(self, fh: BinaryIO, ctx: ParseContext) -> Iterator[Record]:
        data_type = f"shell:{shell_for(ctx.provenance.source_path)}:command"
        binary = fh.read(len(_PDKSH_MAGIC)) == _PDKSH_MAGIC
        fh.seek(0)
        entries = iter_pdksh_entries(fh, ctx) if binary else iter_bash_entries(fh, ctx)
        yield from history_records(entries, ctx, data_type, self.NAME, TIME_DESC)
