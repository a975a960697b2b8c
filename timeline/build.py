"""The timeline stage: ``records.jsonl`` in, the super-timeline in three formats out.

Pass 1 reads the records once to learn the CSV columns (and, for ``--evidence-only``, where the
tagged rows are). Pass 2 fans every record out into rows and formats each row for all three
outputs at once, behind its sort key; the external sorter then merges plain strings and the
merge loop only splits them into the three files. Exact duplicate rows (the same run merged
twice) are written once. The same input always gives byte-identical files.
"""

from __future__ import annotations

import bisect
import json
import logging
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from collector.atomic import atomic_open
from collector.errors import BundleError
from collector.progress import progress
from collector.timeutil import parse_iso
from timeline.l2tcsv import L2tFormatter, header_line
from timeline.rows import attribute_columns, base_row, placements, rows_for_record, sort_key
from timeline.sort import ExternalSorter
from timeline.timesketch import RecordFormatter, columns_for, csv_header

log = logging.getLogger("inboxtrail.timeline")
TIMESKETCH_CSV = "timeline.csv"
TIMESKETCH_JSONL = "timeline.jsonl"
L2TCSV = "timeline.l2t.csv"
_SEP = "\x00"
_ESCAPED = "\x01"
_UNESCAPE = re.compile(r"\\(.)")
_UNESCAPES = {"\\": "\\", "n": "\n", "r": "\r", "0": "\x00"}


@dataclass
class TimelineOptions:
    """Filters and presentation choices of the timeline stage."""

    tz: str = "UTC"
    since: int | None = None
    until: int | None = None
    evidence_only: bool = False
    context_seconds: int = 600


def _escape(text: str) -> str:
    """Make a formatted line safe for the run files (no raw \\n, \\r or NUL)."""
    if "\n" in text or "\r" in text or "\x00" in text or text.startswith(_ESCAPED):
        return _ESCAPED + (text.replace("\\", "\\\\").replace("\n", "\\n").replace("\r", "\\r")
                           .replace("\x00", "\\0"))
    return text


def _unescape(text: str) -> str:
    if text.startswith(_ESCAPED):
        return _UNESCAPE.sub(lambda m: _UNESCAPES.get(m.group(1), m.group(1)), text[1:])
    return text


def _clean_strings(value: Any) -> Any:
    """Undecodable bytes (kept as lone surrogates by the parsers) become ``\\xNN`` text."""
    if isinstance(value, str):
        return value.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
    if isinstance(value, list):
        return [_clean_strings(v) for v in value]
    if isinstance(value, dict):
        return {_clean_strings(k): _clean_strings(v) for k, v in value.items()}
    return value


def _records(paths: list[Path]) -> Iterator[dict[str, Any]]:
    for path in paths:
        with path.open(encoding="utf-8") as handle:
            for number, line in enumerate(handle, 1):
                try:
                    record = json.loads(line)
                except json.JSONDecodeError as exc:
                    raise BundleError(f"{path}:{number}: malformed record: {exc}") from exc
                if "\\ud" in line:
                    record = _clean_strings(record)
                yield record


def _first_pass(paths: list[Path], options: TimelineOptions) -> tuple[set[str], dict[str, list[int]]]:
    columns: set[str] = set()
    tagged: dict[str, list[int]] = {}
    for record in _records(paths):
        columns.update(attribute_columns(record))
        if options.evidence_only and record.get("tags"):
            times = tagged.setdefault(record.get("host") or "", [])
            times.extend(t for t, _ in placements(record))
    for times in tagged.values():
        times.sort()
    return columns, tagged


def _near(times: list[int], timestamp: int, window_us: int) -> bool:
    index = bisect.bisect_left(times, timestamp - window_us)
    return index < len(times) and times[index] <= timestamp + window_us


