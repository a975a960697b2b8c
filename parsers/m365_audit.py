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
"""

from __future__ import annotations

import codecs
import csv
import datetime as _dt
import io
import json
import re
from collections.abc import Iterator
from typing import Any, BinaryIO

from collector.timeutil import from_datetime
from parsers.base import ParseContext, Parser
from parsers.exchange_cmdlets import HIDING_FOLDERS, cmdlet_attributes, parse_parameter_string
from parsers.history import bounded_text_lines
from parsers.record import Record

DATA_TYPE_PREFIX = "m365:ual"
_CHUNK = 1 << 20
#: Largest single JSON object accepted before the reader gives up on it and resynchronises.
MAX_OBJECT_CHARS = 64 << 20
_RESYNC = re.compile(r"[\n,]\s*\{")
_DOTNET_DATE = re.compile(r"^/Date\((-?\d+)([+-]\d{4})?\)/$")
_CSV_KEYS = {"auditdata"}
#: Mailbox-audit operations whose AuditData lists the affected items.
MAILBOX_OPERATIONS = {"softdelete", "harddelete", "movetodeleteditems", "move", "copy", "update",
                      "mailitemsaccessed", "sendas", "sendonbehalf", "create", "applyrecord"}
_MAX_SUBJECTS = 200


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
        for order, (offset, outer, audit) in enumerate(rows):
            record = self._record(ctx, order, offset, outer, audit)
            if record is not None:
                yield record

    # -- readers -------------------------------------------------------------------------------
    def _csv_rows(self, fh: BinaryIO, ctx: ParseContext,
                  encoding: str) -> Iterator[tuple[int | None, dict[str, Any], dict[str, Any] | None]]:
        csv.field_size_limit(max(csv.field_size_limit(), MAX_OBJECT_CHARS))
        text = io.TextIOWrapper(fh, encoding=encoding, errors=_errors(encoding), newline="")
        bounded = bounded_text_lines(text, ctx, MAX_OBJECT_CHARS)  # a 2 GB line is cut, not held
        first = next(bounded, "")
        lines = [first] if not first.startswith("#TYPE") else []

        def _all() -> Iterator[str]:
            yield from lines
            yield from bounded

        reader = csv.reader(_all())
        try:
            header = next(reader)
        except StopIteration:
            ctx.warn("empty UAL CSV export")
            return
        names = [h.strip() for h in header]
        while True:
            try:
                values = next(reader)
            except StopIteration:
                return
            except csv.Error as exc:
                ctx.warn(f"unreadable CSV row near line {reader.line_num}: {exc}")
                continue
            if not any(values):
                continue
            row = dict(zip(names, values, strict=False))
            if len(values) != len(names):
                ctx.warn(f"CSV line {reader.line_num}: {len(values)} values for {len(names)} columns")
            audit = _as_dict(row.get("AuditData"))
            if audit is None and row.get("AuditData"):
                ctx.warn(f"CSV line {reader.line_num}: AuditData is not valid JSON")
            yield None, row, audit

    def _json_rows(self, fh: BinaryIO, ctx: ParseContext,
                   encoding: str) -> Iterator[tuple[int | None, dict[str, Any], dict[str, Any] | None]]:
        for offset, obj in iter_json_objects(fh, ctx, encoding):
            if not isinstance(obj, dict):
                ctx.warn("JSON value is not an object", offset)
                continue
            if "AuditData" in obj:
                audit = _as_dict(obj.get("AuditData"))
                if audit is None:
                    ctx.warn("AuditData is not valid JSON", offset)
                yield offset, obj, audit
            else:
                yield offset, {}, obj

    # -- records -------------------------------------------------------------------------------
    def _record(self, ctx: ParseContext, order: int, offset: int | None, outer: dict[str, Any],
                audit: dict[str, Any] | None) -> Record | None:
        corrupted = audit is None
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
            ctx.warn(f"broken JSON: {exc.msg}", _advance(pos) + (
                (exc.pos - pos) * 2 if wide else len(buffer[pos:exc.pos].encode("utf-8", "surrogateescape"))))
            # Resynchronise at the next object that starts a line or follows a comma.
            match = _RESYNC.search(buffer, pos + 1)
            if match is None:
                if eof:
                    return
                pos = len(buffer)
                continue
            pos = match.start() + 1
            continue
        yield _advance(pos), value
        pos = end
        if len(buffer) - pos < 4096 and not eof:
            _fill()
