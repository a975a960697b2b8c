"""The in-process workloads, each run in a fresh child by ``run.py`` (``python workloads.py KIND JSON``).

A child times only its hot loop (``seconds``: imports and interpreter start-up excluded) and
prints one JSON line; the parent adds wall time, CPU and peak RSS from ``wait4``. Small inputs are
repeated until ``min_seconds`` have passed so that a 10 ms file still gives a stable rate.
"""

from __future__ import annotations

import hashlib
import json
import mailbox
import mmap
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def _repeat(work: Callable[[], dict[str, Any]], min_seconds: float) -> dict[str, Any]:
    """Run ``work`` until ``min_seconds`` have passed; ``seconds`` is the time of one run.

    ``cpu_seconds`` (this process's CPU time for one run) is reported too: on a busy machine the
    wall time also counts the time other processes had the CPU, CPU time does not. With
    ``min_seconds``, one untimed pass comes first, so every repeated line (the libraries' and
    ours) is measured warm: a pass shorter than ``min_seconds`` is averaged with warm repeats,
    and a longer one would otherwise carry the process's one-time set-up alone (compiled rules
    and patterns, caches: ~0.3 s for the EVTX parser, visible in the ``inboxtrail run`` rows).
    """
    if min_seconds > 0:
        work()
    runs = 0
    start, cpu_start = time.perf_counter(), time.process_time()
    while True:
        result = work()
        runs += 1
        elapsed = time.perf_counter() - start
        if elapsed >= min_seconds:
            break
    cpu = time.process_time() - cpu_start
    return {**result, "seconds": elapsed / runs, "cpu_seconds": cpu / runs, "runs": runs}


def parse(args: dict[str, Any]) -> dict[str, Any]:
    """inboxtrail parser over one file; with ``write``, rules applied and records.jsonl written.

    ``stage`` ``"tag"`` applies the rules without writing (to split what the stage costs).
    """
    import parsers  # noqa: F401  (registers every parser)
    from parsers.base import REGISTRY, ParseContext
    from parsers.record import Provenance
    from parsers.rules import default_engine

    parser_cls = REGISTRY[args["parser"]]
    prefix = args.get("count_type") or ""
    tag_only = args.get("stage") == "tag"
    engine = default_engine() if args.get("write") or tag_only else None

    def work() -> dict[str, Any]:
        ctx = ParseContext(provenance=Provenance(bundle_path=None, source_path=args["source_path"],
                                                 sha256=None))
        records = matching = 0
        # bytes, as the parse stage writes records.jsonl (parsers/engine.py)
        out = open(args["out"], "wb", buffering=1 << 16) if engine and not tag_only else None
        try:
            with open(args["path"], "rb") as handle:
                for record in parser_cls().parse(handle, ctx):
                    records += 1
                    matching += record.data_type.startswith(prefix)
                    if out is not None:
                        out.write(engine.tag(record).to_json_bytes() + b"\n")
                    elif tag_only:
                        engine.tag(record)
        finally:
            if out is not None:
                out.close()
        return {"records": records, "matching": matching, "warnings": len(ctx.warnings)}

    return _repeat(work, args.get("min_seconds", 0))


def mailbox_count(args: dict[str, Any]) -> dict[str, Any]:
    """Python's ``mailbox.mbox``: every message parsed by the email package, headers read."""
    def work() -> dict[str, Any]:
        box = mailbox.mbox(args["path"], create=False)
        messages = 0
        for message in box:
            _ = (message["Subject"], message["Date"], message["Message-ID"])
            messages += 1
        box.close()
        return {"records": messages, "matching": messages}

    return _repeat(work, 0)


def python_evtx(args: dict[str, Any]) -> dict[str, Any]:
    """python-evtx rendering every record to XML.

    ``forced``: every 64 KiB slot with ``ElfChnk`` magic is read (what a fair full-file timing
    needs); otherwise the file header's chunk count is trusted, as ``Evtx.chunks()`` does.
    """
    from Evtx.Evtx import ChunkHeader, Evtx

    def work() -> dict[str, Any]:
        records = errors = 0
        if args.get("forced"):
            with open(args["path"], "rb") as handle, \
                    mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ) as buf:
                for offset in range(0x1000, len(buf) - 0x10000 + 1, 0x10000):
                    if buf[offset:offset + 8] != b"ElfChnk\x00":
                        continue
                    for record in ChunkHeader(buf, offset).records():
                        try:
                            record.xml()
                            records += 1
                        except Exception:
                            errors += 1
        else:
            with Evtx(args["path"]) as log:
                for record in log.records():
                    try:
                        record.xml()
                        records += 1
                    except Exception:
                        errors += 1
        return {"records": records, "matching": records, "errors": errors}

    return _repeat(work, args.get("min_seconds", 0))