class LineFormatter:
    """Turns records into sortable lines: sort key, then the row as CSV, JSONL and l2tcsv text."""

    def __init__(self, columns: list[str], options: TimelineOptions,
                 tagged: dict[str, list[int]]) -> None:
        self._formatter = RecordFormatter(columns)
        self._l2t = L2tFormatter(options.tz)
        self._options = options
        self._tagged = tagged
        self._window = options.context_seconds * 1_000_000

    def lines(self, record: dict[str, Any]) -> Iterator[str]:
        """The lines of one record's rows (after the time window and evidence filters)."""
        options, formatter = self._options, self._formatter
        base = base_row(record)
        csv_tail, json_tail = formatter.prepare(base)
        rows = list(rows_for_record(record, base))
        if options.since is not None or options.until is not None:
            rows = [r for r in rows if (options.since is None or r["timestamp"] >= options.since)
                    and (options.until is None or r["timestamp"] <= options.until)]
        if options.evidence_only and not record.get("tags"):
            times = self._tagged.get(record.get("host") or "", [])
            rows = [r for r in rows if _near(times, r["timestamp"], self._window)]
        start = 0
        while start < len(rows):  # rows of one record sharing a timestamp form one l2t line
            end = start + 1
            while end < len(rows) and rows[end]["timestamp"] == rows[start]["timestamp"]:
                end += 1
            group = rows[start:end]
            l2t_text = _escape(self._l2t.line(group))
            for index, row in enumerate(group):
                stamp, desc, text = row["timestamp"], row["timestamp_desc"], row["datetime"]
                yield (sort_key(stamp, record, desc) + _SEP
                       + _escape(formatter.csv_line(text, stamp, desc, csv_tail)) + _SEP
                       + formatter.jsonl_line(text, stamp, desc, json_tail) + _SEP
                       + (l2t_text if index == 0 else ""))
            start = end


def plan(records_files: list[Path], options: TimelineOptions) -> tuple[list[str], dict[str, list[int]]]:
    """Pass 1: the CSV columns and, for ``--evidence-only``, the tagged times per host."""
    for path in records_files:
        if not path.is_file():
            raise BundleError(f"records file not found: {path}")
    attribute_names, tagged = _first_pass(records_files, options)
    return columns_for(attribute_names), tagged


def write_outputs(sorted_lines: Iterable[str], out_dir: Path, columns: list[str]) -> dict[str, Any]:
    """The final merge loop: split sorted lines into the three files, dropping exact duplicates."""
    written = duplicates = 0
    text = {"errors": "backslashreplace"}  # a lone surrogate left anywhere becomes \udcNN text
    with atomic_open(out_dir / TIMESKETCH_CSV, "w", newline="", **text) as csv_out, \
            atomic_open(out_dir / TIMESKETCH_JSONL, "w", newline="\n", **text) as jsonl_out, \
            atomic_open(out_dir / L2TCSV, "w", newline="\n", **text) as l2t_out:
        csv_out.write(csv_header(columns) + "\n")
        l2t_out.write(header_line() + "\n")
        previous = None
        for line in sorted_lines:
            payload = line.split(_SEP, 1)[1]
            if payload == previous:
                duplicates += 1
                continue
            previous = payload
            csv_text, jsonl_text, l2t_text = payload.split(_SEP)
            csv_out.write(_unescape(csv_text) + "\n")
            jsonl_out.write(jsonl_text + "\n")
            if l2t_text:
                l2t_out.write(_unescape(l2t_text) + "\n")
            written += 1
    log.info("timeline: %d rows (%d duplicates dropped)", written, duplicates)
    return {"rows": written, "duplicates": duplicates,
            "files": [str(out_dir / n) for n in (TIMESKETCH_CSV, TIMESKETCH_JSONL, L2TCSV)]}


def build_timeline(records_files: list[Path], out_dir: str | Path, tz: str = "UTC",
                   quiet: bool = False, options: TimelineOptions | None = None) -> dict[str, Any]:
    """Sort every row of ``records_files`` and write the three timeline files into ``out_dir``."""
    options = options or TimelineOptions(tz=tz)
    out_dir = Path(out_dir)
    columns, tagged = plan(records_files, options)
    formatter = LineFormatter(columns, options, tagged)
    sorter = ExternalSorter()
    bar = progress(desc="timeline", unit="record", quiet=quiet)
    for record in _records(records_files):
        for line in formatter.lines(record):
            sorter.add(line)
        bar.update(1)
    bar.close()
    result = write_outputs(sorter.sorted_lines(), out_dir, columns)
    result["spilled_runs"] = sorter.spilled_runs
    return result


def parse_time_option(text: str) -> int:
    """``--since``/``--until`` values: ISO 8601 (UTC unless an offset is given) or a date."""
    if len(text) == 10:
        text += "T00:00:00"
    return parse_iso(text)


