"""Fan a record out into timeline rows: one per (record, timestamp).

A record with several times (an mbox message: envelope, Date, Received) becomes several rows; a
record with none (an undated history line) becomes one row placed at its "not before" bound (or
"not after" when that is all there is) and labelled as such, or at 0 with "Time not known" when
nothing bounds it. Nothing is dropped.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

from collector.timeutil import iso_utc

UNKNOWN_TIME_DESC = "Time not known"
#: Fixed leading columns, in output order.
FIXED_COLUMNS = (
    "datetime", "timestamp", "timestamp_desc", "message", "data_type", "tag", "source", "host",
    "user", "parser", "display_name", "bundle_path", "sha256", "offset", "filesystem", "evidence",
    "inode", "recovered", "corrupted", "record_id")


def _placement(record: dict[str, Any]) -> list[tuple[int, str]]:
    timestamps = record.get("timestamps") or {}
    if timestamps:
        return sorted(((value, desc) for desc, value in timestamps.items()), key=lambda x: (x[0], x[1]))
    bounds = record.get("time_bounds") or {}
    for prefix in ("Not before", "Not after"):
        for desc, value in sorted(bounds.items()):
            if desc.startswith(prefix):
                others = [f"{d}: {iso_utc(v)}" for d, v in sorted(bounds.items()) if d != desc]
                label = "Undated; " + desc + (f" (also {'; '.join(others)})" if others else "")
                return [(value, label)]
    return [(0, UNKNOWN_TIME_DESC)]


def attribute_column(name: str) -> str:
    """Column name for a record attribute (prefixed where it would shadow a fixed column)."""
    return f"attr_{name}" if name in FIXED_COLUMNS else name


def rows_for_record(record: dict[str, Any], record_id: str) -> Iterator[dict[str, Any]]:
    """Yield the timeline rows of one record (as loaded from ``records.jsonl``)."""
    provenance = record["provenance"]
    attributes = {attribute_column(k): v for k, v in (record.get("attributes") or {}).items()}
    base = {
        "message": record["message"], "data_type": record["data_type"],
        "tag": list(record.get("tags") or ()), "source": provenance["source_path"],
        "host": record.get("host"), "user": record.get("user"), "parser": record["parser"],
        "display_name": f"{provenance.get('filesystem') or 'file'}:{provenance['source_path']}",
        "bundle_path": provenance.get("bundle_path"), "sha256": provenance.get("sha256"),
        "offset": provenance.get("offset"), "filesystem": provenance.get("filesystem"),
        "evidence": provenance.get("evidence"), "inode": (record.get("attributes") or {}).get("inode"),
        "recovered": bool(record.get("recovered")), "corrupted": bool(record.get("corrupted")),
        "record_id": record_id, "_order": record.get("order", 0)}
    for timestamp, desc in _placement(record):
        row = {"datetime": iso_utc(timestamp), "timestamp": timestamp, "timestamp_desc": desc, **base}
        row.update(attributes)
        yield row


def sort_key(row: dict[str, Any]) -> str:
    """A string whose order is (timestamp, data_type, source, bundle file, order, description).

    Timestamps are offset so negative values sort correctly; strings are JSON-escaped so that no
    key part holds a control character and ``\\x01`` separates the parts unambiguously.
    """
    return "\x01".join((
        f"{row['timestamp'] + (1 << 62):020d}", json.dumps(row["data_type"]),
        json.dumps(row["source"]), json.dumps(row["bundle_path"] or ""),
        f"{row['_order']:012d}", json.dumps(row["timestamp_desc"])))
