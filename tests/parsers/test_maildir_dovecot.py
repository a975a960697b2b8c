"""Maildir messages and dovecot-uidlist evidence, on the Maildir that Dovecot itself wrote."""

from __future__ import annotations

import io
import json
import tarfile
from pathlib import Path

import pytest

from collector.timeutil import iso_utc, parse_iso
from parsers.base import ParseContext
from parsers.dovecot import DovecotUidlistParser
from parsers.mail_evidence import is_trash_folder, maildir_name_time, maildir_split
from parsers.maildir import MAILDIR_TIME_DESC, MaildirParser
from parsers.mbox import DATE_DESC, RECEIVED_DESC
from parsers.record import Provenance, Record
from parsers.rules import default_engine
from tests.conftest import corpus_path

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "mail"
TIMES = json.loads((FIXTURES / "times.json").read_text())


@pytest.fixture()
def maildir(tmp_path: Path) -> Path:
    with tarfile.open(FIXTURES / "dovecot-maildir.tar") as tar:
        tar.extractall(tmp_path, filter="data")
    return tmp_path / "Maildir"


def _ctx(path: Path, **entry: object) -> ParseContext:
    return ParseContext(provenance=Provenance(bundle_path=None, source_path=str(path), sha256=None),
                        user="alice", entry=dict(entry))


def _maildir_records(root: Path) -> list[Record]:
    engine = default_engine()
    records = []
    for path in sorted(p for p in root.rglob("*") if p.parent.name in ("cur", "new", "tmp")):
        with path.open("rb") as handle:
            ctx = _ctx(path, size=path.stat().st_size)
            records += [engine.tag(r) for r in MaildirParser().parse(handle, ctx)]
    return records


def _uidlist_records(path: Path) -> tuple[list[Record], ParseContext]:
    ctx = _ctx(path, mtime=iso_utc(TIMES["dovecot-uidlist"] * 1_000_000))
    with path.open("rb") as handle:
        return [default_engine().tag(r) for r in DovecotUidlistParser().parse(handle, ctx)], ctx


def test_maildir_messages_flags_and_trash(maildir):
    records = _maildir_records(maildir)
    by_subject = {r.attributes["subject"]: r for r in records}
    assert sorted(by_subject) == ["Report 1", "Report 3", "Report 4", "Report 5", "Report 6", "Report 8"]
    trashed = by_subject["Report 3"]
    assert trashed.attributes["flags"] == "T" and trashed.attributes["flag_names"] == ["trashed"]
    assert trashed.attributes["trashed_flag"] is True
    assert "mail_store_maildir_trashed" in trashed.tags and "T1070.008" in trashed.tags
    moved = by_subject["Report 4"]
    assert moved.attributes["folder"] == ".Trash" and moved.attributes["subdir"] == "new"
    assert moved.attributes["in_trash_folder"] is True and "mail_store_in_trash_folder" in moved.tags
    plain = by_subject["Report 1"]
    assert plain.attributes["folder"] == "INBOX" and plain.attributes["flags"] is None
    assert plain.tags == ()
    assert plain.timestamps[DATE_DESC] == parse_iso("2026-10-05T09:00:00+00:00")
    assert plain.timestamps[RECEIVED_DESC] == parse_iso("2026-10-05T09:00:01+00:00")
    base = plain.attributes["maildir_name"]
    assert plain.timestamps[MAILDIR_TIME_DESC] == int(base.split(".")[0]) * 1_000_000
    assert plain.attributes["size"] == 320 and plain.attributes["message_id"] == "<m1@example.org>"


def test_uidlist_file_missing_and_gaps(maildir):
    records, ctx = _uidlist_records(maildir / "dovecot-uidlist")
    missing = [r for r in records if r.data_type == "mail:dovecot:uid_missing_file"]
    assert [r.attributes["uid"] for r in missing] == [7]
    lost = missing[0]
    assert lost.attributes["evidence"] == "uidlist_file_missing" and lost.attributes["uidlist_line"] == 6
    assert lost.timestamps == {MAILDIR_TIME_DESC: maildir_name_time(lost.attributes["maildir_name"])}
    assert "mail_store_uidlist_file_missing" in lost.tags and "T1070.008" in lost.tags
    gap = records[-1]
    assert gap.data_type == "mail:dovecot:uid_gap"
    assert gap.attributes["missing_uids"] == [[2, 2], [4, 4], [9, 9]]
    assert gap.attributes["missing_count"] == 3 and gap.attributes["next_uid"] == 10
    assert gap.attributes["highest_uid"] == 8 and gap.attributes["newest_expunged"] is True
    assert gap.attributes["uidlist_version"] == 3
    assert gap.time_bounds["Not after: uidlist last modified"] == TIMES["dovecot-uidlist"] * 1_000_000
    assert "mail_store_uid_gap" in gap.tags
    assert ctx.warnings == []


