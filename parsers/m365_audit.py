"""Microsoft 365 Unified Audit Log exports: Purview CSV and ``Search-UnifiedAuditLog`` JSON.

For cloud mailboxes these exports are the evidence: mailbox auditing writes ``SoftDelete``,
``HardDelete`` and ``MoveToDeletedItems`` with the folder and the affected items' subjects, and
admin cmdlets (``New-InboxRule``, ``Set-Mailbox``, ``New-ComplianceSearchAction``...) with their
parameters. Every shape an examiner receives is read here:

* Purview audit search CSV: ``RecordId,CreationDate,RecordType,Operation,UserId,AuditData,...``;
* the older compliance-centre CSV: ``CreationDate,UserIds,Operations,AuditData``;
* ``Search-UnifiedAuditLog | Export-Csv`` (adds ``RunspaceId``, ``ResultIndex``...);
* ``Search-UnifiedAuditLog | ConvertTo-Json`` (an array, or one object) and JSON Lines of
  ``AuditData`` objects (Management Activity API), UTF-8 or the UTF-16 PowerShell 5 writes.

One record per operation, data type ``m365:ual:<workload>``; the time is ``AuditData.CreationTime``
(UTC). JSON arrays are decoded object by object over a bounded window, never loaded whole.

Memory is bounded whatever the file holds: a CSV line or a JSON element longer than
:data:`MAX_OBJECT_CHARS` (1 Mi characters, far above any real AuditData) is not decoded. Its first
:data:`MAX_OBJECT_CHARS` characters are kept, the scalar fields that can be read from them
(``CreationTime``, ``Operation``, ``UserId``, ...) become a ``corrupted`` record, a warning gives its
byte offset and length, and the rest of it is skipped in pieces (a 1 GB single-line export runs in
a few MB).
"""

from __future__ import annotations

import codecs
import csv
import datetime as _dt
import io
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, BinaryIO, TextIO

from collector.timeutil import from_datetime
from parsers.base import ParseContext, Parser
from parsers.exchange_cmdlets import HIDING_FOLDERS, cmdlet_attributes, parse_parameter_string
from parsers.record import Record

DATA_TYPE_PREFIX = "m365:ual"
_CHUNK = 1 << 20
#: Largest CSV line or JSON element decoded; a longer one is cut (scalars salvaged) and skipped.
MAX_OBJECT_CHARS = 1 << 20
_RESYNC = re.compile(r"[\n,]\s*\{")
_DOTNET_DATE = re.compile(r"^/Date\((-?\d+)([+-]\d{4})?\)/$")
_CSV_KEYS = {"auditdata"}
#: Mailbox-audit operations whose AuditData lists the affected items.
MAILBOX_OPERATIONS = {"softdelete", "harddelete", "movetodeleteditems", "move", "copy", "update",
                      "mailitemsaccessed", "sendas", "sendonbehalf", "create", "applyrecord"}
_MAX_SUBJECTS = 200
#: A top-level-looking ``"Key": scalar`` pair in the readable start of a cut AuditData.
_SCALAR = re.compile(r'"([A-Za-z][A-Za-z0-9]*+)"\s*+:\s*+'
                     r'("[^"\\]*+(?:\\.[^"\\]*+)*+"|-?\d++(?:\.\d++)?|true|false|null)', re.DOTALL)
#: While skipping a cut JSON element: the rest of a string up to its quote or a backslash, and
#: text without quotes or brackets (possessive: no backtracking state, whatever the length).
_STRING_BODY = re.compile(r'[^"\\]*+')
_PLAIN = re.compile(r'[^"\[\]{}]*+')

Row = tuple[int | None, dict[str, Any], dict[str, Any] | None, bool]


@dataclass(frozen=True)
class CutElement:
    """A JSON element longer than MAX_OBJECT_CHARS: the scalars read from its start, and its size."""

    fields: dict[str, Any]
    chars: int


def _encoding(head: bytes) -> str:
    if head.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        return "utf-16"
    if len(head) >= 4 and head[1:2] == b"\x00" and head[3:4] == b"\x00":
        return "utf-16-le"
    return "utf-8-sig"


def _errors(encoding: str) -> str:
    """Decoding error handler: surrogateescape keeps bad UTF-8 losslessly, but cannot escape the
    ASCII-range bytes of a broken UTF-16 unit (lone surrogate, odd trailing byte): those are U+FFFD."""
    return "replace" if encoding.startswith("utf-16") else "surrogateescape"


