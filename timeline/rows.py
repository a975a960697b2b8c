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
    "inode", "recovered", "corrupted")


def placements(record: dict[str, Any]) -> list[tuple[int, str]]:
    """(timestamp, description) of every row a record gets, in row order."""
    timestamps = record.get("timestamps")
    if timestamps:  # (timestamp, description) pairs in their natural order (most records have one)
        places = [(value, desc) for desc, value in timestamps.items()]
        if len(places) > 1:
            places.sort()
        return places
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


def attribute_columns(record: dict[str, Any]) -> list[str]:
    """The attribute columns a record's rows will have."""
    return [attribute_column(k) for k in (record.get("attributes") or {})]


def base_row(record: dict[str, Any]) -> dict[str, Any]:
    """The columns every row of ``record`` shares (all but datetime/timestamp/description)."""
    provenance = record["provenance"]
    attributes = record.get("attributes") or {}
    row = {
        "message": record["message"], "data_type": record["data_type"],
        "tag": list(record.get("tags") or ()), "source": provenance["source_path"],
        "host": record.get("host"), "user": record.get("user"), "parser": record["parser"],
        "display_name": f"{provenance.get('filesystem') or 'file'}:{provenance['source_path']}",
        "bundle_path": provenance.get("bundle_path"), "sha256": provenance.get("sha256"),
        "offset": provenance.get("offset"), "filesystem": provenance.get("filesystem"),
        "evidence": provenance.get("evidence"), "inode": attributes.get("inode"),
        "recovered": bool(record.get("recovered")), "corrupted": bool(record.get("corrupted"))}
    for key, value in attributes.items():
        row[attribute_column(key)] = value
    return row


def rows_for_record(record: dict[str, Any], base: dict[str, Any] | None = None) -> Iterator[dict[str, Any]]:
    """Yield the timeline rows of one record (as loaded from ``records.jsonl``)."""
    base = base if base is not None else base_row(record)
    for timestamp, desc in placements(record):
        yield {"datetime": iso_utc(timestamp), "timestamp": timestamp, "timestamp_desc": desc, **base}


def _safe(text: str) -> str:
    return text if text.isprintable() else json.dumps(text)


def sort_key(timestamp: int, record: dict[str, Any], desc: str) -> str:
    """A string whose order is (timestamp, data_type, source, bundle file, order, description).

    Timestamps are offset so that negative ones sort correctly; strings holding control
    characters are JSON-escaped so that ``\\x01`` separates the parts unambiguously and no key
    holds a line break.
    """
    provenance = record["provenance"]
    return "\x01".join((
        f"{timestamp + (1 << 62):020d}", _safe(record["data_type"]),
        _safe(provenance["source_path"]), _safe(provenance.get("bundle_path") or ""),
        f"{record.get('order', 0):012d}", _safe(desc)))
