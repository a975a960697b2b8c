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
