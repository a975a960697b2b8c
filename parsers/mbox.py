"""mbox and mailx spools: one record per message, plus records for traces of removed messages.

Reading: the file is memory-mapped (or spooled to a temporary file first when the handle has no
file descriptor) and scanned with ``find`` for ``\\nFrom `` separators; only each message's header
block is copied and parsed, so a multi-GB spool parses in flat memory at scan speed. Pages already
scanned are handed back to the OS (``MADV_DONTNEED``), every 32 MiB between messages and every
64 MiB window inside a long search (a huge message, a sparse hole), so the resident size stays flat
as well. Messages start at every line beginning with ``From `` exactly as Python's :mod:`mailbox`
splits them (mboxo and mboxrd), except where a ``Content-Length`` header (mboxcl/mboxcl2) is
confirmed by a separator or the end of the file right where it says the body ends: then ``From ``
lines inside that body are body text, as mutt and Solaris mail read them.

A message's timestamps are the envelope ``From_`` time, the ``Date:`` header and the topmost
``Received:`` header (the delivery here); the bottom-most Received (the first hop) is an attribute.

Deletion evidence, each a boolean attribute or a record of its own that a rule in
``rules/mail_store.yaml`` tags:

* ``Status``/``X-Status`` containing ``D`` (marked deleted, not yet expunged);
* Thunderbird's ``X-Mozilla-Status`` 0x0008 (expunged: the bytes stay in the file until the folder
  is compacted, so the message is emitted with ``recovered=True``) and 0x00200000 (IMAP deleted);
* a ``Content-Length`` that disagrees with the body (edited or cut in place);
* a truncated tail (the file ends inside a header block or before the body ``Content-Length``
  promises) or runs of NUL bytes (a hole left by truncation or overwriting);
* ``X-IMAPbase``/``X-IMAP`` + ``X-UID`` numbering with holes: a ``mail:mbox:uid_gap`` record lists
  the expunged UIDs (a ``NEXTUID`` above the highest UID + 1 means the newest messages went);
* a spool whose modification time is later than its newest message's delivery: the MDA only ever
  appends, so something rewrote it in place (a ``mail:mbox:rewrite`` record at the file's mtime).
  mail/mailx rewrite the spool on quit to move *read* messages to ``~/mbox``; that is not a
  deletion, and the record says so.
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import email.errors
import email.header
import email.utils
import io
import json
import mmap
import os
import re
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO, ClassVar

from collector.timeutil import from_datetime, iso_utc, parse_iso
from parsers.base import ParseContext, Parser
from parsers.mail_evidence import (
    MOZILLA_EXPUNGED,
    MOZILLA_IMAP_DELETED,
    UidRanges,
    bundle_root,
    count_uids,
    format_ranges,
    mozilla_flag_names,
    mozilla_flags,
    per_manifest,
)
from parsers.record import Provenance, Record

MAX_HEADER_BYTES = 256 * 1024
#: The collector's artifact name for mbox runs carved from unallocated blocks.
CARVED_ARTIFACT = "carved_mbox"
ENVELOPE_DESC = "Envelope Time (From_ line)"
DATE_DESC = "Sent Time (Date header)"
RECEIVED_DESC = "Delivery Time (topmost Received header)"
REWRITE_DESC = "Spool Rewrite Time (modified after its newest delivery)"
#: An MDA writes the spool within seconds of the From_ line's time; more than this is a rewrite.
REWRITE_TOLERANCE_US = 120 * 1_000_000
#: Parsed pages of a memory-mapped file are handed back to the OS every this many bytes.
RELEASE_BYTES = 32 * 1024 * 1024
#: A search over more than this many bytes of a mapped file (a huge message, a sparse hole) runs
#: window by window, handing back each window's pages once passed: file-backed pages of the map
#: otherwise stay in the process (RSS) up to the size of the file.
SCAN_WINDOW = 64 * 1024 * 1024
_DONTNEED: int | None = getattr(mmap, "MADV_DONTNEED", None)
#: A run of this many NUL bytes inside a message is a hole, not text.
NUL_RUN = b"\0" * 16
_SPOOL_PATH = re.compile(r"^/var/(?:spool/)?mail/[^/]+$")
_ENVELOPE = re.compile(
    rb"^From (?P<sender>\S*)\s+(?P<date>(?:[A-Z][a-z]{2}\s+)?[A-Z][a-z]{2}\s+\d{1,2}\s+"
    rb"\d{1,2}:\d{2}(?::\d{2})?(?:\s+(?:[A-Z]{3,5}|[+-]\d{4}))?\s+\d{4}(?:\s+[+-]\d{4})?)")
_HEADER_LINE = re.compile(rb"^[!-9;-~]+:")
_DELETED_STATUS = re.compile(r"D")
#: The headers a message record uses; the rest of the block is never decoded (speed).
WANTED_HEADERS = (
    "date", "received", "from", "to", "cc", "subject", "message-id", "status", "x-status",
    "delivered-to", "x-original-to", "content-length", "x-uid", "x-imapbase", "x-imap",
    "x-mozilla-status", "x-mozilla-status2", "x-keywords")
#: Matched after a newline (the block is searched with one prepended): a pattern that starts with
#: a literal lets the regex engine jump from line to line instead of trying every byte.
_WANTED = re.compile(
    rb"\n(" + b"|".join(re.escape(h.encode()) for h in WANTED_HEADERS) + rb")[ \t]*:[ \t]*"
    rb"([^\r\n]*(?:\r?\n[ \t][^\r\n]*)*)", re.IGNORECASE)
#: The same on decoded text, twice as fast because it splits on LF only (a single character);
#: values holding a CR are cut afterwards by :func:`_cut_cr`, so the result is the same.
_WANTED_TEXT = re.compile(
    r"\n(" + "|".join(re.escape(h) for h in WANTED_HEADERS) + r")[ \t]*:[ \t]*"
    r"([^\n]*(?:\n[ \t][^\n]*)*)", re.IGNORECASE | re.ASCII)
_NAMES = {spelling.encode(): h for h in WANTED_HEADERS
          for spelling in (h, h.title(), h.upper(), h.capitalize())}
_NAMES.update({b"Message-ID": "message-id", b"X-UID": "x-uid", b"X-IMAPbase": "x-imapbase",
               b"X-IMAP": "x-imap", b"Message-Id": "message-id"})
_TEXT_NAMES = {name.decode("ascii"): key for name, key in _NAMES.items()}
_DAYS = {"Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"}
_MONTHS = {"Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"}
_ZONE = re.compile(r"[+-]\d{4}")
_ZONE_OR_NAME = re.compile(r"[+-]\d{4}|[A-Z]{3,5}")


# -- header and date helpers (Maildir and Thunderbird reuse them) ---------------------------------
_MONTH_NUMBER = {name: i for i, name in enumerate(
    ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"), 1)}
_EPOCH_ORDINAL = _dt.date(1970, 1, 1).toordinal()
_FAST_ENVELOPE = re.compile(
    r"(?:[A-Z][a-z]{2}\s+)?([A-Z][a-z]{2})\s+(\d{1,2})\s+(\d{1,2}):(\d{2}):(\d{2})\s+(\d{4})")
_FAST_RFC2822 = re.compile(
    r"\s*(?:[A-Za-z]{3},\s*)?(\d{1,2})\s+([A-Z][a-z]{2})\s+(\d{4})\s+(\d{1,2}):(\d{2}):(\d{2})"
    r"\s+([+-]\d{4})(?:\s*\([^()]*\))?\s*")
#: Day number (days since 1970-01-01, None for an impossible date) of (day, month, year) as
#: written: a spool holds few distinct days, so most dates skip the calendar arithmetic.
_DAYS_CACHE: dict[tuple[str, str, str], int | None] = {}
_DAYS_CACHE_MAX = 4096
#: µs to add to a local time for each ``+hhmm``/``-hhmm`` zone seen.
_ZONE_CACHE: dict[str, int] = {}


def _day_number(day: str, month: str, year: str) -> int | None:
    """Days since the epoch of a written date (cached), or None when it is not a date."""
    key = (day, month, year)
    try:
        return _DAYS_CACHE[key]
    except KeyError:
        pass
    number = _MONTH_NUMBER.get(month)
    try:
        value = None if number is None else _dt.date(int(year), number, int(day)).toordinal() - _EPOCH_ORDINAL
    except ValueError:
        value = None
    if len(_DAYS_CACHE) >= _DAYS_CACHE_MAX:  # a hostile file with many dates: memory stays bounded
        _DAYS_CACHE.clear()
    _DAYS_CACHE[key] = value
    return value


def _zone_micros(zone: str) -> int:
    """µs to add to a local time written with the numeric zone ``zone`` to get UTC."""
    value = _ZONE_CACHE.get(zone)
    if value is None:
        offset = (int(zone[1:3]) * 60 + int(zone[3:5])) * 60_000_000
        value = -offset if zone[0] == "+" else offset
        if len(_ZONE_CACHE) < 1024:
            _ZONE_CACHE[zone] = value
    return value


def _micros(year: int, month: int, day: int, hour: int, minute: int, second: int) -> int | None:
    """µs since the epoch for a UTC wall-clock time, or None when the fields are not a date."""
    if not (0 <= hour <= 23 and 0 <= minute <= 59 and 0 <= second <= 60):
        return None
    try:
        days = _dt.date(year, month, day).toordinal() - _EPOCH_ORDINAL
    except ValueError:
        return None
    return ((days * 24 + hour) * 60 + minute) * 60_000_000 + second * 1_000_000


#: The From_ line as MDAs write it (``From sender Mon Oct  5 09:12:44 2026``), read in one match.
_PLAIN_ENVELOPE = re.compile(
    rb"From (\S*)\s+(?:[A-Z][a-z]{2}\s+)?([A-Z][a-z]{2})\s+(\d{1,2})\s+(\d{1,2}):(\d{2}):(\d{2})\s+"
    rb"(\d{4})\s*")


def _read_envelope(envelope: bytes) -> tuple[str | None, int | None]:
    """(sender, time) of a From_ line; None for what cannot be read."""
    plain = _PLAIN_ENVELOPE.fullmatch(envelope)
    if plain is not None:
        sender, month, day, hour, minute, second, year = plain.groups()
        days = _day_number(day.decode(), month.decode(), year.decode())
        hours, minutes, seconds = int(hour), int(minute), int(second)
        if days is not None and hours <= 23 and minutes <= 59 and seconds <= 59:
            return (sender.decode("utf-8", "replace"),
                    (((days * 24 + hours) * 60 + minutes) * 60 + seconds) * 1_000_000)
    match = _ENVELOPE.match(envelope)
    if match is None:
        return None, None
    return (match.group("sender").decode("utf-8", "replace"),
            parse_envelope_date(match.group("date").decode("ascii", "replace")))


def parse_envelope_date(text: str) -> int | None:
    """µs for an asctime-style envelope date (``Mon Oct  5 09:12:44 2026``), read as UTC.

    The plain ``Mon Oct  5 09:12:44 2026`` form (what MDAs write) takes a fast path; zones and
    other variants go through the general reader below.
    """
    fast = _FAST_ENVELOPE.fullmatch(text.strip())
    if fast and fast.group(1) in _MONTH_NUMBER and fast.group(5) != "60":
        month, day, hour, minute, second, year = fast.groups()
        return _micros(int(year), _MONTH_NUMBER[month], int(day), int(hour), int(minute), int(second))
    return _parse_envelope_date_slow(text)


def _parse_envelope_date_slow(text: str) -> int | None:
    parts = text.split()
    zone = next((p for p in parts if _ZONE.fullmatch(p)), None)
    words = [p for p in parts if not _ZONE_OR_NAME.fullmatch(p) or p in _MONTHS]
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


def parse_rfc2822_date(value: str | None) -> int | None:
    """µs for an RFC 2822 date, or None when it is missing or unparseable.

    The canonical form (``Mon, 5 Oct 2026 05:12:37 -0400``) takes a fast path; everything else
    (named zones, two-digit years, odd spacing) is left to :func:`email.utils.parsedate_to_datetime`.
    """
    if not value:
        return None
    fast = _FAST_RFC2822.fullmatch(value)
    if fast:
        day, month, year, hour, minute, second, zone = fast.groups()
        days = _day_number(day, month, year)
        hours, minutes, seconds = int(hour), int(minute), int(second)
        if days is not None and hours <= 23 and minutes <= 59 and seconds <= 59:
            return (((days * 24 + hours) * 60 + minutes) * 60 + seconds) * 1_000_000 + _zone_micros(zone)
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
    if value is None or "=?" not in value:
        return value
    try:
        return str(email.header.make_header(email.header.decode_header(value)))
    except (email.errors.MessageError, LookupError, UnicodeError, ValueError):  # CharsetError too
        return value


def _clean(value: object) -> str | None:
    if value is None:
        return None
    text = str(value)
    return " ".join(text.split()) if text else text


def _text(raw: bytes) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return raw.decode("latin-1")


def _cut_cr(value: str) -> str:
    """A value read up to LFs, as :data:`_WANTED` reads it: each line stops at its first CR, and
    only a line whose CR came right before the LF (CRLF) continues onto the next one."""
    lines = value.split("\n")
    pieces = []
    last = len(lines) - 1
    for index, line in enumerate(lines):
        cr = line.find("\r")
        if cr < 0:
            pieces.append(line)
            if index < last:
                pieces.append("\n")
            continue
        pieces.append(line[:cr])
        if cr != len(line) - 1:
            break
        if index < last:
            pieces.append("\r\n")
    return "".join(pieces)


def parse_headers(block: bytes) -> dict[str, list[str]]:
    """The wanted headers of a raw header block: lower-case name -> values in file order.

    A regular expression picks the few headers a record needs out of the block (folded lines
    included), which is several times faster than :mod:`email`'s full parse; values are UTF-8 when
    they decode as such and Latin-1 otherwise, so no byte is lost.
    """
    headers: dict[str, list[str]] = {}
    try:  # the usual case: the whole block is UTF-8 (ASCII), decoded once
        text_block = "\n" + block.decode("utf-8")
    except UnicodeDecodeError:
        text_block = None
    if text_block is not None:
        names = _TEXT_NAMES
        has_cr = "\r" in text_block
        for name, text in _WANTED_TEXT.findall(text_block):
            if has_cr and "\r" in text:
                text = _cut_cr(text)
            key = names.get(name) or name.lower()
            values = headers.get(key)
            if values is None:
                headers[key] = [text]
            else:
                values.append(text)
        return headers
    for name, value in _WANTED.findall(b"\n" + block):
        key = _NAMES.get(name) or name.decode("ascii").lower()
        try:
            text = value.decode("utf-8")
        except UnicodeDecodeError:
            text = value.decode("latin-1")
        if key in headers:
            headers[key].append(text)
        else:
            headers[key] = [text]
    return headers


def _first(headers: dict[str, list[str]], name: str) -> str | None:
    values = headers.get(name)
    return values[0] if values else None


def _first_clean(headers: dict[str, list[str]], name: str) -> str | None:
    values = headers.get(name)
    return " ".join(values[0].split()) if values else None


def received_time(value: str) -> int | None:
    """µs of a ``Received:`` header (the date after its last ``;``)."""
    return parse_rfc2822_date(value.rpartition(";")[2])


def _iso(micros: int) -> str:
    """:func:`collector.timeutil.iso_utc` (same text), with the date part cached per day."""
    days, rest = divmod(micros, 86_400_000_000)
    date = _ISO_DAYS.get(days)
    if date is None:
        date = iso_utc(days * 86_400_000_000)[:10]
        if len(_ISO_DAYS) >= _DAYS_CACHE_MAX:
            _ISO_DAYS.clear()
        _ISO_DAYS[days] = date
    seconds, fraction = divmod(rest, 1_000_000)
    hours, seconds = divmod(seconds, 3600)
    minutes, seconds = divmod(seconds, 60)
    return f"{date}T{hours:02d}:{minutes:02d}:{seconds:02d}.{fraction:06d}+00:00"


_ISO_DAYS: dict[int, str] = {}


def message_fields(headers: dict[str, list[str]]) -> tuple[dict[str, int], dict[str, Any]]:
    """Timestamps and attributes every mail record shares, from :func:`parse_headers` output.

    This runs once per message of every store, so it is written for speed: each header is looked
    up once, and encoded-word decoding and date parsing run only where the text needs them.
    """
    get = headers.get
    timestamps: dict[str, int] = {}
    values = get("date")
    date_header = None
    if values:
        date_time = parse_rfc2822_date(values[0])
        if date_time is not None:
            timestamps[DATE_DESC] = date_time
        date_header = " ".join(values[0].split())
    received = get("received") or ()
    if received:
        top = parse_rfc2822_date(received[0].rpartition(";")[2])
        if top is not None:
            timestamps[RECEIVED_DESC] = top
    values = get("status")
    status = " ".join(values[0].split()) if values else None
    values = get("x-status")
    x_status = " ".join(values[0].split()) if values else None
    values = get("from")
    sender = " ".join(values[0].split()) if values else None
    values = get("to")
    to = " ".join(values[0].split()) if values else None
    values = get("subject")
    subject = " ".join(values[0].split()) if values else None
    values = get("message-id")
    message_id = " ".join(values[0].split()) if values else None
    values = get("delivered-to")
    delivered_to = " ".join(values[0].split()) if values else None
    attributes: dict[str, Any] = {
        "from": decode_header_value(sender) if sender and "=?" in sender else sender,
        "to": decode_header_value(to) if to and "=?" in to else to,
        "subject": decode_header_value(subject) if subject and "=?" in subject else subject,
        "message_id": message_id, "date_header": date_header, "delivered_to": delivered_to,
        "status": status, "x_status": x_status, "received_count": len(received)}
    values = get("cc")
    if values:
        attributes["cc"] = decode_header_value(" ".join(values[0].split()))
    values = get("x-original-to")
    if values:
        attributes["x_original_to"] = " ".join(values[0].split())
    if len(received) > 1:
        bottom = parse_rfc2822_date(received[-1].rpartition(";")[2])
        if bottom is not None:
            try:
                attributes["first_hop_received_time"] = _iso(bottom)
            except (OverflowError, ValueError):  # a date at the edge of the calendar
                pass
    if (status and "D" in status) or (x_status and "D" in x_status):
        attributes["deleted_flag"] = True
    if "x-mozilla-status" in headers or "x-mozilla-status2" in headers:
        mozilla = mozilla_flags(_first(headers, "x-mozilla-status"), _first(headers, "x-mozilla-status2"))
        if mozilla is not None:
            attributes["x_mozilla_status"] = f"0x{mozilla:08x}"
            attributes["mozilla_flags"] = mozilla_flag_names(mozilla)
            if mozilla & MOZILLA_EXPUNGED:
                attributes["mozilla_expunged"] = True
            if mozilla & MOZILLA_IMAP_DELETED:
                attributes["mozilla_imap_deleted"] = True
    return timestamps, attributes


def mail_summary(attributes: dict[str, Any], fallback_sender: str | None = None) -> str:
    """The one-line message of a mail record."""
    status = attributes.get("status")
    flags = f" [Status: {status}]" if status else ""
    return (f"Mail from {attributes.get('from') or fallback_sender or '?'} to "
            f"{attributes.get('to') or '?'}: {attributes.get('subject') or '(no subject)'}{flags}")


def _at(provenance: Provenance, offset: int) -> Provenance:
    """``provenance`` with a byte offset (direct construction: :func:`dataclasses.replace` is slow)."""
    return Provenance(provenance.bundle_path, provenance.source_path, provenance.sha256,
                      provenance.filesystem, offset, provenance.evidence)


# -- the scan -------------------------------------------------------------------------------------
@contextmanager
def mapped(fh: BinaryIO) -> Iterator[bytes | mmap.mmap]:
    """The whole file as a ``find``-able buffer without reading it into memory.

    A real file is memory-mapped; an in-memory stream is used as it is; any other stream (an image
    file object) is first copied to an anonymous temporary file, so memory stays flat.
    """
    if isinstance(fh, io.BytesIO):
        yield fh.getvalue()
        return
    try:
        fileno = fh.fileno()
        size = os.fstat(fileno).st_size
    except (AttributeError, OSError, ValueError, io.UnsupportedOperation):
        fileno, size = -1, -1
    if fileno >= 0:
        if size == 0:
            yield b""
            return
        with mmap.mmap(fileno, 0, access=mmap.ACCESS_READ) as buffer:
            yield buffer
        return
    with tempfile.TemporaryFile() as spool:
        shutil.copyfileobj(fh, spool, 1 << 20)
        spool.flush()
        if spool.tell() == 0:
            yield b""
            return
        with mmap.mmap(spool.fileno(), 0, access=mmap.ACCESS_READ) as buffer:
            yield buffer


@dataclass(slots=True)
class _Span:
    start: int
    end: int
    body_start: int
    header: bytes
    header_complete: bool
    header_truncated: bool
    #: Index just after the From_ line's newline (the header block starts there).
    line_end: int = -1


def _release(buf: Any, start: int, end: int) -> None:
    """Hand the pages of ``buf[start:end]`` back to the OS when ``buf`` is a file map.

    ``MADV_DONTNEED`` on a read-only shared file map only unmaps the pages from this process (they
    stay in the page cache, and a later read maps them again), so it never changes what is read.
    Where it is missing or refused this does nothing.
    """
    if _DONTNEED is None or not isinstance(buf, mmap.mmap):
        return
    low = start - start % mmap.PAGESIZE
    high = end - end % mmap.PAGESIZE
    if high > low:
        try:
            buf.madvise(_DONTNEED, low, high - low)
        except (OSError, ValueError):
            pass


def _find(buf: Any, needle: bytes, start: int, end: int, window: int = SCAN_WINDOW) -> int:
    """``buf.find(needle, start, end)``, with the pages of a long search of a file map released.

    A search longer than ``window`` runs in windows aligned on multiples of ``window``, each
    extended by ``len(needle) - 1`` bytes so that a needle straddling a boundary is found exactly
    where one ``find`` would find it; each window's pages are released once it holds no match.
    """
    if end - start <= window or not isinstance(buf, mmap.mmap):
        return buf.find(needle, start, end)
    overlap = len(needle) - 1
    pos = start
    while pos < end:
        stop = min(end, (pos // window + 1) * window)
        found = buf.find(needle, pos, min(end, stop + overlap))
        if found >= 0:
            return found
        _release(buf, pos, stop)
        pos = stop
    return -1


def _find_on(buf: Any, needle: bytes, start: int, searched: int, end: int) -> int:
    """:func:`_find` of the rest of ``[start, end)`` once ``[start, searched)`` held no ``needle``
    (a needle straddling ``searched`` included), releasing the pages already searched."""
    _release(buf, start, searched)
    return _find(buf, needle, searched - len(needle) + 1, end)


def _header_end(buf: Any, line_end: int, limit: int) -> int:
    """Index just after the blank line that ends the header block, or -1 before ``limit``."""
    lf = buf.find(b"\n\n", line_end - 1, limit)
    if lf >= 0 and buf[line_end - 2:line_end - 1] != b"\r":
        return lf + 2  # an LF file: a CRLF blank line before this one would be unusual
    crlf = buf.find(b"\n\r\n", line_end - 1, limit if lf < 0 else lf)
    if lf < 0 and crlf < 0:
        return -1
    if crlf < 0 or 0 <= lf < crlf:
        return lf + 2
    return crlf + 3


def _content_length(value: str | None) -> int | None:
    """The byte count of a ``Content-Length`` header, or None when it is absent or not a number."""
    text = (value or "").strip()
    return int(text) if text.isdigit() else None


def _content_length_end(buf: Any, body_start: int, length: int, size: int) -> int | None:
    """Where a message ends if its Content-Length is right (a separator or EOF follows), else None."""
    end = body_start + length
    if end > size:
        return None
    if end == size:
        return end
    if buf[end:end + 5] == b"From " and buf[end - 1:end] == b"\n":
        return end
    if buf[end:end + 6] == b"\nFrom ":
        return end + 1
    if buf[end:end + 7] == b"\r\nFrom ":
        return end + 2
    if size - end <= 2 and buf[end:size].strip(b"\r\n") == b"":
        return size
    return None


def _addressee(attributes: dict[str, Any]) -> tuple[str | None, str | None]:
    """(address, header it came from) of the mailbox a message was delivered to.

    ``Delivered-To`` and ``X-Original-To`` are written by the delivering MTA for the local
    recipient; ``To`` is what the sender wrote, used only when neither is there.
    """
    for header, key in (("Delivered-To", "delivered_to"), ("X-Original-To", "x_original_to"), ("To", "to")):
        value = attributes.get(key)
        if not value:
            continue
        for _, address in email.utils.getaddresses([value]):
            if address:
                return address, header
    return None, None


@dataclass(frozen=True)
class CarvedContext:
    """What a carved run is compared with: the messages and spools the bundle holds elsewhere."""

    #: Message-ID -> where a copy is (path and whether that file is live or a recovered one).
    message_ids: dict[str, str]
    #: (file system, user) -> the spool path the manifest lists for that user.
    spools: dict[tuple[str, str], str]

    def copy_of(self, message_id: str) -> str | None:
        """Where the bundle holds another copy of ``message_id``, if it does."""
        return self.message_ids.get(message_id)

    def mailbox_of(self, filesystem: str, address: str) -> str | None:
        """The spool of the user an address delivers to (its local part), if the bundle lists one."""
        return self.spools.get((filesystem, address.split("@", 1)[0].lower()))


#: Parsers whose files hold messages a carved copy may duplicate.
_MESSAGE_PARSERS = frozenset({"mbox", "thunderbird", "maildir"})


def _header_block(handle: BinaryIO) -> bytes:
    """A one-message file's header block (up to the blank line), read line by line."""
    block = bytearray()
    while len(block) < MAX_HEADER_BYTES:
        line = handle.readline(MAX_HEADER_BYTES - len(block))
        if not line or line in (b"\n", b"\r\n"):
            break
        block += line
    return bytes(block)


