"""Exchange Server text logs: message tracking, CmdletInfra cmdlet logs, admin audit log exports.

Exchange writes its logs in one W3C-like shape: ``#Software``/``#Version``/``#Log-type``/``#Date``
lines, a ``#Fields:`` line naming the comma-separated (CSV-quoted) columns, then one line per
event, times in UTC. Message tracking shows deliveries and what transport rules did to a message
(``AGENTINFO`` with ``S:TRA=`` custom data; ``FAIL``/``DROP`` by the transport agent when a rule
deleted it). Cmdlet logs (``Logging/CmdletInfra/*/Cmdlet``) hold every management cmdlet with its
parameters and caller — the same facts as the MSExchange Management event log.

Cmdlet records (``windows:exchange:cmdlet``, ``windows:exchange:admin_audit``) carry ``cmdlet``,
``parameters`` and ``command`` through :func:`parsers.exchange_cmdlets.cmdlet_attributes`, so
command-line rules and the ``m365_*`` rules fire on them as on the Unified Audit Log.
"""

from __future__ import annotations

import collections
import csv
import datetime as _dt
import io
import re
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, BinaryIO

from collector.timeutil import from_datetime
from parsers.base import ParseContext, Parser
from parsers.exchange_cmdlets import cmdlet_attributes, parse_parameter_string
from parsers.history import bounded_lines, bounded_text_lines
from parsers.record import Record

TRACKING_TYPE = "windows:exchange:message_tracking"
CMDLET_TYPE = "windows:exchange:cmdlet"
ADMIN_AUDIT_TYPE = "windows:exchange:admin_audit"
_BOM = b"\xef\xbb\xbf"
_MAX_CONTINUATION_LINES = 200
_MAX_LINE_BYTES = 4 << 20
_HEADER_PEEK = 64 << 10

#: Every message-tracking column Exchange 2010-2019 writes (used to repair a broken #Fields line).
TRACKING_FIELDS = (
    "date-time", "client-ip", "client-hostname", "server-ip", "server-hostname", "source-context",
    "connector-id", "source", "event-id", "internal-message-id", "message-id", "network-message-id",
    "recipient-address", "recipient-status", "total-bytes", "recipient-count",
    "related-recipient-address", "reference", "message-subject", "sender-address", "return-path",
    "message-info", "directionality", "tenant-id", "original-client-ip", "original-server-ip",
    "custom-data", "transport-traffic-type", "log-id", "schema-version")
_TRA = re.compile(r"S:TRA=([^;]*)", re.IGNORECASE)
_TRA_ACTION = re.compile(r"(?:^|\|)action=([^|]*)", re.IGNORECASE)
_TRA_RULE = re.compile(r"(?:^|\|)ruleId=([^|]*)", re.IGNORECASE)


# -- the shared W3C-style reader --------------------------------------------------------------------
@dataclass
class W3CLine:
    """One data line with the header in force when it was read."""

    offset: int
    line_number: int
    values: list[str]
    fields: list[str]
    headers: dict[str, str] = field(default_factory=dict)


def parse_time(text: str) -> int | None:
    """µs for an Exchange log time (ISO 8601, UTC when no offset is written); None if unreadable."""
    text = text.strip()
    if not text:
        return None
    try:
        return from_datetime(_dt.datetime.fromisoformat(text))
    except ValueError:
        return None


def repair_fields(names: list[str]) -> list[str]:
    """Undo a ``#Fields:`` line that was glued to a copy of itself (seen in real samples).

    ``...,log-id,schema-versionmessage-id,network-message-id,...`` becomes
    ``...,log-id,schema-version``: the header stops at the first repeated or glued name.
    """
    seen: set[str] = set()
    repaired: list[str] = []
    for name in names:
        if name in seen:
            break
        glued = next((k for k in TRACKING_FIELDS if name.startswith(k) and name != k
                      and name[len(k):] in TRACKING_FIELDS), None)
        if glued:
            repaired.append(glued)
            break
        seen.add(name)
        repaired.append(name)
    return repaired


def _decode(raw: bytes) -> str:
    return raw.decode("utf-8", "surrogateescape")


