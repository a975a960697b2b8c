"""Timesketch import lines: CSV and JSONL that ``timesketch_importer`` accepts as they are.

Both carry ``message``, ``datetime`` (ISO 8601, µs, ``+00:00``), ``timestamp`` (µs),
``timestamp_desc``, ``tag`` (a JSON list, ``[]`` when empty: Timesketch turns an empty CSV cell
into the tag ``nan``), ``data_type``, ``source``, ``host``, ``user``, the provenance columns and
the record's attributes. JSONL keeps lists and scalars native; CSV holds them as JSON text.
CSV quoting follows the csv module's QUOTE_MINIMAL exactly, written by hand because the module
costs a call per row.
"""

from __future__ import annotations

import json
from typing import Any

from timeline.rows import FIXED_COLUMNS


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if value is True:
        return "true"
    if value is False:
        return "false"
    if isinstance(value, (list, tuple, dict)):
        text = json.dumps(value, ensure_ascii=False, sort_keys=True)
    else:
        text = str(value)
    if "," in text or '"' in text or "\n" in text or "\r" in text:
        return '"' + text.replace('"', '""') + '"'
    return text


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return json.dumps(value, ensure_ascii=False, sort_keys=True)
    if isinstance(value, (list, tuple)):
        return [v if isinstance(v, (str, int, float, bool)) or v is None
                else json.dumps(v, ensure_ascii=False, sort_keys=True) for v in value]
    return value


def columns_for(attribute_columns: set[str]) -> list[str]:
    """CSV header: the fixed columns, then every attribute column in sorted order."""
    return list(FIXED_COLUMNS) + sorted(c for c in attribute_columns if c not in FIXED_COLUMNS)


def csv_header(columns: list[str]) -> str:
    """The header line (no line terminator)."""
    return ",".join(_cell(c) for c in columns)


class RecordFormatter:
    """Formats the rows of one record: what the rows share is serialised once per record.

    The first three columns (``datetime``, ``timestamp``, ``timestamp_desc``) are the only ones
    that differ between a record's rows, and they lead both the CSV and the JSON object, so a
    row is its own three values in front of the record's shared text.
    """

    def __init__(self, columns: list[str]) -> None:
        self._columns = columns
        self._tag_index = columns.index("tag")
        #: position of each column in the CSV tail (after the three per-row columns)
        self._position = {column: index - 3 for index, column in enumerate(columns) if index >= 3}
        self._empty = [""] * (len(columns) - 3)

    def prepare(self, base: dict[str, Any]) -> tuple[str, str]:
        """(CSV tail, JSON tail) for a record's shared columns (see :func:`timeline.rows.base_row`)."""
        cells = self._empty[:]  # most of the (many) attribute columns are empty for one record
        position = self._position
        for key, value in base.items():
            if value is not None and key in position:
                cells[position[key]] = _cell(value)
        if not base.get("tag"):
            cells[self._tag_index - 3] = "[]"
        obj: dict[str, Any] = {}
        for key in FIXED_COLUMNS[3:]:
            value = base.get(key)
            if key == "tag":
                obj[key] = list(value or [])
            elif value is not None:
                obj[key] = _jsonable(value)
        for key in sorted(base):
            if key not in obj and key not in FIXED_COLUMNS and base[key] is not None:
                obj[key] = _jsonable(base[key])
        return ",".join(cells), json.dumps(obj, ensure_ascii=False)[1:]

    @staticmethod
    def csv_line(datetime_text: str, timestamp: int, desc: str, csv_tail: str) -> str:
        """One CSV row (no line terminator)."""
        return f"{datetime_text},{timestamp},{_cell(desc)},{csv_tail}"

    @staticmethod
    def jsonl_line(datetime_text: str, timestamp: int, desc: str, json_tail: str) -> str:
        """One JSON object (no line terminator)."""
        head = json.dumps({"datetime": datetime_text, "timestamp": timestamp, "timestamp_desc": desc},
                          ensure_ascii=False)
        return head[:-1] + (", " + json_tail if json_tail != "}" else "}")
