"""End to end on images/linux-suspect.raw against the scenario's ground truth."""

from __future__ import annotations

import csv
import json
from pathlib import Path

from collector.timeutil import parse_iso
from inboxtrail.cli import main
from tests.conftest import LINUX_IMAGE, sha256_of


def _manifest(out: Path) -> list[dict]:
    with (out / "bundle" / "manifest.jsonl").open(encoding="utf-8") as handle:
        return [json.loads(line) for line in handle]


def test_image_matches_committed_sha256():
    expected = (LINUX_IMAGE.parent / "linux-suspect.raw.sha256").read_text().split()[0]
    assert sha256_of(LINUX_IMAGE) == expected


#: Where carol's deleted spool sits in the unallocated blocks of p1 (the image is fixed: its
#: SHA-256 is committed and checked above).
CAROL_CARVED_OFFSET = 5079040


def test_run_writes_every_output(linux_run: Path, scenario: dict):
    for name in ("bundle/manifest.jsonl", "bundle/report.json", "records.jsonl", "timeline.csv",
                 "timeline.jsonl", "timeline.l2t.csv", "run.log", "findings.md"):
        assert (linux_run / name).is_file(), name
    report = json.loads((linux_run / "bundle" / "report.json").read_text())
    assert report["tool"] == "inboxtrail" and report["source_kind"] == "image"
    assert report["filesystems"][0]["hostname"] == "mailhost"
    # Carol's deleted spool, twice: its inode's data, and the same bytes carved from free blocks.
    (carol,) = [box for box in scenario["mailboxes"] if box["deleted"]]
    recovered = [(line["artifact"], line["source_path"], line["inode"], line.get("carved_offset"),
                  line["size"], line["sha256"], line["deleted"])
                 for line in _manifest(linux_run) if line["outcome"] == "recovered"]
    assert recovered == [
        ("LinuxMailSpools", carol["path"], carol["inode"], None, carol["size"], carol["sha256"], True),
        ("carved_mbox", f"/$Unallocated/carved_mbox-{CAROL_CARVED_OFFSET:013d}", None,
         CAROL_CARVED_OFFSET, carol["size"], carol["sha256"], True)]
    assert report["counts"]["recovered"] == 2
    assert set(report) >= {"version", "source", "started", "finished", "counts"}
    assert not list(linux_run.rglob("*.part")), "temporary files left behind"


def test_every_message_with_its_times(linux_records, scenario):
    messages = [r for r in linux_records if r["data_type"] == "mail:mbox:message"]
    expected = [(box, m) for box in scenario["mailboxes"] for m in box["messages"]]
    assert len(messages) == len(expected)
    by_id = {(r["provenance"]["source_path"], r["attributes"]["message_id"]): r for r in messages}
    for box, truth in expected:
        record = by_id[(box["path"], truth["message_id"])]
        times = record["timestamps"]
        assert times["Envelope Time (From_ line)"] == parse_iso(truth["envelope_time"])
        assert times["Sent Time (Date header)"] == parse_iso(truth["date"])
        assert times["Delivery Time (topmost Received header)"] == parse_iso(truth["first_received"])
        attrs = record["attributes"]
        assert attrs["subject"] == truth["subject"]
        assert attrs["offset"] == truth["offset"] and attrs["size"] == truth["size"]
        assert attrs["status"] == truth["status"]
        assert record["host"] == "mailhost"
        assert record["recovered"] is box["deleted"]


def test_every_history_line_with_its_time_or_bounds(linux_records, scenario):
    for history in scenario["histories"]:
        records = sorted((r for r in linux_records if r["provenance"]["source_path"] == history["path"]
                          and r["data_type"].startswith("shell:")), key=lambda r: r["order"])
        assert len(records) == len(history["lines"]), history["path"]
        previous_time = None
        for record, truth in zip(records, history["lines"], strict=True):
            command = truth["command"]
            if history["shell"] == "zsh":
                command = command.replace("\\\n", "\n")  # zsh's on-disk escape of a newline
            assert record["attributes"]["command"] == command
            assert record["user"] == history["user"]
            if truth["time"] is None:
                assert record["timestamps"] == {}
                bounds = record["time_bounds"]
                assert bounds["Not after: history file last modified"] == parse_iso(history["mtime"])
                if previous_time is None:
                    assert "Not before: previous dated history line" not in bounds
                else:
                    assert bounds["Not before: previous dated history line"] == previous_time
            else:
                assert list(record["timestamps"].values()) == [parse_iso(truth["time"])]
                previous_time = parse_iso(truth["time"])


