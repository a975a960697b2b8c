"""Timeline options: time window, evidence-only, several runs merged, duplicates, run sizes."""

from __future__ import annotations

import csv
import json
from pathlib import Path

from collector.timeutil import parse_iso
from inboxtrail.cli import main
from timeline import sort as sort_module
from timeline.build import TimelineOptions, build_timeline


def _rows(path: Path) -> list[dict]:
    with path.open(newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def test_since_until_window(linux_run, tmp_path):
    options = TimelineOptions(since=parse_iso("2026-10-12T14:00:00+00:00"),
                              until=parse_iso("2026-10-12T15:00:00+00:00"))
    build_timeline([linux_run / "records.jsonl"], tmp_path, options=options)
    rows = _rows(tmp_path / "timeline.csv")
    assert rows and all(r["datetime"].startswith("2026-10-12T14") for r in rows)
    assert any(r["message"] == "sudo rm /var/mail/carol" for r in rows)


def test_evidence_only_keeps_tagged_rows_and_their_context(linux_run, tmp_path):
    assert main(["-q", "timeline", str(linux_run), "--evidence-only", "--context-minutes", "1",
                 "-o", str(tmp_path)]) == 0
    rows = _rows(tmp_path / "timeline.csv")
    tagged = [r for r in rows if json.loads(r["tag"])]
    assert len(tagged) >= 5
    window = 60 * 1_000_000
    tagged_times = [int(r["timestamp"]) for r in tagged]
    for row in rows:
        assert json.loads(row["tag"]) or any(abs(int(row["timestamp"]) - t) <= window for t in tagged_times)
    everything = _rows(linux_run / "timeline.csv")
    assert len(rows) < len(everything)


def test_merging_runs_drops_exact_duplicates(linux_run, tmp_path):
    result = build_timeline([linux_run / "records.jsonl", linux_run / "records.jsonl"], tmp_path)
    assert result["duplicates"] == result["rows"]
    assert (tmp_path / "timeline.csv").read_bytes() == (linux_run / "timeline.csv").read_bytes()


def test_spilled_runs_give_the_same_bytes(linux_run, tmp_path, monkeypatch):
    monkeypatch.setattr(sort_module, "DEFAULT_RUN_ROWS", 7)  # many tiny sorted runs on disk
    assert build_timeline([linux_run / "records.jsonl"], tmp_path)["spilled_runs"] > 10
    for name in ("timeline.csv", "timeline.jsonl", "timeline.l2t.csv"):
        assert (tmp_path / name).read_bytes() == (linux_run / name).read_bytes(), name
