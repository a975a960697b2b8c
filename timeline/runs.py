"""Sorted runs of formatted rows: made in parallel where the records are, merged once at the end.

Formatting a row costs far more than merging it, so it happens in worker processes: the records
files are cut into byte ranges at line boundaries, and each worker formats its range's rows
(:class:`timeline.lines.LineFormatter`) and sorts them into one run file in bounded memory
(:class:`timeline.sort.ExternalSorter`), each row stored as its key and its three renderings on
four lines (:data:`RUNS_FORMAT`). The final stage only merges the runs k-way and joins each
rendering's lines into its timeline file (:func:`merge_runs`).

The parse stage ends by preparing the runs of the default timeline (UTC, every row) next to
``records.jsonl``, in ``OUT/timeline.runs/`` with an index naming the columns and the records file
they were made from (size and modification time). ``inboxtrail timeline`` merges them as they are
(cutting ``--since``/``--until`` on the sorted keys), and formats from ``records.jsonl`` again
only when the runs are missing or stale, or when ``--tz``/``--evidence-only`` change the rows'
content. Lines sort as bytes and exact duplicates are adjacent, so the output does not depend on
how the rows were split into runs: it is byte-identical for any number of workers.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import logging
import mmap
import multiprocessing
import operator
import os
import shutil
import tempfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from collector.atomic import atomic_open
from collector.directio import DirectPolicy, DirectWriter
from collector.errors import BundleError
from collector.progress import progress
from parsers.engine import worker_signals
from parsers.record import loads_record
from timeline import sort
from timeline.l2tcsv import header_line
from timeline.lines import ESCAPED, SEP, LineFormatter, TimelineOptions, key_prefix, unescape
from timeline.rows import attribute_column, attribute_columns, placements
from timeline.sort import READ_BUFFER, WRITE_BUFFER, ExternalSorter, grouped, merged_items, reduce_runs
from timeline.timesketch import columns_for, csv_header

log = logging.getLogger("inboxtrail.timeline")
TIMESKETCH_CSV = "timeline.csv"
TIMESKETCH_JSONL = "timeline.jsonl"
L2TCSV = "timeline.l2t.csv"
RUNS_DIR = "timeline.runs"
INDEX = "index.json"
#: Changes whenever the line layout does, so that runs of another version are never merged.
#: Format 2: a row is four lines, its key (ending ``\0\n``), its l2tcsv line (a lone ``\n`` on all
#: but the first row of a MACB group), its CSV row and its JSONL row, the l2tcsv and CSV parts
#: escaped as in :mod:`timeline.lines`. The final merge then never splits a line: it merges
#: tuples of four lines and joins each rendering's lines with C-level maps.
RUNS_FORMAT = 2
#: What ends a key line: the ``\0`` keeps a key that is a prefix of another before it, as in the
#: combined line (keys hold no NUL), so rows of different keys compare as their combined lines.
KEY_END = b"\0\n"
#: Records bytes per formatting task whose rows fit the sorter's memory (a row's three renderings
#: take ~2.7x its record's bytes; :data:`timeline.sort.DEFAULT_RUN_BYTES`), so that the task
#: writes its run once instead of spilling runs to disk and merging them back.
CHUNK_BYTES = 10 << 20
#: Records bytes per task where one process formats them all, one after the other: 8 tasks of
#: 1 M rows in turn peaked at 122 MiB against 90 in 2 (a heap fragmented by the earlier tasks;
#: 2 workers sharing 8 tasks: 91 MiB).
SEQUENTIAL_CHUNK_BYTES = 256 << 20
#: At most this many tasks per records file: the final merge's cost per row grows with the
#: number of runs it merges (1M rows: 410 k rows/CPU-s from 2 runs, 282 k from 42), so beyond
#: ``CHUNK_BYTES * MAX_TASKS`` the tasks grow and spill instead.
MAX_TASKS = 8
#: Below this, one task does all (a process pool costs more than it saves).
MIN_CHUNK_BYTES = 1 << 20
#: Rows joined per write in the final merge (~0.5 MB of output).
BATCH_ROWS = 256
#: Write buffer per timeline file: the files are written with ``O_DIRECT`` from it, whole.
DIRECT_BUFFER = 4 << 20
_KEY, _L2T, _CSV, _JSONL = (operator.itemgetter(index) for index in range(4))
_NL = b"\n"


def chunk_ranges(path: Path, count: int) -> list[tuple[int, int]]:
    """``count`` (or fewer) byte ranges of ``path`` that start and end at line boundaries."""
    size = path.stat().st_size
    bounds = [0]
    with path.open("rb") as handle:
        for index in range(1, count):
            target = size * index // count
            if target <= bounds[-1]:
                continue
            handle.seek(target - 1)
            handle.readline()  # to the end of the line holding byte target - 1
            position = handle.tell()
            if bounds[-1] < position < size:
                bounds.append(position)
    bounds.append(size)
    return [(start, end) for start, end in itertools.pairwise(bounds) if end > start]


def plan_tasks(records_files: list[Path], workers: int) -> list[tuple[str, int, int]]:
    """(file, start, end) of every formatting task: at least one per worker on large inputs."""
    tasks = []
    for path in records_files:
        size = path.stat().st_size
        if workers > 1:  # tasks sized to fit the sorter's memory, shared out among the workers
            count = max(min(-(-size // CHUNK_BYTES), MAX_TASKS), min(workers, size // MIN_CHUNK_BYTES), 1)
        else:  # few, large tasks: one process formatting many in turn fragments its heap
            count = max(-(-size // SEQUENTIAL_CHUNK_BYTES), 1)
        tasks.extend((str(path), start, end) for start, end in chunk_ranges(path, count))
    return tasks


def _lines_of(path: str, start: int, end: int) -> Iterator[tuple[int, bytes]]:
    """(offset, line) of the records in one byte range."""
    with open(path, "rb", buffering=1 << 20) as handle:
        handle.seek(start)
        position = start
        for line in handle:
            if position >= end:
                return
            yield position, line
            position += len(line)


def _records_of(path: str, start: int, end: int) -> Iterator[dict[str, Any]]:
    for offset, line in _lines_of(path, start, end):
        try:
            yield loads_record(line)
        except ValueError as exc:
            raise BundleError(f"{path} @{offset}: malformed record: {exc}") from exc


@contextlib.contextmanager
def _mapper(workers: int, tasks: int) -> Iterator[Any]:
    """``map`` over a fork pool of ``workers`` processes, or in this process when that is enough."""
    if workers <= 1 or tasks <= 1:
        yield map
        return
    pool = multiprocessing.get_context("fork").Pool(min(workers, tasks), initializer=worker_signals)
    try:
        yield pool.imap
    finally:
        pool.terminate()


def _scan_task(task: tuple[str, int, int, bool]) -> tuple[set[str], dict[str, list[int]]]:
    """Pass 1 over one range: the attribute columns and, if asked, the tagged times per host."""
    path, start, end, evidence_only = task
    columns: set[str] = set()
    tagged: dict[str, list[int]] = {}
    for record in _records_of(path, start, end):
        columns.update(attribute_columns(record))
        if evidence_only and record.get("tags"):
            tagged.setdefault(record.get("host") or "", []).extend(t for t, _ in placements(record))
    return columns, tagged


def scan(records_files: list[Path], options: TimelineOptions,
         workers: int = 1) -> tuple[list[str], dict[str, list[int]]]:
    """Pass 1: the CSV columns and, for ``--evidence-only``, the tagged times per host."""
    tasks = [(*task, options.evidence_only) for task in plan_tasks(records_files, workers)]
    columns: set[str] = set()
    tagged: dict[str, list[int]] = {}
    with _mapper(workers, len(tasks)) as mapper:
        for found, times in mapper(_scan_task, tasks):
            columns |= found
            for host, values in times.items():
                tagged.setdefault(host, []).extend(values)
    for values in tagged.values():
        values.sort()
    return columns_for(columns), tagged


def _write_run(lines: Iterable[bytes], path: Path) -> None:
    """Write sorted timeline lines as a run file: each row on four lines (see :data:`RUNS_FORMAT`)."""
    with open(path, "wb", buffering=WRITE_BUFFER) as out:
        write = out.write
        for line in lines:
            key, _, parts = line.partition(SEP)
            write(key)
            write(KEY_END)
            write(parts.replace(SEP, b"\n"))


def _format_task(task: tuple[str, int, int, list[str], TimelineOptions, dict[str, list[int]], str, str]
                 ) -> tuple[str | None, int, int]:
    """Worker: one range's rows formatted and sorted into one run file (path, rows, spills)."""
    path, start, end, columns, options, tagged, directory, name = task
    formatter = LineFormatter(columns, options, tagged)
    sorter = ExternalSorter(directory, prefix=name)
    lines = formatter.lines
    add = sorter.add_lines
    for record in _records_of(path, start, end):
        add(lines(record))
    run = Path(directory) / f"{name}.run"
    with sorter.sorted_lines() as ordered:
        if not sorter.count:
            return None, 0, sorter.spilled_runs
        _write_run(ordered, run)
    return str(run), sorter.count, sorter.spilled_runs