def evtx_rs(args: dict[str, Any]) -> dict[str, Any]:
    """The ``evtx`` package's own iteration (JSON per record, decoded): the floor we build on.

    ``decoder``: ``json`` (``json.loads``), ``json+fields`` (``json.loads`` and five System
    fields read out of each record: the issue's "with five fields extracted" reference),
    ``orjson`` (what the parser uses) or ``none`` (the library alone); ``threads``: the library's
    ``number_of_threads`` (0: one per core).
    """
    import orjson
    from evtx import PyEvtxParser

    def five_fields(data: str) -> tuple[Any, ...]:
        system = json.loads(data)["Event"]["System"]
        event_id = system.get("EventID")
        if isinstance(event_id, dict):  # {"#attributes": {"Qualifiers": ...}, "#text": 7036}
            event_id = event_id.get("#text")
        created = (system.get("TimeCreated") or {}).get("#attributes", {}).get("SystemTime")
        return event_id, created, system.get("Channel"), system.get("Computer"), system.get("EventRecordID")

    loads = {"json": json.loads, "json+fields": five_fields, "orjson": orjson.loads,
             "none": len}[args.get("decoder", "json")]

    def work() -> dict[str, Any]:
        records = errors = 0
        iterator = iter(PyEvtxParser(args["path"], number_of_threads=args.get("threads", 0)).records_json())
        while True:
            try:
                item = next(iterator)
            except StopIteration:
                break
            except RuntimeError:
                errors += 1
                continue
            loads(item["data"])
            records += 1
        return {"records": records, "matching": records, "errors": errors}

    return _repeat(work, args.get("min_seconds", 0))


def sha256(args: dict[str, Any]) -> dict[str, Any]:
    """``hashlib.sha256`` over the whole file, 4 MiB reads into one reused buffer."""
    digest = hashlib.sha256()
    buffer = bytearray(4 << 20)
    view = memoryview(buffer)
    total = 0
    start, cpu_start = time.perf_counter(), time.process_time()
    with open(args["path"], "rb", buffering=0) as handle:
        while read := handle.readinto(buffer):
            digest.update(view[:read])
            total += read
    return {"records": 1, "matching": 1, "bytes": total, "seconds": time.perf_counter() - start,
            "cpu_seconds": time.process_time() - cpu_start, "sha256": digest.hexdigest()}


def collect(args: dict[str, Any]) -> dict[str, Any]:
    """``collector.collect.collect(IMAGE, extra_paths=["/**"])``: the collect command's work.

    The same as ``inboxtrail collect IMAGE --path '/**'`` without the interpreter start-up and
    imports (dfvfs included), so the rate is the collector's own, opening and scanning the image
    included; ``hashes`` picks the digests (default both).
    """
    import collector.image  # noqa: F401 - dfvfs's import time is start-up, not collection
    from collector.collect import collect as run_collect
    from collector.opener import open_source

    start, cpu_start = time.perf_counter(), time.process_time()
    source = open_source(args["path"])
    try:
        report = run_collect(source, args["out"], extra_paths=["/**"], quiet=True,
                             hashes=tuple(args.get("hashes", ("sha256", "md5"))))
    finally:
        source.close()
    collected = report["counts"]["collected"]
    return {"records": collected, "matching": collected, "bytes": report["bytes_collected"],
            "seconds": time.perf_counter() - start, "cpu_seconds": time.process_time() - cpu_start}


def timeline(args: dict[str, Any]) -> dict[str, Any]:
    """The timeline stage on one records.jsonl, in one of four ``mode``\\s (one process, no pool).

    ``prepare``: ``timeline.runs.prepare_runs``, what the parse stage adds: every row formatted
    and sorted into runs beside the records. ``merge``: ``timeline.build.build_timeline`` on
    those runs, the final stage (k-way merge, three files written). ``reformat``: the same with
    ``--tz``, which formats every row from the records again. ``floor``: ``heapq.merge`` of the
    same runs' rows (tuples of the four lines a run holds per row) written to one file with
    ``writelines`` and buffered writes (no split into three files, no dedup, no ``O_DIRECT``).
    """
    import heapq
    import itertools

    from timeline.build import TimelineOptions, build_timeline
    from timeline.runs import load_runs, prepare_runs
    from timeline.sort import grouped

    path, mode = Path(args["path"]), args["mode"]
    start, cpu_start = time.perf_counter(), time.process_time()
    if mode == "prepare":
        made = prepare_runs(path, args["attributes"], workers=1)
        report = {"rows": made["rows"], "runs": made["runs"], "spilled_runs": made["spilled_runs"]}
    elif mode == "floor":
        runs = load_runs(path)
        handles = [open(run, "rb", buffering=1 << 16) for run in runs.runs]
        with open(args["out"], "wb", buffering=1 << 20) as out:
            out.writelines(itertools.chain.from_iterable(heapq.merge(*(grouped(h, 4) for h in handles))))
        for handle in handles:
            handle.close()
        report = {"rows": runs.rows, "bytes": Path(args["out"]).stat().st_size}
    else:
        options = TimelineOptions(tz=args.get("tz", "Europe/Berlin")) if mode == "reformat" else None
        built = build_timeline([path], args["out"], quiet=True, options=options, workers=1)
        report = {"rows": built["rows"], "formatted": built["formatted"],
                  "spilled_runs": built["spilled_runs"],
                  "bytes": sum(Path(name).stat().st_size for name in built["files"])}
    return {"records": report["rows"], "matching": report["rows"], **report,
            "seconds": time.perf_counter() - start, "cpu_seconds": time.process_time() - cpu_start}


KINDS: dict[str, Callable[[dict[str, Any]], dict[str, Any]]] = {
    "parse": parse, "mailbox": mailbox_count, "python-evtx": python_evtx, "evtx-rs": evtx_rs,
    "sha256": sha256, "timeline": timeline, "collect": collect,
}


def main() -> None:
    kind, arguments = sys.argv[1], json.loads(sys.argv[2])
    print(json.dumps(KINDS[kind](arguments)))


if __name__ == "__main__":
    main()
