"""The parse stage: a bundle in, ``records.jsonl`` (and the parse warnings) out.

Each collected file is one task: its parsers run (in a process pool with ``workers`` > 1) and
its tagged records go to a temporary file; the files are then concatenated in manifest order,
so ``records.jsonl`` is byte-identical for any number of workers. The parsers of a file come from
its artifact spec; files without one (loose files, ``--path`` extras) are recognised by content
and name. Any exception a parser raises is caught: the file gets a warning and the records read
so far are kept.
"""

from __future__ import annotations

import json
import logging
import multiprocessing
import os
import shutil
import signal
import tempfile
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO, Protocol

from collector.atomic import atomic_open
from collector.bundle import REPORT, read_manifest
from collector.progress import progress
from parsers.base import REGISTRY, ParseContext
from parsers.filestat import FileStatParser
from parsers.record import Provenance, Record
from parsers.rules import default_engine
from parsers.targets import StateIndex, tag_with_state

log = logging.getLogger("inboxtrail.parse")
SNIFF_BYTES = 4096
#: Below this much work a process pool costs more CPU than the whole parse (a small image's
#: bundle parses in ~0.05 CPU-s in one process, ~0.13 with two workers), so one process parses.
#: Work is counted as the bytes of the collected files plus :data:`ENTRY_WORK` per manifest line
#: (each gets a file-system record, ~30 µs: as much as parsing ~0.5 KB of an event log).
POOL_MIN_WORK = 8 << 20
ENTRY_WORK = 512
RECORDS = "records.jsonl"
WARNINGS = "parse_warnings.jsonl"


def sniff_parsers(path: Path, name: str) -> list[str]:
    """Names of the parsers that recognise a file by its first bytes and name."""
    with path.open("rb") as handle:
        head = handle.read(SNIFF_BYTES)
    return [parser_name for parser_name, cls in sorted(REGISTRY.items()) if cls.sniff(head, name)]


