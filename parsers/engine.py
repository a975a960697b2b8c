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
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

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


#: One file's result: record lines, per-parser counts, warnings, number of tagged records, and
#: the attribute names its records use (the timeline's CSV columns, known without a second pass).
FileResult = tuple[Iterable[bytes | str], dict, list, int, list[str]]


def _parse_task(task: tuple[str, str, dict[str, Any], dict[str, str]]
                ) -> tuple[str, dict, list, int, list[str]]:
    """Worker: parse one entry into a temporary records file."""
    bundle, temp_dir, entry, hosts = task
    ctx = _context(entry, hosts)
    stats: Counter = Counter()
    tagged = 0
    names: set[str] = set()
    fd, name = tempfile.mkstemp(prefix="records.", suffix=".jsonl", dir=temp_dir)
    with os.fdopen(fd, "wb", buffering=1 << 16) as out:
        for record in records_of_entry(Path(bundle), entry, ctx, stats):
            tagged += bool(record.tags)
            names.update(record.attributes)
            out.write(record.to_json_bytes() + b"\n")
    return name, dict(stats), ctx.warnings, tagged, sorted(names)


def _drain(name: str) -> Iterator[bytes]:
    """Lines of a worker's temporary records file, which is removed once read."""
    try:
        with open(name, "rb", buffering=1 << 16) as part:
            yield from part
    finally:
        os.unlink(name)


def write_results(results: Iterable[FileResult], out_dir: Path, total_files: int,
                  quiet: bool = False) -> dict[str, Any]:
    """Write per-file results, in the order given, to ``records.jsonl`` and the warnings file.

    Both the local process pool and a Dask cluster hand their results (:data:`FileResult`) here
    in manifest order. Record lines are bytes or text, with or without their line end.
    """
    stats: Counter = Counter()
    warnings: list[dict[str, Any]] = []
    attributes: set[str] = set()
    total = tagged = 0
    bar = progress(total=total_files, desc="parse", unit="file", quiet=quiet)
    try:
        with atomic_open(out_dir / RECORDS, "wb") as out:
            for lines, file_stats, file_warnings, file_tagged, names in results:
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
            "attributes": sorted(attributes)}


def parse_bundle(bundle: str | Path, out_dir: str | Path, quiet: bool = False,
                 workers: int = 1) -> dict[str, Any]:
    """Write ``records.jsonl`` and ``parse_warnings.jsonl`` for ``bundle`` into ``out_dir``."""
    global _STATE
    bundle, out_dir = Path(bundle), Path(out_dir)
    manifest = read_manifest(bundle)
    _STATE = StateIndex(manifest)
    default_engine()  # load the rules once, before workers fork
    hosts = _hosts(bundle)
    out_dir.mkdir(parents=True, exist_ok=True)
    temp_dir = tempfile.mkdtemp(prefix=".parse.", dir=out_dir)
    tasks = [(str(bundle), temp_dir, entry, hosts) for entry in manifest]
    pool = (multiprocessing.get_context("fork").Pool(workers, initializer=worker_signals)
            if workers > 1 and len(tasks) > 1 else None)
    try:
        raw = pool.imap(_parse_task, tasks) if pool else map(_parse_task, tasks)
        results = ((_drain(name), *rest) for name, *rest in raw)
        return write_results(results, out_dir, len(tasks), quiet=quiet)
    finally:
        if pool is not None:
            pool.terminate()
        shutil.rmtree(temp_dir, ignore_errors=True)
