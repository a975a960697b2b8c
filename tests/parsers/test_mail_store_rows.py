"""Issue 6, Maildir/Dovecot and Thunderbird bullet by bullet: the exact timeline rows of each kind
of evidence (time, description, type, message, tags, recovered).

The Maildir and ``dovecot-uidlist`` are Dovecot's own (``tests/fixtures/mail/build_fixtures.sh``:
``dovecot-lda`` deliveries, ``doveadm flags``/``expunge``/``force-resync``); the Maildir++ flag and
folder names no Dovecot command here writes (``.Deleted Messages``, ``R``/``F``/``D``, a file in
``tmp/``) are built by name as the Maildir specification and Dovecot spell them; the Thunderbird
folders are the format-exact ones of ``tests/fixtures/mail/thunderbird``. Folder-mtime rows are in
``test_maildir_dovecot.py``, ``.msf`` rows in ``test_thunderbird.py`` and ``test_dovecot_bundle.py``.
"""

from __future__ import annotations

import tarfile
from pathlib import Path

import pytest

from tests.parsers.mail_rows import timeline_rows
from tests.parsers.test_maildir_dovecot import FIXTURES, _maildir_records, _uidlist_records
from tests.parsers.test_thunderbird import _parse as _thunderbird

#: Dovecot delivered every message of the fixture in the same second (the file names' time).
DELIVERED = "2026-11-21T04:50:42.000000+00:00"
SENT, RECEIVED = "Sent Time (Date header)", "Delivery Time (topmost Received header)"
NAME_TIME, ENVELOPE = "Delivery Time (Maildir file name)", "Envelope Time (From_ line)"
TRASH = ("T1070.008", "mail_store_in_trash_folder")


def _maildir_message(n: int, day: int, note: str = "", tags: tuple[str, ...] = (),
                     named: str | None = DELIVERED) -> list[tuple]:
    """The rows of ``Report n`` as build_fixtures.sh writes it (Date at 8+n:00:00 on ``day``
    October, Received n seconds later) in a Maildir file whose name holds ``named``."""
    hour = f"2026-10-{day:02d}T{8 + n:02d}:00:0"
    text = f"Mail from Sender {n} <sender{n}@example.org> to Alice <alice@corp.example>: Report {n}{note}"
    rows = [(f"{hour}0.000000+00:00", SENT, "mail:maildir:message", text, tags, False),
            (f"{hour}{n}.000000+00:00", RECEIVED, "mail:maildir:message", text, tags, False)]
    if named is not None:
        rows.append((named, NAME_TIME, "mail:maildir:message", text, tags, False))
    return sorted(rows, key=lambda row: (row[0], row[1]))  # a record's rows: by time, description


@pytest.fixture()
def maildir(tmp_path: Path) -> Path:
    with tarfile.open(FIXTURES / "dovecot-maildir.tar") as tar:
        tar.extractall(tmp_path, filter="data")
    return tmp_path / "Maildir"


def test_dovecot_maildir_rows_trashed_flag_and_trash_folder(maildir):
    """uid 3 flagged \\Deleted (``:2,T``), uid 4 moved to ``.Trash``, the rest plain."""
    assert timeline_rows(_maildir_records(maildir)) == [
        *_maildir_message(4, 8, " [in .Trash]", TRASH),
        *_maildir_message(1, 5),
        *_maildir_message(3, 7, " [flagged trashed]", ("T1070.008", "mail_store_maildir_trashed")),
        *_maildir_message(5, 4),  # Date "4 Oct" + 13:00: build_fixtures.sh's day for message 5
        *_maildir_message(6, 5),
        *_maildir_message(8, 7)]


def test_dovecot_uidlist_rows_file_gone_and_expunged_uids(maildir):
    """uid 7 listed with no file; uids 2, 4, 9 gone from the list and N10 above the highest (8)."""
    records, ctx = _uidlist_records(maildir / "dovecot-uidlist")
    assert ctx.warnings == []
    assert timeline_rows(records) == [
        (DELIVERED, NAME_TIME, "mail:dovecot:uid_missing_file",
         f"Dovecot UID 7 of {maildir} lists 1795236642.M318402P24051.vm,S=320,W=330, whose file is gone "
         f"from cur/, new/ and tmp/: message expunged or deleted after its delivery at {DELIVERED}",
         ("T1070.008", "mail_store_uidlist_file_missing"), False),
        (DELIVERED, "Undated; Not before: delivery of the message before the first gap (also Not after: "
                    f"uidlist last modified: {DELIVERED})", "mail:dovecot:uid_gap",
         f"3 message(s) expunged from {maildir}: UIDs 2, 4, 9 are missing from dovecot-uidlist (6 listed, "
         "highest 8, next UID 10); the newest 1 (UIDs 9) went", ("T1070.008", "mail_store_uid_gap"), False)]