def _numbered_lines(fh: BinaryIO, ctx: ParseContext) -> Iterator[tuple[int, int, bytes]]:
    for number, (offset, raw, _) in enumerate(bounded_lines(fh, ctx), 1):  # a huge line is cut
        if number == 1 and raw.startswith(_BOM):
            offset, raw = offset + len(_BOM), raw[len(_BOM):]
        yield offset, number, raw


def iter_w3c(fh: BinaryIO, ctx: ParseContext) -> Iterator[W3CLine]:
    """Yield data lines with their fields, streaming; repeated headers are honoured.

    A quoted value may span lines; a quote that never closes (within a bounded number of lines)
    is a warning, and the lines after the broken one are read again on their own.
    """
    headers: dict[str, str] = {}
    fields: list[str] = []
    source = _numbered_lines(fh, ctx)
    replay: collections.deque[tuple[int, int, bytes]] = collections.deque()
    while True:
        if replay:
            line_offset, line_number, raw = replay.popleft()
        else:
            try:
                line_offset, line_number, raw = next(source)
            except StopIteration:
                return
        body = raw.rstrip(b"\r\n")
        if not body.strip():
            continue
        if body.startswith(b"#"):
            text = _decode(body[1:])
            key, _, value = text.partition(":")
            key, value = key.strip(), value.strip()
            if key == "Fields":
                fields = repair_fields([f.strip() for f in value.split(",")])
            elif key:
                headers[key] = value
            continue
        if body.count(b'"') % 2:
            following: list[tuple[int, int, bytes]] = []
            joined = raw
            while joined.count(b'"') % 2 and len(following) < _MAX_CONTINUATION_LINES \
                    and len(joined) < _MAX_LINE_BYTES:
                nxt = replay.popleft() if replay else next(source, None)
                if nxt is None:
                    break
                following.append(nxt)
                joined += nxt[2]
            if joined.count(b'"') % 2:
                ctx.warn(f"line {line_number}: quote never closes; read alone", line_offset)
                replay.extendleft(reversed(following))
            else:
                body = joined.rstrip(b"\r\n")
        if not fields:
            ctx.warn("data line before any #Fields: header", line_offset)
            continue
        try:
            values = next(csv.reader([_decode(body)]))
        except (csv.Error, StopIteration) as exc:
            ctx.warn(f"unreadable line: {exc}", line_offset)
            continue
        yield W3CLine(offset=line_offset, line_number=line_number, values=values, fields=fields,
                      headers=dict(headers))


def _sniff_header(head: bytes) -> tuple[str, str]:
    text = head[len(_BOM):] if head.startswith(_BOM) else head
    lines = _decode(text).splitlines()
    log_type = next((ln.split(":", 1)[1].strip() for ln in lines if ln.startswith("#Log-type:")), "")
    fields_line = next((ln for ln in lines if ln.startswith("#Fields:")), "")
    return log_type, fields_line


def _is_kind(fh: BinaryIO, ctx: ParseContext, log_type: str, field_name: str, other_field: str) -> bool:
    """Whether the file is the log this parser reads.

    One artifact spec hands every Exchange log to both W3C parsers: the other parser's format is
    skipped quietly, anything else is a warning.
    """
    head = fh.read(_HEADER_PEEK)
    fh.seek(0)
    found_type, fields_line = _sniff_header(head)
    names = {f.strip() for f in fields_line.partition(":")[2].split(",")}
    if found_type.lower().endswith(log_type) or field_name in names:
        return True
    if other_field not in names:
        ctx.warn(f"not an Exchange {log_type} file (log type {found_type or 'unknown'}, "
                 f"no {field_name} column)", 0)
    return False


def _until_csv_error(rows: Iterator[dict[str, str]], ctx: ParseContext) -> Iterator[dict[str, str]]:
    """Rows until the csv module gives up (a field over its size limit, a NUL): a warning, not a crash."""
    count = 0
    try:
        for row in rows:
            yield row
            count += 1
    except csv.Error as exc:
        ctx.warn(f"admin audit CSV unreadable after {count} rows: {exc}")


def _named(line: W3CLine, ctx: ParseContext) -> tuple[dict[str, str], bool]:
    corrupted = False
    if len(line.values) != len(line.fields):
        ctx.warn(f"line {line.line_number}: {len(line.values)} values for {len(line.fields)} fields",
                 line.offset)
        corrupted = len(line.values) < len(line.fields)
    return dict(zip(line.fields, line.values, strict=False)), corrupted


