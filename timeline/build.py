"""The timeline stage: ``records.jsonl`` in, the super-timeline in three formats out."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from collector.atomic import atomic_open
from collector.errors import BundleError
from collector.progress import progress
from timeline.l2tcsv import L2tCsvWriter
from timeline.rows import rows_for_record
from timeline.sort import ExternalSorter
from timeline.timesketch import TimesketchCsvWriter, TimesketchJsonlWriter, columns_for

log = logging.getLogger("inboxtrail.timeline")
TIMESKETCH_CSV = "timeline.csv"
TIMESKETCH_JSONL = "timeline.jsonl"
L2TCSV = "timeline.l2t.csv"


def _records(path: Path) -> Iterator[tuple[str, dict[str, Any]]]:
    with path.open(encoding="utf-8") as handle:
        for number, line in enumerate(handle, 1):
            try:
                yield f"{path.name}:{number}", json.loads(line)
            except json.JSONDecodeError as exc:
                raise BundleError(f"{path}:{number}: malformed record: {exc}") from exc


def build_timeline(records_files: list[Path], out_dir: str | Path, tz: str = "UTC",
                   quiet: bool = False) -> dict[str, Any]:
    """Sort every row of ``records_files`` and write the three timeline files into ``out_dir``."""
    out_dir = Path(out_dir)
    for path in records_files:
        if not path.is_file():
            raise BundleError(f"records file not found: {path}")
    sorter = ExternalSorter()
    tagged_rows = 0
    bar = progress(desc="timeline", unit="row", quiet=quiet)
    for index, path in enumerate(records_files):
        prefix = f"{index}:" if len(records_files) > 1 else ""
        for record_id, record in _records(path):
            for row in rows_for_record(record, prefix + record_id):
                sorter.add(row)
                tagged_rows += bool(row["tag"])
                bar.update(1)
    bar.close()
    columns = columns_for(sorter.columns)
    with atomic_open(out_dir / TIMESKETCH_CSV, "w", newline="") as csv_handle, \
            atomic_open(out_dir / TIMESKETCH_JSONL, "w", newline="\n") as jsonl_handle, \
            atomic_open(out_dir / L2TCSV, "w", newline="\n") as l2t_handle:
        csv_writer = TimesketchCsvWriter(csv_handle, columns)
        jsonl_writer = TimesketchJsonlWriter(jsonl_handle)
        l2t_writer = L2tCsvWriter(l2t_handle, tz=tz)
        for row in sorter.sorted_rows():
            csv_writer.write(row)
            jsonl_writer.write(row)
            l2t_writer.write(row)
        l2t_writer.close()
    log.info("timeline: %d rows (%d tagged)", sorter.count, tagged_rows)
    return {"rows": sorter.count, "tagged_rows": tagged_rows,
            "files": [str(out_dir / n) for n in (TIMESKETCH_CSV, TIMESKETCH_JSONL, L2TCSV)]}
