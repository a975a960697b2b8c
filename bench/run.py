"""inboxtrail benchmarks: one command, throughput and peak memory per stage, next to a peer.

    .venv/bin/python bench/run.py            # default sizes (~1 minute)
    .venv/bin/python bench/run.py --scale 5  # bigger inputs

Each measurement runs in its own process so that its peak RSS is its own.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import mailbox
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def _make_mbox(path: Path, messages: int) -> None:
    with path.open("wb") as out:
        for i in range(messages):
            out.write(
                f"From sender{i % 97}@example.org Mon Oct  5 09:{i % 60:02d}:44 2026\n"
                f"Return-Path: <sender{i % 97}@example.org>\nDelivered-To: alice@corp.example\n"
                f"Received: from relay.example.org by mailhost.corp.example; Mon, 5 Oct 2026 09:12:44 +0000\n"
                f"Date: Mon, 5 Oct 2026 09:12:40 +0000\nFrom: Sender <sender{i % 97}@example.org>\n"
                f"To: alice@corp.example\nSubject: report {i}\nMessage-ID: <{i}@example.org>\n"
                f"Status: RO\n\n".encode() + (b"body line of a message, some text here\n" * 40) + b"\n")


def _make_history(path: Path, lines: int) -> None:
    with path.open("w") as out:
        for i in range(lines):
            out.write(f"#{1791900000 + i}\nls -la /var/mail && grep -c From /var/mail/user{i % 50}\n")


def _child(kind: str, path: str) -> dict:
    """Runs inside the measuring subprocess."""
    from parsers.base import ParseContext
    from parsers.bash_history import BashHistoryParser
    from parsers.mbox import MboxParser
    from parsers.record import Provenance

    ctx = ParseContext(provenance=Provenance(bundle_path=None, source_path=path, sha256=None))
    start = time.perf_counter()
    count = 0
    if kind == "mbox":
        with open(path, "rb") as handle:
            count = sum(1 for _ in MboxParser().parse(handle, ctx))
    elif kind == "mailbox":
        count = sum(1 for _ in mailbox.mbox(path, create=False).itervalues())
    elif kind == "bash":
        with open(path, "rb") as handle:
            count = sum(1 for _ in BashHistoryParser().parse(handle, ctx))
    elif kind == "sha256":
        digest = hashlib.sha256()
        with open(path, "rb") as handle:
            while chunk := handle.read(1 << 20):
                digest.update(chunk)
        count = os.path.getsize(path)
    elif kind == "run":
        from inboxtrail.cli import main

        with tempfile.TemporaryDirectory() as out:
            main(["--quiet", "run", path, "-o", os.path.join(out, "o")])
            count = os.path.getsize(path)
    elapsed = time.perf_counter() - start
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {"kind": kind, "count": count, "seconds": elapsed, "peak_mib": peak}


def _measure(kind: str, path: Path) -> dict:
    out = subprocess.run([sys.executable, __file__, "--child", kind, str(path)],
                         capture_output=True, text=True, check=True)
    return json.loads(out.stdout)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--scale", type=float, default=1.0)
    parser.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(_child(*args.child)))
        return
    with tempfile.TemporaryDirectory() as tmp:
        mbox_path = Path(tmp) / "spool.mbox"
        _make_mbox(mbox_path, int(50_000 * args.scale))
        history_path = Path(tmp) / "bash_history"
        _make_history(history_path, int(500_000 * args.scale))
        size_mb = mbox_path.stat().st_size / 1e6
        rows = [
            ("mbox: inboxtrail", _measure("mbox", mbox_path), "messages", size_mb),
            ("mbox: python mailbox", _measure("mailbox", mbox_path), "messages", size_mb),
            ("bash history: inboxtrail", _measure("bash", history_path), "lines",
             history_path.stat().st_size / 1e6),
        ]
        image = ROOT / "images" / "linux-suspect.raw"
        rows.append(("run on reference image", _measure("run", image), "bytes", image.stat().st_size / 1e6))
        rows.append(("hashlib sha256 of image", _measure("sha256", image), "bytes",
                     image.stat().st_size / 1e6))
    print(f"{'benchmark':28} {'items':>10} {'items/s':>12} {'MB/s':>8} {'peak MiB':>9}")
    for name, result, unit, megabytes in rows:
        rate = result["count"] / result["seconds"] if result["seconds"] else 0
        print(f"{name:28} {result['count']:>10} {rate:>12,.0f} {megabytes / result['seconds']:>8.1f} "
              f"{result['peak_mib']:>9.1f}  ({unit})")


if __name__ == "__main__":
    main()
