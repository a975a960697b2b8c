"""Apple Mail Envelope Index parser on a format-exact V10 tree built by SQLite (with a real WAL)."""

from __future__ import annotations

import hashlib
import io
import json
import sqlite3
import struct
from collections import Counter
from pathlib import Path

import pytest

from collector.timeutil import iso_utc
from parsers.apple_mail import AppleMailEnvelopeParser, scan_wal
from parsers.base import ParseContext
from parsers.record import Provenance, Record
from parsers.rules import default_engine
from tests.fixtures.apple_mail.build_envelope_index import build

SOURCE = "/Users/alice/Library/Mail/V10/MailData/Envelope Index"
MAILBOX = "imap://alice%40example.com@imap.example.com/"
INBOX_EMLX = ("/Users/alice/Library/Mail/V10/4C1B2D7E-2F1A-4B8E-9C3D-1A2B3C4D5E6F/INBOX.mbox/"
              "9E8D7C6B-5A49-4837-A625-14F3E2D1C0B9/Data/Messages/")


def _ctx() -> ParseContext:
    return ParseContext(provenance=Provenance(bundle_path="files/x/Envelope Index", source_path=SOURCE,
                                              sha256=None), host="mac", user="alice")


def _parse(db: Path) -> tuple[list[Record], ParseContext]:
    ctx = _ctx()
    with db.open("rb") as handle:
        records = [default_engine().tag(r) for r in AppleMailEnvelopeParser().parse(handle, ctx)]
    return records, ctx


def _digest(folder: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir())}


@pytest.fixture(scope="module", params=["unix", "cocoa"])
def parsed(request, tmp_path_factory) -> tuple[list[Record], ParseContext, Path]:
    db = build(tmp_path_factory.mktemp(f"mail-{request.param}"), epoch=request.param)
    before = _digest(db.parent)
    records, ctx = _parse(db)
    assert _digest(db.parent) == before  # the collected files are never touched (no -shm, no checkpoint)
    return records, ctx, db


def _messages(records: list[Record]) -> dict[int, Record]:
    return {r.attributes["rowid"]: r for r in records if r.data_type == "mail:apple_mail:message"}


def test_fixture_wal_has_uncheckpointed_commits(parsed):
    _records, _ctx, db = parsed
    info = scan_wal(db.with_name("Envelope Index-wal"))
    assert info is not None and len(info.commits) == 4
    assert info.stale_frames == 0 and info.uncommitted_frames == 0


def test_live_rows_with_both_epochs_give_the_same_times(parsed):
    records, ctx, _db = parsed
    assert ctx.warnings == []
    messages = _messages(records)
    assert sorted(messages) == [1, 2, 4, 5, 6, 7, 8]
    first = messages[1]
    assert {k: iso_utc(v) for k, v in first.timestamps.items()} == {
        "Received Time": "2026-10-05T09:12:44.000000+00:00",
        "Sent Time": "2026-10-05T09:12:40.000000+00:00"}
    assert first.attributes["subject"] == "Quarterly report"
    assert first.attributes["sender"] == "bob@example.org"
    assert first.attributes["sender_name"] == "Bob Example"
    assert first.attributes["mailbox"] == MAILBOX + "INBOX"
    assert first.attributes["message_id"] == "<msg1@example.org>"
    assert first.attributes["recipients"] == [{"address": "alice@example.com", "comment": "Alice", "type": 0}]
    assert first.attributes["emlx_path"].endswith("INBOX.mbox/9E8D7C6B-5A49-4837-A625-14F3E2D1C0B9/"
                                                  "Data/Messages/1.emlx")
    assert first.tags == () and not first.recovered
    assert first.message == f"Apple Mail message 1 in {MAILBOX}INBOX from bob@example.org: Quarterly report"


def test_epoch_is_reported(parsed):
    records, _ctx, db = parsed
    epoch = "cocoa" if "cocoa" in db.parts[-4] else "unix"
    assert {r.attributes["date_epoch"] for r in _messages(records).values()} == {epoch}


