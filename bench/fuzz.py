"""Fuzz every parser (or some) for a set time with random seeds; crashes are saved as reproducers.

    .venv/bin/python bench/fuzz.py --seconds 300                 # all parsers, time shared
    .venv/bin/python bench/fuzz.py --seconds 60 --parser mbox    # one parser (or target)
    .venv/bin/python bench/fuzz.py --replay fuzz-crashes/mbox-0123abcd4567.bin
    .venv/bin/python bench/fuzz.py --full-size                   # issue 9's full-size inputs

The harness is ``tests/fuzz/harness.py`` (the same mutations and contract as the short fixed run
in the test suite, here with random seeds and longer lines). Every contract violation (exception,
hang, memory, bad record) is minimised, written to ``--out`` as ``<target>-<hash>.bin`` with a
``.txt`` note, and printed. A hang inside C or Rust code, which no Python timer can interrupt, is
caught by a faulthandler watchdog: the process exits with a traceback and the input in flight is
already on disk as ``in-flight-<target>.bin``. Inputs of known hangs (``harness.known_hang``) are
counted, not run.

``--full-size`` runs the issue's huge inputs at full size, each in a fresh process (so that its peak
RSS is its own): a 2 GB single-line history for every line-based parser, a 10 GB sparse mbox,
1 GB single-line M365 CSV and JSON exports and a 1 GB Mork value. None is held in memory or
written out (lazy file objects; the mbox is sparse). The test suite runs the same cases at
50 MB-1 GB (tests/fuzz/test_hostile_inputs.py); this prints CPU seconds, peak RSS, records and
the first warning of each, and fails when a case raises or its peak RSS passes ``--max-rss``.
"""

from __future__ import annotations

import argparse
import faulthandler
import io
import json
import random
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from hypothesis import HealthCheck, Phase, given, settings  # noqa: E402
from hypothesis import seed as hypothesis_seed  # noqa: E402

from bench.measure import own_peak_rss_mib  # noqa: E402
from tests.fuzz import harness  # noqa: E402


class _TimeUp(BaseException):
    """Ends one target's Hypothesis loop when its time slice is over."""


