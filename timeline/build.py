"""The timeline stage: ``records.jsonl`` in, the super-timeline in three formats out.

Rows are formatted into sorted runs of ready-to-write lines (:mod:`timeline.runs`), and the
runs are merged k-way into the three files. The parse stage prepares the runs of the default
timeline while its worker processes are still there, so that this stage normally only merges;
when they are missing or stale, or ``--tz``/``--evidence-only`` change the rows' content, the
rows are formatted from the records again (in ``workers`` processes). Exact duplicate rows (the
same run merged twice) are written once. The same input always gives byte-identical files.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path
from typing import Any

from collector.errors import BundleError
from collector.timeutil import parse_iso
from timeline.lines import TimelineOptions
from timeline.runs import L2TCSV, TIMESKETCH_CSV, TIMESKETCH_JSONL, format_runs, load_runs, merge_runs, scan

__all__ = ["L2TCSV", "TIMESKETCH_CSV", "TIMESKETCH_JSONL", "TimelineOptions", "build_timeline",
           "parse_time_option", "plan"]


def plan(records_files: list[Path], options: TimelineOptions,
         workers: int = 1) -> tuple[list[str], dict[str, list[int]]]:
    """Pass 1: the CSV columns and, for ``--evidence-only``, the tagged times per host."""
    for path in records_files:
        if not path.is_file():
            raise BundleError(f"records file not found: {path}")
    return scan(records_files, options, workers)


def build_timeline(records_files: list[Path], out_dir: str | Path, tz: str = "UTC", quiet: bool = False,
                   options: TimelineOptions | None = None, workers: int = 1) -> dict[str, Any]:
    """Sort every row of ``records_files`` and write the three timeline files into ``out_dir``.

    Returns the rows written, the duplicates dropped, the files, ``spilled_runs`` (runs the
    sorter wrote to disk here) and ``formatted`` (False when prepared runs were only merged).
    """
    options = options or TimelineOptions(tz=tz)
    records_files = [Path(p) for p in records_files]
    out_dir = Path(out_dir)
    for path in records_files:
        if not path.is_file():
            raise BundleError(f"records file not found: {path}")
    prepared = [load_runs(path) for path in records_files]
    known = {tuple(p.columns) for p in prepared if p is not None}
    same_columns = len(known) == 1 and all(prepared)
    if same_columns and options.default_content:
        columns = list(known.pop())
        runs = [run for p in prepared if p is not None for run in p.runs]
        result = merge_runs(runs, out_dir, columns, options.since, options.until, quiet=quiet)
        return {**result, "spilled_runs": 0, "formatted": False}
    if same_columns and not options.evidence_only:
        columns, tagged = list(known.pop()), {}
    else:
        columns, tagged = plan(records_files, options, workers)
    out_dir.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=".timeline.", suffix=".part", dir=out_dir))
    try:
        runs, _, spilled = format_runs(records_files, work, columns, options, tagged, workers, quiet=quiet)
        result = merge_runs(runs, out_dir, columns, quiet=quiet)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return {**result, "spilled_runs": spilled, "formatted": True}


def parse_time_option(text: str) -> int:
    """``--since``/``--until`` values: ISO 8601 (UTC unless an offset is given) or a date."""
    if len(text) == 10:
        text += "T00:00:00"
    return parse_iso(text)