def test_deleted_flag_and_trash(parsed):
    records, _ctx, _db = parsed
    row = _messages(records)[4]
    assert row.attributes["deleted_flag"] is True and row.attributes["in_trash"] is True
    assert row.attributes["flag_names"] == ["read", "deleted"]
    assert row.tags == ("T1070.008", "mail_client_apple_deleted_flag", "mail_client_apple_in_trash")
    assert iso_utc(row.timestamps["Received Time"]) == "2026-10-07T08:45:10.000000+00:00"
    assert row.message.endswith("Wire transfer details [deleted = 1; in Trash]")


def test_mailbox_deleted_count(parsed):
    records, _ctx, _db = parsed
    boxes = {r.attributes["mailbox"]: r for r in records if r.data_type == "mail:apple_mail:mailbox"}
    trash = boxes[MAILBOX + "Deleted%20Messages"]
    assert trash.attributes["deleted_count"] == 1 and trash.attributes["rows_in_index"] == 1
    assert trash.tags == ("T1070.008", "mail_client_apple_deleted_count")
    inbox = boxes[MAILBOX + "INBOX"]
    assert inbox.attributes["total_count"] == 3 and inbox.attributes["rows_in_index"] == 4
    assert inbox.tags == ()


def test_rows_deleted_after_the_checkpoint_come_back_from_main_file_and_wal(parsed):
    records, _ctx, _db = parsed
    messages = _messages(records)
    from_main = messages[6]
    assert from_main.recovered and from_main.attributes["wal_removed"] is True
    assert from_main.attributes["seen_in"] == "main database file (WAL not applied)"
    assert from_main.attributes["subject"] == "Password reset"
    assert iso_utc(from_main.timestamps["Received Time"]) == "2026-10-08T07:01:02.000000+00:00"
    assert from_main.tags == ("T1070.008", "mail_client_apple_wal_removed")
    inside_wal = messages[7]
    assert inside_wal.recovered and inside_wal.attributes["subject"] == "Confidential: merger terms"
    assert inside_wal.attributes["seen_in"].startswith("WAL commit ending at byte ")
    assert inside_wal.attributes["recipients"] == [
        {"address": "alice@example.com", "comment": "Alice", "type": 0}]
    assert not messages[8].recovered  # inserted in the WAL and still there


def test_rowid_gaps(parsed):
    records, _ctx, _db = parsed
    gaps = [r for r in records if r.data_type == "mail:apple_mail:rowid_gap"]
    assert [(g.attributes["first_missing_rowid"], g.attributes["last_missing_rowid"],
             g.attributes["trailing"]) for g in gaps] == [(3, 3, False), (9, 9, True)]
    middle, trailing = gaps
    assert {k: iso_utc(v) for k, v in middle.time_bounds.items()} == {
        "Not before: received time of row 2": "2026-10-06T12:00:05.000000+00:00",
        "Not after: received time of row 4": "2026-10-07T08:45:10.000000+00:00"}
    assert middle.timestamps == {}
    assert trailing.attributes["sqlite_sequence"] == 9
    assert trailing.message == ("Apple Mail Envelope Index: 1 message row(s) 9-9 missing above the "
                                "highest row (newest rows deleted)")
    assert middle.tags == ("T1070.008", "mail_client_apple_rowid_gap")


def test_emlx_cross_check(parsed):
    records, _ctx, _db = parsed
    (orphan,) = [r for r in records if r.data_type == "mail:apple_mail:orphan_emlx"]
    assert orphan.attributes["rowid"] == 3
    assert orphan.attributes["emlx_path"] == INBOX_EMLX + "3.emlx"
    assert orphan.recovered and orphan.tags == ("T1070.008", "mail_client_apple_orphan_emlx")
    messages = _messages(records)
    assert messages[8].attributes["emlx_missing"] is True
    assert messages[5].attributes["emlx_path"].endswith("5.partial.emlx")
    assert messages[6].attributes["emlx_path"].endswith("6.emlx")  # WAL-recovered row, file present