def test_maildir_plus_plus_flags_deleted_messages_folder_and_tmp(maildir):
    """Every ``:2,`` flag letter and the other Maildir++ places: Dovecot's message files renamed
    as a client would leave them."""
    source = next((maildir / "new").glob("1795236642.M209840P24033.*"))
    text = source.read_bytes()
    root = maildir.parent / "Other"
    names = ("cur/1791190802.M1P1.host,S=320:2,RS", "cur/1791190803.M2P2.host,S=320:2,FD",
             "cur/1791190804.M3P3.host,S=320:2,PST", ".Deleted Messages/cur/1791190805.M4P4.host,S=320:2,S",
             "tmp/1791190806.M5P5.host")  # the last: a delivery that never finished
    for name in names:
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_bytes(text)
    records = _maildir_records(root)
    assert [(r.attributes["folder"], r.attributes["subdir"], r.attributes["flags"],
             r.attributes.get("flag_names")) for r in records] == [
        (".Deleted Messages", "cur", "S", ["seen"]),
        ("Other", "cur", "RS", ["replied", "seen"]),
        ("Other", "cur", "FD", ["flagged", "draft"]),
        ("Other", "cur", "PST", ["passed", "seen", "trashed"]),
        ("Other", "tmp", None, None)]
    assert timeline_rows(records) == [
        *_maildir_message(1, 5, " [in .Deleted Messages]", TRASH, "2026-10-05T09:00:05.000000+00:00"),
        *_maildir_message(1, 5, named="2026-10-05T09:00:02.000000+00:00"),
        *_maildir_message(1, 5, named="2026-10-05T09:00:03.000000+00:00"),
        *_maildir_message(1, 5, " [flagged trashed]", ("T1070.008", "mail_store_maildir_trashed"),
                          "2026-10-05T09:00:04.000000+00:00"),
        *_maildir_message(1, 5, " [in tmp/: delivery unfinished]", named="2026-10-05T09:00:06.000000+00:00")]


def _tb_message(day: int, hour: int, sender: int, subject: str, note: str = "",
                tags: tuple[str, ...] = (), recovered: bool = False) -> list[tuple]:
    """Rows of a message of the Thunderbird fixture: Date and Received at :05, From_ line at :10."""
    text = f"Mail from Sender {sender} <sender{sender}@example.org> to alice@corp.example: {subject}{note}"
    at = f"2026-10-{day:02d}T{hour:02d}:00:"
    return [(f"{at}05.000000+00:00", RECEIVED, "mail:thunderbird:message", text, tags, recovered),
            (f"{at}05.000000+00:00", SENT, "mail:thunderbird:message", text, tags, recovered),
            (f"{at}10.000000+00:00", ENVELOPE, "mail:thunderbird:message", text, tags, recovered)]


def test_thunderbird_folder_rows():
    expunged = " [expunged by Thunderbird, still in the file until compaction]"
    records, ctx = _thunderbird("Mail/Local Folders/Inbox")
    assert ctx.warnings == []
    assert timeline_rows(records) == [
        *_tb_message(5, 9, 1, "Quarterly numbers"),
        *_tb_message(6, 10, 2, "Wire transfer approval", expunged,
                     ("T1070.008", "mail_store_mozilla_expunged"), recovered=True),
        *_tb_message(7, 11, 3, "Lunch?")]
    records, ctx = _thunderbird("Mail/Local Folders/Trash")
    assert ctx.warnings == []
    assert timeline_rows(records) == _tb_message(8, 12, 4, "Audit findings", tags=TRASH)
    records, ctx = _thunderbird("ImapMail/imap.example.org/INBOX")
    assert ctx.warnings == []
    assert timeline_rows(records) == [
        *_tb_message(9, 13, 5, "Re: invoices", " [marked deleted]",
                     ("T1070.008", "mail_store_mozilla_imap_deleted")),
        *_tb_message(10, 14, 6, "Weekend")]