def format_runs(records_files: list[Path], directory: Path, columns: list[str], options: TimelineOptions,
                tagged: dict[str, list[int]] | None = None, workers: int = 1,
                quiet: bool = True) -> tuple[list[Path], int, int]:
    """Format every row of ``records_files`` into sorted runs in ``directory`` (runs, rows, spills)."""
    tasks = [(path, start, end, columns, options, tagged or {}, str(directory), f"task{index:05d}")
             for index, (path, start, end) in enumerate(plan_tasks(records_files, workers))]
    runs: list[Path] = []
    rows = spills = 0
    bar = progress(total=len(tasks), desc="format", unit="part", quiet=quiet)
    try:
        with _mapper(workers, len(tasks)) as mapper:
            for run, count, spilled in mapper(_format_task, tasks):
                if run:
                    runs.append(Path(run))
                rows += count
                spills += spilled
                bar.update(1)
    finally:
        bar.close()
    return runs, rows, spills


@dataclass
class PreparedRuns:
    """The runs the parse stage prepared for one records file."""

    directory: Path
    columns: list[str]
    runs: list[Path]
    rows: int


def _identity(records_path: Path) -> dict[str, int]:
    stat = records_path.stat()
    return {"size": stat.st_size, "mtime_ns": stat.st_mtime_ns}


