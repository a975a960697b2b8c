"""End to end on images/windows-suspect.raw (NTFS) against its scenario's ground truth."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from collector.timeutil import parse_iso
from inboxtrail.cli import main
from tests.conftest import IMAGES

IMAGE = IMAGES / "windows-suspect.raw"


@pytest.fixture(scope="module")
def scenario() -> dict:
    return json.loads((IMAGES / "windows-suspect.scenario.json").read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def records(tmp_path_factory) -> list[dict]:
    out = tmp_path_factory.mktemp("windows") / "out"
    assert main(["-q", "run", str(IMAGE), "-o", str(out)]) == 0
    with (out / "records.jsonl").open(encoding="utf-8") as handle:
        return [json.loads(line) for line in handle]


def test_every_clearing_event_is_tagged_with_time_host_and_user(records, scenario):
    truth = scenario["evtx"]
    evtx = {(r["provenance"]["source_path"].rsplit("/", 1)[-1], r["attributes"].get("record_number")): r
            for r in records if r["data_type"].startswith("windows:evtx:")}
    merged_parts = {n for r in evtx.values() for n in r["attributes"].get("record_numbers", [])[1:]}
    checked = 0
    for event in truth["events"]:
        if not event["technique"] or event["record_id"] in merged_parts:
            continue  # parts 2..n of a script block live in the record of part 1
        record = evtx[(event["file"], event["record_id"])]
        assert record["tags"], event
        assert event["technique"] in record["tags"] or any(t.startswith("T1") for t in record["tags"])
        assert list(record["timestamps"].values()) == [parse_iso(event["time"])]
        assert record["host"] == truth["host"]
        assert record["user"]
        checked += 1
    assert checked >= 20


def test_same_rule_ids_across_event_logs_and_psreadline(records):
    def rules(record: dict) -> set[str]:
        return {t for t in record["tags"] if not t.startswith("T1")}

    history = [r for r in records if r["data_type"] == "shell:powershell:command"]
    exchange = [r for r in records if r["data_type"] == "windows:evtx:exchange:cmdlet"]
    for cmdlet in ("Remove-MailboxExportRequest", "New-TransportRule", "Search-Mailbox"):
        typed = next(r for r in history if r["attributes"]["command"].startswith(cmdlet))
        logged = next(r for r in exchange if r["attributes"].get("cmdlet") == cmdlet)
        assert rules(typed) and rules(typed) == rules(logged), cmdlet


def test_deleted_mail_files_are_recovered_and_tagged(records, scenario):
    stats = {r["provenance"]["source_path"]: r for r in records
             if r["data_type"] == "fs:stat" and r["attributes"].get("deleted")}
    for item in scenario["deleted_files"]:
        record = stats[item["path"]]
        assert record["attributes"]["inode"] == item["mft_entry"]
        assert record["attributes"]["outcome"] == "recovered"
        assert "fs_mail_file_deleted" in record["tags"], item["path"]


def test_image_unchanged(tmp_path):
    before = (IMAGE.parent / "windows-suspect.raw.sha256").read_text().split()[0]
    from tests.conftest import sha256_of

    assert sha256_of(Path(IMAGE)) == before