def _head_text(head: bytes) -> str:
    encoding = _encoding(head)
    cut = head[: len(head) - (len(head) % 2)] if encoding.startswith("utf-16") else head
    return cut.decode(encoding, "ignore")


def parse_ual_time(value: Any) -> int | None:
    """µs for a UAL time: ISO 8601 (UTC when no zone is written) or PowerShell's ``/Date(ms)/``."""
    if not isinstance(value, str) or not value.strip():
        return None
    text = value.strip()
    match = _DOTNET_DATE.match(text)
    if match:
        # Milliseconds since the epoch in UTC; the optional offset is only a display hint.
        return int(match.group(1)) * 1000
    try:
        return from_datetime(_dt.datetime.fromisoformat(text))
    except ValueError:
        return None


def _as_dict(value: Any) -> dict[str, Any] | None:
    if isinstance(value, dict):
        return value
    if isinstance(value, str) and value.strip().startswith("{"):
        try:
            parsed = json.loads(value)
        except json.JSONDecodeError:
            return None
        return parsed if isinstance(parsed, dict) else None
    return None


def salvage_scalars(prefix: str) -> dict[str, Any]:
    """The ``"Key": scalar`` pairs readable in the start of a cut JSON object (first one wins).

    UAL writes its scalar fields (CreationTime, Operation, UserId, Workload...) before the long
    lists, so the start of a cut AuditData still tells what happened, when and by whom.
    """
    fields: dict[str, Any] = {}
    for match in _SCALAR.finditer(prefix):
        if match.group(1) in fields:
            continue
        try:
            fields[match.group(1)] = json.loads(match.group(2))
        except (ValueError, RecursionError):
            continue
    return fields


def _parameters(value: Any) -> list[tuple[str, str | None]]:
    if isinstance(value, list):
        return [(str(p.get("Name", "")), None if p.get("Value") is None else str(p.get("Value")))
                for p in value if isinstance(p, dict)]
    if isinstance(value, str) and value.strip():
        return parse_parameter_string(value)
    return []


def _rule_actions_hide(properties: list[tuple[str, str | None]]) -> bool:
    for name, value in properties:
        if name.lower() not in ("ruleactions", "actions") or not value:
            continue
        lowered = value.lower()
        if "delete" in lowered or any(f in lowered for f in HIDING_FOLDERS):
            return True
    return False


def _folder_path(value: Any) -> str | None:
    if isinstance(value, dict):
        return value.get("Path") or None
    return None


def ual_record_attributes(audit: dict[str, Any]) -> dict[str, Any]:
    """Flatten one AuditData object into record attributes (what examiners and rules need)."""
    attrs: dict[str, Any] = {}
    for key, name in (("Operation", "operation"), ("Workload", "workload"), ("RecordType", "record_type"),
                      ("UserId", "user_id"), ("UserType", "user_type"), ("ResultStatus", "result_status"),
                      ("ClientIP", "client_ip"), ("ClientIPAddress", "client_ip_address"),
                      ("MailboxOwnerUPN", "mailbox"), ("MailboxGuid", "mailbox_guid"),
                      ("LogonType", "logon_type"), ("LogonUserSid", "logon_user_sid"),
                      ("ClientInfoString", "client_info"), ("ObjectId", "object_id"),
                      ("OrganizationId", "organization_id"), ("Id", "audit_id"),
                      ("OriginatingServer", "originating_server"), ("SessionId", "session_id"),
                      ("AppId", "app_id"), ("ExternalAccess", "external_access"),
                      ("CrossMailboxOperation", "cross_mailbox_operation")):
        value = audit.get(key)
        if value not in (None, ""):
            attrs[name] = value
    folder = _folder_path(audit.get("Folder"))
    if folder:
        attrs["folder"] = folder
    dest = _folder_path(audit.get("DestFolder"))
    if dest:
        attrs["destination_folder"] = dest
    items = audit.get("AffectedItems")
    if isinstance(items, list):
        subjects = [i.get("Subject") for i in items if isinstance(i, dict) and i.get("Subject")]
        attrs["item_count"] = len(items)
        attrs["item_subjects"] = subjects[:_MAX_SUBJECTS]
        attrs["item_message_ids"] = [i.get("InternetMessageId") for i in items
                                     if isinstance(i, dict) and i.get("InternetMessageId")][:_MAX_SUBJECTS]
        parents = sorted({p for i in items if isinstance(i, dict)
                          for p in [_folder_path(i.get("ParentFolder"))] if p})
        if parents:
            attrs["item_folders"] = parents
    folders = audit.get("Folders")
    if isinstance(folders, list):  # MailItemsAccessed / HardDelete of whole folders
        paths = [f.get("Path") for f in folders if isinstance(f, dict) and f.get("Path")]
        if paths:
            attrs.setdefault("folder", paths[0])
            attrs["folders"] = paths
    operation = str(audit.get("Operation") or "")
    parameters = _parameters(audit.get("Parameters"))
    if operation.lower() == "updateinboxrules":
        properties = _parameters(audit.get("OperationProperties"))
        attrs.update(cmdlet_attributes(operation, properties))
        attrs["inbox_rule_change"] = True
        if _rule_actions_hide(properties):
            attrs["inbox_rule_hides_mail"] = True
    elif parameters or ("-" in operation and operation.lower() not in MAILBOX_OPERATIONS):
        attrs.update(cmdlet_attributes(operation, parameters))
    return attrs


