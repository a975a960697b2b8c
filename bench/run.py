"""inboxtrail benchmarks: one command, throughput and peak memory per stage, next to a peer.

    .venv/bin/python bench/run.py                        # every stage, default sizes
    .venv/bin/python bench/run.py --only mbox,history    # some stages
    .venv/bin/python bench/run.py --scale 5 --json r.json  # 1 GB mbox and history, results saved

Stages: evtx (vs python-evtx and plaso), mbox (vs Python's mailbox), history, collection (vs
hashlib.sha256 over the raw image), timeline (two sizes, to show memory is flat), run (the whole
``inboxtrail run`` on the reference image vs plaso). Every measurement is its own process (see
``bench/measure.py``); generated inputs live in a temporary directory removed at the end. What
each line measures is in ``bench/README.md``.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import shutil
import signal
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH))

import inputs  # noqa: E402
import measure  # noqa: E402

PLASO_BIN = ROOT / ".plaso-venv" / "bin"
PSORT_SLEEP = 15.0  # psort sleeps a fixed 15 s before it exits (plaso's status reporting)
STAGES = ("evtx", "mbox", "history", "collection", "timeline", "run")
MB = 1e6
MIB = 1 << 20


@dataclass
class Row:
    """One printed line: a measurement and the rates derived from it."""

    stage: str
    name: str
    input: str
    items: int
    unit: str
    nbytes: int
    #: Wall seconds of the measured work (the child's own hot-loop timer, or the command's wall).
    seconds: float
    #: CPU seconds of the same work (the loop's process time, or the command tree's user+sys).
    cpu: float
    wall: float
    tree_cpu: float
    peak_mib: float
    load: tuple[float, float]
    note: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def rate(self) -> float:
        """Items per wall second."""
        return self.items / self.seconds if self.seconds > 0 else 0.0

    @property
    def cpu_rate(self) -> float:
        """Items per CPU second: steadier than wall on a machine other processes share."""
        return self.items / self.cpu if self.cpu > 0 else 0.0

    @property
    def mb_per_s(self) -> float:
        return self.nbytes / MB / self.seconds if self.seconds > 0 and self.nbytes else 0.0

    @property
    def cpu_mb_per_s(self) -> float:
        return self.nbytes / MB / self.cpu if self.cpu > 0 and self.nbytes else 0.0


@dataclass
class Goal:
    stage: str
    text: str
    measured: str
    met: bool | None  # None: informational, or could not be measured


@dataclass
class Bench:
    tmp: Path
    scale: float
    corpus: Path
    rows: list[Row] = field(default_factory=list)
    goals: list[Goal] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)

    def add(self, row: Row) -> Row:
        self.rows.append(row)
        _print_row(row)
        return row

    def goal(self, stage: str, text: str, measured: str, met: bool | None) -> None:
        self.goals.append(Goal(stage, text, measured, met))


# -- helpers -------------------------------------------------------------------------------------

#: Each measurement runs this many times (``--repeat``) and the fastest pass (least CPU) is kept,
#: as :mod:`timeit` advises: on a shared VM the same code here varied by up to ~1.8x between runs
#: minutes apart, and the slower passes measure the neighbours, not the code.
REPEAT = 3
#: No further pass starts once a measurement's passes have taken this long (a 90 s plaso run
#: gets two), so a full bench stays within ~30 minutes; the note says how many passes ran.
REPEAT_BUDGET_S = 120.0


def _measure_cpu(m: measure.Measurement) -> float:
    return m.report.get("cpu_seconds", m.cpu)


def _fastest(once: Callable[[], Any], cpu: Callable[[Any], float], cleanup: Callable[[], None] | None = None,
             ) -> tuple[Any, int, list[Any]]:
    """Run ``once`` up to :data:`REPEAT` times (within :data:`REPEAT_BUDGET_S`): (fastest, passes, all).

    ``cleanup`` runs before every pass but the first (an output directory the command refuses to
    reuse). Peak memory is judged on every pass by the caller (the largest is kept).
    """
    results, began = [], time.perf_counter()
    while len(results) < REPEAT and (not results or time.perf_counter() - began < REPEAT_BUDGET_S):
        if results and cleanup is not None:
            cleanup()
        results.append(once())
    return min(results, key=cpu), len(results), results


def _fastest_run(argv: list[str], cwd: Path | None = None, out: str | Path | None = None,
                 ) -> measure.Measurement:
    """``argv`` measured as the fastest of :data:`REPEAT` passes (``out`` removed between them),
    with the largest peak RSS of all its passes (memory is not a best-of figure) and ``passes``
    in its report."""
    best, count, passes = _fastest(lambda: measure.run(argv, cwd=cwd), _measure_cpu,
                                   cleanup=lambda: _remove(out))
    best = dataclasses.replace(best, peak_mib=max(p.peak_mib for p in passes))
    best.report["passes"] = count
    return best


def _remove(path: str | Path | None) -> None:
    if path is None:
        return
    path = Path(path)
    if path.is_dir():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)


def _workload(kind: str, **args: Any) -> measure.Measurement:
    """A ``workloads.py`` child, fastest of :data:`REPEAT` passes (see :func:`_fastest_run`)."""
    return _fastest_run([sys.executable, str(BENCH / "workloads.py"), kind, json.dumps(args)],
                        out=args.get("out"))


#: Report fields that are columns of the row, not extras.
_REPORT_FIELDS = ("matching", "seconds", "cpu_seconds", "passes")


def _row(stage: str, name: str, source: str, m: measure.Measurement, unit: str, nbytes: int,
         items: int | None = None, seconds: float | None = None, note: str = "") -> Row:
    items = m.report.get("matching", 0) if items is None else items
    seconds = m.report.get("seconds", m.wall) if seconds is None else seconds
    cpu = m.report.get("cpu_seconds", m.cpu)
    if m.report.get("passes", 1) > 1:
        note = f"{note}; fastest of {m.report['passes']}" if note else f"fastest of {m.report['passes']}"
    return Row(stage, name, source, items, unit, nbytes, seconds, cpu, m.wall, m.cpu, m.peak_mib,
               (m.load_before, m.load_after), note,
               {k: v for k, v in m.report.items() if k not in _REPORT_FIELDS})


def _inboxtrail(*argv: str, cwd: Path | None = None) -> measure.Measurement:
    """An ``inboxtrail`` command, fastest of :data:`REPEAT` passes (its ``-o`` emptied between)."""
    out = argv[argv.index("-o") + 1] if "-o" in argv else None
    return _fastest_run([sys.executable, "-m", "inboxtrail", "--quiet", *argv], cwd=cwd or ROOT, out=out)


def _plaso(stage: str, source: Path, parsers: str, tmp: Path, label: str, items: int | None = None,
           image: bool = False) -> tuple[Row, Row, Row]:
    """log2timeline + psort -o l2tcsv on ``source``; rows for each tool and their sum."""
    work = tmp / f"plaso-{stage}"
    storage, csv_out = work / "out.plaso", work / "out.l2t.csv"
    extra = ["--partitions", "all"] if image else []

    def once() -> tuple[measure.Measurement, measure.Measurement, int]:
        shutil.rmtree(work, ignore_errors=True)
        work.mkdir()
        l2t = measure.run([str(PLASO_BIN / "log2timeline"), "--quiet", "--status_view", "none",
                           "--unattended", *extra, "--parsers", parsers, "--storage_file", str(storage),
                           str(source)], cwd=work)
        psort = measure.run([str(PLASO_BIN / "psort"), "--status_view", "none", "-o", "l2tcsv", "-w",
                             str(csv_out), str(storage)], cwd=work)
        return l2t, psort, _csv_rows(csv_out)

    # The pair with the least CPU in all is kept, as for inboxtrail's own commands.
    (l2t, psort, events), count, passes = _fastest(once, lambda pair: pair[0].cpu + pair[1].cpu)
    l2t = dataclasses.replace(l2t, peak_mib=max(pair[0].peak_mib for pair in passes))
    psort = dataclasses.replace(psort, peak_mib=max(pair[1].peak_mib for pair in passes))
    unit = "records" if items is not None else "l2t rows"
    items = events if items is None else items
    size = source.stat().st_size
    note = f"{events:,} l2t rows; fastest of {count}"
    first = _row(stage, "plaso log2timeline", label, l2t, unit, size, items=items, seconds=l2t.wall,
                 note=note)
    second = _row(stage, f"plaso psort -o l2tcsv (wall-{PSORT_SLEEP:.0f}s)", label, psort, unit, size,
                  items=items, seconds=max(psort.wall - PSORT_SLEEP, 0.001), note=note)
    total = Row(stage, "plaso total (log2timeline+psort)", label, items, unit, size,
                first.seconds + second.seconds, l2t.cpu + psort.cpu, l2t.wall + psort.wall,
                l2t.cpu + psort.cpu, max(l2t.peak_mib, psort.peak_mib), (l2t.load_before, psort.load_after),
                note=f"{note}; wall {l2t.wall + psort.wall:.1f}s incl. sleep")
    shutil.rmtree(work, ignore_errors=True)
    return first, second, total


def _csv_rows(path: Path) -> int:
    with path.open("rb") as handle:
        return max(sum(1 for _ in handle) - 1, 0)


def _flat(small: Row, large: Row) -> tuple[str, bool]:
    """Peak memory is flat when 4x the input costs at most 25 % + 16 MiB more."""
    grew = large.peak_mib / small.peak_mib if small.peak_mib else 0.0
    measured = (f"peak {small.peak_mib:.0f} MiB at {small.nbytes / MB:,.0f} MB / {small.items:,} -> "
                f"{large.peak_mib:.0f} MiB at {large.nbytes / MB:,.0f} MB / {large.items:,} ({grew:.2f}x)")
    return measured, large.peak_mib <= small.peak_mib * 1.25 + 16


# -- stages --------------------------------------------------------------------------------------

def stage_evtx(b: Bench) -> None:
    sysmon = b.corpus / "evtx" / "evtx-attack-samples" / "Sysmon_UACME_64.evtx"
    system = b.corpus / "evtx" / "museum_StolenSzechuan_Win2012R2" / "System.evtx"
    if not (sysmon.is_file() and system.is_file()):
        b.failures.append(f"evtx: corpus files missing under {b.corpus}")
        return
    out = str(b.tmp / "evtx-records.jsonl")
    small, big = "Sysmon_UACME_64.evtx (1.1 MB)", "System.evtx (16.8 MB)"
    s_size, b_size = sysmon.stat().st_size, system.stat().st_size
    common = {"parser": "evtx", "count_type": "windows:evtx", "write": True, "out": out}
    pyevtx = b.add(_row("evtx", "python-evtx, all chunks, xml()", small,
                        _workload("python-evtx", path=str(sysmon), forced=True), "records", s_size))
    ours_small = b.add(_row("evtx", "inboxtrail evtx -> records.jsonl", small,
                            _workload("parse", path=str(sysmon), source_path=str(sysmon),
                                      min_seconds=1.0, **common), "records", s_size))
    trusting = b.add(_row("evtx", "python-evtx, header chunk count", big,
                          _workload("python-evtx", path=str(system), forced=False), "records", b_size))
    bare = b.add(_row("evtx", "evtx (Rust) records_json, not decoded", big,
                      _workload("evtx-rs", path=str(system), min_seconds=1.0, decoder="none", threads=1),
                      "records", b_size, note="1 thread"))
    threaded = b.add(_row("evtx", "evtx (Rust) records_json, not decoded", big,
                          _workload("evtx-rs", path=str(system), min_seconds=1.0, decoder="none", threads=0),
                          "records", b_size, note="threads: 1 per core"))
    b.add(_row("evtx", "evtx (Rust) records_json+json.loads", big,
               _workload("evtx-rs", path=str(system), min_seconds=1.0, decoder="json", threads=1),
               "records", b_size))
    fields = b.add(_row("evtx", "evtx (Rust) records_json+json.loads+5 fields", big,
                        _workload("evtx-rs", path=str(system), min_seconds=1.0, decoder="json+fields",
                                  threads=1), "records", b_size))
    library = b.add(_row("evtx", "evtx (Rust) records_json+orjson", big,
                         _workload("evtx-rs", path=str(system), min_seconds=1.0, decoder="orjson", threads=1),
                         "records", b_size))
    parse_only = b.add(_row("evtx", "inboxtrail evtx parse (records only)", big,
                            _workload("parse", path=str(system), source_path=str(system), min_seconds=1.0,
                                      parser="evtx", count_type="windows:evtx"), "records", b_size))
    tagged = b.add(_row("evtx", "inboxtrail evtx parse + rule tagging", big,
                        _workload("parse", path=str(system), source_path=str(system), min_seconds=1.0,
                                  parser="evtx", count_type="windows:evtx", stage="tag"), "records", b_size))
    ours = b.add(_row("evtx", "inboxtrail evtx -> records.jsonl", big,
                      _workload("parse", path=str(system), source_path=str(system), min_seconds=1.0,
                                **common), "records", b_size))
    run_out = b.tmp / "evtx-run"
    cli = _inboxtrail("run", str(system), "-o", str(run_out))
    cli_row = b.add(_row("evtx", "inboxtrail run (collect..findings)", big, cli, "records", b_size,
                         items=ours.items, seconds=cli.wall, note=f"CPU {cli.cpu:.1f}s"))
    shutil.rmtree(run_out, ignore_errors=True)
    plaso = None
    if (PLASO_BIN / "log2timeline").exists():
        plaso = _plaso("evtx", system, "winevtx", b.tmp, big, items=ours.items)
        for row in plaso:
            b.add(row)
    else:
        b.failures.append(f"evtx: plaso not installed in {PLASO_BIN}")

    b.goal("evtx", "records.jsonl written at >= 50k records/s (System.evtx)",
           f"{ours.cpu_rate:,.0f} records/CPU-s (wall {ours.rate:,.0f}/s)", ours.cpu_rate >= 50_000)
    # The "~3x" is its 50k goal against the library "with five fields extracted" (~112k/s
    # there): that line is the reference; the bare orjson floor is printed beside it.
    b.goal("evtx", "within ~3x of the evtx library's own iteration (records_json + json.loads + 5 fields)",
           f"{fields.cpu_rate / ours.cpu_rate:.1f}x slower than {fields.cpu_rate:,.0f}/CPU-s",
           fields.cpu_rate / ours.cpu_rate <= 3)
    b.goal("evtx", "against the decoding floor (records_json + orjson, no fields read)",
           f"{library.cpu_rate / ours.cpu_rate:.1f}x slower than {library.cpu_rate:,.0f}/CPU-s "
           f"(parse alone {library.cpu_rate / parse_only.cpu_rate:.1f}x, + tagging "
           f"{library.cpu_rate / tagged.cpu_rate:.1f}x)", None)
    per = {name: 1e6 / row.cpu_rate for name, row in (("library", bare), ("decode", library),
                                                        ("parse", parse_only), ("tag", tagged),
                                                        ("write", ours))}
    # The parser reads most records' fields from the library's JSON text (parsers/_evtxread.c,
    # read_json) without decoding it whole; what orjson's decoding alone costs is printed beside.
    b.goal("evtx", "where a record's CPU goes (System.evtx, µs per record)",
           f"library {per['library']:.1f}, reading the JSON and shaping a Record "
           f"{per['parse'] - per['library']:.1f} (orjson's decoding alone "
           f"{per['decode'] - per['library']:.1f}), rule tagging {per['tag'] - per['parse']:.1f}, "
           f"Record.to_json_bytes + write {per['write'] - per['tag']:.1f} (total {per['write']:.1f})", None)
    b.goal("evtx", "library threads (number_of_threads=0 vs 1), not decoded",
           f"CPU {threaded.cpu_rate:,.0f} vs {bare.cpu_rate:,.0f}/CPU-s, wall {threaded.rate:,.0f} vs "
           f"{bare.rate:,.0f}/s", None)
    b.goal("evtx", ">= 100x python-evtx on the same file (Sysmon_UACME_64)",
           f"{ours_small.cpu_rate / pyevtx.cpu_rate:,.0f}x ({ours_small.cpu_rate:,.0f} vs "
           f"{pyevtx.cpu_rate:,.0f}/CPU-s; wall {ours_small.rate / pyevtx.rate:,.0f}x)",
           ours_small.cpu_rate / pyevtx.cpu_rate >= 100)
    b.goal("evtx", "python-evtx trusting the header misses records of a dirty log",
           f"{trusting.items:,} of {ours.items:,} records", None)
    b.goal("evtx", "every record read (inboxtrail == evtx library)", f"{ours.items:,} vs {library.items:,}",
           ours.items == library.items)
    measured, _ = _flat(ours_small, ours)
    b.goal("evtx", "peak memory does not grow with file size", measured,
           ours.peak_mib <= ours_small.peak_mib * 1.25 + 16)
    if plaso:
        total = plaso[2]
        b.goal("evtx", "parse stage alone vs plaso log2timeline alone, CPU",
               f"{plaso[0].cpu / ours.cpu:.1f}x ({plaso[0].cpu:.1f}s vs {ours.cpu:.1f}s incl. start-up)",
               None)
        b.goal("evtx", ">= 20x plaso end to end, CPU (plaso CPU / inboxtrail run CPU)",
               f"{total.cpu / cli_row.cpu:.1f}x ({total.cpu:.1f}s vs {cli_row.cpu:.1f}s)",
               total.cpu / cli_row.cpu >= 20)
        b.goal("evtx", ">= 20x plaso end to end, wall (psort's 15 s sleep removed)",
               f"{total.seconds / cli_row.wall:.1f}x ({total.seconds:.1f}s vs {cli_row.wall:.1f}s)",
               total.seconds / cli_row.wall >= 20)


def stage_mbox(b: Bench) -> None:
    """Two profiles: short plain-text messages (per-message cost) and the realistic size mix."""
    _mbox_profile(b, inputs.make_mbox, "mbox", "short", mailbox_goal=False)
    # A pass over the realistic 200 MB takes ~0.4 CPU-s (7x fewer messages): repeated to >= 1 s wall.
    _mbox_profile(b, inputs.make_mbox_realistic, "realistic mbox", "realistic", min_seconds=1.0)


def _mbox_profile(b: Bench, make: Callable[[Path, int], inputs.MboxInput], kind: str, name: str,
                  min_seconds: float = 0.0, mailbox_goal: bool = True) -> None:
    """inboxtrail (parse, records.jsonl) and ``mailbox`` on one generated profile, its goals.

    ``kind`` names the input in the rows, ``name`` the profile in the goal lines; inboxtrail's
    passes repeat until ``min_seconds`` (the rates are per pass). ``mailbox_goal``: the "10x
    mailbox" ratio is a goal on this profile. The issue derives it from its 20k goal and
    ``mailbox`` at ~2k messages/s on ~35 KB messages (the realistic profile); on short messages
    ``mailbox`` is several times faster, so the ratio is printed there for information.
    """
    full = make(b.tmp / "spool-full", int(200 * MB * b.scale))
    quarter = make(b.tmp / "spool-quarter", int(50 * MB * b.scale))
    profile = f"{name}, {full.size / full.messages / 1e3:,.1f} KB/message"
    print(f"  generated {kind}: {full.messages:,} messages, {full.size / MB:,.0f} MB, "
          f"{full.size / full.messages / 1e3:,.1f} KB per message "
          f"(+ {quarter.messages:,} in {quarter.size / MB:,.0f} MB)", flush=True)
    common: dict[str, Any] = {"parser": "mbox", "count_type": "mail:mbox:message",
                              "source_path": "/home/alice/mbox"}
    if min_seconds:
        common["min_seconds"] = min_seconds
    out = str(b.tmp / "mbox-records.jsonl")
    label = f"{full.size / MB:,.0f} MB {kind}"
    small = b.add(_row("mbox", "inboxtrail mbox parse", f"{quarter.size / MB:,.0f} MB {kind}",
                       _workload("parse", path=str(quarter.path), **common), "messages", quarter.size))
    ours = b.add(_row("mbox", "inboxtrail mbox parse", label,
                      _workload("parse", path=str(full.path), **common), "messages", full.size))
    written = b.add(_row("mbox", "inboxtrail mbox -> records.jsonl", label,
                         _workload("parse", path=str(full.path), write=True, out=out, **common),
                         "messages", full.size))
    os.unlink(out)
    peer = b.add(_row("mbox", "python mailbox.mbox (full parse)", label,
                      _workload("mailbox", path=str(full.path)), "messages", full.size))
    counts = (full.messages, ours.items, written.items, peer.items)
    same = len(set(counts)) == 1 and quarter.messages == small.items
    if not same:
        b.failures.append(f"mbox ({profile}): message counts differ (generated, inboxtrail, jsonl, "
                          f"mailbox) = {counts}")
    b.goal("mbox", f"same messages found as Python's mailbox ({profile})",
           f"{ours.items:,} / {peer.items:,} (generated {full.messages:,})", same)
    b.goal("mbox", f">= 20k messages/s with headers ({profile})",
           f"{ours.cpu_rate:,.0f}/CPU-s, {ours.cpu_mb_per_s:,.0f} MB/CPU-s (wall {ours.rate:,.0f}/s); "
           f"to records.jsonl {written.cpu_rate:,.0f}/CPU-s", ours.cpu_rate >= 20_000)
    ratio = ours.cpu_rate / peer.cpu_rate
    b.goal("mbox", f">= 10x Python's mailbox ({profile})", f"{ratio:.1f}x CPU "
           f"(wall {ours.rate / peer.rate:.1f}x; mailbox {peer.cpu_rate:,.0f}/CPU-s, "
           f"{peer.cpu_mb_per_s:,.0f} MB/CPU-s)", ratio >= 10 if mailbox_goal else None)
    measured, flat = _flat(small, ours)
    b.goal("mbox", f"flat peak memory ({profile})", measured, flat)
    for item in (full, quarter):
        item.path.unlink()


def stage_history(b: Bench) -> None:
    full = inputs.make_history(b.tmp / "history-full", int(200 * MB * b.scale))
    quarter = inputs.make_history(b.tmp / "history-quarter", int(50 * MB * b.scale))
    print(f"  generated bash history: {full.lines:,} lines ({full.entries:,} commands), "
          f"{full.size / MB:,.0f} MB (+ {quarter.size / MB:,.0f} MB)", flush=True)
    common = {"parser": "bash_history", "count_type": "shell:", "source_path": "/home/alice/.bash_history"}
    rows = []
    for item in (quarter, full):
        m = _workload("parse", path=str(item.path), **common)
        label = f"{item.size / MB:,.0f} MB history"
        rows.append(b.add(_row("history", "inboxtrail bash_history parse", label, m, "lines",
                               item.size, items=item.lines,
                               note=f"{m.report.get('matching', 0):,} commands")))
    small, ours = rows
    lost = ours.extra.get("records", 0) < full.entries
    b.goal("history", "every command kept", f"{ours.extra.get('records', 0):,} records for "
           f"{full.entries:,} commands", not lost)
    b.goal("history", "lines/s on the history file", f"{ours.cpu_rate:,.0f} lines/CPU-s, "
           f"{ours.cpu_mb_per_s:,.1f} MB/CPU-s (wall {ours.rate:,.0f} lines/s)", None)
    measured, flat = _flat(small, ours)
    b.goal("history", "flat peak memory", measured, flat)
    for item in (full, quarter):
        item.path.unlink()


def _collected(bundle: Path) -> tuple[int, int, int]:
    """(bench files collected, bytes of every collected file, NTFS metadata files) of a bundle.

    NTFS's own metadata files (``$MFT``, ``$LogFile``...) are collected by ``/**`` too: their
    bytes count as work done, but not as files of the generated tree.
    """
    files = nbytes = metadata = 0
    with (bundle / "manifest.jsonl").open(encoding="utf-8") as handle:
        for line in handle:
            entry = json.loads(line)
            if entry.get("outcome") != "collected":
                continue
            nbytes += entry.get("size_read", entry.get("size")) or 0
            if str(entry.get("source_path", "")).startswith("/$"):
                metadata += 1
            else:
                files += 1
    return files, nbytes, metadata


def stage_collection(b: Bench) -> None:
    size = int(512 * MIB * b.scale)
    cases: list[tuple[str, Callable[..., inputs.ImageInput]]] = []
    if shutil.which("mke2fs") or Path("/usr/sbin/mke2fs").exists():
        cases.append(("ext4", inputs.make_ext4_image))
    else:
        b.failures.append("collection: mke2fs (e2fsprogs) not found")
    if inputs.ntfs_tools() is not None:
        cases.append(("NTFS", inputs.make_ntfs_image))
    else:
        b.failures.append("collection: mkntfs/ntfscp (ntfs-3g) not found; NTFS case skipped")
    # Nothing is deleted until every case is measured: on a journal-less ext4 (this VM's root)
    # the inode allocator walks past every inode freed in the last minutes, so removing the
    # 1,500-file staging tree just before the collection (which creates 1,500 files) would
    # charge the collector ~1 s of kernel time that has nothing to do with it.
    leftovers: list[Path] = []
    try:
        for kind, make in cases:
            staging = b.tmp / f"staging-{kind}"
            leftovers.append(staging)
            image = make(b.tmp / f"{kind}.raw", staging, size, keep_staging=True)
            leftovers.append(image.path)
            _collection_case(b, kind, image)
    finally:
        for path in leftovers:
            if path.is_dir():
                shutil.rmtree(path, ignore_errors=True)
            else:
                path.unlink(missing_ok=True)


def _collection_case(b: Bench, kind: str, image: inputs.ImageInput) -> None:
    label = f"{image.size / MIB:,.0f} MiB raw {kind}"
    print(f"  generated {label}: {image.files:,} files, {image.file_bytes / MB:,.0f} MB of file data",
          flush=True)
    hashed = b.add(_row("collection", "hashlib.sha256 over the whole image", label,
                        _workload("sha256", path=str(image.path)), "image", image.size, items=1))
    bundle = b.tmp / f"bundle-{kind}"
    m = _inboxtrail("collect", str(image.path), "--path", "/**", "-o", str(bundle))
    files, collected, metadata = _collected(bundle)
    extra = f", {metadata} NTFS metadata files" if metadata else ""
    ours = b.add(_row("collection", "inboxtrail collect --path '/**'", label, m, "files", collected,
                      items=files, seconds=m.wall,
                      note=f"{collected / MB:,.0f} MB of files copied+hashed{extra}, CPU {m.cpu:.1f}s"))
    inner = {}
    for hashes, name in ((("sha256", "md5"), "collector.collect (start-up excl.)"),
                         (("sha256",), "collector.collect, SHA-256 only")):
        out = b.tmp / f"bundle-{kind}-{len(hashes)}"
        w = _workload("collect", path=str(image.path), out=str(out), hashes=list(hashes))
        nbytes = w.report.get("bytes", 0)
        inner[hashes] = b.add(_row("collection", name, label, w, "files", nbytes,
                                   note=f"{nbytes / MB:,.0f} MB; in-process, its own CPU"))
    if files != image.files:
        b.failures.append(f"collection ({kind}): {files} files collected of {image.files} in the image")
    ratio = ours.mb_per_s / hashed.mb_per_s
    cpu_ratio = ours.cpu_mb_per_s / hashed.cpu_mb_per_s
    b.goal("collection", f">= 0.7x hashlib.sha256 MB/s (raw {kind})",
           f"{ratio:.2f}x wall ({ours.mb_per_s:,.0f} vs {hashed.mb_per_s:,.0f} MB/s); {cpu_ratio:.2f}x CPU "
           f"({ours.cpu_mb_per_s:,.0f} vs {hashed.cpu_mb_per_s:,.0f} MB/CPU-s); peak {ours.peak_mib:.0f} MiB",
           ratio >= 0.7)
    both, sha_only = inner[("sha256", "md5")], inner[("sha256",)]
    b.goal("collection", f"the same without start-up (in-process), SHA-256+MD5 / SHA-256 only ({kind})",
           f"{both.mb_per_s / hashed.mb_per_s:.2f}x / {sha_only.mb_per_s / hashed.mb_per_s:.2f}x wall "
           f"({both.mb_per_s:,.0f} / {sha_only.mb_per_s:,.0f} MB/s); "
           f"{both.cpu_mb_per_s / hashed.cpu_mb_per_s:.2f}x / "
           f"{sha_only.cpu_mb_per_s / hashed.cpu_mb_per_s:.2f}x CPU", None)
    b.goal("collection", f"every file collected ({kind})", f"{files:,} of {image.files:,}",
           files == image.files)


def stage_timeline(b: Bench) -> None:
    prepared, merged = [], []
    total = int(1_000_000 * b.scale)
    for count in (total // 4, total):
        folder = b.tmp / f"timeline-{count}"
        folder.mkdir()
        records = folder / "records.jsonl"
        made = inputs.make_records(records, count)
        label, size = f"{made:,} records", records.stat().st_size
        m = _workload("timeline", path=str(records), mode="prepare", attributes=inputs.RECORD_ATTRIBUTES)
        prepared.append(b.add(_row("timeline", "timeline.runs.prepare_runs (format+sort)", label, m, "rows",
                                   size, note=f"{m.report.get('runs')} runs, "
                                              f"{m.report.get('spilled_runs')} spilled; 1 process")))
        if count == total:
            m = _workload("timeline", path=str(records), mode="floor", out=str(folder / "floor.txt"))
            b.add(_row("timeline", "heapq.merge+writelines (floor)", label, m, "rows",
                       m.report.get("bytes", 0), note="same runs, one file, no split"))
            (folder / "floor.txt").unlink(missing_ok=True)
        m = _workload("timeline", path=str(records), mode="merge", out=str(folder / "out"))
        merged.append(b.add(_row("timeline", "timeline.build.build_timeline (merge)", label, m, "rows",
                                 m.report.get("bytes", 0), note="MB = the three files written")))
        if m.report.get("formatted") is not False:
            b.failures.append("timeline: build_timeline formatted again instead of merging the prepared runs")
        if count == total:  # without the prepared runs (and their disk space): pass 1 + format + merge
            shutil.rmtree(folder / "out", ignore_errors=True)
            shutil.rmtree(folder / "timeline.runs", ignore_errors=True)
            m = _workload("timeline", path=str(records), mode="reformat", out=str(folder / "out"))
            b.add(_row("timeline", "build_timeline --tz (format again)", label, m, "rows", size,
                       note=f"{m.report.get('spilled_runs', 0)} spilled runs; 1 process"))
        shutil.rmtree(folder, ignore_errors=True)
    small, large = merged
    b.goal("timeline", ">= 2M rows/s (final stage: merge of prepared runs)",
           f"{large.cpu_rate:,.0f} rows/CPU-s (wall {large.rate:,.0f}/s); formatting (parse stage, "
           f"parallel) {prepared[1].cpu_rate:,.0f} rows/CPU-s per process", large.cpu_rate >= 2_000_000)
    peak = max(row.peak_mib for row in (*prepared, *merged))
    b.goal("timeline", "< 100 MB peak", f"{peak:.0f} MiB (merge {large.peak_mib:.0f}, "
           f"format {prepared[1].peak_mib:.0f})", peak * MIB < 100 * MB)
    measured, flat = _flat(small, large)
    b.goal("timeline", "peak memory does not grow with rows", measured, flat)


def stage_run(b: Bench) -> None:
    image = ROOT / "images" / "linux-suspect.raw"
    label = f"images/linux-suspect.raw ({image.stat().st_size / MIB:.0f} MiB)"
    out = b.tmp / "run-out"
    m = _inboxtrail("run", str(image), "-o", str(out))
    rows = _csv_rows(out / "timeline.l2t.csv")
    ours = b.add(_row("run", "inboxtrail run (all artifacts)", label, m, "l2t rows", image.stat().st_size,
                      items=rows, seconds=m.wall, note=f"CPU {m.cpu:.1f}s"))
    shutil.rmtree(out, ignore_errors=True)
    if not (PLASO_BIN / "log2timeline").exists():
        b.failures.append(f"run: plaso not installed in {PLASO_BIN}")
        return
    plaso = _plaso("run", image, "text/bash_history,text/zsh_extended_history", b.tmp, label, image=True)
    for row in plaso:
        b.add(row)
    total = plaso[2]
    b.goal("run", ">= 20x faster than plaso, CPU seconds",
           f"{total.cpu / ours.cpu:.1f}x ({total.cpu:.1f}s vs {ours.cpu:.1f}s)", total.cpu / ours.cpu >= 20)
    b.goal("run", ">= 20x faster than plaso, wall (psort sleep removed)",
           f"{total.seconds / ours.wall:.1f}x ({total.seconds:.1f}s vs {ours.wall:.1f}s)",
           total.seconds / ours.wall >= 20)


STAGE_FUNCS: dict[str, Callable[[Bench], None]] = {
    "evtx": stage_evtx, "mbox": stage_mbox, "history": stage_history, "collection": stage_collection,
    "timeline": stage_timeline, "run": stage_run,
}


# -- output --------------------------------------------------------------------------------------

HEADER = (f"{'stage':10} {'measurement':38} {'input':28} {'items':>9} {'wall s':>7} {'CPU s':>7} "
          f"{'items/s':>9} {'items/CPUs':>10} {'MB/s':>6} {'MB/CPUs':>7} {'peak MiB':>8} {'load':>9}  "
          "unit; note")


def _print_row(row: Row) -> None:
    print(f"{row.stage:10} {row.name:38} {row.input:28} {row.items:>9,} {row.seconds:>7.2f} {row.cpu:>7.2f} "
          f"{row.rate:>9,.0f} {row.cpu_rate:>10,.0f} {row.mb_per_s:>6.0f} {row.cpu_mb_per_s:>7.0f} "
          f"{row.peak_mib:>8.0f} {row.load[0]:>4.1f}>{row.load[1]:<4.1f}  "
          f"{row.unit}{'; ' + row.note if row.note else ''}", flush=True)


def _print_goals(goals: list[Goal]) -> None:
    print("\ngoals")
    for goal in goals:
        mark = {True: "MET ", False: "MISS", None: "info"}[goal.met]
        print(f"  [{mark}] {goal.stage:10} {goal.text}: {goal.measured}")


def _terminate(signum: int, frame: object) -> None:
    raise SystemExit(f"terminated by signal {signum}")


def _compile_project() -> None:
    """Byte-compile inboxtrail's own modules, as pip does for an installed package.

    The peers (plaso, and every dependency) were installed by pip with their ``.pyc`` files; an
    editable checkout run with ``PYTHONDONTWRITEBYTECODE`` set would compile ~70 modules from
    source in every measured process (~0.1 s each), which is not what a user's install costs.
    """
    import compileall

    for package in ("collector", "parsers", "timeline", "inboxtrail"):
        compileall.compile_dir(str(ROOT / package), quiet=1)


def main(argv: list[str] | None = None) -> int:
    global REPEAT
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", help=f"comma-separated stages: {','.join(STAGES)}")
    parser.add_argument("--scale", type=float, default=1.0,
                        help="input size factor (mbox/history 200 MB x F, image 512 MiB x F, "
                             "timeline 1 M rows x F)")
    parser.add_argument("--json", type=Path, help="write every measurement and goal to this file")
    parser.add_argument("--corpus", type=Path, default=ROOT.parent / "shared" / "corpus",
                        help="the shared corpus (EVTX files)")
    parser.add_argument("--tmp", type=Path, help="where generated inputs go (default: system temp)")
    parser.add_argument("--repeat", type=int, default=REPEAT,
                        help=f"passes per measurement, the fastest kept (default {REPEAT}; at most "
                             f"{REPEAT_BUDGET_S:.0f} s of passes each)")
    args = parser.parse_args(argv)
    REPEAT = max(1, args.repeat)
    stages = [s.strip() for s in args.only.split(",")] if args.only else list(STAGES)
    unknown = [s for s in stages if s not in STAGE_FUNCS]
    if unknown:
        parser.error(f"unknown stage(s) {', '.join(unknown)}; choose from {', '.join(STAGES)}")
    _compile_project()
    started = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime())
    load = os.getloadavg()
    print(f"inboxtrail bench {started}, scale {args.scale:g}, {os.cpu_count()} CPUs, "
          f"load {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}, Python {platform.python_version()}")
    print("seconds: the measured loop (child's own timer) or wall for whole commands; CPU s: user+sys "
          "of the process tree; peak MiB: max RSS of the tree's largest process; load: 1-min load "
          "average before>after\n")
    print(HEADER, flush=True)
    signal.signal(signal.SIGTERM, _terminate)  # so the temporary inputs are removed
    with tempfile.TemporaryDirectory(prefix="inboxtrail-bench-", dir=args.tmp) as tmp:
        bench = Bench(Path(tmp), args.scale, args.corpus)
        for stage in stages:
            began = time.perf_counter()
            try:
                STAGE_FUNCS[stage](bench)
                print(f"  ({stage}: {time.perf_counter() - began:.0f} s including input generation)",
                      flush=True)
            except Exception as exc:  # one broken stage must not cost the others
                bench.failures.append(f"{stage}: {type(exc).__name__}: {exc}")
                print(f"{stage:10} FAILED: {exc}", flush=True)
    _print_goals(bench.goals)
    for failure in bench.failures:
        print(f"  [FAIL] {failure}")
    end_load = os.getloadavg()
    print(f"\nload average at the end: {end_load[0]:.2f} {end_load[1]:.2f} {end_load[2]:.2f}")
    if args.json:
        args.json.write_text(json.dumps({
            "started": started, "scale": args.scale, "cpus": os.cpu_count(), "load_start": load,
            "load_end": end_load,
            "rows": [{**asdict(r), "rate": r.rate, "cpu_rate": r.cpu_rate, "mb_per_s": r.mb_per_s,
                      "cpu_mb_per_s": r.cpu_mb_per_s} for r in bench.rows],
            "goals": [asdict(g) for g in bench.goals], "failures": bench.failures}, indent=2) + "\n")
    return 1 if bench.failures else 0


if __name__ == "__main__":
    sys.exit(main())