def _snake(name: str) -> str:
    return re.sub(r"[^0-9a-z]+", "_", re.sub(r"(?<=[a-z0-9])(?=[A-Z])", "_", name).lower()).strip("_")


# -- message tracking ------------------------------------------------------------------------------
def tracking_indicators(row: dict[str, str]) -> dict[str, Any]:
    """Transport-rule facts of one tracking line (what the ``exchange_tracking`` rules match)."""
    out: dict[str, Any] = {}
    custom = row.get("custom-data", "")
    event = row.get("event-id", "").upper()
    source = row.get("source", "").upper()
    tra = _TRA.search(custom)
    if tra:
        out["transport_rule_event"] = True
        action = _TRA_ACTION.search(tra.group(1))
        rule = _TRA_RULE.search(tra.group(1))
        if action:
            out["transport_rule_action"] = action.group(1)
        if rule:
            out["transport_rule_id"] = rule.group(1)
        if action and action.group(1).lower() in ("deletemessage", "quarantine"):
            out["message_deleted_by_rule"] = True
    status = row.get("recipient-status", "").lower()
    if event in ("FAIL", "DROP") and (source == "AGENT" or "transportagent" in status.replace(" ", "")
                                      or "deleted by transport agent" in status):
        out["message_deleted_by_agent"] = True
    return out


class ExchangeMessageTrackingParser(Parser):
    """Exchange 2010-2019 message tracking logs (``MSGTRK*.LOG``)."""

    NAME = "exchange_message_tracking"
    DESCRIPTION = "Exchange message tracking logs (W3C-style #Fields header)"
    DATA_TYPES = (TRACKING_TYPE,)

    @classmethod
    def sniff(cls, head: bytes, name: str) -> bool:
        log_type, fields_line = _sniff_header(head)
        if log_type.lower() == "message tracking log":
            return True
        return "date-time" in fields_line and "event-id" in fields_line and "message-id" in fields_line

    def parse(self, fh: BinaryIO, ctx: ParseContext) -> Iterator[Record]:
        if not _is_kind(fh, ctx, "message tracking log", "event-id", "Cmdlet"):
            return
        for order, line in enumerate(iter_w3c(fh, ctx)):
            row, corrupted = _named(line, ctx)
            time = parse_time(row.get("date-time", ""))
            if time is None:
                ctx.warn(f"line {line.line_number}: unreadable date-time {row.get('date-time')!r}",
                         line.offset)
                corrupted = True
            attributes: dict[str, Any] = {_snake(k): v for k, v in row.items() if v != ""}
            recipients = [r for r in row.get("recipient-address", "").split(";") if r]
            if recipients:
                attributes["recipients"] = recipients
            attributes.update(tracking_indicators(row))
            attributes.pop("date_time", None)
            if line.headers.get("Software"):
                software = f"{line.headers['Software']} {line.headers.get('Version', '')}"
                attributes["server_software"] = software.strip()
            event = row.get("event-id", "?")
            subject = row.get("message-subject", "")
            message = (f"Message tracking {event} ({row.get('source', '?')}): "
                       f"{row.get('sender-address') or '?'} -> {', '.join(recipients) or '?'}"
                       + (f" subject {subject!r}" if subject else "")
                       + (f" {row['message-id']}" if row.get("message-id") else "")
                       + (f" [transport rule action {attributes['transport_rule_action']}]"
                          if "transport_rule_action" in attributes else ""))
            yield Record(data_type=TRACKING_TYPE, message=message,
                         provenance=ctx.provenance_at(line.offset), parser=self.NAME, order=order,
                         timestamps={"Event Time": time} if time is not None else {},
                         attributes=attributes, host=row.get("server-hostname") or ctx.host,
                         user=ctx.user, corrupted=corrupted)


# -- CmdletInfra cmdlet logs -----------------------------------------------------------------------
_CMDLET_KEEP = ("RequestId", "ClientRequestId", "ServerHostName", "ProcessId", "ProcessName",
                "Organization", "AuthenticatedUser", "ExecutingUserSid", "EffectiveOrganization",
                "IsAdmin", "ClientApplication", "CmdletUniqueId", "ExecutionResult", "ErrorType",
                "OutputObjectCount", "TotalTime", "GenericErrors", "CmdletProxyRemoteServer")