def test_trash_uidlist_has_nothing_missing(maildir):
    records, ctx = _uidlist_records(maildir / ".Trash" / "dovecot-uidlist")
    assert records == [] and ctx.warnings == []


def test_uidlist_version_1_and_a_stale_next_uid():
    data = b"1 1234567890 3\n1 1600000000.M1P1.host\n2 1600000100.M2P2.host\n5 1600000200.M3P3.host\n"
    ctx = _ctx(Path("/home/a/Maildir/dovecot-uidlist"))
    records = list(DovecotUidlistParser().parse(io.BytesIO(data), ctx))
    assert [r.data_type for r in records] == ["mail:dovecot:uid_gap"]
    gap = records[0]
    assert gap.attributes["missing_uids"] == [[3, 4]] and gap.attributes["newest_expunged"] is False
    assert gap.time_bounds == {
        "Not before: delivery of the message before the first gap": 1600000100 * 1_000_000}
    assert "cannot be checked" in ctx.warnings[0]["message"]


def test_uidlist_garbage_warns():
    ctx = _ctx(Path("/x/dovecot-uidlist"))
    assert list(DovecotUidlistParser().parse(io.BytesIO(b"garbage\n"), ctx)) == []
    assert ctx.warnings[0]["message"] == "not a dovecot-uidlist header line"


@pytest.mark.parametrize(("name", "expected"), [
    ("1795236642.M1P2.vm,S=320,W=330:2,ST", ("1795236642.M1P2.vm,S=320,W=330", "ST")),
    ("1795236642.M1P2.vm%3A2,T", ("1795236642.M1P2.vm", "T")),
    ("1795236642.M1P2.vm!2,S", ("1795236642.M1P2.vm", "S")),
    ("1795236642.M1P2.vm", ("1795236642.M1P2.vm", None)),
    ("04:2,", ("04", ""))])
def test_maildir_split(name, expected):
    assert maildir_split(name) == expected


def test_trash_folder_names():
    assert all(is_trash_folder(n) for n in (".Trash", ".Deleted Messages", "Deleted Items", "Trash.sbd"))
    assert not any(is_trash_folder(n) for n in ("INBOX", ".Sent", "Trashcan-notes"))


def test_notmuch_corpus_every_file_is_one_message():
    root = corpus_path("mail/notmuch_corpus_default")
    records = _maildir_records(root)
    files = [p for p in root.rglob("*") if p.is_file() and p.parent.name in ("cur", "new", "tmp")]
    assert len(records) == len(files) > 0
    assert all(r.attributes["message_id"] for r in records)
    assert all(r.data_type == "mail:maildir:message" for r in records)
    # notmuch names its files "NN:2," (no time in the name): no Maildir-name time is invented.
    assert not any(MAILDIR_TIME_DESC in r.timestamps for r in records)


def test_notmuch_broken_corpus_does_not_crash():
    root = corpus_path("mail/notmuch_corpus_broken")
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        ctx = _ctx(path)
        with path.open("rb") as handle:
            records = list(MaildirParser().parse(handle, ctx))
        assert len(records) <= 1


# -- folder mtimes (dir lines of the manifest) -----------------------------------------------------
def _dir_bundle(tmp_path: Path, lines: list[dict]) -> Path:
    bundle = tmp_path / "bundle"
    bundle.mkdir()
    (bundle / "manifest.jsonl").write_text("".join(json.dumps(line) + "\n" for line in lines))
    return bundle


def _line(path: str, kind: str = "file", **fields: object) -> dict:
    return {"artifact": "MaildirMessages", "filesystem": "p1", "kind": kind, "source_path": path,
            "deleted": False, "outcome": "empty" if kind == "dir" else "collected",
            "parsers": ["maildir"], **fields}


def _dir_records(bundle: Path, line: dict) -> tuple[list[Record], ParseContext]:
    ctx = ParseContext(provenance=Provenance(bundle_path=None, source_path=line["source_path"],
                                             sha256=None, filesystem="p1"), user="alice", entry=line)
    return [default_engine().tag(r) for r in MaildirParser().parse_directory(bundle, ctx)], ctx


def _t(seconds: int) -> str:
    return iso_utc(seconds * 1_000_000)