def test_without_wal_only_the_checkpointed_state_is_seen(tmp_path):
    db = build(tmp_path)
    db.with_name("Envelope Index-wal").unlink()
    records, ctx = _parse(db)
    assert ctx.warnings == []
    messages = _messages(records)
    assert sorted(messages) == [1, 2, 4, 5, 6]
    assert not any(r.recovered for r in messages.values())


def test_without_mail_folders_there_is_no_emlx_verdict(tmp_path):
    db = build(tmp_path)
    lone = tmp_path / "lone" / "Envelope Index"
    lone.parent.mkdir()
    lone.write_bytes(db.read_bytes())
    records, _ctx = _parse(lone)
    assert not any("emlx_missing" in r.attributes for r in records)
    assert not [r for r in records if r.data_type == "mail:apple_mail:orphan_emlx"]


def test_older_schema_without_optional_tables(tmp_path):
    db = tmp_path / "Envelope Index"
    conn = sqlite3.connect(db)
    conn.executescript(
        "CREATE TABLE messages (ROWID INTEGER PRIMARY KEY AUTOINCREMENT, message_id, sender INTEGER,"
        " subject INTEGER, date_sent INTEGER, date_received INTEGER, mailbox INTEGER, flags INTEGER,"
        " read, flagged, deleted INTEGER);"
        "INSERT INTO messages (ROWID, date_received, deleted) VALUES (1, 1290000000, 1);")
    conn.commit()
    conn.close()
    records, ctx = _parse(db)
    (row,) = records
    assert ctx.warnings == []
    assert row.attributes["deleted_flag"] is True and row.attributes["subject"] is None
    assert iso_utc(row.timestamps["Received Time"]) == "2010-11-17T13:20:00.000000+00:00"


def test_not_sqlite_is_a_warning_and_other_files_are_ignored():
    ctx = _ctx()
    assert list(AppleMailEnvelopeParser().parse(io.BytesIO(b"garbage" * 10), ctx)) == []
    assert ctx.warnings[0]["message"] == "Envelope Index is not an SQLite 3 database"
    other = ParseContext(provenance=Provenance(bundle_path="b", source_path=SOURCE + "-wal", sha256=None))
    assert list(AppleMailEnvelopeParser().parse(io.BytesIO(b"x"), other)) == []
    assert other.warnings == []


def test_sniff():
    assert AppleMailEnvelopeParser.sniff(b"SQLite format 3\x00rest", "Envelope Index")
    assert AppleMailEnvelopeParser.sniff(b"\x37\x7f\x06\x82rest", "Envelope Index-wal")
    assert AppleMailEnvelopeParser.sniff(b"\x00" * 8, "Envelope Index-shm")
    assert not AppleMailEnvelopeParser.sniff(b"SQLite format 3\x00rest", "places.sqlite")
    assert not AppleMailEnvelopeParser.sniff(b"\x37\x7f\x06\x82rest", "places.sqlite-wal")


def test_wal_is_read_with_its_database_and_a_lone_wal_is_reported(tmp_path):
    db = build(tmp_path)
    wal = db.with_name("Envelope Index-wal")
    ctx = ParseContext(provenance=Provenance(bundle_path="b", source_path=SOURCE + "-wal", sha256=None))
    with wal.open("rb") as handle:
        assert list(AppleMailEnvelopeParser().parse(handle, ctx)) == []
    assert ctx.warnings == []
    db.unlink()
    with wal.open("rb") as handle:
        assert list(AppleMailEnvelopeParser().parse(handle, ctx)) == []
    assert [w["message"] for w in ctx.warnings] == [
        "Envelope Index-wal without its Envelope Index beside it: not parsed"]


