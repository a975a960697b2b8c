"""Apple Mail ``.emlx`` / ``.partial.emlx`` message files.

Layout (one message per file): a first line holding the byte count of the RFC 822 message, the
message itself, then an XML property list with Mail's own metadata. The plist's ``flags`` integer
is a bit field; its documented meanings (jwz, "emlx flags?", 2005, still used by Mail) are below.
Bit 1 (0x2) is *deleted*: the message was deleted in Mail but its file is still on disk, which is
exactly the trace an examiner needs. ``.partial.emlx`` files hold only the headers and the parts
Mail downloaded; they are messages all the same.

Why a separate module from the Envelope Index parser: each ``.emlx`` is one collected file and
stands on its own (it survives when the database row is gone). The cross-check between files and
rows lives in :mod:`parsers.apple_mail`.
"""

from __future__ import annotations

import plistlib
import re
import urllib.parse
from collections.abc import Iterator
from dataclasses import dataclass
from email.parser import BytesHeaderParser
from email.policy import compat32
from typing import Any, BinaryIO
from xml.parsers.expat import ExpatError

from parsers.base import ParseContext, Parser
from parsers.mbox import decode_header_value, parse_rfc2822_date
from parsers.record import Record

MAX_HEADER_BYTES = 256 * 1024
MAX_PLIST_BYTES = 1024 * 1024
#: bit -> name, from the documented emlx ``flags`` layout.
FLAG_BITS = {0: "read", 1: "deleted", 2: "answered", 3: "encrypted", 4: "flagged", 5: "recent",
             6: "draft", 7: "initial", 8: "forwarded", 9: "redirected", 23: "signed",
             24: "junk", 25: "not_junk", 29: "junk_level_recorded", 30: "highlight_in_toc"}
FLAG_DELETED = 1 << 1
COCOA_OFFSET = 978_307_200  # seconds from 1970-01-01 to 2001-01-01 (NSDate reference date)
YEAR_2100 = 4_102_444_800
_NAME = re.compile(r"^(?P<rowid>\d+)(?P<partial>\.partial)?\.emlx$", re.IGNORECASE)
TRASH_NAMES = {"trash", "deleted messages", "deleted items", "bin", "papierkorb", "corbeille",
               "papelera", "cestino", "prullenbak"}


@dataclass(frozen=True)
class EmlxHeader:
    """What the first bytes of an ``.emlx`` say."""

    byte_count: int
    header_end: int  # offset of the first message byte


def apple_seconds_to_micros(value: float, epoch: str) -> int:
    """µs since 1970 for Apple seconds counted from the Unix or the Cocoa (2001-01-01) epoch."""
    offset = COCOA_OFFSET if epoch == "cocoa" else 0
    if isinstance(value, int):
        return (value + offset) * 1_000_000
    return round((value + offset) * 1_000_000)