def runs_dir(records_path: Path) -> Path:
    """Where the runs of ``records_path`` live: beside it."""
    return records_path.parent / RUNS_DIR


def remove_runs(records_path: Path) -> None:
    """Delete the prepared runs of ``records_path`` (once the timeline is written)."""
    shutil.rmtree(runs_dir(records_path), ignore_errors=True)


def prepare_runs(records_path: Path, attribute_names: Iterable[str], workers: int = 1,
                 quiet: bool = True) -> dict[str, Any]:
    """Format the default timeline's rows of ``records_path`` into ``OUT/timeline.runs/``.

    ``attribute_names`` are every record's attribute names, as the parse stage collected them,
    so that no pass over the records is needed for the CSV columns. The directory is built under
    a temporary name and renamed into place, so an interrupted run leaves either no runs or
    stale ones that the index rejects.
    """
    records_path = Path(records_path)
    columns = columns_for({attribute_column(name) for name in attribute_names})
    target = runs_dir(records_path)
    work = Path(tempfile.mkdtemp(prefix=f".{RUNS_DIR}.", suffix=".part", dir=records_path.parent))
    try:
        runs, rows, spills = format_runs([records_path], work, columns, TimelineOptions(), workers=workers,
                                         quiet=quiet)
        index = {"format": RUNS_FORMAT, "records": {"name": records_path.name, **_identity(records_path)},
                 "columns": columns, "rows": rows, "runs": {run.name: run.stat().st_size for run in runs}}
        with atomic_open(work / INDEX, "w", durable=False) as handle:
            json.dump(index, handle, indent=1)
        shutil.rmtree(target, ignore_errors=True)
        os.replace(work, target)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    log.info("timeline runs: %d rows formatted in %d runs (%d spilled)", rows, len(runs), spills)
    return {"rows": rows, "runs": len(runs), "spilled_runs": spills}


