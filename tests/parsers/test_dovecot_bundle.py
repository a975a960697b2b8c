"""Mail stores through the whole pipeline: collect a mounted root, parse the bundle, tag, timeline.

The dovecot-uidlist cross-check reads the bundle manifest (original names with ':' and deleted
flags), so it is tested here on a real bundle, where the copied file names are sanitised.
"""

from __future__ import annotations

import csv
import json
import os
import shutil
import tarfile
from pathlib import Path

import pytest

from collector.timeutil import iso_utc
from inboxtrail.cli import main
from parsers.base import ParseContext
from parsers.dovecot import DovecotUidlistParser
from parsers.record import Provenance

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "mail"
TIMES = json.loads((FIXTURES / "times.json").read_text())


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("mailroot") / "root"
    (root / "etc").mkdir(parents=True)
    (root / "etc" / "hostname").write_text("mailhost\n")
    (root / "etc" / "passwd").write_text("alice:x:1000:1000::/home/alice:/bin/bash\n")
    spools = root / "var" / "mail"
    spools.mkdir(parents=True)
    shutil.copy(FIXTURES / "mailx-spool.after-delete", spools / "alice")
    os.utime(spools / "alice", (TIMES["mailx-spool.after-delete"],) * 2)
    (spools / "bob").write_bytes(b"")
    home = root / "home" / "alice"
    home.mkdir(parents=True)
    with tarfile.open(FIXTURES / "dovecot-maildir.tar") as tar:
        tar.extractall(home, filter="data")
    os.utime(home / "Maildir" / "dovecot-uidlist", (TIMES["dovecot-uidlist"],) * 2)
    shutil.copytree(FIXTURES / "thunderbird", home / ".thunderbird" / "k3x9.default-release")
    out = tmp_path_factory.mktemp("mailrun") / "out"
    assert main(["--quiet", "run", str(root), "-o", str(out)]) == 0
    return out


@pytest.fixture(scope="module")
def records(run: Path) -> list[dict]:
    with (run / "records.jsonl").open(encoding="utf-8") as handle:
        return [json.loads(line) for line in handle]


def _of(records: list[dict], data_type: str) -> list[dict]:
    return [r for r in records if r["data_type"] == data_type]


def test_maildir_messages_from_the_bundle(records):
    messages = _of(records, "mail:maildir:message")
    assert len(messages) == 6
    paths = {r["provenance"]["source_path"] for r in messages}
    assert any(p.endswith(":2,T") for p in paths), "original names (with ':') are kept"
    trashed = [r for r in messages if "mail_store_maildir_trashed" in r["tags"]]
    assert [r["attributes"]["subject"] for r in trashed] == ["Report 3"]
    assert all(r["host"] == "mailhost" and r["user"] == "alice" for r in messages)


def test_uidlist_cross_check_uses_the_manifest(run, records):
    missing = _of(records, "mail:dovecot:uid_missing_file")
    assert [(r["attributes"]["uid"], r["attributes"]["folder"]) for r in missing] == [(7, "Maildir")]
    assert missing[0]["tags"] == ["T1070.008", "mail_store_uidlist_file_missing"]
    gaps = _of(records, "mail:dovecot:uid_gap")
    assert [g["attributes"]["missing_uids"] for g in gaps] == [[[2, 2], [4, 4], [9, 9]]]
    warnings = (run / "parse_warnings.jsonl").read_text()
    assert "cannot be checked" not in warnings


def test_spool_rewrite_and_empty_spool(records):
    rewrite = _of(records, "mail:mbox:rewrite")
    assert len(rewrite) == 1
    assert rewrite[0]["provenance"]["source_path"] == "/var/mail/alice"
    assert rewrite[0]["timestamps"] == {"Spool Rewrite Time (modified after its newest delivery)":
                                        TIMES["mailx-spool.after-delete"] * 1_000_000}
    assert "mail_store_spool_rewritten" in rewrite[0]["tags"]
    empty = [r for r in _of(records, "fs:stat") if r["provenance"]["source_path"] == "/var/mail/bob"]
    assert "mail_store_spool_empty" in empty[0]["tags"]


def test_thunderbird_folders_from_the_profile(records):
    messages = _of(records, "mail:thunderbird:message")
    folders = sorted((r["attributes"]["account"], r["attributes"]["folder"]) for r in messages)
    assert folders == [("Local Folders", "Inbox")] * 3 + [("Local Folders", "Trash"),
                                                          ("imap.example.org", "INBOX"),
                                                          ("imap.example.org", "INBOX")]
    assert [r["attributes"]["subject"] for r in messages if r["recovered"]] == ["Wire transfer approval"]


