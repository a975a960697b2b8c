"""Findings that span records: a mailbox exported, then the export request removed.

``New-MailboxExportRequest`` copies a mailbox to a PST; ``Remove-MailboxExportRequest`` then erases
the request (and with it the easiest trace of the export). Each is tagged on its own by the rules;
the pair for the same mailbox, or on the same host, within an hour is a stronger finding
(T1070.008). Call :func:`export_then_removed` after parsing, on the records (or the dictionaries of
``records.jsonl``); only the few tagged records are kept in memory.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from parsers.record import Record
from parsers.rules.powershell import parse, record_text

CREATED = "exchange_export_request_created"
REMOVED = "exchange_export_request_removed"
RULE_ID = "exchange_export_then_removed"
WINDOW_US = 3600 * 1_000_000


def _fields(record: Record | dict[str, Any]) -> dict[str, Any]:
    return record.to_dict() if isinstance(record, Record) else record


def _mailbox(attributes: dict[str, Any], cmdlet: str, parameter: str) -> str | None:
    """The mailbox a request names: ``-Mailbox bob`` or ``-Identity 'bob\\MailboxExport'``."""
    text = record_text(attributes)
    if not text:
        return None
    for invocation in parse(text).invocations:
        if invocation.name != cmdlet:
            continue
        value = dict(invocation.params).get(parameter) or (invocation.args[0] if invocation.args else None)
        if value:
            return value.replace("/", "\\").split("\\")[0].strip().lower() or None
    return None


def _time(fields: dict[str, Any]) -> int | None:
    times = list((fields.get("timestamps") or {}).values())
    return min(times) if times else None


def _summary(fields: dict[str, Any], mailbox: str | None) -> dict[str, Any]:
    attributes = fields.get("attributes") or {}
    return {"time": _time(fields), "host": fields.get("host"), "user": fields.get("user"), "mailbox": mailbox,
            "data_type": fields.get("data_type"), "record_number": attributes.get("record_number"),
            "source_path": (fields.get("provenance") or {}).get("source_path"), "order": fields.get("order")}


def export_then_removed(records: Iterable[Record | dict[str, Any]],
                        window_us: int = WINDOW_US) -> list[dict[str, Any]]:
    """Pairs (export created, export removed) on the same mailbox or host within ``window_us``."""
    created: list[dict[str, Any]] = []
    removed: list[dict[str, Any]] = []
    for record in records:
        tags = record.tags if isinstance(record, Record) else record.get("tags") or ()
        if CREATED not in tags and REMOVED not in tags:
            continue
        fields = _fields(record)
        attributes = fields.get("attributes") or {}
        if CREATED in tags:
            created.append(_summary(fields, _mailbox(attributes, "new-mailboxexportrequest", "mailbox")))
        if REMOVED in tags:
            removed.append(_summary(fields, _mailbox(attributes, "remove-mailboxexportrequest", "identity")))
    findings = []
    for gone in removed:
        if gone["time"] is None:
            continue
        for made in created:
            if made["time"] is None or not 0 <= gone["time"] - made["time"] <= window_us:
                continue
            same_mailbox = made["mailbox"] is not None and made["mailbox"] == gone["mailbox"]
            same_host = made["host"] is not None and made["host"] == gone["host"]
            if same_mailbox or same_host:
                findings.append({
                    "rule": RULE_ID, "technique": "T1070.008",
                    "technique_name": "Indicator Removal: Clear Mailbox Data", "severity": "high",
                    "title": "Mailbox exported, then the export request removed within an hour",
                    "matched_on": "mailbox" if same_mailbox else "host",
                    "seconds_between": (gone["time"] - made["time"]) // 1_000_000,
                    "created": made, "removed": gone})
    findings.sort(key=lambda f: (f["removed"]["time"], f["created"]["time"]))
    return findings
