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

Speed: the two scans done per message, the separator search and the read of the wanted headers,
have C twins in :mod:`parsers._mboxscan` (built by ``setup.py`` where a C compiler is available,
~1.5x the messages per second); without it the pure-Python ones below give the same records.
"""

from __future__ import annotations

import binascii
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

try:  # optional: the C twins of _header_fields and the separator search (see setup.py)
    from parsers import _mboxscan
except ImportError:
    _mboxscan = None

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
if _mboxscan is not None:
    _mboxscan.configure(WANTED_HEADERS)
#: :func:`_header_fields` and the search for ``\nFrom `` in C, or None (looked up once per file,
#: so that tests can run the pure-Python twins by setting these to None).
NATIVE_HEADER_FIELDS = _mboxscan.header_fields if _mboxscan is not None else None
NATIVE_FIND_SEPARATOR = _mboxscan.find_separator if _mboxscan is not None else None


def _any_case(names: list[str]) -> str:
    """A regular expression for ``names`` in any ASCII letter case, as a trie of ``[xX]`` classes.

    Same matches as the plain alternation under ``re.IGNORECASE``, a little faster (~5 % of the
    header search): every branch starts with a character class, which the engine rejects at once
    on a line that starts with another letter (it cannot do that for case-folded literals), and
    a name is read once instead of once per alternative that shares its prefix.
    """
    branches: dict[str, list[str]] = {}
    complete = False
    for name in names:
        if name:
            branches.setdefault(name[0], []).append(name[1:])
        else:
            complete = True
    parts = [(f"[{c.lower()}{c.upper()}]" if c.isalpha() else re.escape(c)) + _any_case(rest)
             for c, rest in sorted(branches.items())]
    if not parts:
        return ""
    body = parts[0] if len(parts) == 1 else "(?:" + "|".join(parts) + ")"
    return f"(?:{body})?" if complete else body


#: Matched after a newline (the block is searched with one prepended): a pattern that starts with
#: a literal lets the regex engine jump from line to line instead of trying every byte.
_WANTED = re.compile(
    rb"\n(" + _any_case(list(WANTED_HEADERS)).encode() + rb")[ \t]*:[ \t]*"
    rb"([^\r\n]*(?:\r?\n[ \t][^\r\n]*)*)")
#: The same on decoded text, twice as fast because it splits on LF only (a single character);
#: values holding a CR are cut afterwards by :func:`_cut_cr`, so the result is the same.
_WANTED_TEXT = re.compile(
    r"\n(" + _any_case(list(WANTED_HEADERS)) + r")[ \t]*:[ \t]*([^\n]*(?:\n[ \t][^\n]*)*)", re.ASCII)
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
#: Groups: the date (``5 Oct 2026``, one group: it is only a cache key), hour, minute, second, zone.
_FAST_RFC2822 = re.compile(
    r"\s*(?:[A-Za-z]{3},\s*)?(\d{1,2}\s+[A-Z][a-z]{2}\s+\d{4})\s+(\d{1,2}):(\d{2}):(\d{2})"
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


#: µs (UTC) of local midnight of (date, zone) as a Date header writes them (``5 Oct 2026``,
#: ``-0400``), None for an impossible date: one lookup per date instead of the calendar and the
#: zone arithmetic.
_MIDNIGHTS: dict[tuple[str, str], int | None] = {}
_UNSEEN = object()


def _midnight(key: tuple[str, str]) -> int | None:
    """:data:`_MIDNIGHTS` entry of ``key``, computed and cached (bounded, like the day cache)."""
    date, zone = key
    day, month, year = date.split()  # the regex's \s+ and str.split() agree on what a space is
    days = _day_number(day, month, year)
    value = None if days is None else days * 86_400_000_000 + _zone_micros(zone)
    if len(_MIDNIGHTS) >= _DAYS_CACHE_MAX:
        _MIDNIGHTS.clear()
    _MIDNIGHTS[key] = value
    return value


#: µs of local midnight (UTC) of a date as written around its clock: the text before the clock
#: (``Mon, 5 Oct 2026``, with any leading blanks) and the zone after it (``-0400``), keyed only
#: once :data:`_FAST_RFC2822` has read a date written exactly ``head + " " + hh:mm:ss + " " +
#: zone``. Any other clock of that form between the same head and zone matches the pattern the
#: same way (the pattern cannot tell two such clocks apart), so its day and zone are the same.
_DATE_HEADS: dict[tuple[str, str], int] = {}


def _remember_head(head: str, zone: str, midnight: int) -> None:
    """Add a :data:`_DATE_HEADS` entry (bounded, like the day cache)."""
    if len(_DATE_HEADS) >= _DAYS_CACHE_MAX:
        _DATE_HEADS.clear()
    _DATE_HEADS[(head, zone)] = midnight


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


#: Day numbers of the (day, month, year) of From_ lines, as bytes (see :data:`_DAYS_CACHE`).
_ENVELOPE_DAYS: dict[tuple[bytes, bytes, bytes], int | None] = {}


def _read_envelope(envelope: bytes) -> tuple[str | None, int | None]:
    """(sender, time) of a From_ line; None for what cannot be read."""
    plain = _PLAIN_ENVELOPE.fullmatch(envelope)
    if plain is not None:
        sender, month, day, hour, minute, second, year = plain.groups()
        key = (day, month, year)
        days = _ENVELOPE_DAYS.get(key, _UNSEEN)
        if days is _UNSEEN:
            days = _day_number(day.decode(), month.decode(), year.decode())
            if len(_ENVELOPE_DAYS) >= _DAYS_CACHE_MAX:
                _ENVELOPE_DAYS.clear()
            _ENVELOPE_DAYS[key] = days
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
    # A date whose text around the clock was read before (same day, same zone: most of a spool)
    # needs no regex: see _DATE_HEADS.
    head, _, written_zone = value.rpartition(" ")
    head, _, clock = head.rpartition(" ")
    midnight = _DATE_HEADS.get((head, written_zone))
    if midnight is not None and len(clock) == 8 and clock[2] == ":" and clock[5] == ":" and clock.isascii():
        hour, minute, second = clock[:2], clock[3:5], clock[6:]
        if hour.isdigit() and minute.isdigit() and second.isdigit():
            hours, minutes, seconds = int(hour), int(minute), int(second)
            if hours <= 23 and minutes <= 59 and seconds <= 59:
                return midnight + ((hours * 60 + minutes) * 60 + seconds) * 1_000_000
    fast = _FAST_RFC2822.fullmatch(value)
    if fast:
        date, hour, minute, second, zone = fast.groups()
        key = (date, zone)
        midnight = _MIDNIGHTS.get(key, _UNSEEN)
        if midnight is _UNSEEN:
            midnight = _midnight(key)
        hours, minutes, seconds = int(hour), int(minute), int(second)
        if midnight is not None and hours <= 23 and minutes <= 59 and seconds <= 59:
            if (zone == written_zone and len(clock) == 8 and clock == f"{hour}:{minute}:{second}"
                    and value == f"{head} {clock} {zone}"):
                _remember_head(head, zone, midnight)
            return midnight + ((hours * 60 + minutes) * 60 + seconds) * 1_000_000
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


#: A value that is one UTF-8 base64 encoded-word, with canonical padding (the common case).
_UTF8_B_WORD = re.compile(
    r"=\?utf-8\?b\?((?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?)\?=",
    re.IGNORECASE | re.ASCII)


def decode_header_value(value: str | None) -> str | None:
    """Decode RFC 2047 encoded-words; undecodable parts are kept as they are.

    A value that is a single UTF-8 base64 word (most encoded subjects) is decoded directly, which
    is what :mod:`email.header` does with it (base64, then strict UTF-8) at a tenth of the cost.
    """
    if value is None or "=?" not in value:
        return value
    word = _UTF8_B_WORD.fullmatch(value)
    if word is not None:
        try:
            return binascii.a2b_base64(word.group(1).encode("ascii")).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError):
            pass  # email.header below says what to do with it
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


def _header_fields(block: bytes) -> tuple[dict[str, str], int, str | None]:
    """What a message record reads of a header block: the first value of each wanted header
    (lower-case name -> value), how many ``Received:`` headers there are, and the last one.

    The same values as :func:`parse_headers` (which it falls back to for a block with a CR or
    one that is not UTF-8), built with C-level ``zip``/``map``/``dict`` instead of a Python loop
    over the headers: this runs once per message.
    """
    try:
        text_block = "\n" + block.decode("utf-8")
    except UnicodeDecodeError:
        text_block = None
    if text_block is None or "\r" in text_block:
        headers = parse_headers(block)
        received = headers.get("received") or ()
        return ({name: values[0] for name, values in headers.items()}, len(received),
                received[-1] if received else None)
    pairs = _WANTED_TEXT.findall(text_block)
    if not pairs:
        return {}, 0, None
    names, values = zip(*pairs, strict=True)
    # Every spelling the pattern accepts is ASCII, so lower() gives the key parse_headers uses.
    keys = [*map(str.lower, names)]
    first = dict(zip(reversed(keys), reversed(values), strict=True))  # the first one is written last
    received = keys.count("received")
    last = values[len(keys) - 1 - keys[::-1].index("received")] if received > 1 else first.get("received")
    return first, received, last


def _squeeze(value: str) -> str:
    """``" ".join(value.split())``: runs of white space made one space, the ends trimmed.

    Most header values are already like that; :meth:`str.isprintable` is false for every white
    space character but the ASCII space, so those are returned as they are, without the copy.
    """
    if value.isprintable() and "  " not in value and value[:1] != " " and value[-1:] != " ":
        return value
    return " ".join(value.split())


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
    # One %-format is cheaper than an f-string with four format specifications.
    return "%sT%02d:%02d:%02d.%06d+00:00" % (date, hours, minutes, seconds, fraction)  # noqa: UP031


_ISO_DAYS: dict[int, str] = {}


def message_fields(headers: dict[str, list[str]]) -> tuple[dict[str, int], dict[str, Any]]:
    """Timestamps and attributes every mail record shares, from :func:`parse_headers` output."""
    timestamps: dict[str, int] = {}
    attributes: dict[str, Any] = {}
    received = headers.get("received") or ()
    _message_fields({name: values[0] for name, values in headers.items() if values}, len(received),
                    received[-1] if received else None, timestamps, attributes)
    return timestamps, attributes


def _message_fields(first: dict[str, str], received: int, last_received: str | None,
                    timestamps: dict[str, int], attributes: dict[str, Any]) -> None:
    """:func:`message_fields` of a header block read by :func:`_header_fields` (the first value
    of each header, the number of ``Received:`` headers and the last one), added to
    ``timestamps`` and ``attributes`` (the mbox record's own dictionaries, which already hold its
    envelope fields: no copy per message).

    This runs once per message of every store, so it is written for speed: each header is looked
    up once, and encoded-word decoding and date parsing run only where the text needs them.
    """
    get = first.get
    value = get("date")
    date_header = None
    if value is not None:
        date_time = parse_rfc2822_date(value)
        if date_time is not None:
            timestamps[DATE_DESC] = date_time
        date_header = _squeeze(value)
    if received:
        top = parse_rfc2822_date(first["received"].rpartition(";")[2])
        if top is not None:
            timestamps[RECEIVED_DESC] = top
    value = get("status")
    status = None if value is None else _squeeze(value)
    value = get("x-status")
    x_status = None if value is None else _squeeze(value)
    value = get("from")
    sender = None if value is None else _squeeze(value)
    value = get("to")
    to = None if value is None else _squeeze(value)
    value = get("subject")
    subject = None if value is None else _squeeze(value)
    value = get("message-id")
    message_id = None if value is None else _squeeze(value)
    value = get("delivered-to")
    delivered_to = None if value is None else _squeeze(value)
    attributes["from"] = decode_header_value(sender) if sender and "=?" in sender else sender
    attributes["to"] = decode_header_value(to) if to and "=?" in to else to
    attributes["subject"] = decode_header_value(subject) if subject and "=?" in subject else subject
    attributes["message_id"] = message_id
    attributes["date_header"] = date_header
    attributes["delivered_to"] = delivered_to
    attributes["status"] = status
    attributes["x_status"] = x_status
    attributes["received_count"] = received
    value = get("cc")
    if value is not None:
        attributes["cc"] = decode_header_value(_squeeze(value))
    value = get("x-original-to")
    if value is not None:
        attributes["x_original_to"] = _squeeze(value)
    if received > 1 and last_received is not None:
        bottom = parse_rfc2822_date(last_received.rpartition(";")[2])
        if bottom is not None:
            try:
                attributes["first_hop_received_time"] = _iso(bottom)
            except (OverflowError, ValueError):  # a date at the edge of the calendar
                pass
    if (status and "D" in status) or (x_status and "D" in x_status):
        attributes["deleted_flag"] = True
    if "x-mozilla-status" in first or "x-mozilla-status2" in first:
        mozilla = mozilla_flags(get("x-mozilla-status"), get("x-mozilla-status2"))
        if mozilla is not None:
            attributes["x_mozilla_status"] = f"0x{mozilla:08x}"
            attributes["mozilla_flags"] = mozilla_flag_names(mozilla)
            if mozilla & MOZILLA_EXPUNGED:
                attributes["mozilla_expunged"] = True
            if mozilla & MOZILLA_IMAP_DELETED:
                attributes["mozilla_imap_deleted"] = True


def mail_summary(attributes: dict[str, Any], fallback_sender: str | None = None) -> str:
    """The one-line message of a mail record."""
    status = attributes.get("status")
    flags = f" [Status: {status}]" if status else ""
    return (f"Mail from {attributes.get('from') or fallback_sender or '?'} to "
            f"{attributes.get('to') or '?'}: {attributes.get('subject') or '(no subject)'}{flags}")


#: Whether Provenance is the plain frozen dataclass whose instance dictionary :func:`_at` copies.
_PLAIN_PROVENANCE = (tuple(f.name for f in dataclasses.fields(Provenance)) == (
    "bundle_path", "source_path", "sha256", "filesystem", "offset", "evidence")
    and not hasattr(Provenance, "__slots__") and not hasattr(Provenance, "__post_init__"))


def _at(provenance: Provenance, offset: int) -> Provenance:
    """``provenance`` with a byte offset.

    A copy of the instance dictionary with the offset replaced: the frozen dataclass constructor
    (one ``object.__setattr__`` per field) costs several times as much, once per message; equal
    to ``Provenance(...)`` with the same fields, which it falls back to if Provenance changes shape.
    """
    if not _PLAIN_PROVENANCE:
        return Provenance(provenance.bundle_path, provenance.source_path, provenance.sha256,
                          provenance.filesystem, offset, provenance.evidence)
    fields = provenance.__dict__.copy()
    fields["offset"] = offset
    copy = object.__new__(Provenance)
    object.__setattr__(copy, "__dict__", fields)
    return copy


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


def _nul_run(buf: Any, start: int, end: int) -> int:
    """Offset of the first :data:`NUL_RUN` in ``buf[start:end]``, or -1.

    Mail holds no NUL byte at all, so a one-byte search (``memchr``, many times faster than the
    16-byte search) usually settles it; the run is looked for only from the first NUL on.
    """
    reach = start + SCAN_WINDOW
    first = buf.find(b"\0", start, reach if reach < end else end)
    if first >= 0:
        hole = buf.find(NUL_RUN, first, reach if reach < end else end)
    else:
        hole = -1
    if hole < 0 and reach < end:
        hole = _find_on(buf, NUL_RUN, start, reach, end)
    return hole


def _find_on(buf: Any, needle: bytes, start: int, searched: int, end: int) -> int:
    """:func:`_find` of the rest of ``[start, end)`` once ``[start, searched)`` held no ``needle``
    (a needle straddling ``searched`` included), releasing the pages already searched."""
    _release(buf, start, searched)
    return _find(buf, needle, searched - len(needle) + 1, end)


#: The separator, searched with the regex engine: its scan for a literal prefix runs about twice
#: as fast as ``find`` does for this needle (whose last byte, a space, is everywhere in text).
_SEPARATOR = re.compile(rb"\nFrom ")
#: Bytes the regex engine searches for the separator before :func:`_next_separator` looks for
#: the next space (see there).
SEPARATOR_CHUNK = 16 * 1024


def _next_separator(buf: Any, pos: int, size: int) -> int:
    """Offset of the next ``\\nFrom `` at or after ``pos`` in ``buf[:size]``, or -1.

    With :data:`NATIVE_FIND_SEPARATOR`, one C search per :data:`SCAN_WINDOW`. Without it: the
    regex engine searches ~2 GB/s, ``memchr`` ~15 GB/s. A separator holds a space five bytes in,
    and base64 (attachments: most of the bytes of real mail) has none, so the search first jumps
    to five bytes before the next space, then lets the regex engine search one
    :data:`SEPARATOR_CHUNK`, and so on: a whole attachment is passed in one ``memchr``, and text
    (spaces everywhere) costs one extra C call per chunk. Either way, pages passed are handed back
    every :data:`SCAN_WINDOW` bytes, as :func:`_find` does.
    """
    released = pos
    release = isinstance(buf, mmap.mmap)
    native = NATIVE_FIND_SEPARATOR
    if native is not None:  # one C search per window (AVX2/SSE2: text and base64 alike)
        while pos < size:
            stop = pos + SCAN_WINDOW
            found = native(buf, pos, stop if stop < size else size)
            if found >= 0 or stop >= size:
                return found
            pos = stop - 5  # a separator that straddles ``stop`` starts at or after this
            if release:  # each window passed leaves this process (flat memory in a huge message)
                _release(buf, released, pos)
                released = pos
        return -1
    search = _SEPARATOR.search
    find = buf.find
    while pos < size:
        reach = pos + SCAN_WINDOW
        space = find(b" ", pos + 5, reach if reach < size else size)
        if space < 0:  # no separator starts before the window's last five bytes
            if reach >= size:
                return -1
            pos = reach - 5
        else:
            if space - 5 > pos:
                pos = space - 5
            stop = pos + SEPARATOR_CHUNK
            found = search(buf, pos, stop)
            if found is not None:
                return found.start()
            if stop >= size:
                return -1
            pos = stop - 5  # a separator that straddles ``stop`` starts at or after this
        if release and pos - released >= SCAN_WINDOW:
            _release(buf, released, pos)
            released = pos
    return -1


def _scan(buf: Any, ctx: ParseContext) -> Iterator[tuple[int, int, int, bytes, bool, bool, int]]:
    """Each message of ``buf`` as the fields of a :class:`_Span`, in file order (a tuple: cheaper
    than an object in the per-message loop).

    Pages already scanned are released every :data:`RELEASE_BYTES`, and each search looks at most
    :data:`SCAN_WINDOW` bytes ahead before it goes on window by window (see :func:`_find`).
    """
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
    find = buf.find
    native = NATIVE_FIND_SEPARATOR
    search = _SEPARATOR.search
    chunk = SEPARATOR_CHUNK
    while start < size:
        if release and start - released >= RELEASE_BYTES:
            # Pages already parsed leave this process (they stay in the page cache): the
            # resident size stays flat however large the spool is.
            _release(buf, released, start)
            released = start - start % mmap.PAGESIZE
        # Each search first looks at most SCAN_WINDOW bytes ahead (one plain search, the usual
        # case); only a longer one goes on window by window (and releases what it passed).
        line_end = find(b"\n", start, start + SCAN_WINDOW)
        if line_end < 0 and start + SCAN_WINDOW < size:
            line_end = _find_on(buf, b"\n", start, start + SCAN_WINDOW, size)
        line_end = size if line_end < 0 else line_end + 1
        # In C, one call. In Python, the usual message ends within one chunk, searched inline;
        # a longer one goes on in _next_separator, which jumps over attachments.
        if native is not None:
            separator = _next_separator(buf, line_end - 1, size)
            natural_end = size if separator < 0 else separator + 1
        elif (found := search(buf, line_end - 1, line_end - 1 + chunk)) is not None:
            natural_end = found.start() + 1
        else:
            more = line_end - 1 + chunk < size
            separator = _next_separator(buf, line_end - 6 + chunk, size) if more else -1
            natural_end = size if separator < 0 else separator + 1
        limit = min(natural_end, line_end + MAX_HEADER_BYTES)
        if line_end < natural_end:
            # _header_end's usual case inline: an LF file (no CR before the From_ line's LF).
            header_end = find(b"\n\n", line_end - 1, limit)
            if header_end >= 0 and buf[line_end - 2] != 13:
                header_end += 2
            else:
                header_end = _header_end(buf, line_end, limit)
        else:
            header_end = -1
        if header_end < 0:
            yield (start, natural_end, natural_end, buf[line_end:limit], False, limit < natural_end,
                   line_end)
        else:
            yield start, natural_end, header_end, buf[line_end:header_end], True, False, line_end
        start = natural_end


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
        slack_of = ctx.entry.get("slack_of")  # the allocated file whose slack held the run
        where = f"the slack of {slack_of}" if slack_of else "unallocated blocks"
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
                **({"slack_of": slack_of} if slack_of else {}),
                mailbox=mailbox or address or ctx.provenance.source_path,
                attributed_address=address, attributed_by=header, duplicate_check=(
                    "no other copy with this Message-ID in the bundle" if known is not None and message_id
                    else "not checked (no Message-ID)" if known is not None else "not checked"))
            text = (record.message + f" [carved from {where} at byte {attributes['offset']}"
                    + (f"; mailbox {attributes['mailbox']} by {header}" if address else "") + "]")
            yield dataclasses.replace(record, attributes=attributes, message=text, order=order,
                                      provenance=_at(ctx.provenance, attributes["offset"]), recovered=True)
            order += 1
            kept += 1
        freed = "it became slack later" if slack_of else "its blocks were freed later"
        bounds = {f"Not before: newest delivery in the run ({freed})": newest} \
            if newest is not None else {}
        skipped = len(duplicates)
        text = (f"{kept + skipped} message(s) carved from {where} of {ctx.provenance.filesystem} "
                f"at byte {base}: {kept} not found elsewhere in the bundle, {skipped} skipped as copies of "
                f"messages still present (same Message-ID)")
        attributes = {"evidence": "carved_run", "carved_offset": base,
                      **({"slack_of": slack_of} if slack_of else {}), "size": len(buf),
                      "messages": kept + skipped, "new_messages": kept,
                      "duplicates_skipped": skipped, "duplicates": duplicates[:100],
                      "duplicate_handling": "skipped: a copy with the same Message-ID is in the bundle"}
        yield Record(data_type=f"{self.PREFIX}:carved_run", message=text,
                     provenance=_at(ctx.provenance, base), parser=self.NAME, order=order,
                     time_bounds=bounds, attributes=attributes, host=ctx.host, user=ctx.user,
                     recovered=True)

    def _spans(self, buf: Any, ctx: ParseContext) -> Iterator[_Span]:
        """The messages of ``buf`` as :class:`_Span` objects (see :func:`_scan`)."""
        for span in _scan(buf, ctx):
            yield _Span(*span)

    def _parse_buffer(self, buf: Any, ctx: ParseContext) -> Iterator[Record]:
        size = len(buf)
        folder = self.folder_attributes(ctx)
        uids = UidRanges()
        uid_validity: int | None = None
        next_uid: int | None = None
        newest: int | None = None
        newest_offset: int | None = None
        order = 0
        skip_until = 0
        message = self._message
        data_type = f"{self.PREFIX}:message"
        deleted = bool(ctx.entry.get("deleted"))
        native = NATIVE_HEADER_FIELDS
        for start, end, body_start, header, complete, truncated, line_end in _scan(buf, ctx):
            if start < skip_until:
                continue
            # The C twin returns None for a block that is not UTF-8 or holds a CR.
            first, received, last_received = (native and native(header)) or _header_fields(header)
            evidence: dict[str, Any] = {}
            content_length = first.get("content-length")
            declared = _content_length(content_length) if content_length is not None and complete else None
            # "Content-Length: 0" is a placeholder some writers leave (mutt ignores it too).
            if declared:
                cl_end = _content_length_end(buf, body_start, declared, size)
                if cl_end is not None and cl_end > end:
                    # mboxcl2: the unescaped "From " lines in this body are not separators.
                    evidence["content_length_spans_from_lines"] = True
                    end = skip_until = cl_end
                elif cl_end is None:
                    body = end - body_start
                    if buf[end - 1:end] == b"\n" and end < size:
                        body -= 1  # the blank line before the next separator is not body
                    evidence.update(content_length_mismatch=True, content_length=declared,
                                    body_length=body)
                    if end == size and body_start + declared > size:
                        evidence["tail_evidence"] = "content_length_short"
                    ctx.warn(f"Content-Length {declared} disagrees with the body "
                             f"({body} bytes)", start)
            record = message(buf, start, end, line_end, complete, truncated, first, received,
                             last_received, evidence, ctx, folder, order, size, data_type, deleted)
            order += 1
            uid_text = record.attributes.get("uid")
            base = (first.get("x-imapbase") or first.get("x-imap")) if order == 1 else None
            if base:
                fields = base.split()
                try:
                    # UW-IMAP/Dovecot write UIDVALIDITY and the *last* UID handed out (NEXTUID - 1).
                    uid_validity, next_uid = int(fields[0]), int(fields[1]) + 1
                except (IndexError, ValueError):
                    ctx.warn(f"unreadable X-IMAPbase header {base!r}", start)
            timestamps = record.timestamps
            delivered = timestamps.get(ENVELOPE_DESC, timestamps.get(RECEIVED_DESC))
            if uid_text and uid_text.isdigit():
                uids.add(int(uid_text), (delivered, start))
            if delivered is not None and (newest is None or delivered > newest):
                newest, newest_offset = delivered, start
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

    def _message(self, buf: Any, start: int, end: int, line_end: int, header_complete: bool,
                 header_truncated: bool, first: dict[str, str], received: int,
                 last_received: str | None, evidence: dict[str, Any],
                 ctx: ParseContext, folder: dict[str, Any], order: int, size: int,
                 data_type: str, deleted: bool) -> Record:
        """The record of the message at ``buf[start:end]`` (its From_ line ends at ``line_end``).

        ``data_type`` and ``deleted`` (the file is a recovered deleted one) are the same for every
        message of a file: the caller works them out once.
        """
        newline = line_end - 1 if 0 < line_end <= end else _find(buf, b"\n", start, end)
        envelope = buf[start:newline if newline >= 0 else end].rstrip(b"\r\n")
        sender, envelope_time = _read_envelope(envelope)
        timestamps: dict[str, int] = {} if envelope_time is None else {ENVELOPE_DESC: envelope_time}
        attributes: dict[str, Any] = {"envelope": envelope.decode("utf-8", "replace")[5:],
                                      "envelope_sender": sender}
        _message_fields(first, received, last_received, timestamps, attributes)
        attributes["offset"] = start
        attributes["size"] = end - start
        attributes.update(folder)
        if evidence:
            attributes.update(evidence)
        uid = first.get("x-uid")
        if uid:
            attributes["uid"] = uid.strip()
        corrupted = False
        if envelope_time is None:
            attributes["envelope_unreadable"] = True
            ctx.warn("From_ line without a readable date", start)
        if header_truncated:
            corrupted = True
            ctx.warn(f"header block longer than {MAX_HEADER_BYTES} bytes; rest ignored", start)
        last = end == size  # only the file's last message can show a cut tail
        final_newline = not last or buf[size - 1:size] == b"\n"
        if last and not header_complete and not header_truncated:
            if final_newline:
                attributes["header_only"] = True
                ctx.warn("the file ends after a header block with no blank line or body", start)
            else:
                attributes["tail_evidence"] = "truncated_in_header"
                ctx.warn("file ends inside the message header (truncated spool?)", start)
        hole = _nul_run(buf, start, end)
        if hole >= 0:
            corrupted = True
            attributes.update(garbled=True, nul_bytes_offset=hole)
            if last:
                attributes.setdefault("tail_evidence", "nul_bytes")
            ctx.warn(f"run of NUL bytes inside the message at offset {hole}", hole)
        if last:
            if not final_newline and "tail_evidence" not in attributes:
                attributes["tail_evidence"] = "no_final_newline"
                ctx.warn("file does not end with a newline (cut short?)", start)
            if attributes.get("tail_evidence") not in (None, "no_final_newline"):
                corrupted = True
        expunged = attributes.get("mozilla_expunged")
        recovered = deleted or bool(expunged)
        status = attributes["status"]
        text = (f"Mail from {attributes['from'] or sender or '?'} to {attributes['to'] or '?'}: "
                f"{attributes['subject'] or '(no subject)'}{f' [Status: {status}]' if status else ''}")
        if expunged:
            text += " [expunged by Thunderbird, still in the file until compaction]"
        elif attributes.get("deleted_flag") or attributes.get("mozilla_imap_deleted"):
            text += " [marked deleted]"
        return Record.quick(data_type, text, _at(ctx.provenance, start), self.NAME, order, timestamps,
                            attributes, ctx.host, ctx.user, recovered, corrupted)

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