def load_runs(records_path: Path) -> PreparedRuns | None:
    """The prepared runs of ``records_path``, or None when missing, of another format or stale."""
    directory = runs_dir(Path(records_path))
    try:
        index = json.loads((directory / INDEX).read_text(encoding="utf-8"))
        if index.get("format") != RUNS_FORMAT or index["records"] != {
                "name": Path(records_path).name, **_identity(Path(records_path))}:
            return None
        runs = [directory / name for name in index["runs"]]
        if not all(run.is_file() and run.stat().st_size == size for run, size in zip(
                runs, index["runs"].values(), strict=True)):
            return None
        return PreparedRuns(directory, list(index["columns"]), runs, int(index["rows"]))
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return None


def _window(rows: Iterable[tuple[bytes, ...]], since: int | None,
            until: int | None) -> Iterator[tuple[bytes, ...]]:
    """The rows of a sorted run whose timestamp lies in [since, until] (keys start with it)."""
    selected: Iterator[tuple[bytes, ...]] = iter(rows)
    if since is not None:
        first = key_prefix(since)
        selected = itertools.dropwhile(lambda row: row[0] < first, selected)
    if until is not None:
        stop = key_prefix(until + 1)
        selected = itertools.takewhile(lambda row: row[0] < stop, selected)
    return selected


def _line(row: tuple[bytes, ...]) -> bytes:
    """The row as the combined line whose bytes give the timeline order (see :mod:`timeline.lines`)."""
    return SEP.join((row[0][:-len(KEY_END)], row[1][:-1], row[2][:-1], row[3]))


def _order_ties(rows: list[tuple[bytes, ...]]) -> tuple[list[tuple[bytes, ...]], int]:
    """Rows of equal keys put in the order of their combined lines, exact duplicates dropped.

    The merge compares rows as tuples of lines: the same order as the combined lines whenever
    the keys differ, which they do but for the same row merged twice or rows of several hosts
    that share a source, an order and a time.
    """
    ordered: list[tuple[bytes, ...]] = []
    dropped = 0
    for _, group in itertools.groupby(rows, _KEY):
        tied = list(group)
        if len(tied) > 1:
            tied.sort(key=_line)
            unique = [tied[0]]
            unique.extend(b for a, b in itertools.pairwise(tied) if _line(a) != _line(b))
            dropped += len(tied) - len(unique)
            tied = unique
        ordered.extend(tied)
    return ordered, dropped


def _unescaped(lines: Iterable[bytes]) -> bytes:
    """Lines of a rendering with their escaped parts restored (a value holding ``\n`` or NUL)."""
    return b"".join(unescape(line[:-1]) + _NL if line.startswith(ESCAPED) else line for line in lines)


def _batches(rows: Iterator[tuple[bytes, ...]]) -> Iterator[list[tuple[bytes, ...]]]:
    """Merged rows in lists, each ending where the key changes.

    The rows of one key stay together for :func:`_order_ties`. Such a group only holds rows that
    share a time, source, order and description (copies of one row, or rows of several inputs),
    so it stays small.
    """
    held: list[tuple[bytes, ...]] = []
    while batch := list(itertools.islice(rows, BATCH_ROWS)):
        if held:
            batch[:0] = held
        last = batch[-1][0]
        cut = len(batch) - 1
        while cut and batch[cut - 1][0] == last:
            cut -= 1
        held = batch[cut:]
        if cut:
            yield batch[:cut]
    if held:
        yield held