def _message(attrs: dict[str, Any]) -> str:
    operation = attrs.get("operation", "?")
    parts = [f"M365 {attrs.get('workload', '?')} {operation}"]
    if attrs.get("user_id"):
        parts.append(f"by {attrs['user_id']}")
    if attrs.get("client_ip"):
        parts.append(f"from {attrs['client_ip']}")
    if attrs.get("mailbox") and attrs.get("mailbox") != attrs.get("user_id"):
        parts.append(f"on mailbox {attrs['mailbox']}")
    if attrs.get("folder"):
        parts.append(f"in {attrs['folder']}")
    if attrs.get("destination_folder"):
        parts.append(f"-> {attrs['destination_folder']}")
    if attrs.get("item_count") is not None:
        subjects = attrs.get("item_subjects") or []
        shown = "; ".join(repr(s) for s in subjects[:3]) + (" ..." if len(subjects) > 3 else "")
        parts.append(f"({attrs['item_count']} item(s){': ' + shown if shown else ''})")
    if attrs.get("command"):
        parts[-1] += ":"
        parts.append(attrs["command"])
    if attrs.get("result_status") not in (None, "Succeeded", "True", True):
        parts.append(f"[{attrs['result_status']}]")
    return " ".join(parts)


class M365AuditParser(Parser):
    """Unified Audit Log exports (Purview CSV, ``Search-UnifiedAuditLog`` CSV/JSON, JSON Lines)."""

    NAME = "m365_ual"
    DESCRIPTION = "Microsoft 365 Unified Audit Log exports (Purview CSV, Search-UnifiedAuditLog CSV/JSON)"
    DATA_TYPES = (DATA_TYPE_PREFIX + ":",)

    @classmethod
    def sniff(cls, head: bytes, name: str) -> bool:
        text = _head_text(head).lstrip()
        if text.startswith(("[", "{")):
            return '"AuditData"' in text or ('"CreationTime"' in text and '"Operation"' in text
                                            and ('"Workload"' in text or '"RecordType"' in text))
        first = text.split("\n", 2)
        header = first[1] if first[0].startswith("#TYPE") and len(first) > 1 else first[0]
        columns = {c.strip().strip('"').lower() for c in header.split(",")}
        return "auditdata" in columns and "creationdate" in columns

    def parse(self, fh: BinaryIO, ctx: ParseContext) -> Iterator[Record]:
        head = fh.read(4096)
        fh.seek(0)
        encoding = _encoding(head)
        if _head_text(head).lstrip().startswith(("[", "{")):
            rows = self._json_rows(fh, ctx, encoding)
        else:
            rows = self._csv_rows(fh, ctx, encoding)
        for order, (offset, outer, audit, cut) in enumerate(rows):
            record = self._record(ctx, order, offset, outer, audit, cut)
            if record is not None:
                yield record

    # -- readers -------------------------------------------------------------------------------
    def _csv_rows(self, fh: BinaryIO, ctx: ParseContext, encoding: str) -> Iterator[Row]:
        csv.field_size_limit(max(csv.field_size_limit(), MAX_OBJECT_CHARS + 2))
        head = fh.read(3)
        fh.seek(0)
        bom = 3 if head.startswith(codecs.BOM_UTF8) else (
            2 if head.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)) else 0)
        text = io.TextIOWrapper(fh, encoding=encoding, errors=_errors(encoding), newline="")
        feed = _CsvFeed(_offset_lines(text, encoding, bom))
        first = feed.peek()
        if first is not None and first[1].startswith("#TYPE"):
            feed.drop()
        reader = csv.reader(feed)
        try:
            header = next(reader)
        except (StopIteration, csv.Error, _RecordTooLong):
            ctx.warn("empty UAL CSV export", 0)
            return
        names = [h.strip() for h in header]
        lost = 0  # lines skipped after a runaway record, until one has every column again
        while True:
            feed.new_record()
            try:
                values = next(reader)
            except StopIteration:
                return
            except _RecordTooLong:
                ctx.warn(f"CSV record over {MAX_OBJECT_CHARS} characters (an unclosed quote?): lines "
                         "skipped until one with every column", feed.start)
                reader, lost = csv.reader(feed), 1
                continue
            except csv.Error as exc:
                ctx.warn(f"unreadable CSV row: {exc}", feed.start)
                continue
            if lost:
                if len(values) != len(names):
                    lost += 1
                    continue
                lost = 0
            if not any(values):
                continue
            row = dict(zip(names, values, strict=False))
            if feed.cut is not None:
                at, length = feed.cut
                ctx.warn(f"CSV line of {length} characters cut to its first {MAX_OBJECT_CHARS}: AuditData "
                         "not decoded, the fields readable in its start kept", at)
                yield feed.start, row, salvage_scalars(row.get("AuditData") or "") or None, True
                continue
            if len(values) != len(names):
                ctx.warn(f"CSV record: {len(values)} values for {len(names)} columns", feed.start)
            audit = _as_dict(row.get("AuditData"))
            if audit is None and row.get("AuditData"):
                ctx.warn("CSV record: AuditData is not valid JSON", feed.start)
            yield feed.start, row, audit, False

    def _json_rows(self, fh: BinaryIO, ctx: ParseContext, encoding: str) -> Iterator[Row]:
        for offset, obj in iter_json_objects(fh, ctx, encoding):
            if isinstance(obj, CutElement):
                ctx.warn(f"JSON element of {obj.chars} characters cut to its first {MAX_OBJECT_CHARS}: "
                         "not decoded, the fields readable in its start kept", offset)
                fields = obj.fields
                if not fields:
                    continue  # nothing readable in its start: the warning is all there is
                if "AuditData" in fields:  # a wrapper whose AuditData string is intact in the start
                    yield offset, fields, _as_dict(fields.get("AuditData")), True
                else:
                    yield offset, fields, fields or None, True
                continue
            if not isinstance(obj, dict):
                ctx.warn("JSON value is not an object", offset)
                continue
            if "AuditData" in obj:
                audit = _as_dict(obj.get("AuditData"))
                if audit is None:
                    ctx.warn("AuditData is not valid JSON", offset)
                yield offset, obj, audit, False
            else:
                yield offset, {}, obj, False

    # -- records -------------------------------------------------------------------------------
    def _record(self, ctx: ParseContext, order: int, offset: int | None, outer: dict[str, Any],
                audit: dict[str, Any] | None, cut: bool = False) -> Record | None:
        corrupted = audit is None or cut
        audit = audit or {}
        attrs = ual_record_attributes(audit)
        # Columns of the export wrapper, used when AuditData lacks (or lost) them.
        for key, name in (("Operations", "operation"), ("Operation", "operation"),
                          ("UserIds", "user_id"), ("UserId", "user_id"), ("RecordType", "record_type"),
                          ("RecordId", "audit_id"), ("Identity", "audit_id")):
            value = outer.get(key)
            if value not in (None, "") and name not in attrs:
                attrs[name] = value
        if corrupted and not attrs.get("operation"):
            ctx.warn("UAL entry without readable AuditData or Operation: skipped", offset)
            return None
        if corrupted and outer.get("AuditData"):
            attrs["audit_data"] = str(outer["AuditData"])[:32_000]
        if cut:
            attrs["cut"] = True
        timestamps: dict[str, int] = {}
        time = parse_ual_time(audit.get("CreationTime"))
        if time is None:
            time = parse_ual_time(outer.get("CreationDate"))
            raw_time = audit.get("CreationTime") or outer.get("CreationDate")
            if time is None and raw_time:
                ctx.warn(f"unreadable creation time {raw_time!r}: record left undated", offset)
                attrs["creation_date_text"] = str(raw_time)
        if time is not None:
            timestamps["Creation Time"] = time
        workload = str(audit.get("Workload") or "unknown").strip().lower() or "unknown"
        workload = re.sub(r"[^0-9a-z_]+", "_", workload)
        user = attrs.get("user_id") if isinstance(attrs.get("user_id"), str) else None
        return Record(data_type=f"{DATA_TYPE_PREFIX}:{workload}", message=_message(attrs),
                      provenance=ctx.provenance_at(offset), parser=self.NAME, order=order,
                      timestamps=timestamps, attributes=attrs, host=ctx.host, user=user or ctx.user,
                      corrupted=corrupted)


