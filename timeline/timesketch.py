"""Timesketch import lines: CSV and JSONL that ``timesketch_importer`` accepts as they are.

Both carry ``message``, ``datetime`` (ISO 8601, µs, ``+00:00``), ``timestamp`` (µs),
``timestamp_desc``, ``tag`` (a JSON list, ``[]`` when empty: Timesketch turns an empty CSV cell
into the tag ``nan``), ``data_type``, ``source``, ``host``, ``user``, the provenance columns and
the record's attributes. JSONL keeps lists and scalars native; CSV holds them as JSON text.
CSV quoting follows the csv module's QUOTE_MINIMAL exactly, written by hand because the module
costs a call per row. :class:`timeline.lines.LineFormatter` puts the cells together into rows.
"""

from __future__ import annotations

import json
from typing import Any

from timeline.rows import FIXED_COLUMNS


def cell(value: Any) -> str:
    """One CSV cell: JSON text for lists and dicts, ``true``/``false``, quoted as QUOTE_MINIMAL."""
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


def jsonable(value: Any) -> Any:
    """A JSONL value: dicts as JSON text, lists with their non-scalar items as JSON text."""
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
    return ",".join(cell(c) for c in columns)