def _write_rows(rows: Iterator[tuple[bytes, ...]], l2t: Any, csv: Any, jsonl: Any,
                bar: Any) -> tuple[int, int]:
    """The hot loop of the final stage: merged rows into the three files (rows, duplicates).

    A batch of rows becomes one write per file, joined by C-level maps; only a batch holding
    rows of equal keys or an escaped part takes a slower path.
    """
    written = duplicates = 0
    for batch in _batches(rows):
        keys = list(map(_KEY, batch))
        if any(map(operator.eq, keys, itertools.islice(keys, 1, None))):
            batch, dropped = _order_ties(batch)
            duplicates += dropped
        l2t_lines = list(filter(_NL.__ne__, map(_L2T, batch)))  # a MACB group's other rows: none
        l2t_block = b"".join(l2t_lines)
        if ESCAPED in l2t_block:
            l2t_block = _unescaped(l2t_lines)
        csv_block = b"".join(map(_CSV, batch))
        if ESCAPED in csv_block:
            csv_block = _unescaped(map(_CSV, batch))
        l2t.write(l2t_block)
        csv.write(csv_block)
        jsonl.write(b"".join(map(_JSONL, batch)))
        written += len(batch)
        bar.update(len(batch))
    return written, duplicates


@contextlib.contextmanager
def _timeline_files(out_dir: Path) -> Iterator[tuple[Any, Any, Any]]:
    """Writers of the three timeline files (atomic), in the order l2tcsv, CSV, JSONL.

    Each is written with ``O_DIRECT`` from a page-aligned buffer (the bundle's writer): a
    buffered write of fresh data costs the kernel a page-cache page per 4 KiB, several times the
    CPU of the whole merge's Python work on this VM. Buffered where the file system refuses it.
    """
    policy = DirectPolicy()
    with contextlib.ExitStack() as stack:
        writers = []
        for name in (L2TCSV, TIMESKETCH_CSV, TIMESKETCH_JSONL):
            handle = stack.enter_context(atomic_open(out_dir / name, "wb", buffering=0))
            buffer = stack.enter_context(mmap.mmap(-1, DIRECT_BUFFER))
            writers.append(DirectWriter(handle.fileno(), buffer, policy))
        yield writers[0], writers[1], writers[2]
        for writer in writers:  # before atomic_open's fsync and rename
            writer.finish()


def merge_runs(runs: list[Path], out_dir: Path, columns: list[str], since: int | None = None,
               until: int | None = None, quiet: bool = True) -> dict[str, Any]:
    """The final stage: merge sorted runs into the three files, dropping exact duplicate rows.

    The runs are left in place. More runs than the merge's fan-in are first merged in passes
    into a temporary directory.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    with contextlib.ExitStack() as stack:
        if len(runs) > sort.FAN_IN:
            work = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix=".timeline.", suffix=".part",
                                                                         dir=out_dir)))
            runs = reduce_runs(runs, work, "merge", consume=False, group=4)
        handles = [stack.enter_context(open(run, "rb", buffering=READ_BUFFER)) for run in runs]
        streams: list[Iterable[tuple[bytes, ...]]] = [grouped(handle, 4) for handle in handles]
        if since is not None or until is not None:
            streams = [_window(stream, since, until) for stream in streams]
        merged = merged_items(streams) if streams else iter(())
        l2t_out, csv_out, jsonl_out = stack.enter_context(_timeline_files(out_dir))
        csv_out.write(csv_header(columns).encode("utf-8", "backslashreplace") + b"\n")
        l2t_out.write(header_line().encode() + b"\n")
        bar = stack.enter_context(progress(desc="timeline", unit="row", quiet=quiet))
        written, duplicates = _write_rows(merged, l2t_out, csv_out, jsonl_out, bar)
    log.info("timeline: %d rows (%d duplicates dropped)", written, duplicates)
    return {"rows": written, "duplicates": duplicates,
            "files": [str(out_dir / n) for n in (TIMESKETCH_CSV, TIMESKETCH_JSONL, L2TCSV)]}