class _RecordTooLong(Exception):
    """A CSV record grew past MAX_OBJECT_CHARS over several lines (an unclosed quote)."""


def _offset_lines(text: TextIO, encoding: str, offset: int) -> Iterator[tuple[int, str, int | None]]:
    """(byte offset, line, full length if the line was cut) of each line of ``text``.

    A line longer than MAX_OBJECT_CHARS keeps its first MAX_OBJECT_CHARS characters (an open
    quote is closed, so that the CSV reader does not run on into the next lines); the rest is read
    in pieces and dropped. Offsets count the bytes of the file (UTF-16: two per code unit).
    """
    wide = "utf-16-le" if encoding.startswith("utf-16") else None
    errors = "surrogatepass" if wide else "surrogateescape"

    def size(piece: str) -> int:
        return len(piece.encode(wide or "utf-8", errors))

    while True:
        line = text.readline(MAX_OBJECT_CHARS)
        if not line:
            return
        start = offset
        offset += size(line)
        if len(line) < MAX_OBJECT_CHARS or line.endswith(("\n", "\r")):
            yield start, line, None
            continue
        length = len(line)
        while True:
            rest = text.readline(MAX_OBJECT_CHARS)
            offset += size(rest)
            length += len(rest)
            if not rest or rest.endswith(("\n", "\r")):
                break
        if length == len(line):
            yield start, line, None
            continue
        if line.count('"') % 2:
            line += '"'
        yield start, line + "\n", length