def test_clearing_commands_are_tagged_and_look_alikes_are_not(linux_records, scenario):
    shell = [r for r in linux_records if r["data_type"].startswith("shell:")]
    tagged = {(r["provenance"]["source_path"], r["attributes"]["command"]): r for r in shell if r["tags"]}
    for truth in scenario["clearing_commands"]:
        record = tagged.pop((truth["path"], truth["command"]))
        assert truth["rule"] in record["tags"] and "T1070.008" in record["tags"]
        if truth["time"]:
            assert list(record["timestamps"].values()) == [parse_iso(truth["time"])]
    assert tagged == {}, f"unexpected tags: {list(tagged)}"
    clearing = {(truth["path"], truth["command"]) for truth in scenario["clearing_commands"]}
    for command in scenario["not_flagged"]:  # look-alikes, except on the lines the scenario names
        assert not [r for r in shell if r["attributes"]["command"] == command and r["tags"]
                    and (r["provenance"]["source_path"], command) not in clearing]


def test_deleted_spool_is_listed_recovered_and_tagged(linux_run, linux_records, scenario):
    truth = scenario["deleted_files"][0]
    lines = [line for line in _manifest(linux_run) if line["source_path"] == truth["path"]]
    assert len(lines) == 1
    line = lines[0]
    assert line["deleted"] is True and line["outcome"] == "recovered"
    assert line["inode"] == truth["inode"] and line["size"] == truth["size"]
    assert line["sha256"] == truth["sha256"]
    for key in ("mtime", "atime", "ctime", "dtime"):
        assert parse_iso(line[key]) == parse_iso(truth[key]), key
    stat = next(r for r in linux_records if r["data_type"] == "fs:stat"
                and r["provenance"]["source_path"] == truth["path"])
    assert "fs_mail_file_deleted" in stat["tags"]
    assert stat["timestamps"]["Deletion Time"] == parse_iso(truth["dtime"])
    recovered = [r for r in linux_records if r["data_type"] == "mail:mbox:message" and r["recovered"]]
    assert len(recovered) == truth["messages"]


def test_empty_files_are_recorded(linux_run, scenario):
    outcomes = {line["source_path"]: line["outcome"] for line in _manifest(linux_run)}
    for path in scenario["empty_files"]:
        assert outcomes[path] == "empty"


def test_timeline_rows_and_tags(linux_run, linux_records):
    with (linux_run / "timeline.csv").open(newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    expected_rows = sum(max(1, len(r["timestamps"])) for r in linux_records)
    assert len(rows) == expected_rows
    assert [int(r["timestamp"]) for r in rows] == sorted(int(r["timestamp"]) for r in rows)
    assert all(r["tag"].startswith("[") for r in rows)
    rm_row = next(r for r in rows if r["message"] == "sudo rm /var/mail/carol")
    assert rm_row["datetime"] == "2026-10-12T14:32:10.000000+00:00"
    assert json.loads(rm_row["tag"]) == ["T1070.008", "shell_mail_file_removed"]
    assert rm_row["host"] == "mailhost" and rm_row["user"] == "bob"


def test_second_run_is_byte_identical_and_source_unchanged(linux_run, tmp_path):
    before = sha256_of(LINUX_IMAGE)
    out = tmp_path / "again"
    assert main(["--quiet", "run", str(LINUX_IMAGE), "-o", str(out)]) == 0
    for name in ("records.jsonl", "timeline.csv", "timeline.jsonl", "timeline.l2t.csv",
                 "bundle/manifest.jsonl"):
        assert (out / name).read_bytes() == (linux_run / name).read_bytes(), name
    assert sha256_of(LINUX_IMAGE) == before


def test_verify_passes_then_catches_flipped_byte_and_missing_file(linux_run, tmp_path, copy_tree):
    bundle = copy_tree(linux_run / "bundle", "bundle")
    assert main(["--quiet", "verify", str(bundle)]) == 0
    spool = bundle / "files" / "p1" / "var" / "mail" / "alice"
    data = bytearray(spool.read_bytes())
    data[100] ^= 0x01
    spool.write_bytes(bytes(data))
    assert main(["--quiet", "verify", str(bundle)]) == 1
    spool.unlink()
    assert main(["--quiet", "verify", str(bundle)]) == 1
