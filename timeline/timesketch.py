"""Timesketch import files: CSV and JSONL that ``timesketch_importer`` accepts as they are.

Both carry ``message``, ``datetime`` (ISO 8601, µs, ``+00:00``), ``timestamp`` (µs),
``timestamp_desc``, ``tag`` (a JSON list, ``[]`` when empty: Timesketch turns an empty CSV cell
into the tag ``nan``), ``data_type``, ``source``, ``host``, ``user``, the provenance columns and
the record's attributes. JSONL keeps lists and scalars native; CSV holds them as JSON text.
"""

from __future__ import annotations

import csv
import json
from typing import IO, Any

from timeline.rows import FIXED_COLUMNS

INTERNAL = {"_order"}


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (list, tuple, dict)):
        return json.dumps(value, ensure_ascii=False, sort_keys=True)
    return str(value)


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return json.dumps(value, ensure_ascii=False, sort_keys=True)
    if isinstance(value, (list, tuple)):
        return [v if isinstance(v, (str, int, float, bool)) or v is None
                else json.dumps(v, ensure_ascii=False, sort_keys=True) for v in value]
    return value


def columns_for(all_keys: set[str]) -> list[str]:
    """CSV header: the fixed columns, then every attribute column in sorted order."""
    extra = sorted(k for k in all_keys if k not in FIXED_COLUMNS and k not in INTERNAL)
    return list(FIXED_COLUMNS) + extra


class TimesketchCsvWriter:
    """Writes Timesketch CSV rows with a fixed header."""

    def __init__(self, handle: IO[str], columns: list[str]) -> None:
        self._columns = columns
        self._writer = csv.writer(handle, lineterminator="\n", quoting=csv.QUOTE_MINIMAL)
        self._writer.writerow(columns)

    def write(self, row: dict[str, Any]) -> None:
        """Write one row (missing columns stay empty)."""
        values = []
        for column in self._columns:
            value = row.get(column)
            values.append("[]" if column == "tag" and not value else _cell(value))
        self._writer.writerow(values)


class TimesketchJsonlWriter:
    """Writes one JSON object per row; absent values are left out rather than null."""

    def __init__(self, handle: IO[str]) -> None:
        self._handle = handle

    def write(self, row: dict[str, Any]) -> None:
        """Write one row."""
        obj = {}
        for key in FIXED_COLUMNS:
            value = row.get(key)
            if key == "tag":
                obj[key] = list(value or [])
            elif value is not None:
                obj[key] = _jsonable(value)
        for key in sorted(row):
            if key not in FIXED_COLUMNS and key not in INTERNAL and row[key] is not None:
                obj[key] = _jsonable(row[key])
        self._handle.write(json.dumps(obj, ensure_ascii=False) + "\n")