def _compared_with(line: dict[str, Any]) -> set[str]:
    """The message parsers of a manifest line whose messages a carved run is compared with."""
    parsers = _MESSAGE_PARSERS.intersection(line.get("parsers") or ())
    if (not parsers or line.get("artifact") == CARVED_ARTIFACT or not line.get("bundle_path")
            or line.get("outcome") not in ("collected", "recovered")):
        return set()
    return parsers


def _build_carved_context(manifest: str) -> CarvedContext:
    root = Path(manifest).parent
    message_ids: dict[str, str] = {}
    spools: dict[tuple[str, str], str] = {}
    scratch = ParseContext(provenance=Provenance(None, "", None))
    with open(manifest, encoding="utf-8") as handle:
        lines = [json.loads(text) for text in handle if text.strip()]
    for line in lines:
        source = line.get("source_path") or ""
        if _SPOOL_PATH.match(source) and line.get("kind") in ("file", "symlink"):
            spools.setdefault((line.get("filesystem") or "", source.rsplit("/", 1)[1].lower()), source)
        parsers = _compared_with(line)
        if not parsers:
            continue
        where = f"{source} ({'deleted file, recovered' if line.get('deleted') else 'live file'})"
        try:
            with open(root / line["bundle_path"], "rb") as member:
                if "maildir" in parsers:
                    found = [parse_headers(_header_block(member)).get("message-id")]
                else:
                    with mapped(member) as buf:
                        found = [parse_headers(span.header).get("message-id")
                                 for span in MboxParser()._spans(buf, scratch)]
        except OSError:
            continue
        for values in found:
            if values:
                message_ids.setdefault(" ".join(values[0].split()), where)
    return CarvedContext(message_ids=message_ids, spools=spools)


