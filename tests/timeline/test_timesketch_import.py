"""The Timesketch files pass Timesketch's own importer validation with every row kept."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from parsers.record import Provenance, Record
from timeline.build import build_timeline

utils = pytest.importorskip("timesketch.lib.utils", reason="timesketch (test extra) not installed")


def _rows_csv(path: Path) -> list[dict]:
    with path.open("r", encoding="utf-8") as handle:
        return list(utils.read_and_validate_csv(handle))


def _rows_jsonl(path: Path) -> list[dict]:
    with path.open("r", encoding="utf-8") as handle:
        return list(utils.read_and_validate_jsonl(handle))


def test_reference_run_validates_with_every_row(linux_run: Path):
    lines = (linux_run / "timeline.jsonl").read_text(encoding="utf-8").splitlines()
    csv_rows = _rows_csv(linux_run / "timeline.csv")
    jsonl_rows = _rows_jsonl(linux_run / "timeline.jsonl")
    assert len(csv_rows) == len(jsonl_rows) == len(lines) > 100
    tagged = [r for r in csv_rows if r["tag"]]
    assert tagged and all(isinstance(r["tag"], list) for r in csv_rows)
    assert not any("nan" in r["tag"] for r in csv_rows)
    assert {tuple(r["tag"]) for r in tagged} == {tuple(r["tag"]) for r in jsonl_rows if r["tag"]}
    for csv_row, json_row in zip(csv_rows, jsonl_rows, strict=True):
        assert csv_row["timestamp"] == json_row["timestamp"]
        assert csv_row["message"] == json_row["message"]


def _record(message: str, attributes: dict, order: int, timestamps: dict | None = None) -> Record:
    return Record(data_type="shell:bash:command", message=message,
                  provenance=Provenance(bundle_path="files/x", source_path="/home/x/.bash_history",
                                        sha256="0" * 64, filesystem="p1"),
                  parser="bash_history", order=order,
                  timestamps=timestamps if timestamps is not None
                  else {"Command Executed Time": 1_700_000_000_000_000 + order},
                  attributes=attributes, tags=("T1070.008", "rule_x") if order % 2 else ())


def test_hostile_values_survive_both_formats(tmp_path: Path):
    nasty = [
        'line one\nline two, with "quotes" and, commas',
        "=cmd|' /C calc'!A0",
        "tab\there; semi; \r carriage",
        "unicode ✓ Ünïcödé \u2028 separator",
        "x" * 40_000,
    ]
    records = [_record(text, {"command": text, "nested": {"a": [1, 2]}, "items": ["a", "b"]}, i)
               for i, text in enumerate(nasty)]
    records.append(_record("undated", {"command": "undated"}, 99, timestamps={}))
    source = tmp_path / "records.jsonl"
    source.write_text("".join(r.to_json() + "\n" for r in records), encoding="utf-8")
    result = build_timeline([source], tmp_path)
    assert result["rows"] == len(records)
    csv_rows = _rows_csv(tmp_path / "timeline.csv")
    jsonl_rows = _rows_jsonl(tmp_path / "timeline.jsonl")
    assert len(csv_rows) == len(jsonl_rows) == len(records)
    by_order = {r["message"]: r for r in jsonl_rows}
    for text in nasty:
        assert by_order[text]["command"] == text
    assert by_order["undated"]["timestamp_desc"] == "Time not known"
    assert by_order["undated"]["datetime"] == "1970-01-01T00:00:00.000000+00:00"
    assert json.loads(json.dumps(by_order[nasty[0]]["nested"])) == '{"a": [1, 2]}'
    assert by_order[nasty[0]]["items"] == ["a", "b"]