def _uid_7_delivery() -> int:
    """The delivery time in the Maildir name that the uidlist gives UID 7 (its file was expunged)."""
    with tarfile.open(FIXTURES / "dovecot-maildir.tar") as tar:
        member = tar.extractfile("Maildir/dovecot-uidlist")
        assert member is not None
        line = next(t for t in member.read().decode().splitlines() if t.startswith("7 "))
    return int(line.split(":", 1)[1].split(".")[0]) * 1_000_000


def test_timeline_rows_of_the_evidence(run):
    with (run / "timeline.csv").open(newline="", encoding="utf-8") as handle:
        rows = [r for r in csv.DictReader(handle) if r["data_type"] in (
            "mail:mbox:rewrite", "mail:dovecot:uid_missing_file", "mail:thunderbird:msf_removed")]
    got = sorted((r["data_type"], r["datetime"], r["timestamp_desc"], r["tag"]) for r in rows)
    rewrite_time = iso_utc(TIMES["mailx-spool.after-delete"] * 1_000_000)
    assert got == sorted([
        ("mail:mbox:rewrite", rewrite_time, "Spool Rewrite Time (modified after its newest delivery)",
         '["T1070.008", "mail_store_spool_rewritten"]'),
        ("mail:dovecot:uid_missing_file", iso_utc(_uid_7_delivery()),
         "Delivery Time (Maildir file name)", '["T1070.008", "mail_store_uidlist_file_missing"]'),
        ("mail:thunderbird:msf_removed", "2026-10-06T10:00:05.000000+00:00", "Sent Time (summary date)",
         '["T1070.008", "mail_store_msf_row_removed"]'),
        ("mail:thunderbird:msf_removed", "2026-10-06T10:00:10.000000+00:00",
         "Delivery Time (summary dateReceived)", '["T1070.008", "mail_store_msf_row_removed"]')])
    rewrite = next(r for r in rows if r["data_type"] == "mail:mbox:rewrite")
    assert rewrite["host"] == "mailhost" and rewrite["source"] == "/var/mail/alice"
    assert "not a deletion" in rewrite["message"]


def test_deleted_message_file_named_by_the_uidlist(tmp_path):
    """A uidlist entry whose file survives only as a deleted (unallocated) entry."""
    bundle = tmp_path / "bundle"
    uidlist = bundle / "files" / "p1" / "home" / "a" / "Maildir" / "dovecot-uidlist"
    uidlist.parent.mkdir(parents=True)
    uidlist.write_bytes(b"3 V1 N3 Gx\n1 :1700000000.M1P1.h\n2 :1700000100.M2P2.h\n")
    lines = [
        {"artifact": "DovecotUidlists", "filesystem": "p1", "kind": "file", "deleted": False,
         "source_path": "/home/a/Maildir/dovecot-uidlist", "outcome": "collected"},
        {"artifact": "MaildirMessages", "filesystem": "p1", "kind": "file", "deleted": False,
         "source_path": "/home/a/Maildir/cur/1700000000.M1P1.h:2,S", "outcome": "collected"},
        {"artifact": "MaildirMessages", "filesystem": "p1", "kind": "file", "deleted": True,
         "source_path": "/home/a/Maildir/cur/1700000100.M2P2.h:2,ST", "outcome": "recovered"}]
    (bundle / "manifest.jsonl").write_text("".join(json.dumps(line) + "\n" for line in lines))
    ctx = ParseContext(provenance=Provenance(
        bundle_path="files/p1/home/a/Maildir/dovecot-uidlist", source_path="/home/a/Maildir/dovecot-uidlist",
        sha256=None, filesystem="p1"))
    with uidlist.open("rb") as handle:
        records = list(DovecotUidlistParser().parse(handle, ctx))
    assert len(records) == 1
    record = records[0]
    assert record.attributes["evidence"] == "uidlist_file_deleted" and record.recovered
    assert record.attributes["deleted_entries"] == ["/home/a/Maildir/cur/1700000100.M2P2.h:2,ST"]
    assert record.timestamps == {"Delivery Time (Maildir file name)": 1700000100 * 1_000_000}
    assert iso_utc(record.timestamps["Delivery Time (Maildir file name)"]).startswith("2023-11-14")


def test_thunderbird_summary_checked_against_the_collected_folder_file(records):
    summary = [r for r in records if r["data_type"].startswith("mail:thunderbird:msf_")]
    assert [(r["data_type"], r["attributes"]["message_id"]) for r in summary] == [
        ("mail:thunderbird:msf_removed", "tb2@example.org"),
        ("mail:thunderbird:msf_not_in_folder", "tb7@example.org")]