class ExchangeCmdletLogParser(Parser):
    """Exchange 2013-2019 CmdletInfra cmdlet logs (``Rps_Cmdlet_*``, ``*_Cmdlet_*.LOG``)."""

    NAME = "exchange_cmdlet_log"
    DESCRIPTION = "Exchange CmdletInfra cmdlet logs (LocalPowerShell, Powershell-Proxy, ...)"
    DATA_TYPES = (CMDLET_TYPE,)

    @classmethod
    def sniff(cls, head: bytes, name: str) -> bool:
        log_type, fields_line = _sniff_header(head)
        if log_type.lower().endswith("cmdlet logs"):
            return True
        names = {f.strip() for f in fields_line.partition(":")[2].split(",")}
        return {"DateTime", "Cmdlet", "Parameters"} <= names

    def parse(self, fh: BinaryIO, ctx: ParseContext) -> Iterator[Record]:
        if not _is_kind(fh, ctx, "cmdlet logs", "Cmdlet", "event-id"):
            return
        for order, line in enumerate(iter_w3c(fh, ctx)):
            row, corrupted = _named(line, ctx)
            cmdlet = row.get("Cmdlet", "").strip()
            if not cmdlet:
                # Lines without a cmdlet are runspace bookkeeping: nothing was run.
                continue
            timestamps = {}
            for key, desc in (("DateTime", "Cmdlet Completed"), ("StartTime", "Cmdlet Started")):
                if row.get(key):
                    value = parse_time(row[key])
                    if value is None:
                        ctx.warn(f"line {line.line_number}: unreadable {key} {row[key]!r}", line.offset)
                        corrupted = True
                    else:
                        timestamps[desc] = value
            parameters = parse_parameter_string(row.get("Parameters", ""))
            attributes: dict[str, Any] = {_snake(k): row[k] for k in _CMDLET_KEEP if row.get(k)}
            attributes.update(cmdlet_attributes(cmdlet, parameters))
            caller = row.get("AuthenticatedUser") or None
            if caller:
                attributes["caller"] = caller
            result = row.get("ExecutionResult")
            message = (f"Exchange cmdlet {attributes['command']}" + (f" by {caller}" if caller else "")
                       + (f" ({result})" if result else ""))
            yield Record(data_type=CMDLET_TYPE, message=message,
                         provenance=ctx.provenance_at(line.offset), parser=self.NAME, order=order,
                         timestamps=timestamps, attributes=attributes,
                         host=row.get("ServerHostName") or ctx.host, user=caller or ctx.user,
                         corrupted=corrupted)


# -- admin audit log exports (Search-AdminAuditLog / New-AdminAuditLogSearch) ---------------------
def _admin_record(parser: str, ctx: ParseContext, order: int, offset: int | None, cmdlet: str,
                  parameters: list[tuple[str, str | None]], fields: dict[str, Any],
                  run_date: str) -> Record:
    attributes: dict[str, Any] = {k: v for k, v in fields.items() if v not in (None, "")}
    attributes.update(cmdlet_attributes(cmdlet, parameters))
    timestamps = {}
    # Export-Csv writes RunDate in the exporting machine's culture and local time: only a time that
    # states its zone is placed on the timeline.
    zoned = bool(re.search(r"(Z|[+-]\d\d:?\d\d)$", run_date.strip()))
    time = parse_time(run_date) if run_date and zoned else None
    if run_date and time is None:
        ctx.warn(f"RunDate {run_date!r} is not ISO 8601 with a zone: record left undated", offset)
    elif time is not None:
        timestamps["Cmdlet Run"] = time
    attributes["run_date"] = run_date
    caller = fields.get("caller") or None
    message = (f"Exchange admin audit: {attributes['command']}" + (f" by {caller}" if caller else "")
               + (f" on {fields['object_modified']}" if fields.get("object_modified") else "")
               + ("" if str(fields.get("succeeded", "true")).lower() == "true" else " (failed)"))
    return Record(data_type=ADMIN_AUDIT_TYPE, message=message, provenance=ctx.provenance_at(offset),
                  parser=parser, order=order, timestamps=timestamps, attributes=attributes,
                  host=ctx.host, user=caller or ctx.user)