def test_folder_mtime_within_two_seconds_of_the_newest_file_is_the_same_change(tmp_path):
    cur = _line("/home/a/Maildir/cur", "dir", mtime=_t(1_700_000_002))
    bundle = _dir_bundle(tmp_path, [
        cur,
        _line("/home/a/Maildir/cur/1.M1.h:2,S", mtime=_t(1_699_000_000), ctime=_t(1_700_000_000)),
        # a deleted entry is not "still present": it neither counts nor sets the newest time
        _line("/home/a/Maildir/cur/2.M2.h:2,ST", deleted=True, outcome="recovered",
              mtime=_t(1_700_009_000), ctime=_t(1_700_009_000)),
        _line("/home/a/Maildir/cur/3.M3.h:2,", outcome="missing")])
    records, ctx = _dir_records(bundle, cur)
    assert len(records) == 1 and ctx.warnings == []
    record = records[0]
    assert record.attributes["removed_after_newest"] is False and record.tags == ()
    assert record.attributes["message_files"] == 1 and record.attributes["deleted_entries"] == 1
    assert record.attributes["newest_file_time"] == _t(1_700_000_000)
    assert record.timestamps == {"Content Modification Time": 1_700_000_002 * 1_000_000}
    # three seconds later: a removal
    later = {**cur, "mtime": _t(1_700_000_003)}
    records, _ = _dir_records(bundle, later)
    assert records[0].attributes["removed_after_newest"] is True
    assert records[0].tags == ("T1070.008", "maildir_folder_message_removed")


def test_empty_cur_takes_the_folder_creation_when_it_has_none(tmp_path):
    folder = _line("/home/a/Maildir/.Sent", "dir", mtime=_t(1_600_000_000), crtime=_t(1_600_000_000))
    cur = _line("/home/a/Maildir/.Sent/cur", "dir", mtime=_t(1_650_000_000))
    records, ctx = _dir_records(_dir_bundle(tmp_path, [folder, cur]), cur)
    assert ctx.warnings == []
    assert records[0].attributes == {
        "folder": ".Sent", "folder_path": "/home/a/Maildir/.Sent", "subdir": "cur",
        "path": "/home/a/Maildir/.Sent/cur", "message_files": 0, "created": _t(1_600_000_000),
        "removed_after_newest": True, "evidence": "folder_emptied",
        "rule_hits": ["maildir_folder_message_removed (T1070.008, medium): Maildir cur/ changed after its "
                      "newest message (a message was expunged, deleted or moved out then)"],
        "severity": "medium"}


def test_folder_directories_other_than_cur_and_new_give_no_record(tmp_path):
    lines = [_line("/home/a/Maildir", "dir", mtime=_t(1)), _line("/home/a/Maildir/tmp", "dir", mtime=_t(1))]
    bundle = _dir_bundle(tmp_path, lines)
    for line in lines:
        records, ctx = _dir_records(bundle, line)
        assert records == [] and ctx.warnings == []


def test_bad_folder_lines_warn_and_never_crash(tmp_path):
    bundle = _dir_bundle(tmp_path, [_line("/m/cur", "dir", mtime="not a time"), "not an object",
                                    {"kind": "file"}, _line("/m/cur/x", mtime=3, ctime="garbage")])
    (bundle / "manifest.jsonl").write_text((bundle / "manifest.jsonl").read_text() + "{broken\n")
    records, ctx = _dir_records(bundle, _line("/m/cur", "dir", mtime="not a time"))
    assert records == []
    assert ctx.warnings[0]["message"] == ("Maildir directory without a readable modification time: "
                                          "no folder record")
    records, ctx = _dir_records(bundle, _line("/m/cur", "dir", mtime=_t(5)))
    assert [r.attributes["message_files"] for r in records] == [1]
    assert "removed_after_newest" not in records[0].attributes  # the file has no usable time
    records, ctx = _dir_records(tmp_path / "nowhere", _line("/m/cur", "dir", mtime=_t(5)))
    assert records == [] and "no bundle manifest" in ctx.warnings[0]["message"]


def test_engine_gives_dir_lines_only_to_parsers_that_read_directories(tmp_path):
    from collections import Counter

    from parsers.engine import records_of_entry

    bundle = _dir_bundle(tmp_path, [])
    for parsers in (["maildir"], ["dovecot_uidlist", "no_such_parser"], []):
        line = {**_line("/home/a/Maildir/cur", "dir", mtime=_t(7), inode=12, size=0, reason="r"),
                "parsers": parsers}
        ctx = ParseContext(provenance=Provenance(bundle_path=None, source_path=line["source_path"],
                                                 sha256=None, filesystem="p1"), entry=line)
        stats: Counter = Counter()
        records = list(records_of_entry(bundle, line, ctx, stats))
        expected = ["fs:stat", "mail:maildir:folder"] if parsers == ["maildir"] else ["fs:stat"]
        assert [r.data_type for r in records] == expected
        assert records[0].attributes["kind"] == "dir" and records[0].tags == ()
        assert ctx.warnings == []