def choose_epoch(values: list[float], reference: int | None = None) -> str:
    """Which epoch Apple seconds count from: ``"unix"`` or ``"cocoa"``.

    Public write-ups disagree (Envelope Index ``date_received`` is documented both as Unix and as
    Cocoa seconds), so the data decides. With a known time of the same message (``reference``, µs:
    e.g. its Date header) the epoch that lands closer wins. Otherwise the median value decides:
    Mail.app did not exist before 2001, so a median that reads as a pre-2001 Unix date while the
    Cocoa reading is plausible (before 2100) means Cocoa seconds; anything else reads as Unix.
    """
    values = sorted(v for v in values if v)
    if not values:
        return "unix"
    median = values[len(values) // 2]
    if reference is not None:
        unix_gap = abs(median * 1_000_000 - reference)
        cocoa_gap = abs((median + COCOA_OFFSET) * 1_000_000 - reference)
        return "cocoa" if cocoa_gap < unix_gap else "unix"
    if median < COCOA_OFFSET and median + COCOA_OFFSET < YEAR_2100:
        return "cocoa"
    return "unix"


def decode_flags(flags: int) -> dict[str, Any]:
    """Named view of an emlx ``flags`` integer (bits, attachment count, priority)."""
    names = [name for bit, name in FLAG_BITS.items() if flags & (1 << bit)]
    return {"flag_names": names, "attachment_count": (flags >> 10) & 0x3F,
            "priority": (flags >> 16) & 0x7F}


def mailbox_of(path: str) -> str | None:
    """The ``X.mbox`` mailbox a file lies in (nested mailboxes joined by ``/``)."""
    parts = [p for p in path.replace("\\", "/").split("/") if p]
    boxes = [p[:-5] for p in parts if p.lower().endswith(".mbox")]
    return "/".join(boxes) if boxes else None


def is_trash_mailbox(name: str | None) -> bool:
    """Whether a mailbox name or URL names a Trash / Deleted Messages folder (any nesting)."""
    if not isinstance(name, str) or not name:  # a damaged database can hold any type
        return False
    last = urllib.parse.unquote(name.rstrip("/").rsplit("/", 1)[-1]).strip().lower()
    return last in TRASH_NAMES


def read_emlx_header(fh: BinaryIO) -> EmlxHeader | None:
    """Parse the byte-count line, or None when the file does not start with one."""
    first = fh.readline(64)
    text = first.strip()
    if not text.isdigit() or not first.endswith(b"\n"):
        return None
    return EmlxHeader(byte_count=int(text), header_end=len(first))


class EmlxParser(Parser):
    """Apple Mail message files (``N.emlx`` and ``N.partial.emlx``)."""

    NAME = "emlx"
    DESCRIPTION = "Apple Mail .emlx/.partial.emlx: headers, Mail's plist flags (deleted bit) and dates"
    DATA_TYPES = ("mail:apple_mail:emlx",)

    @classmethod
    def sniff(cls, head: bytes, name: str) -> bool:
        return name.lower().endswith(".emlx") and head.split(b"\n", 1)[0].strip().isdigit()

    def parse(self, fh: BinaryIO, ctx: ParseContext) -> Iterator[Record]:
        source = ctx.provenance.source_path
        name = source.replace("\\", "/").rsplit("/", 1)[-1]
        if not name.lower().endswith(".emlx"):
            return  # the Apple Mail artifact hands every file of ~/Library/Mail to each parser
        header = read_emlx_header(fh)
        if header is None:
            ctx.warn("not an emlx file: first line is not a byte count", 0)
            return
        yield self._record(fh, header, name, ctx)

    def _record(self, fh: BinaryIO, header: EmlxHeader, name: str, ctx: ParseContext) -> Record:
        corrupted = False
        raw_header = bytearray()
        remaining = header.byte_count
        while remaining > 0:
            line = fh.readline(min(remaining, 65536))
            if not line:
                break
            remaining -= len(line)
            if line in (b"\n", b"\r\n"):
                break
            if len(raw_header) + len(line) > MAX_HEADER_BYTES:
                ctx.warn(f"header block longer than {MAX_HEADER_BYTES} bytes; rest ignored",
                         header.header_end)
                corrupted = True
                break
            raw_header += line
        headers = BytesHeaderParser(policy=compat32).parsebytes(bytes(raw_header))
        plist_offset = header.header_end + header.byte_count
        fh.seek(plist_offset)
        tail = fh.read(MAX_PLIST_BYTES)
        plist: dict[str, Any] = {}
        if not tail.strip():
            ctx.warn("no property list after the message (truncated emlx?)", plist_offset)
            corrupted = True
        else:
            try:
                loaded = plistlib.loads(tail.strip())
                plist = loaded if isinstance(loaded, dict) else {}
            except (plistlib.InvalidFileException, ValueError, SyntaxError, ExpatError, OverflowError,
                    RecursionError, LookupError) as exc:  # hostile XML or binary plists raise all these
                ctx.warn(f"unreadable property list: {exc}", plist_offset)
                corrupted = True
        match = _NAME.match(name)
        mailbox = mailbox_of(ctx.provenance.source_path)
        flags = plist.get("flags")
        timestamps: dict[str, int] = {}
        date_time = parse_rfc2822_date(_clean(headers.get("Date")))  # a Header if not ASCII
        if date_time is not None:
            timestamps["Sent Time (Date header)"] = date_time
        plist_times = {key: value for key in ("date-received", "date-last-viewed", "date-sent")
                       if _number(value := plist.get(key))}
        epoch = choose_epoch(list(plist_times.values()), reference=date_time)
        for key, desc in (("date-received", "Received Time (emlx plist)"),
                          ("date-last-viewed", "Last Viewed Time (emlx plist)"),
                          ("date-sent", "Sent Time (emlx plist)")):
            if key in plist_times:
                timestamps[desc] = apple_seconds_to_micros(plist_times[key], epoch)
        subject = decode_header_value(_clean(headers.get("Subject"))) or _str(plist.get("subject"))
        attributes: dict[str, Any] = {
            "rowid": int(match.group("rowid")) if match else None,
            "partial": bool(match and match.group("partial")), "mailbox": mailbox,
            "from": decode_header_value(_clean(headers.get("From"))) or _str(plist.get("sender")),
            "to": decode_header_value(_clean(headers.get("To"))) or _str(plist.get("to")),
            "subject": subject, "message_id": _clean(headers.get("Message-ID")),
            "date_header": _clean(headers.get("Date")), "byte_count": header.byte_count,
            "flags": flags if isinstance(flags, int) else None,
            "original_mailbox": _str(plist.get("original-mailbox")),
            "remote_id": _str(plist.get("remote-id")),
            "date_epoch": epoch if plist_times else None}
        if isinstance(flags, int):
            attributes.update(decode_flags(flags))
            if flags & FLAG_DELETED:
                attributes["deleted_flag"] = True
        if is_trash_mailbox(mailbox):
            attributes["in_trash"] = True
        state = " [deleted flag]" if attributes.get("deleted_flag") else ""
        text = (f"Apple Mail message{' (partial)' if attributes['partial'] else ''} in "
                f"{mailbox or '?'} from {attributes['from'] or '?'} to {attributes['to'] or '?'}: "
                f"{subject or '(no subject)'}{state}")
        return Record(data_type="mail:apple_mail:emlx", message=text, provenance=ctx.provenance_at(0),
                      parser=self.NAME, order=0, timestamps=timestamps, attributes=attributes,
                      host=ctx.host, user=ctx.user, corrupted=corrupted,
                      recovered=bool(ctx.entry.get("deleted")))


def _clean(value: object) -> str | None:
    if value is None:
        return None
    return " ".join(str(value).split()) or None


def _number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and value > 0


def _str(value: object) -> str | None:
    return value if isinstance(value, str) and value else None