def _csv_parameters(text: str) -> list[tuple[str, str | None]]:
    text = text.strip()
    if not text or text.startswith("System.") or text.startswith("Microsoft."):
        return []
    if text.startswith("-"):
        return parse_parameter_string(text)
    pairs: list[tuple[str, str | None]] = []
    for part in re.split(r";\s*(?=[A-Za-z][\w-]*\s*[=:])", text):
        name, sep, value = part.partition("=") if "=" in part else part.partition(":")
        pairs.append((name.strip().lstrip("-"), value.strip().strip('"') if sep else None))
    return pairs


def _chain(first: list[str], rest: Iterator[str] | io.TextIOWrapper) -> Iterator[str]:
    yield from first
    yield from rest


class ExchangeAdminAuditParser(Parser):
    """Admin audit log exports: ``Search-AdminAuditLog | Export-Csv`` and the XML report."""

    NAME = "exchange_admin_audit"
    DESCRIPTION = "Exchange admin audit log exports (Search-AdminAuditLog CSV, audit XML report)"
    DATA_TYPES = (ADMIN_AUDIT_TYPE,)

    @classmethod
    def sniff(cls, head: bytes, name: str) -> bool:
        text = _decode(head[len(_BOM):] if head.startswith(_BOM) else head)
        if "<SearchResults" in text and "<Event " in text and "Cmdlet=" in text:
            return True
        lines = text.split("\n", 2)
        first = lines[1] if lines[0].startswith("#TYPE") and len(lines) > 1 else lines[0]
        return "CmdletName" in first and "RunDate" in first and "Caller" in first

    def parse(self, fh: BinaryIO, ctx: ParseContext) -> Iterator[Record]:
        head = fh.read(512)
        fh.seek(0)
        if head.lstrip(_BOM).lstrip().startswith(b"<"):
            yield from self._xml(fh, ctx)
        else:
            yield from self._csv(fh, ctx)

    def _xml(self, fh: BinaryIO, ctx: ParseContext) -> Iterator[Record]:
        order = 0
        try:
            for _, element in ET.iterparse(fh, events=("end",)):
                if element.tag != "Event":
                    continue
                parameters = [(p.get("Name", ""), p.get("Value"))
                              for p in element.iterfind("CmdletParameters/Parameter")]
                modified = [{"name": p.get("Name"), "old_value": p.get("OldValue"),
                             "new_value": p.get("NewValue")}
                            for p in element.iterfind("ModifiedProperties/Property")]
                fields = {_snake(k): v for k, v in element.attrib.items() if k not in ("Cmdlet", "RunDate")}
                if modified:
                    fields["modified_properties"] = modified
                yield _admin_record(self.NAME, ctx, order, None, element.get("Cmdlet", ""), parameters,
                                    fields, element.get("RunDate", ""))
                order += 1
                element.clear()
        except ET.ParseError as exc:
            ctx.warn(f"admin audit XML broken after {order} events: {exc}")

    def _csv(self, fh: BinaryIO, ctx: ParseContext) -> Iterator[Record]:
        text = io.TextIOWrapper(fh, encoding="utf-8-sig", errors="surrogateescape", newline="")
        lines = bounded_text_lines(text, ctx)  # a huge line is cut, never held
        first = next(lines, "")
        header = [first] if not first.startswith("#TYPE") else []
        reader = _until_csv_error(csv.DictReader(_chain(header, lines)), ctx)
        warned = False
        for order, row in enumerate(reader):
            if None in row:
                ctx.warn(f"row {order + 1}: more values than columns")
                row.pop(None)
            raw_parameters = row.get("CmdletParameters") or ""
            parameters = _csv_parameters(raw_parameters)
            if not parameters and raw_parameters.startswith(("System.", "Microsoft.")) and not warned:
                ctx.warn("CmdletParameters were exported as a .NET type name: parameters are not in the file")
                warned = True
            fields = {_snake(k): v for k, v in row.items()
                      if k not in ("CmdletName", "CmdletParameters", "RunDate") and v
                      and not v.startswith("System.Collections.")}
            yield _admin_record(self.NAME, ctx, order, None, row.get("CmdletName") or "", parameters,
                                fields, row.get("RunDate") or "")
