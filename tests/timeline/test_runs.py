"""Prepared runs: the parse stage formats rows once, the timeline stage merges them.

Whether the rows come from the prepared runs or are formatted again from ``records.jsonl`` (stale
runs, ``--tz``, several workers), the three files must be the same bytes.
"""

from __future__ import annotations

import csv
import json
import os
from pathlib import Path

import pytest

from collector.timeutil import parse_iso
from inboxtrail.cli import main
from parsers.record import Provenance, Record, loads_record
from timeline import runs as runs_module
from timeline import sort as sort_module
from timeline.build import TimelineOptions, build_timeline
from timeline.l2tcsv import header_line
from timeline.lines import ESCAPED, SEP, LineFormatter, unescape
from timeline.runs import RUNS_DIR, load_runs, prepare_runs, remove_runs, scan
from timeline.timesketch import csv_header

FILES = ("timeline.csv", "timeline.jsonl", "timeline.l2t.csv")
BASE = 1_791_900_000_000_000  # 2026-10-13T14:00:00Z


def _records() -> list[Record]:
    """Two sources, hostile values, several times per record, an undated and a pre-1970 record."""
    records = []
    for source in ("/home/a/.bash_history", "/home/b/.bash_history"):
        for order in range(40):
            message = f"cmd {order} on {source}"
            if order == 3:
                message = "line one\nline two, with \"quotes\"\x00 and a NUL"
            records.append(Record(
                data_type="shell:bash:command", message=message, parser="bash_history", order=order,
                provenance=Provenance(bundle_path=f"files/p1{source}", source_path=source, sha256="ab" * 32,
                                      filesystem="p1", offset=order * 10),
                timestamps={"Command Executed Time": BASE + (order % 7) * 1_000_000},
                attributes={"command": message, "big": 2**70 if order == 5 else order, "items": ["x", "y"]},
                host="h1", user=source.split("/")[2], tags=("T1070.008",) if order == 9 else ()))
    records.append(Record(
        data_type="mail:mbox:message", message="three times, one shared", parser="mbox", order=0,
        provenance=Provenance(bundle_path="files/p1/var/mail/a", source_path="/var/mail/a", sha256=None),
        timestamps={"Envelope Time": BASE, "Received Time": BASE, "Sent Time\n(Date header)": BASE - 5},
        attributes={"subject": "caf\udce9 =cmd", "nested": {"k": [1, 2]}}, host="h1"))
    records.append(Record(data_type="shell:bash:command", message="undated", parser="bash_history", order=99,
                          provenance=Provenance(bundle_path=None, source_path="/x", sha256=None)))
    records.append(Record(data_type="fs:stat", message="old", parser="filestat", order=0,
                          provenance=Provenance(bundle_path=None, source_path="/old", sha256=None),
                          timestamps={"Content Modification Time": -86_400_000_001}))
    return records


@pytest.fixture()
def records_file(tmp_path: Path) -> Path:
    path = tmp_path / "case" / "records.jsonl"
    path.parent.mkdir()
    path.write_bytes(b"".join(r.to_json_bytes() + b"\n" for r in _records()))
    return path


def _names() -> set[str]:
    return {name for r in _records() for name in r.attributes}


def _bytes(folder: Path) -> dict[str, bytes]:
    return {name: (folder / name).read_bytes() for name in FILES}