class _CsvFeed:
    """The lines given to ``csv.reader``, remembering where the current record started, whether
    one of its lines was cut, and stopping a record that runs on past MAX_OBJECT_CHARS."""

    def __init__(self, lines: Iterator[tuple[int, str, int | None]]) -> None:
        self.lines = lines
        self._pending: tuple[int, str, int | None] | None = None
        self.start: int | None = None
        self.cut: tuple[int, int] | None = None
        self.chars = 0

    def peek(self) -> tuple[int, str, int | None] | None:
        if self._pending is None:
            self._pending = next(self.lines, None)
        return self._pending

    def drop(self) -> None:
        self.peek()
        self._pending = None

    def new_record(self) -> None:
        self.start, self.cut, self.chars = None, None, 0

    def __iter__(self) -> _CsvFeed:
        return self

    def __next__(self) -> str:
        item = self.peek()
        if item is None:
            raise StopIteration
        self._pending = None
        offset, line, length = item
        if self.start is None:
            self.start = offset
        self.chars += len(line)
        if self.chars > MAX_OBJECT_CHARS + 2 and length is None:
            raise _RecordTooLong
        if length is not None:
            self.cut = (offset, length)
        return line


def _skip_json_element(text: str, at: int, state: list[int]) -> int:
    """Index in ``text`` just after the JSON object or array being skipped, or -1 if it goes on.

    ``state`` is [depth, in a string, after a backslash] and carries over from piece to piece,
    so that an element of any size is skipped with only the current piece in memory.
    """
    depth, in_string, escaped = state
    end = len(text)
    while at < end:
        if escaped:
            at, escaped = at + 1, 0
            continue
        if in_string:
            at = _STRING_BODY.match(text, at).end()  # type: ignore[union-attr]
            if at >= end:
                break
            if text[at] == "\\":
                at, escaped = at + 1, 1
                continue
            at, in_string = at + 1, 0
            if depth <= 0:  # a top-level string
                state[:] = [0, 0, 0]
                return at
            continue
        at = _PLAIN.match(text, at).end()  # type: ignore[union-attr]
        if at >= end:
            break
        char = text[at]
        at += 1
        if char == '"':
            in_string = 1
        elif char in "[{":
            depth += 1
        else:
            depth -= 1
            if depth <= 0:
                state[:] = [0, 0, 0]
                return at
    state[:] = [depth, in_string, escaped]
    return -1


