"""Timeline rows of parsed records, in the shape the mail-store tests compare exactly.

The timeline stage fans each record into one row per timestamp (or one row at its bound, or at 0
when nothing dates it; ``timeline/rows.py``). Comparing those rows, not a few attributes, is what
proves a kind of evidence reaches the examiner with its time, wording and tags.
"""

from __future__ import annotations

from collections.abc import Iterable

from parsers.record import Record
from timeline.rows import rows_for_record

Row = tuple[str, str, str, str, tuple[str, ...], bool]


def timeline_rows(records: Iterable[Record]) -> list[Row]:
    """(datetime, timestamp_desc, data_type, message, tags, recovered) of every row, in record
    order and, within a record, in the timeline's order."""
    return [(row["datetime"], row["timestamp_desc"], row["data_type"], row["message"], tuple(row["tag"]),
             row["recovered"])
            for record in records for row in rows_for_record(record.to_dict())]