def test_rows_on_free_pages_are_carved(tmp_path):
    db = build(tmp_path, free_pages=True)
    records, ctx = _parse(db)
    assert ctx.warnings == []
    carved = [r for r in records if r.attributes.get("freelist_carved")]
    assert len(carved) >= 50  # 60 with SQLite 3.40: the rows of the pages that went to the freelist
    for record in carved:
        assert 1000 <= record.attributes["rowid"] < 1200 and record.recovered
        assert record.attributes["subject"] == f"Newsletter {record.attributes['rowid'] - 999}"
    sample = next(r for r in carved if r.attributes["rowid"] == 1140)
    assert sample.attributes["sender"] == "carol@example.net"
    assert sample.attributes["mailbox"] == MAILBOX + "INBOX"
    assert sample.attributes["seen_in"].startswith("free page ")
    assert sample.provenance.offset is not None and sample.provenance.offset > 0
    assert {k: iso_utc(v) for k, v in sample.timestamps.items()} == {
        "Received Time": "2026-09-15T06:00:00.000000+00:00",
        "Sent Time": "2026-09-15T05:59:00.000000+00:00"}
    assert sample.tags == ("T1070.008", "mail_client_apple_freelist_row")
    # the live and WAL findings are unchanged by the carving
    messages = _messages(records)
    assert [rowid for rowid in sorted(messages) if rowid < 1000] == [1, 2, 4, 5, 6, 7, 8]


def test_collected_and_parsed_end_to_end(tmp_path):
    """The AppleMail artifact collects the tree; each file goes to the right parser, the rest are quiet."""
    from inboxtrail.cli import main

    root = tmp_path / "root"
    build(root / "Users" / "alice" / "Library" / "Mail")
    out = tmp_path / "out"
    assert main(["--quiet", "run", str(root), "-o", str(out)]) == 0
    records = [Record.from_dict(json.loads(line))
               for line in (out / "records.jsonl").read_text(encoding="utf-8").splitlines()]
    mail = [r for r in records if r.data_type.startswith("mail:apple_mail:")]
    assert Counter(r.data_type for r in mail) == {
        "mail:apple_mail:message": 7, "mail:apple_mail:mailbox": 3, "mail:apple_mail:rowid_gap": 2,
        "mail:apple_mail:orphan_emlx": 1, "mail:apple_mail:emlx": 6}
    assert all(r.user == "alice" for r in mail)
    assert (out / "parse_warnings.jsonl").read_text(encoding="utf-8") == ""
    assert Counter(t for r in mail for t in r.tags if t.startswith("mail_client")) == {
        "mail_client_apple_deleted_flag": 1, "mail_client_apple_emlx_deleted_flag": 1,
        "mail_client_apple_in_trash": 2, "mail_client_apple_deleted_count": 1,
        "mail_client_apple_wal_removed": 2, "mail_client_apple_rowid_gap": 2,
        "mail_client_apple_orphan_emlx": 1}


def test_wal_tail_frames_are_reported(tmp_path):
    db = build(tmp_path)
    wal = db.with_name("Envelope Index-wal")
    data = wal.read_bytes()
    salts = data[16:24]
    uncommitted = struct.pack(">II", 2, 0) + salts + b"\x00" * 8 + b"\x00" * 4096
    stale = struct.pack(">II", 2, 5) + b"\xde\xad\xbe\xef" * 2 + b"\x00" * 8 + b"\x00" * 4096
    wal.write_bytes(data + uncommitted + stale)
    info = scan_wal(wal)
    assert (len(info.commits), info.uncommitted_frames, info.stale_frames) == (4, 1, 1)
    records, ctx = _parse(db)
    assert [w["message"] for w in ctx.warnings] == [
        "Envelope Index-wal: 1 frames of an earlier WAL generation follow the valid ones "
        "(old page versions, not read)",
        "Envelope Index-wal: 1 frames after the last commit (an unfinished transaction, not applied)"]
    assert sorted(_messages(records)) == [1, 2, 4, 5, 6, 7, 8]