def iter_json_objects(fh: BinaryIO, ctx: ParseContext,
                      encoding: str = "utf-8-sig") -> Iterator[tuple[int, Any]]:
    """Yield (byte offset, value) for each element of a JSON array, a lone object or JSON Lines.

    The text is decoded incrementally and each element decoded with ``raw_decode`` at a position
    in a window that is compacted on every refill, so memory follows the largest element and the
    work stays linear in the file size.
    """
    decoder = json.JSONDecoder()
    incremental = codecs.getincrementaldecoder(encoding)(errors=_errors(encoding))
    wide = encoding.startswith("utf-16")
    buffer = ""
    pos = 0  # parse position in buffer
    counted = 0  # buffer position up to which byte_offset is computed
    byte_offset = 0  # bytes of the file before buffer[counted]
    eof = False
    started = False
    lost = False  # in garbage after a warning: no more warnings until a value is read

    def _advance(to: int) -> int:
        nonlocal counted, byte_offset
        piece = buffer[counted:to]
        byte_offset += len(piece) * 2 if wide else len(piece.encode("utf-8", "surrogateescape"))
        counted = to
        return byte_offset

    def _fill() -> bool:
        nonlocal buffer, pos, counted, eof
        if eof:
            return False
        _advance(pos)
        # Grow the read with the pending element so that a large one is re-parsed few times.
        chunk = fh.read(max(_CHUNK, len(buffer) - pos))
        buffer = buffer[pos:] + incremental.decode(chunk, final=not chunk)
        pos = counted = 0
        eof = not chunk
        return bool(chunk) or bool(buffer)

    _fill()
    if buffer.startswith("\ufeff"):
        pos = counted = 1
    while True:
        while pos < len(buffer) and buffer[pos] in " \t\r\n,":
            pos += 1
        if pos >= len(buffer):
            if eof:
                return
            _fill()
            continue
        if buffer[pos] == "[" and not started:
            started = True
            pos += 1
            continue
        if buffer[pos] == "]":
            pos += 1
            continue
        started = True
        try:
            value, end = decoder.raw_decode(buffer, pos)
        except json.JSONDecodeError as exc:
            truncated = exc.pos >= len(buffer) - 64 or exc.msg.startswith("Unterminated string")
            if truncated and not eof and len(buffer) - pos < MAX_OBJECT_CHARS:
                _fill()
                continue
            if truncated and not eof and buffer[pos] in '{["':
                # Over the bound: keep what its start tells, skip the rest piece by piece.
                offset = _advance(pos)
                fields = salvage_scalars(buffer[pos:pos + MAX_OBJECT_CHARS]) if buffer[pos] == "{" else {}
                state, chars = [0, 0, 0], 0
                while True:
                    end = _skip_json_element(buffer, pos, state)
                    if end >= 0:
                        chars += end - pos
                        pos = end
                        break
                    chars += len(buffer) - pos
                    pos = len(buffer)
                    if eof:
                        break
                    _fill()
                yield offset, CutElement(fields, chars)
                lost = False
                continue
            if not lost:
                into = buffer[pos:exc.pos]
                ctx.warn(f"broken JSON: {exc.msg}", _advance(pos) + (
                    len(into) * 2 if wide else len(into.encode("utf-8", "surrogateescape"))))
            # Resynchronise at the next object that starts a line or follows a comma.
            match = _RESYNC.search(buffer, pos + 1)
            lost = match is None  # one warning for a whole run of garbage, not one per piece
            if match is None:
                if eof:
                    return
                pos = len(buffer)
                continue
            pos = match.start() + 1
            continue
        yield _advance(pos), value
        lost = False
        pos = end
        if len(buffer) - pos < 4096 and not eof:
            _fill()