def _hosts(bundle: Path) -> dict[str, str]:
    try:
        report = json.loads((bundle / REPORT).read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return {}
    return {fs["label"]: fs["hostname"] for fs in report.get("filesystems", ()) if fs.get("hostname")}


def _context(entry: dict[str, Any], hosts: dict[str, str]) -> ParseContext:
    provenance = Provenance(bundle_path=entry.get("bundle_path"), source_path=entry["source_path"],
                            sha256=entry.get("sha256"), filesystem=entry.get("filesystem", ""),
                            evidence=entry.get("provenance") or "")
    return ParseContext(provenance=provenance, host=hosts.get(entry.get("filesystem", "")),
                        user=entry.get("user"), entry=entry)


#: The collected state of every path of the bundle being parsed (set before workers fork).
_STATE: StateIndex | None = None


def _tag(record: Record) -> Record:
    """Rule tags, plus the collected state of the mail files a tagged command touched."""
    return tag_with_state(record, _STATE)


def records_of_entry(bundle: Path, entry: dict[str, Any], ctx: ParseContext,
                     stats: Counter) -> Iterator[Record]:
    """Every tagged record of one manifest entry: its file-system record, then its content."""
    for record in FileStatParser().parse(None, ctx):
        stats["filestat"] += 1
        yield _tag(record)
    if entry.get("kind") == "dir" and not entry.get("deleted"):
        yield from _directory_records(bundle, entry, ctx, stats)
        return
    if not entry.get("bundle_path") or entry.get("outcome") not in ("collected", "recovered"):
        return
    path = bundle / entry["bundle_path"]
    names = list(entry.get("parsers") or ()) or sniff_parsers(path, entry["source_path"].rsplit("/", 1)[-1])
    if not names:
        ctx.warn("no parser recognises this file")
    for name in names:
        parser_cls = REGISTRY.get(name)
        if parser_cls is None:
            ctx.warn(f"unknown parser {name!r} named by artifact {entry.get('artifact')}")
            continue
        count = 0
        try:
            with path.open("rb") as handle:
                for record in parser_cls().parse(handle, ctx):
                    count += 1
                    yield _tag(record)
        except Exception as exc:  # a parser must never stop the run
            ctx.warn(f"parser {name} failed after {count} records: {type(exc).__name__}: {exc}")
        stats[name] += count


def _directory_records(bundle: Path, entry: dict[str, Any], ctx: ParseContext,
                       stats: Counter) -> Iterator[Record]:
    """A directory line has no content to open: only parsers that read a directory's own times
    (a ``parse_directory(bundle, ctx)`` method, e.g. Maildir folders) get it."""
    for name in entry.get("parsers") or ():
        parser_cls = REGISTRY.get(name)
        if parser_cls is None or not hasattr(parser_cls, "parse_directory"):
            continue
        count = 0
        try:
            for record in parser_cls().parse_directory(bundle, ctx):
                count += 1
                yield _tag(record)
        except Exception as exc:  # a parser must never stop the run
            ctx.warn(f"parser {name} failed on the directory after {count} records: "
                     f"{type(exc).__name__}: {exc}")
        stats[name] += count


def worker_signals() -> None:
    """Workers leave Ctrl-C to the parent, and die quietly when it terminates the pool."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)


class RecordObserver(Protocol):
    """Sees every record the parse stage writes, where it is written (in the worker that parsed
    its file), so that a later stage can gather what it needs without reading ``records.jsonl``
    again. One observer is made per file; the parent joins them in manifest order. One that kept
    nothing is false and is not sent back (a pickled object per file would cost more than the
    file-system record of most files)."""

    def observe(self, record: Record, line: bytes) -> None:
        """``record`` was written as ``line`` (no line end)."""

    def extend(self, other: Any) -> None:
        """Append what ``other`` (the observer of a later file) kept."""

    def __bool__(self) -> bool:
        """Whether it kept anything."""


@dataclass(frozen=True)
class RecordsPart:
    """A worker's temporary file of ``count`` complete record lines, appended whole to
    ``records.jsonl`` (by the kernel, without a Python loop over its lines) and then removed."""

    path: str
    count: int


#: One file's result: record lines (or a :class:`RecordsPart` holding them), per-parser counts,
#: warnings, number of tagged records, the attribute names its records use (the timeline's CSV
#: columns, known without a second pass), and, in the local parse stage, the file's
#: :class:`RecordObserver` (None when it kept nothing).
FileResult = tuple[Iterable[bytes | str] | RecordsPart, dict, list, int, list[str]] | tuple[
    Iterable[bytes | str] | RecordsPart, dict, list, int, list[str], RecordObserver | None]


def _parse_task(task: tuple[str, str, dict[str, Any], dict[str, str], Callable[[], RecordObserver] | None]
                ) -> tuple[RecordsPart, dict, list, int, list[str], RecordObserver | None]:
    """Worker: parse one entry into a temporary records file."""
    bundle, temp_dir, entry, hosts, make_observer = task
    ctx = _context(entry, hosts)
    stats: Counter = Counter()
    tagged = count = 0
    names: set[str] = set()
    observer = make_observer() if make_observer is not None else None
    fd, name = tempfile.mkstemp(prefix="records.", suffix=".jsonl", dir=temp_dir)
    with os.fdopen(fd, "wb", buffering=1 << 16) as out:
        for record in records_of_entry(Path(bundle), entry, ctx, stats):
            count += 1
            tagged += bool(record.tags)
            names.update(record.attributes)
            line = record.to_json_bytes()
            out.write(line + b"\n")
            if observer is not None:
                observer.observe(record, line)
    return RecordsPart(name, count), dict(stats), ctx.warnings, tagged, sorted(names), observer or None


def _append_part(out: BinaryIO, part: RecordsPart) -> None:
    """Append a worker's records file to ``out`` and remove it: ``copy_file_range`` copies inside
    the kernel; where it is refused (another file system, an old kernel) the bytes go through here."""
    out.flush()
    try:
        with open(part.path, "rb") as source:
            size = os.fstat(source.fileno()).st_size
            copied = 0
            try:
                while copied < size:
                    done = os.copy_file_range(source.fileno(), out.fileno(), size - copied)
                    if not done:
                        break
                    copied += done
            except OSError:
                if copied:  # a real I/O error part way, as a failed write would be
                    raise
            if copied < size:
                source.seek(copied)
                shutil.copyfileobj(source, out, 1 << 20)
            else:
                out.seek(0, os.SEEK_END)  # the buffered writer learns the new end
    finally:
        os.unlink(part.path)


def write_results(results: Iterable[FileResult], out_dir: Path, total_files: int, quiet: bool = False,
                  observer: Callable[[], RecordObserver] | None = None) -> dict[str, Any]:
    """Write per-file results, in the order given, to ``records.jsonl`` and the warnings file.

    Both the local process pool and a Dask cluster hand their results (:data:`FileResult`) here
    in manifest order. Record lines are bytes or text, with or without their line end. With
    ``observer``, the files' observers are joined into a new one, returned as ``observed``.
    """
    stats: Counter = Counter()
    warnings: list[dict[str, Any]] = []
    attributes: set[str] = set()
    total = tagged = 0
    observed = observer() if observer is not None else None
    bar = progress(total=total_files, desc="parse", unit="file", quiet=quiet)
    try:
        with atomic_open(out_dir / RECORDS, "wb") as out:
            for lines, file_stats, file_warnings, file_tagged, names, *rest in results:
                if observed is not None and rest and rest[0] is not None:
                    observed.extend(rest[0])
                if isinstance(lines, RecordsPart):
                    _append_part(out, lines)
                    total += lines.count
                else:
                    for line in lines:
                        if isinstance(line, str):
                            line = line.encode("utf-8")
                        out.write(line if line.endswith(b"\n") else line + b"\n")
                        total += 1
                stats.update(file_stats)
                warnings.extend(file_warnings)
                tagged += file_tagged
                attributes.update(names)
                bar.update(1)
    finally:
        bar.close()
    for warning in warnings:
        offset = f" @{warning['offset']}" if warning["offset"] is not None else ""
        log.warning("%s%s: %s", warning["path"], offset, warning["message"])
    with atomic_open(out_dir / WARNINGS, "w", newline="\n") as out:
        for warning in warnings:
            out.write(json.dumps(warning, ensure_ascii=False, sort_keys=True) + "\n")
    log.info("parsed %d records (%d tagged), %d warnings", total, tagged, len(warnings))
    return {"records": total, "tagged": tagged, "warnings": len(warnings), "per_parser": dict(stats),
            "attributes": sorted(attributes), "observed": observed}


def _work(manifest: list[dict[str, Any]]) -> int:
    """A rough measure of the parse stage's work on ``manifest`` (see :data:`POOL_MIN_WORK`)."""
    work = ENTRY_WORK * len(manifest)
    for entry in manifest:
        if entry.get("bundle_path") and entry.get("outcome") in ("collected", "recovered"):
            size = entry.get("size")
            work += size if isinstance(size, int) and size > 0 else 0
    return work


def parse_bundle(bundle: str | Path, out_dir: str | Path, quiet: bool = False, workers: int = 1,
                 observer: Callable[[], RecordObserver] | None = None) -> dict[str, Any]:
    """Write ``records.jsonl`` and ``parse_warnings.jsonl`` for ``bundle`` into ``out_dir``.

    ``observer`` (a picklable factory, e.g. a class) makes one :class:`RecordObserver` per file;
    their join is returned as ``observed`` (None without ``observer``).
    """
    global _STATE
    bundle, out_dir = Path(bundle), Path(out_dir)
    manifest = read_manifest(bundle)
    _STATE = StateIndex(manifest)
    default_engine()  # load the rules once, before workers fork
    hosts = _hosts(bundle)
    out_dir.mkdir(parents=True, exist_ok=True)
    temp_dir = tempfile.mkdtemp(prefix=".parse.", dir=out_dir)
    tasks = [(str(bundle), temp_dir, entry, hosts, observer) for entry in manifest]
    pool = (multiprocessing.get_context("fork").Pool(workers, initializer=worker_signals)
            if workers > 1 and len(tasks) > 1 and _work(manifest) >= POOL_MIN_WORK else None)
    try:
        results = pool.imap(_parse_task, tasks) if pool else map(_parse_task, tasks)
        return write_results(results, out_dir, len(tasks), quiet=quiet, observer=observer)
    finally:
        if pool is not None:
            pool.terminate()
        shutil.rmtree(temp_dir, ignore_errors=True)
