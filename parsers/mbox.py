"""mbox and mailx spools: one record per message, streamed, never the whole file in memory.

Messages start at lines beginning with ``From `` (as Python's :mod:`mailbox` and mail readers
split them). Only the header block of each message is kept while reading; the body is counted,
not stored, so a multi-GB spool parses in flat memory. A message's timestamps are the envelope
``From_`` time, the ``Date:`` header and the topmost ``Received:`` header (delivery here).
"""

from __future__ import annotations

import datetime as _dt
import email.errors
import email.header
import email.utils
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from email.parser import BytesHeaderParser
from email.policy import compat32
from typing import BinaryIO

from collector.timeutil import from_datetime, iso_utc
from parsers.base import ParseContext, Parser
from parsers.record import Record

MAX_HEADER_BYTES = 256 * 1024
ENVELOPE_DESC = "Envelope Time (From_ line)"
DATE_DESC = "Sent Time (Date header)"
RECEIVED_DESC = "Delivery Time (topmost Received header)"
_ENVELOPE = re.compile(
    rb"^From (?P<sender>\S*)\s+(?P<date>(?:[A-Z][a-z]{2}\s+)?[A-Z][a-z]{2}\s+\d{1,2}\s+"
    rb"\d{1,2}:\d{2}(?::\d{2})?(?:\s+(?:[A-Z]{3,5}|[+-]\d{4}))?\s+\d{4}(?:\s+[+-]\d{4})?)")
_HEADER_LINE = re.compile(rb"^[!-9;-~]+:")
_DELETED_STATUS = re.compile(r"D")


@dataclass
class _Message:
    offset: int
    envelope: bytes
    header: bytearray = field(default_factory=bytearray)
    in_header: bool = True
    size: int = 0
    body_lines: int = 0
    header_truncated: bool = False


def parse_envelope_date(text: str) -> int | None:
    """µs for an asctime-style envelope date (``Mon Oct  5 09:12:44 2026``), read as UTC."""
    parts = text.split()
    zone = next((p for p in parts if re.fullmatch(r"[+-]\d{4}", p)), None)
    words = [p for p in parts if not re.fullmatch(r"[+-]\d{4}|[A-Z]{3,5}", p) or p in _MONTHS]
    if words and words[0][:3] in _DAYS:
        words = words[1:]
    if len(words) < 4:
        return None
    month, day, clock, year = words[0], words[1], words[2], words[-1]
    try:
        fmt = "%b %d %H:%M:%S %Y" if clock.count(":") == 2 else "%b %d %H:%M %Y"
        value = _dt.datetime.strptime(f"{month} {day} {clock} {year}", fmt)
    except ValueError:
        return None
    tz = _dt.UTC
    if zone:
        sign = -1 if zone[0] == "-" else 1
        tz = _dt.timezone(sign * _dt.timedelta(hours=int(zone[1:3]), minutes=int(zone[3:5])))
    return from_datetime(value.replace(tzinfo=tz))


_DAYS = {"Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"}
_MONTHS = {"Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"}


def parse_rfc2822_date(value: str | None) -> int | None:
    """µs for an RFC 2822 date, or None when it is missing or unparseable."""
    if not value:
        return None
    try:
        parsed = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    if parsed is None:
        return None
    try:
        return from_datetime(parsed)
    except OverflowError:
        return None


def decode_header_value(value: str | None) -> str | None:
    """Decode RFC 2047 encoded-words; undecodable parts are kept as they are."""
    if value is None:
        return None
    try:
        return str(email.header.make_header(email.header.decode_header(value)))
    except (email.errors.HeaderParseError, LookupError, UnicodeError, ValueError):
        return value


def _clean(value: object) -> str | None:
    if value is None:
        return None
    text = str(value)
    return " ".join(text.split()) if text else text


