"""SIGINT/SIGTERM at any point: nothing half-written, the report says where, a re-run completes."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from collector import bundle as bundle_module
from inboxtrail.cli import main
from parsers import bash_history
from tests.conftest import LINUX_IMAGE, ROOT


def _leftovers(out: Path) -> list[Path]:
    return [p for p in out.rglob("*") if p.name.endswith(".part") or p.name.startswith(".parse.")]


def test_interrupt_during_collection(tmp_path, monkeypatch):
    original = bundle_module.BundleWriter.add_file
    calls = {"n": 0}

    def flaky(self, entry, ctx):
        calls["n"] += 1
        if calls["n"] == 4:
            raise KeyboardInterrupt
        return original(self, entry, ctx)

    monkeypatch.setattr(bundle_module.BundleWriter, "add_file", flaky)
    out = tmp_path / "out"
    assert main(["-q", "run", str(LINUX_IMAGE), "-o", str(out)]) == 130
    report = json.loads((out / "bundle" / "report.json").read_text())
    assert report["interrupted"] is True and report["interrupted_at"].startswith("collect: p1:")
    lines = (out / "bundle" / "manifest.jsonl").read_text().splitlines()
    assert all(json.loads(line)["outcome"] for line in lines)  # only complete lines
    assert not (out / "records.jsonl").exists() and not (out / "timeline.csv").exists()
    assert not _leftovers(out)
    monkeypatch.setattr(bundle_module.BundleWriter, "add_file", original)
    assert main(["-q", "run", str(LINUX_IMAGE), "-o", str(out)]) == 0
    assert json.loads((out / "bundle" / "report.json").read_text())["interrupted"] is False


def test_interrupt_during_parse_keeps_previous_outputs(tmp_path, monkeypatch):
    out = tmp_path / "out"
    assert main(["-q", "run", str(LINUX_IMAGE), "-o", str(out)]) == 0
    before = (out / "timeline.csv").read_bytes()

    def boom(*args, **kwargs):
        raise KeyboardInterrupt
        yield  # pragma: no cover

    monkeypatch.setattr(bash_history.BashHistoryParser, "parse", boom)
    assert main(["-q", "run", str(LINUX_IMAGE), "--workers", "1", "-o", str(out)]) == 130
    report = json.loads((out / "bundle" / "report.json").read_text())
    assert report["interrupted"] is True and report["interrupted_at"].startswith("parse stage")
    assert (out / "timeline.csv").read_bytes() == before  # the old complete file, not half a new one
    assert not _leftovers(out)


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")
def test_real_sigterm(tmp_path):
    folder = tmp_path / "loose"
    folder.mkdir()
    for i in range(3000):
        (folder / f"h{i:05d}.bash_history").write_text(f"#179190{i:04d}\nls /var/mail/u{i}\n" * 20)
    out = tmp_path / "out"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    process = subprocess.Popen([sys.executable, "-m", "inboxtrail", "-q", "run", str(folder), "-o", str(out)],
                               env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 60
    files = out / "bundle" / "files"
    while time.monotonic() < deadline and process.poll() is None:
        if files.is_dir() and sum(1 for _ in files.rglob("*")) > 200:
            break
        time.sleep(0.02)
    if process.poll() is not None:
        pytest.skip("the run finished before it could be interrupted")
    process.send_signal(signal.SIGTERM)
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == 130, stderr
    assert b"interrupted" in stderr and b"Traceback" not in stderr
    report = json.loads((out / "bundle" / "report.json").read_text())
    assert report["interrupted"] is True
    assert not _leftovers(out)