def minimise(target: harness.Target, data: bytes, kind: str, budget: float, time_limit: float) -> bytes:
    """Shrink ``data`` by removing chunks while the same kind of violation persists (≤ ``budget`` s)."""
    deadline = time.monotonic() + budget

    def still_fails(candidate: bytes) -> bool:
        if harness.known_hang(target, candidate):
            return False
        try:
            harness.check(target, candidate, seconds=time_limit)
        except harness.ContractViolation as violation:
            return violation.kind == kind
        return False

    size = max(1, len(data) // 2)
    while size >= 1 and time.monotonic() < deadline:
        start, shrunk = 0, False
        while start < len(data) and time.monotonic() < deadline:
            candidate = data[:start] + data[start + size:]
            if still_fails(candidate):
                data, shrunk = candidate, True
            else:
                start += size
        if not shrunk:
            size //= 2
    return data


def fuzz_target(target: harness.Target, seconds: float, args: argparse.Namespace,
                stats: Counter, crashes: list[str]) -> None:
    seeds = target.seeds()
    if not seeds:
        print(f"{target.name}: no seeds (is ../shared/corpus present?), skipped")
        return
    deadline = time.monotonic() + seconds
    in_flight = args.out / f"in-flight-{target.name}.bin"
    args.out.mkdir(parents=True, exist_ok=True)
    strategy = harness.manifest_entries() if target.parser == "filestat" else \
        harness.mutated(target, seeds, huge=args.huge)

    @hypothesis_seed(args.seed if args.seed is not None else random.getrandbits(64))
    @settings(max_examples=10**9, deadline=None, database=None, phases=[Phase.generate],
              suppress_health_check=list(HealthCheck), derandomize=False)
    @given(value=strategy)
    def run(value: object) -> None:
        if time.monotonic() > deadline:
            raise _TimeUp
        entry = value if target.parser == "filestat" else None
        data = b"" if target.parser == "filestat" else value
        assert isinstance(data, bytes)
        stats[f"{target.name}:inputs"] += 1
        reason = harness.known_hang(target, data)
        if reason:
            stats[f"{target.name}:known_hangs"] += 1
            return
        in_flight.write_bytes(data)
        faulthandler.dump_traceback_later(args.time_limit * 3 + 5, exit=True)
        try:
            outcome = harness.check(target, data, entry=entry, seconds=args.time_limit)
            stats[f"{target.name}:records"] += outcome.records
        except harness.ContractViolation as violation:
            faulthandler.cancel_dump_traceback_later()
            stats[f"{target.name}:crashes"] += 1
            small = data  # a hang would take the time limit per attempt to minimise
            if entry is None and violation.kind != "hang":
                small = minimise(target, data, violation.kind, args.minimise, args.time_limit)
            path = harness.write_reproducer(args.out, target, small, violation, entry)
            crashes.append(f"{violation.kind} in {target.name}: {path} ({len(small)} bytes)")
            print(f"CRASH {violation}\n  -> {path} ({len(small)} bytes, from {len(data)})", flush=True)
        finally:
            faulthandler.cancel_dump_traceback_later()

    try:
        run()
    except _TimeUp:
        pass
    in_flight.unlink(missing_ok=True)


def replay(path: Path, args: argparse.Namespace) -> int:
    stem = path.name.removesuffix(".bin")
    # <target>-<hash>.bin as saved, or in-flight-<target>.bin left by the hang watchdog
    from_name = stem.removeprefix("in-flight-") if stem.startswith("in-flight-") else stem.rsplit("-", 1)[0]
    name = args.parser[0] if args.parser else from_name
    target = harness.TARGETS_BY_NAME[name]
    data = path.read_bytes()
    reason = harness.known_hang(target, data)
    if reason:
        print(f"known hang: {reason} (running it anyway; Ctrl-C to stop)")
    try:
        outcome = harness.check(target, data, seconds=args.time_limit)
    except harness.ContractViolation as violation:
        print(f"FAIL {violation}")
        return 1
    print(f"ok: {outcome}")
    return 0


# -- full-size huge inputs ---------------------------------------------------------------------------
GB = 1_000_000_000
_UAL_CSV = (b'CreationDate,UserIds,Operations,AuditData\n2023-09-19T08:00:00,a@b.c,HardDelete,'
            b'"{""CreationTime"":""2023-09-19T08:15:41"",""Operation"":""HardDelete"",""Workload"":""Exchange"",""UserId"":""a@b.c"",'
            b'""AffectedItems"":[{""Subject"":""')
_UAL_CSV_TAIL = (b'""}]}"\n2023-09-19T08:01:00,a@b.c,SoftDelete,"{""CreationTime"":""2023-09-19T08:16:00"",'
                 b'""Operation"":""SoftDelete"",""Workload"":""Exchange""}"\n')
_UAL_JSON = (b'[{"CreationTime":"2023-09-19T08:15:41","Operation":"HardDelete","Workload":"Exchange",'
             b'"UserId":"a@b.c","AffectedItems":[{"Subject":"')
_UAL_JSON_TAIL = (b'"}]},\n{"CreationTime":"2023-09-19T08:16:00","Operation":"SoftDelete",'
                  b'"Workload":"Exchange"}]\n')


def huge_cases() -> dict[str, tuple[str, int]]:
    """Case name -> (target, size in bytes)."""
    from tests.fuzz.test_hostile_inputs import LINE_HEADS

    cases = {f"2GB-line:{name}": (name, 2 * GB) for name in LINE_HEADS}
    cases.update({"10GB-sparse-mbox": ("mbox", 10 * GB), "1GB-line:m365-csv": ("m365_ual", GB),
                  "1GB-line:m365-json": ("m365_ual", GB), "1GB-value:mork": ("thunderbird_msf", GB)})
    return cases


def run_huge_case(name: str) -> dict[str, object]:
    """Parse one huge input in this process; return what it gave and what it cost."""
    from tests.fuzz.streams import lazy_reader
    from tests.fuzz.test_hostile_inputs import LINE_HEADS

    target_name, size = huge_cases()[name]
    target = harness.TARGETS_BY_NAME[target_name]
    ctx = target.context()
    started = time.process_time()
    records = 0
    with tempfile.TemporaryDirectory(prefix="fuzz-huge-") as tmp:
        if name == "1GB-value:mork":
            from parsers.mork import read_mork

            head = (b'// <!-- <mdb:mork:z v="1.4"/> -->\n< <(a=c)> (80=ns:s)(81=subject)(82=k:msgs)>\n'
                    b'{1:^80 {(k^82:c)} [1(^81=')
            db = read_mork(lazy_reader(head, size, b")] [2(^81=after)]}\n", fill=b"\xff"))
            records = len(db.rows)
            warnings = [f"{db.cut_values} value(s) cut, first at offset {db.first_cut_offset}"]
        else:
            if name == "10GB-sparse-mbox":
                path = Path(tmp) / "alice"
                with path.open("wb") as out:
                    out.write(b"From bob@example.org Mon Oct 12 14:40:01 2026\nSubject: hi\n\nbody\n")
                    out.truncate(size)
                handle: io.BufferedIOBase = path.open("rb")
            elif name == "1GB-line:m365-csv":
                handle = lazy_reader(_UAL_CSV, size, _UAL_CSV_TAIL, fill=b"x")
            elif name == "1GB-line:m365-json":
                handle = lazy_reader(_UAL_JSON, size, _UAL_JSON_TAIL, fill=b"x")
            else:
                handle = lazy_reader(LINE_HEADS[target_name], size, b"\nls\n")
            with handle:
                for _ in target.parser_cls().parse(handle, ctx):
                    records += 1
            warnings = [f"{w['message']} (offset {w['offset']})" for w in ctx.warnings]
    return {"case": name, "size": size, "cpu_s": round(time.process_time() - started, 1),
            "peak_rss_mib": own_peak_rss_mib(),
            "records": records, "warnings": len(warnings), "first_warning": warnings[0] if warnings else ""}


def run_huge(args: argparse.Namespace) -> int:
    """Each huge case in its own process; a table of CPU time and peak RSS."""
    names = [n for n in huge_cases() if not args.parser or any(p in n for p in args.parser)]
    failed = 0
    print(f"{'case':34} {'size':>14} {'CPU s':>7} {'peak RSS':>9} {'records':>8}  first warning")
    for name in names:
        done = subprocess.run([sys.executable, __file__, "--huge-case", name], capture_output=True, text=True,
                              cwd=ROOT)
        if done.returncode != 0:
            failed += 1
            print(f"{name:34} FAILED\n{done.stderr[-2000:]}")
            continue
        row = json.loads(done.stdout.strip().splitlines()[-1])
        over = row["peak_rss_mib"] > args.max_rss
        failed += over
        print(f"{name:34} {row['size']:14,} {row['cpu_s']:7} {row['peak_rss_mib']:6} MiB {row['records']:8}  "
              f"{row['first_warning'][:90]}{'  OVER --max-rss' if over else ''}", flush=True)
    return 1 if failed else 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=60.0, help="total fuzzing time (default 60)")
    parser.add_argument("--parser", action="append", help="a parser or target name (repeatable)")
    parser.add_argument("--out", type=Path, default=Path("fuzz-crashes"), help="reproducer folder")
    parser.add_argument("--seed", type=int, help="Hypothesis seed (default: random)")
    parser.add_argument("--time-limit", type=float, default=harness.TIME_LIMIT, help="seconds per input")
    parser.add_argument("--huge", type=int, default=8 << 20, help="length of generated long lines")
    parser.add_argument("--minimise", type=float, default=30.0, help="seconds to minimise each crash")
    parser.add_argument("--replay", type=Path, help="run one saved input and print the outcome")
    parser.add_argument("--full-size", action="store_true", help="run the full-size huge inputs of issue 9")
    parser.add_argument("--max-rss", type=int, default=200, help="--full-size: peak RSS bound in MiB")
    parser.add_argument("--huge-case", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.huge_case:
        print(json.dumps(run_huge_case(args.huge_case)))
        return 0
    if args.full_size:
        return run_huge(args)
    if args.replay:
        return replay(args.replay, args)
    names = args.parser or [t.name for t in harness.TARGETS]
    targets = [t for t in harness.TARGETS if t.name in names or t.parser in names]
    unknown = set(names) - {t.name for t in targets} - {t.parser for t in targets}
    if unknown or not targets:
        parser.error(f"unknown parser/target {sorted(unknown)}; known: {sorted(harness.TARGETS_BY_NAME)}")
    stats: Counter = Counter()
    crashes: list[str] = []
    started = time.monotonic()
    slice_seconds = max(1.0, min(30.0, args.seconds / len(targets)))
    while time.monotonic() - started < args.seconds:
        for target in targets:
            left = args.seconds - (time.monotonic() - started)
            if left <= 0:
                break
            fuzz_target(target, min(slice_seconds, left), args, stats, crashes)
    print(f"\n{'target':28} {'inputs':>8} {'records':>9} {'crashes':>8} {'known hangs':>12}")
    for target in targets:
        name = target.name
        print(f"{name:28} {stats[name + ':inputs']:8} {stats[name + ':records']:9} "
              f"{stats[name + ':crashes']:8} {stats[name + ':known_hangs']:12}")
    peak = own_peak_rss_mib()
    print(f"\n{sum(v for k, v in stats.items() if k.endswith(':inputs'))} inputs in "
          f"{time.monotonic() - started:.0f} s, peak RSS {peak} MB")
    for line in crashes:
        print("CRASH", line)
    return 1 if crashes else 0


if __name__ == "__main__":
    sys.exit(main())