class MboxParser(Parser):
    """mbox files (mboxo, mboxrd, mboxcl) and mail spools."""

    NAME = "mbox"
    DESCRIPTION = "mbox files and mail spools (/var/mail/*, ~/mbox), one record per message"
    DATA_TYPES = ("mail:mbox:message",)

    @classmethod
    def sniff(cls, head: bytes, name: str) -> bool:
        if not head.startswith(b"From "):
            return False
        first_lines = head.split(b"\n", 8)[1:8]
        return bool(_ENVELOPE.match(head)) or any(_HEADER_LINE.match(line) for line in first_lines)

    def parse(self, fh: BinaryIO, ctx: ParseContext) -> Iterator[Record]:
        message: _Message | None = None
        offset = 0
        order = 0
        for raw in fh:
            if raw.startswith(b"From "):
                if message is not None:
                    yield self._record(message, ctx, order, complete=True)
                    order += 1
                elif offset > 0:
                    ctx.warn(f"{offset} bytes before the first From_ line are not a message", 0)
                message = _Message(offset=offset, envelope=raw.rstrip(b"\r\n"))
                message.size = len(raw)
                offset += len(raw)
                continue
            offset += len(raw)
            if message is None:
                continue
            message.size += len(raw)
            if message.in_header:
                if raw in (b"\n", b"\r\n"):
                    message.in_header = False
                elif len(message.header) + len(raw) <= MAX_HEADER_BYTES:
                    message.header += raw
                else:
                    message.header_truncated = True
            else:
                message.body_lines += 1
        if message is not None:
            yield self._record(message, ctx, order, complete=not message.in_header)
        elif offset > 0:
            ctx.warn("no From_ line found: not an mbox file, or its start is missing", 0)

    def _record(self, message: _Message, ctx: ParseContext, order: int, complete: bool) -> Record:
        headers = BytesHeaderParser(policy=compat32).parsebytes(bytes(message.header))
        envelope_match = _ENVELOPE.match(message.envelope)
        sender = envelope_match.group("sender").decode("utf-8", "replace") if envelope_match else None
        envelope_text = message.envelope[5:].decode("utf-8", "replace")
        timestamps: dict[str, int] = {}
        envelope_time = (parse_envelope_date(envelope_match.group("date").decode("ascii", "replace"))
                         if envelope_match else None)
        if envelope_time is not None:
            timestamps[ENVELOPE_DESC] = envelope_time
        date_time = parse_rfc2822_date(headers.get("Date"))
        if date_time is not None:
            timestamps[DATE_DESC] = date_time
        received = headers.get_all("Received") or []
        received_time = parse_rfc2822_date(str(received[0]).rpartition(";")[2]) if received else None
        if received_time is not None:
            timestamps[RECEIVED_DESC] = received_time
        last_received = (parse_rfc2822_date(str(received[-1]).rpartition(";")[2])
                         if len(received) > 1 else None)
        status = _clean(headers.get("Status"))
        x_status = _clean(headers.get("X-Status"))
        subject = decode_header_value(_clean(headers.get("Subject")))
        attributes: dict[str, object] = {
            "envelope": envelope_text, "envelope_sender": sender,
            "from": decode_header_value(_clean(headers.get("From"))),
            "to": decode_header_value(_clean(headers.get("To"))),
            "subject": subject, "message_id": _clean(headers.get("Message-ID")),
            "date_header": _clean(headers.get("Date")),
            "delivered_to": _clean(headers.get("Delivered-To")),
            "status": status, "x_status": x_status, "offset": message.offset,
            "size": message.size, "received_count": len(received),
            "mailbox": ctx.provenance.source_path}
        if last_received is not None:
            attributes["first_hop_received_time"] = iso_utc(last_received)
        if (status and _DELETED_STATUS.search(status)) or (x_status and _DELETED_STATUS.search(x_status)):
            attributes["deleted_flag"] = True
        corrupted = False
        if envelope_time is None:
            ctx.warn("From_ line without a readable date", message.offset)
        if message.header_truncated:
            corrupted = True
            ctx.warn(f"header block longer than {MAX_HEADER_BYTES} bytes; rest ignored", message.offset)
        if not complete:
            corrupted = True
            ctx.warn("file ends inside the message header (truncated spool?)", message.offset)
        flags = f" [Status: {status}]" if status else ""
        text = (f"Mail from {attributes['from'] or sender or '?'} to {attributes['to'] or '?'}: "
                f"{subject or '(no subject)'}{flags}")
        return Record(data_type="mail:mbox:message", message=text,
                      provenance=ctx.provenance_at(message.offset), parser=self.NAME, order=order,
                      timestamps=timestamps, attributes=attributes, host=ctx.host,
                      user=ctx.user, corrupted=corrupted, recovered=bool(ctx.entry.get("deleted")))
