"""Zsh history: EXTENDED_HISTORY (``: <start>:<elapsed>;<command>``) and plain lines; also
macOS Terminal's per-window ``~/.zsh_sessions/<id>.history`` (same format) and its ``.session``.

Zsh stores multi-line commands with a backslash before each embedded newline, and "metafies"
bytes 0x83-0x9F and NUL as 0x83 followed by the byte XOR 0x20; both are undone here so that the
command is what the user typed.
"""

from __future__ import annotations

import posixpath
import re
from collections.abc import Iterator
from typing import BinaryIO

from collector.timeutil import from_posix, parse_iso
from parsers.base import ParseContext, Parser
from parsers.history import (
    MAX_COMMAND_CHARS,
    NOT_AFTER,
    HistoryEntry,
    bounded_lines,
    decode_line,
    history_records,
)
from parsers.record import Record

_EXTENDED = re.compile(rb"^: *(\d{1,11}):(\d+);(.*)$", re.DOTALL)
_META = 0x83
TIME_DESC = "Command Start Time"


def unmetafy(raw: bytes) -> bytes:
    """Undo zsh's metafication (0x83 marks a byte stored XOR 0x20)."""
    if _META not in raw:
        return raw
    out = bytearray()
    escape = False
    for byte in raw:
        if escape:
            out.append(byte ^ 0x20)
            escape = False
        elif byte == _META:
            escape = True
        else:
            out.append(byte)
    return bytes(out)


def iter_zsh_entries(fh: BinaryIO, ctx: ParseContext) -> Iterator[HistoryEntry]:
    """Yield one entry per command, joining backslash-continued lines."""
    current: HistoryEntry | None = None
    continued = False
    offset = 0
    for number, (line_offset, raw, end) in enumerate(bounded_lines(fh, ctx), 1):
        offset = end
        body = unmetafy(raw.rstrip(b"\r\n"))
        if current is not None and continued:
            text = decode_line(body)
            continued = text.endswith("\\")
            if len(current.command) < MAX_COMMAND_CHARS:
                current.command += "\n" + (text[:-1] if continued else text)
            continue
        if current is not None:
            yield current
        match = _EXTENDED.match(body)
        if match:
            text = decode_line(match.group(3))
            start = from_posix(int(match.group(1)))
            elapsed = int(match.group(2))
            extra = {"elapsed_seconds": elapsed}
        else:
            text, start, extra = decode_line(body), None, None
        continued = text.endswith("\\")
        current = HistoryEntry(command=text[:-1] if continued else text, offset=line_offset,
                               line_number=number, time=start, extra=extra)
    if current is not None:
        if continued:
            ctx.warn("file ends inside a continued command", offset)
        yield current


class ZshHistoryParser(Parser):
    """Zsh history files."""

    NAME = "zsh_history"
    DESCRIPTION = "Zsh history, extended (': start:elapsed;cmd') and plain"
    DATA_TYPES = ("shell:zsh:command",)

    @classmethod
    def sniff(cls, head: bytes, name: str) -> bool:
        lowered = name.lower()
        if "zsh_history" in lowered or lowered in (".histfile", "histfile") or lowered.endswith(".history"):
            return True
        lines = [line for line in head.split(b"\n")[:20] if line]
        return bool(lines) and sum(1 for line in lines if _EXTENDED.match(line)) >= max(1, len(lines) // 2)

    def parse(self, fh: BinaryIO, ctx: ParseContext) -> Iterator[Record]:
        yield from history_records(iter_zsh_entries(fh, ctx), ctx, "shell:zsh:command",
                                   self.NAME, TIME_DESC)


_SESSION_SAVED = re.compile(rb"/bin/date -r (\d{1,11})")
SESSION_TIME_DESC = "Session Saved Time"


class TerminalSessionParser(Parser):
    """macOS Terminal ``~/.zsh_sessions/<id>.session`` (and ``~/.bash_sessions``).

    /etc/zshrc_Apple_Terminal rewrites this file when the shell exits, starting with
    ``echo Restored session: "$(/bin/date -r <epoch>)"``: the epoch is when the window's session
    (and so its ``<id>.history``) was last saved, a time the history lines themselves may lack.
    """

    NAME = "terminal_session"
    DESCRIPTION = "macOS Terminal .session files (time the window's shell history was saved)"
    DATA_TYPES = ("shell:session:saved",)

    @classmethod
    def sniff(cls, head: bytes, name: str) -> bool:
        return name.lower().endswith(".session") and b"Restored session:" in head

    def parse(self, fh: BinaryIO, ctx: ParseContext) -> Iterator[Record]:
        mtime_text = ctx.entry.get("mtime")
        mtime = parse_iso(mtime_text) if mtime_text else None
        session_id = posixpath.basename(ctx.provenance.source_path).rsplit(".", 1)[0]
        order = 0
        for number, (line_offset, raw, _) in enumerate(bounded_lines(fh, ctx), 1):
            body = raw.rstrip(b"\r\n")
            if not body.strip():
                continue
            match = _SESSION_SAVED.search(body)
            timestamps = {SESSION_TIME_DESC: from_posix(int(match.group(1)))} if match else {}
            bounds = {NOT_AFTER: mtime} if not match and mtime is not None else {}
            text = decode_line(body)
            yield Record(data_type="shell:session:saved",
                         message=f"Terminal session {session_id} saved" if match else text,
                         provenance=ctx.provenance_at(line_offset), parser=self.NAME, order=order,
                         timestamps=timestamps, time_bounds=bounds,
                         attributes={"line": text, "line_number": number, "session_id": session_id},
                         host=ctx.host, user=ctx.user)
            order += 1