def carved_context(root: Path) -> CarvedContext | None:
    """The (cached) :class:`CarvedContext` of the bundle at ``root``."""
    return per_manifest(root, _build_carved_context)


class MboxParser(Parser):
    """mbox files (mboxo, mboxrd, mboxcl, mboxcl2) and mail spools."""

    NAME = "mbox"
    DESCRIPTION = ("mbox files and mail spools (/var/mail/*, ~/mbox): one record per message, plus "
                   "UID gaps, deleted/expunged flags, truncation and in-place rewrites")
    DATA_TYPES = ("mail:mbox:message", "mail:mbox:uid_gap", "mail:mbox:rewrite", "mail:mbox:carved_run")
    #: Artifacts whose files this parser reads (``carved_mbox``: runs carved from unallocated
    #: blocks by collector/unallocated.py).
    ARTIFACTS: ClassVar[tuple[str, ...]] = ("LinuxMailSpools", "UserMbox", CARVED_ARTIFACT)
    #: data_type prefix; Thunderbird's parser reuses this one under its own.
    PREFIX = "mail:mbox"

    @classmethod
    def sniff(cls, head: bytes, name: str) -> bool:
        if not head.startswith(b"From "):
            return False
        first_lines = head.split(b"\n", 8)[1:8]
        return bool(_ENVELOPE.match(head)) or any(_HEADER_LINE.match(line) for line in first_lines)

    @classmethod
    def companions(cls, entry: dict[str, Any], manifest: list[dict[str, Any]]) -> list[str]:
        if entry.get("artifact") != CARVED_ARTIFACT:
            return []
        return [line["bundle_path"] for line in manifest if _compared_with(line)]

    # -- hooks for subclasses --------------------------------------------------------------------
    def folder_attributes(self, ctx: ParseContext) -> dict[str, Any]:
        """Attributes every record of this file carries (the mailbox it came from)."""
        return {"mailbox": ctx.provenance.source_path}

    def is_spool(self, ctx: ParseContext) -> bool:
        """Whether the file is a delivery spool (only appended to by the MDA)."""
        return (ctx.entry.get("artifact") == "LinuxMailSpools"
                or bool(_SPOOL_PATH.match(ctx.provenance.source_path)))

    # -- parsing ---------------------------------------------------------------------------------
    def parse(self, fh: BinaryIO, ctx: ParseContext) -> Iterator[Record]:
        carved = self.PREFIX == "mail:mbox" and ctx.entry.get("artifact") == CARVED_ARTIFACT
        with mapped(fh) as buf:
            if carved:
                yield from self._parse_carved(fh, buf, ctx)
            else:
                yield from self._parse_buffer(buf, ctx)

    # -- runs carved from unallocated blocks ------------------------------------------------------
    def _parse_carved(self, fh: BinaryIO, buf: Any, ctx: ParseContext) -> Iterator[Record]:
        """Messages of a carved run: volume offsets, a mailbox by address, duplicates skipped.

        A carved copy of a message that the bundle still holds elsewhere (a live spool, a
        recovered inode) says nothing new and is skipped; the run's summary record lists what was
        skipped and where each copy is. UID gaps and rewrites are not judged on a fragment.
        """
        base = int(ctx.entry.get("carved_offset") or 0)
        root = bundle_root(fh, ctx.provenance.bundle_path)
        known = carved_context(root) if root is not None else None
        if known is None:
            ctx.warn("carved run outside a bundle: duplicates and mailboxes cannot be looked up", None)
        kept = 0
        duplicates: list[dict[str, Any]] = []
        newest: int | None = None
        order = 0
        for record in self._parse_buffer(buf, ctx):
            if record.data_type != f"{self.PREFIX}:message":
                continue
            attributes = dict(record.attributes)
            delivered = record.timestamps.get(ENVELOPE_DESC, record.timestamps.get(RECEIVED_DESC))
            if delivered is not None and (newest is None or delivered > newest):
                newest = delivered
            message_id = attributes.get("message_id")
            copy = known.copy_of(message_id) if known is not None and message_id else None
            if copy is not None:
                duplicates.append({"message_id": message_id, "offset": base + attributes["offset"],
                                   "copy": copy})
                continue
            address, header = _addressee(attributes)
            mailbox = (known.mailbox_of(ctx.provenance.filesystem, address) if known is not None
                       and address else None)
            attributes.update(
                offset_in_carved_run=attributes["offset"], offset=base + attributes["offset"],
                carved_offset=base, carved_run=ctx.provenance.source_path,
                mailbox=mailbox or address or ctx.provenance.source_path,
                attributed_address=address, attributed_by=header, duplicate_check=(
                    "no other copy with this Message-ID in the bundle" if known is not None and message_id
                    else "not checked (no Message-ID)" if known is not None else "not checked"))
            text = (record.message + f" [carved from unallocated blocks at byte {attributes['offset']}"
                    + (f"; mailbox {attributes['mailbox']} by {header}" if address else "") + "]")
            yield dataclasses.replace(record, attributes=attributes, message=text, order=order,
                                      provenance=_at(ctx.provenance, attributes["offset"]), recovered=True)
            order += 1
            kept += 1
        bounds = {"Not before: newest delivery in the run (its blocks were freed later)": newest} \
            if newest is not None else {}
        skipped = len(duplicates)
        text = (f"{kept + skipped} message(s) carved from unallocated blocks of {ctx.provenance.filesystem} "
                f"at byte {base}: {kept} not found elsewhere in the bundle, {skipped} skipped as copies of "
                f"messages still present (same Message-ID)")
        attributes = {"evidence": "carved_run", "carved_offset": base,
                      "size": len(buf), "messages": kept + skipped, "new_messages": kept,
                      "duplicates_skipped": skipped, "duplicates": duplicates[:100],
                      "duplicate_handling": "skipped: a copy with the same Message-ID is in the bundle"}
        yield Record(data_type=f"{self.PREFIX}:carved_run", message=text,
                     provenance=_at(ctx.provenance, base), parser=self.NAME, order=order,
                     time_bounds=bounds, attributes=attributes, host=ctx.host, user=ctx.user,
                     recovered=True)

    def _spans(self, buf: Any, ctx: ParseContext) -> Iterator[_Span]:
        size = len(buf)
        start = 0 if buf[:5] == b"From " else _find(buf, b"\nFrom ", 0, size) + 1
        if start == 0 and buf[:5] != b"From ":
            if size:
                ctx.warn("no From_ line found: not an mbox file, or its start is missing", 0)
            return
        if start > 0:
            ctx.warn(f"{start} bytes before the first From_ line are not a message", 0)
        release = isinstance(buf, mmap.mmap) and _DONTNEED is not None
        released = 0
        if release and hasattr(mmap, "MADV_SEQUENTIAL"):
            buf.madvise(mmap.MADV_SEQUENTIAL)
        while start < size:
            if release and start - released >= RELEASE_BYTES:
                # Pages already parsed leave this process (they stay in the page cache): the
                # resident size stays flat however large the spool is.
                _release(buf, released, start)
                released = start - start % mmap.PAGESIZE
            # Each search first looks at most SCAN_WINDOW bytes ahead (one plain find, the usual
            # case); only a longer one goes on window by window (and releases what it passed).
            line_end = buf.find(b"\n", start, start + SCAN_WINDOW)
            if line_end < 0 and start + SCAN_WINDOW < size:
                line_end = _find_on(buf, b"\n", start, start + SCAN_WINDOW, size)
            line_end = size if line_end < 0 else line_end + 1
            reach = line_end - 1 + SCAN_WINDOW
            separator = buf.find(b"\nFrom ", line_end - 1, reach)
            if separator < 0 and reach < size:
                separator = _find_on(buf, b"\nFrom ", line_end - 1, reach, size)
            natural_end = size if separator < 0 else separator + 1
            limit = min(natural_end, line_end + MAX_HEADER_BYTES)
            header_end = _header_end(buf, line_end, limit) if line_end < natural_end else -1
            if header_end < 0:
                truncated = limit < natural_end
                header = buf[line_end:limit]
                yield _Span(start, natural_end, natural_end, header, False, truncated, line_end)
                start = natural_end
                continue
            yield _Span(start, natural_end, header_end, buf[line_end:header_end], True, False, line_end)
            start = natural_end

    def _parse_buffer(self, buf: Any, ctx: ParseContext) -> Iterator[Record]:
        size = len(buf)
        folder = self.folder_attributes(ctx)
        uids = UidRanges()
        uid_validity: int | None = None
        next_uid: int | None = None
        newest: int | None = None
        newest_offset: int | None = None
        order = 0
        spans = self._spans(buf, ctx)
        skip_until = 0
        for span in spans:
            if span.start < skip_until:
                continue
            headers = parse_headers(span.header)
            end = span.end
            evidence: dict[str, Any] = {}
            content_length = headers.get("content-length")
            declared = (_content_length(content_length[0]) if content_length and span.header_complete
                        else None)
            # "Content-Length: 0" is a placeholder some writers leave (mutt ignores it too).
            if declared:
                cl_end = _content_length_end(buf, span.body_start, declared, size)
                if cl_end is not None and cl_end > end:
                    # mboxcl2: the unescaped "From " lines in this body are not separators.
                    evidence["content_length_spans_from_lines"] = True
                    end = skip_until = cl_end
                elif cl_end is None:
                    body = end - span.body_start
                    if buf[end - 1:end] == b"\n" and end < size:
                        body -= 1  # the blank line before the next separator is not body
                    evidence.update(content_length_mismatch=True, content_length=declared,
                                    body_length=body)
                    if end == size and span.body_start + declared > size:
                        evidence["tail_evidence"] = "content_length_short"
                    ctx.warn(f"Content-Length {declared} disagrees with the body "
                             f"({body} bytes)", span.start)
            record = self._message(buf, span, end, headers, evidence, ctx, folder, order, size)
            order += 1
            uid_text = record.attributes.get("uid")
            base = (_first(headers, "x-imapbase") or _first(headers, "x-imap")) if order == 1 else None
            if base:
                fields = base.split()
                try:
                    # UW-IMAP/Dovecot write UIDVALIDITY and the *last* UID handed out (NEXTUID - 1).
                    uid_validity, next_uid = int(fields[0]), int(fields[1]) + 1
                except (IndexError, ValueError):
                    ctx.warn(f"unreadable X-IMAPbase header {base!r}", span.start)
            delivered = record.timestamps.get(ENVELOPE_DESC, record.timestamps.get(RECEIVED_DESC))
            if uid_text and uid_text.isdigit():
                uids.add(int(uid_text), (delivered, span.start))
            if delivered is not None and (newest is None or delivered > newest):
                newest, newest_offset = delivered, span.start
            yield record
        if uids.out_of_order:
            ctx.warn(f"{uids.out_of_order} X-UID values are not above the previous one", None)
        gap = self._uid_gap(uids, uid_validity, next_uid, ctx, folder, order)
        if gap is not None:
            yield gap
            order += 1
        rewrite = self._rewrite(newest, newest_offset, order, ctx, folder)
        if rewrite is not None:
            yield rewrite

    def _message(self, buf: Any, span: _Span, end: int, headers: dict[str, list[str]],
                 evidence: dict[str, Any], ctx: ParseContext, folder: dict[str, Any], order: int,
                 size: int) -> Record:
        start = span.start
        newline = span.line_end - 1 if 0 < span.line_end <= end else _find(buf, b"\n", start, end)
        envelope = buf[start:newline if newline >= 0 else end].rstrip(b"\r\n")
        envelope_text = envelope.decode("utf-8", "replace")
        sender, envelope_time = _read_envelope(envelope)
        timestamps, fields = message_fields(headers)
        if envelope_time is not None:
            timestamps = {ENVELOPE_DESC: envelope_time, **timestamps}
        attributes: dict[str, Any] = {"envelope": envelope_text[5:], "envelope_sender": sender}
        attributes.update(fields)
        attributes["offset"] = start
        attributes["size"] = end - start
        attributes.update(folder)
        if evidence:
            attributes.update(evidence)
        uid = headers.get("x-uid")
        if uid and uid[0]:
            attributes["uid"] = uid[0].strip()
        corrupted = False
        if envelope_time is None:
            attributes["envelope_unreadable"] = True
            ctx.warn("From_ line without a readable date", span.start)
        if span.header_truncated:
            corrupted = True
            ctx.warn(f"header block longer than {MAX_HEADER_BYTES} bytes; rest ignored", span.start)
        final_newline = end < size or buf[size - 1:size] == b"\n"
        if not span.header_complete and end == size and not span.header_truncated:
            if final_newline:
                attributes["header_only"] = True
                ctx.warn("the file ends after a header block with no blank line or body", span.start)
            else:
                attributes["tail_evidence"] = "truncated_in_header"
                ctx.warn("file ends inside the message header (truncated spool?)", span.start)
        reach = span.start + SCAN_WINDOW
        hole = buf.find(NUL_RUN, span.start, reach if reach < end else end)
        if hole < 0 and reach < end:
            hole = _find_on(buf, NUL_RUN, span.start, reach, end)
        if hole >= 0:
            corrupted = True
            attributes.update(garbled=True, nul_bytes_offset=hole)
            if end == size:
                attributes.setdefault("tail_evidence", "nul_bytes")
            ctx.warn(f"run of NUL bytes inside the message at offset {hole}", hole)
        if end == size and not final_newline and "tail_evidence" not in attributes:
            attributes["tail_evidence"] = "no_final_newline"
            ctx.warn("file does not end with a newline (cut short?)", span.start)
        if attributes.get("tail_evidence") not in (None, "no_final_newline"):
            corrupted = True
        recovered = bool(ctx.entry.get("deleted")) or bool(attributes.get("mozilla_expunged"))
        status = attributes["status"]
        text = (f"Mail from {attributes['from'] or sender or '?'} to {attributes['to'] or '?'}: "
                f"{attributes['subject'] or '(no subject)'}{f' [Status: {status}]' if status else ''}")
        if attributes.get("mozilla_expunged"):
            text += " [expunged by Thunderbird, still in the file until compaction]"
        elif attributes.get("deleted_flag") or attributes.get("mozilla_imap_deleted"):
            text += " [marked deleted]"
        return Record(data_type=f"{self.PREFIX}:message", message=text,
                      provenance=_at(ctx.provenance, start), parser=self.NAME, order=order,
                      timestamps=timestamps, attributes=attributes, host=ctx.host, user=ctx.user,
                      corrupted=corrupted, recovered=recovered)

    def _uid_gap(self, uids: UidRanges, uid_validity: int | None, next_uid: int | None,
                 ctx: ParseContext, folder: dict[str, Any], order: int) -> Record | None:
        if uids.count == 0 and next_uid is None:
            return None
        found = uids.expunged(next_uid)
        if found is None:
            return None
        gaps, tail, befores = found
        missing = count_uids(gaps)
        bounds: dict[str, int] = {}
        if befores and all(b is not None and b[0] is not None for b in befores):
            # The expunged messages arrived after the message before the first gap.
            bounds["Not before: delivery of the message before the first gap"] = min(b[0] for b in befores)
        mtime = ctx.entry.get("mtime")
        if mtime:
            bounds["Not after: mailbox file last modified"] = parse_iso(mtime)
        newest = f"; the newest {count_uids([tail])} (UIDs {format_ranges([tail])}) went" if tail else ""
        text = (f"{missing} message(s) expunged from {ctx.provenance.source_path}: IMAP UIDs "
                f"{format_ranges(gaps)} are missing ({uids.count} present, highest "
                f"{uids.highest if uids.highest is not None else '-'}"
                f"{', last UID handed out ' + str(next_uid - 1) if next_uid is not None else ''}){newest}")
        attributes: dict[str, Any] = {
            "evidence": "uid_gap", "missing_count": missing,
            "missing_uids": [[low, high] for low, high in gaps], "present_count": uids.count,
            "highest_uid": uids.highest, "next_uid": next_uid, "uid_validity": uid_validity,
            "last_uid_handed_out": next_uid - 1 if next_uid is not None else None,
            "newest_expunged": tail is not None, **folder}
        return Record(data_type=f"{self.PREFIX}:uid_gap", message=text, provenance=ctx.provenance,
                      parser=self.NAME, order=order, time_bounds=bounds, attributes=attributes,
                      host=ctx.host, user=ctx.user)

    def _rewrite(self, newest: int | None, newest_offset: int | None, order: int,
                 ctx: ParseContext, folder: dict[str, Any]) -> Record | None:
        mtime_text = ctx.entry.get("mtime")
        if newest is None or not mtime_text or not self.is_spool(ctx):
            return None
        mtime = parse_iso(mtime_text)
        if mtime - newest <= REWRITE_TOLERANCE_US:
            return None
        text = (f"Spool {ctx.provenance.source_path} was rewritten in place at {iso_utc(mtime)}, "
                f"after its newest message was delivered ({iso_utc(newest)}): messages were deleted, "
                f"or mail/mailx moved read messages to ~/mbox on quit (not a deletion; compare with "
                f"the user's ~/mbox)")
        attributes = {
            "evidence": "spool_rewritten", "newest_delivery": iso_utc(newest),
            "newest_delivery_offset": newest_offset, "mtime": iso_utc(mtime),
            "seconds_after_newest_delivery": (mtime - newest) // 1_000_000, **folder,
            "note": ("mail/mailx/s-nail rewrite the spool on quit: deleted messages are dropped and, "
                     "unless 'hold' is set, read messages are moved to ~/mbox, which is not a deletion")}
        return Record(data_type=f"{self.PREFIX}:rewrite", message=text, provenance=ctx.provenance,
                      parser=self.NAME, order=order, timestamps={REWRITE_DESC: mtime},
                      attributes=attributes, host=ctx.host, user=ctx.user)