def test_prepared_runs_give_the_same_files_as_formatting_again(records_file, tmp_path):
    prepared = prepare_runs(records_file, _names(), workers=1)
    assert prepared["rows"] == sum(max(1, len(r.timestamps)) for r in _records())
    fast = build_timeline([records_file], tmp_path / "fast", quiet=True)
    assert fast["formatted"] is False and fast["rows"] == prepared["rows"]
    remove_runs(records_file)
    assert not (records_file.parent / RUNS_DIR).exists()
    slow = build_timeline([records_file], tmp_path / "slow", quiet=True, workers=3)
    assert slow["formatted"] is True
    assert _bytes(tmp_path / "fast") == _bytes(tmp_path / "slow")

    with (tmp_path / "fast" / "timeline.csv").open(newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    hostile = next(r for r in rows if r["message"].startswith("line one"))
    assert hostile["message"] == "line one\nline two, with \"quotes\"\x00 and a NUL"  # raw in Timesketch CSV
    jsonl = [json.loads(line) for line in (tmp_path / "fast" / "timeline.jsonl").read_text().splitlines()]
    assert [r["big"] for r in jsonl if r.get("big", 0) > 2**64] == [2**70] * 2  # exact, not floats
    mail = [r for r in jsonl if r["data_type"] == "mail:mbox:message"]
    descriptions = [r["timestamp_desc"] for r in mail]
    assert descriptions == ["Sent Time\n(Date header)", "Envelope Time", "Received Time"]
    assert mail[0]["subject"] == "caf\\xe9 =cmd" and mail[0]["nested"] == '{"k": [1, 2]}'
    assert [r["datetime"] for r in jsonl[:2]] == ["1969-12-30T23:59:59.999999+00:00",  # before 1970
                                                  "1970-01-01T00:00:00.000000+00:00"]  # undated
    l2t = (tmp_path / "fast" / "timeline.l2t.csv").read_text(encoding="utf-8").splitlines()
    # One l2t line per MACB group: the mbox message's envelope and received times share one.
    assert len(l2t) == 1 + len(rows) - 1
    shared = next(line for line in l2t if "Envelope Time; Received Time" in line)
    assert shared.split(",")[3] == "...."
    nul = next(line for line in l2t if "line one" in line)
    assert "line one line two  with" in nul and "\x00" in nul  # one line; commas and breaks are spaces


def test_parallel_tasks_give_the_same_files(records_file, tmp_path, monkeypatch):
    """Formatting in a pool of processes, one small task each (the parse stage's case), changes no byte."""
    monkeypatch.setattr(runs_module, "MIN_CHUNK_BYTES", 1)
    monkeypatch.setattr(runs_module, "CHUNK_BYTES", 3000)
    assert len(runs_module.plan_tasks([records_file], 2)) == runs_module.MAX_TASKS  # capped
    monkeypatch.setattr(runs_module, "MAX_TASKS", 64)
    assert len(runs_module.plan_tasks([records_file], 2)) > 8
    assert len(runs_module.plan_tasks([records_file], 1)) == 1  # in this process: few, large tasks
    prepared = prepare_runs(records_file, _names(), workers=2)
    assert prepared["runs"] > 8
    parallel = build_timeline([records_file], tmp_path / "parallel", quiet=True)
    assert parallel["formatted"] is False
    remove_runs(records_file)
    build_timeline([records_file], tmp_path / "serial", quiet=True)
    assert _bytes(tmp_path / "parallel") == _bytes(tmp_path / "serial")


def test_stale_or_foreign_runs_are_not_merged(records_file, tmp_path):
    prepare_runs(records_file, _names())
    extra = Record(data_type="shell:bash:command", message="added later", parser="bash_history", order=0,
                   provenance=Provenance(bundle_path=None, source_path="/later", sha256=None),
                   timestamps={"Command Executed Time": BASE})
    with records_file.open("ab") as handle:
        handle.write(extra.to_json_bytes() + b"\n")
    assert load_runs(records_file) is None
    result = build_timeline([records_file], tmp_path / "out", quiet=True)
    assert result["formatted"] is True
    assert "added later" in (tmp_path / "out" / "timeline.csv").read_text(encoding="utf-8")


def test_window_on_prepared_runs_equals_window_when_formatting(records_file, tmp_path):
    prepare_runs(records_file, _names())
    options = TimelineOptions(since=BASE + 1_000_000, until=BASE + 3_000_000)
    fast = build_timeline([records_file], tmp_path / "fast", quiet=True, options=options)
    remove_runs(records_file)
    slow = build_timeline([records_file], tmp_path / "slow", quiet=True, options=options)
    assert (fast["formatted"], slow["formatted"]) == (False, True)
    assert fast["rows"] == slow["rows"] == 2 * 3 * 6  # orders 1-3 of each 7: two sources, 40 records
    assert _bytes(tmp_path / "fast") == _bytes(tmp_path / "slow")


def test_time_zone_formats_again_and_keeps_timesketch_utc(records_file, tmp_path):
    prepare_runs(records_file, _names())
    utc = build_timeline([records_file], tmp_path / "utc", quiet=True)
    berlin = build_timeline([records_file], tmp_path / "berlin", quiet=True,
                            options=TimelineOptions(tz="Europe/Berlin"))
    assert (utc["formatted"], berlin["formatted"]) == (False, True)
    jsonl = [(tmp_path / folder / "timeline.jsonl").read_bytes() for folder in ("utc", "berlin")]
    assert jsonl[0] == jsonl[1]
    l2t = (tmp_path / "berlin" / "timeline.l2t.csv").read_text().splitlines()
    line = next(x for x in l2t if "cmd 0 on" in x)
    assert line.split(",")[:3] == ["10/13/2026", "16:00:00", "Europe/Berlin"]  # CEST, UTC+2


def test_many_runs_merge_in_passes(records_file, tmp_path, monkeypatch):
    reference = build_timeline([records_file], tmp_path / "ref", quiet=True)
    monkeypatch.setattr(sort_module, "DEFAULT_RUN_ROWS", 3)  # dozens of spilled runs
    monkeypatch.setattr(sort_module, "FAN_IN", 3)  # merged three at a time, in several passes
    result = build_timeline([records_file], tmp_path / "small", quiet=True)
    assert result["spilled_runs"] > 20 and result["rows"] == reference["rows"]
    assert _bytes(tmp_path / "small") == _bytes(tmp_path / "ref")


def _reference(records_files: list[Path]) -> dict[str, bytes]:
    """The three files by the timeline's definition: every row's line sorted as bytes, exact
    duplicates dropped, each line split into its l2tcsv, CSV and JSONL parts."""
    columns, _ = scan(records_files, TimelineOptions())
    formatter = LineFormatter(columns)
    lines = sorted({line for path in records_files for raw in path.read_bytes().splitlines()
                    for line in formatter.lines(loads_record(raw))})
    l2t, csv_rows, jsonl = [header_line().encode() + b"\n"], [csv_header(columns).encode() + b"\n"], []
    for line in lines:
        _, l2t_part, csv_part, jsonl_part = line.split(SEP)
        l2t_part, csv_part = (unescape(p) if p.startswith(ESCAPED) else p for p in (l2t_part, csv_part))
        if l2t_part:
            l2t.append(l2t_part + b"\n")
        csv_rows.append(csv_part + b"\n")
        jsonl.append(jsonl_part)
    return {"timeline.l2t.csv": b"".join(l2t), "timeline.csv": b"".join(csv_rows),
            "timeline.jsonl": b"".join(jsonl)}


def test_rows_of_equal_keys_merge_in_line_order(tmp_path, monkeypatch):
    # Several records files whose rows share keys (same time, source, order and description):
    # one file twice (exact duplicates), and a row whose l2tcsv line is another's followed by a
    # tab, which sorts before the other's line break but after the combined line's NUL.
    def record(value: str, host: str = "h1") -> Record:
        return Record(data_type="shell:bash:command", message="same", parser="bash_history", order=7,
                      provenance=Provenance(bundle_path="files/p1/x", source_path="/x", sha256=None),
                      timestamps={"Command Executed Time": BASE}, attributes={"zz": value}, host=host)

    cases = {"a": [*_records(), record("v\tX")], "b": [record("v"), record("w", host="h2")]}
    files = []
    for name, records in {**cases, "a2": cases["a"]}.items():
        path = tmp_path / name / "records.jsonl"
        path.parent.mkdir()
        path.write_bytes(b"".join(r.to_json_bytes() + b"\n" for r in records))
        files.append(path)
    monkeypatch.setattr(runs_module, "SEQUENTIAL_CHUNK_BYTES", 2000)  # many runs per file
    monkeypatch.setattr(sort_module, "FAN_IN", 3)  # the final merge reduces them in passes
    result = build_timeline(files, tmp_path / "out", quiet=True)
    expected = _reference(files)
    assert _bytes(tmp_path / "out") == expected
    assert result["duplicates"] == len(_records()) + 1 + 2  # file "a" again; its mbox message has 3 rows
    tabbed = [line for line in expected["timeline.l2t.csv"].splitlines() if b"zz: v" in line]
    assert tabbed == sorted(tabbed, key=lambda line: line + b"\0") and len(tabbed) == 2


def test_records_lines_round_trip_exactly():
    record = _records()[5]  # the 2**70 attribute: beyond orjson, written by json instead
    line = record.to_json_bytes()
    assert line.startswith(b'{"attributes": {') and loads_record(line)["attributes"]["big"] == 2**70
    compact = _records()[0].to_json_bytes()
    assert compact.startswith(b'{"attributes":{') and Record.from_dict(loads_record(compact)) == _records()[0]
    surrogate = _records()[80].to_json_bytes()  # lone surrogate: \\udce9 escapes, cleaned on reading
    assert loads_record(surrogate)["attributes"]["subject"] == "caf\\xe9 =cmd"
    with pytest.raises(ValueError):
        loads_record(b'{"attributes":{"broken"')


def test_parse_prepares_runs_and_run_removes_them(linux_run, tmp_path):
    assert not (linux_run / RUNS_DIR).exists()  # `run` merged them; the timeline files remain
    assert main(["-q", "parse", str(linux_run / "bundle"), "-o", str(tmp_path)]) == 0
    assert load_runs(tmp_path / "records.jsonl") is not None
    assert main(["-q", "timeline", str(tmp_path), "-o", str(tmp_path)]) == 0
    for name in FILES:
        assert (tmp_path / name).read_bytes() == (linux_run / name).read_bytes(), name
    assert not [p for p in os.listdir(tmp_path) if p.endswith(".part")]
    window = ["--since", "2026-10-12T14:00:00", "--until", "2026-10-12T15:00:00"]
    assert main(["-q", "timeline", str(tmp_path), *window, "-o", str(tmp_path / "w")]) == 0
    rows = (tmp_path / "w" / "timeline.jsonl").read_text().splitlines()
    assert rows and all(json.loads(r)["timestamp"] >= parse_iso("2026-10-12T14:00:00+00:00") for r in rows)
