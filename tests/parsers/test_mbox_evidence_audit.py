"""Issue 6, mbox bullet by bullet: the exact timeline rows each kind of deletion evidence gives.

``test_mbox.py`` checks fields and variants; these tests pin down what reaches the examiner: every
row (time, description, type, message, tags, recovered) of the files the real programs wrote
(Dovecot's mbox with ``X-Status: D`` and expunged UIDs, bsd-mailx's rewrite on quit and its
``~/mbox``) and of format-exact bytes for the traces no program here writes on request (``Status:
D``, a Content-Length that disagrees, a cut tail, a NUL hole, Thunderbird's expunged and IMAP-deleted
flags). Carved leftovers are in ``tests/collector/test_unallocated.py``, a missing or emptied spool
of a user whose history shows mail use in ``tests/parsers/test_targets.py``.
"""

from __future__ import annotations

from collector.timeutil import iso_utc
from tests.parsers.mail_rows import timeline_rows
from tests.parsers.test_mbox import FIXTURES, TIMES, _msg, _parse

SENT, DELIVERED, ENVELOPE = ("Sent Time (Date header)", "Delivery Time (topmost Received header)",
                             "Envelope Time (From_ line)")
MESSAGE = "mail:mbox:message"
ALICE = "to Alice <alice@corp.example>"


def _three(sent: str, delivered: str, envelope: str, message: str, tags: tuple[str, ...] = (),
           recovered: bool = False) -> list[tuple]:
    """The rows of one message with a Date, a Received and a From_ time, in timeline order."""
    rows = [(sent, SENT, MESSAGE, message, tags, recovered),
            (delivered, DELIVERED, MESSAGE, message, tags, recovered),
            (envelope, ENVELOPE, MESSAGE, message, tags, recovered)]
    return sorted(rows, key=lambda row: (row[0], row[1]))


def test_dovecot_x_status_d_and_expunged_uids_with_nextuid():
    """Dovecot 2.3 (real): UID 3 flagged \\Deleted (X-Status: D), UIDs 2 and 6 expunged, X-IMAPbase
    saying UID 6 was handed out: the newest message went too."""
    written = iso_utc(TIMES["dovecot-inbox.mbox"] * 1_000_000)
    records, ctx = _parse(FIXTURES / "dovecot-inbox.mbox", source="/var/mail/alice", mtime=written)
    assert ctx.warnings == []
    delivered = "2026-11-21T04:50:42.000000+00:00"  # dovecot-lda's From_ lines: when the script ran
    deleted = ("T1070.008", "mail_store_marked_deleted")
    assert timeline_rows(records) == [
        *_three("2026-10-05T09:00:00.000000+00:00", "2026-10-05T09:00:01.000000+00:00", delivered,
                f"Mail from Sender 1 <sender1@example.org> {ALICE}: Report 1 [Status: R]"),
        *_three("2026-10-07T11:00:00.000000+00:00", "2026-10-07T11:00:03.000000+00:00", delivered,
                f"Mail from Sender 3 <sender3@example.org> {ALICE}: Report 3 [marked deleted]", deleted),
        *_three("2026-10-08T12:00:00.000000+00:00", "2026-10-08T12:00:04.000000+00:00", delivered,
                f"Mail from Sender 4 <sender4@example.org> {ALICE}: Report 4"),
        *_three("2026-10-09T13:00:00.000000+00:00", "2026-10-09T13:00:05.000000+00:00", delivered,
                f"Mail from Sender 5 <sender5@example.org> {ALICE}: Report 5"),
        (delivered, "Undated; Not before: delivery of the message before the first gap (also Not after: "
                    f"mailbox file last modified: {written})", "mail:mbox:uid_gap",
         "2 message(s) expunged from /var/mail/alice: IMAP UIDs 2, 6 are missing (4 present, highest 5, "
         "last UID handed out 6); the newest 1 (UIDs 6) went", ("T1070.008", "mail_store_uid_gap"), False)]


def test_mailx_delete_rewrite_rows_say_it_may_be_read_mail_moved():
    """bsd-mailx (real) ``d 2`` then ``q``: three messages left, the spool written after the newest
    delivery; the rewrite row names the ~/mbox alternative."""
    written = iso_utc(TIMES["mailx-spool.after-delete"] * 1_000_000)
    records, ctx = _parse(FIXTURES / "mailx-spool.after-delete", source="/var/mail/alice", mtime=written,
                          artifact="LinuxMailSpools")
    assert ctx.warnings == []
    assert timeline_rows(records) == [
        *_three("2026-10-05T09:00:00.000000+00:00", "2026-10-05T09:00:01.000000+00:00",
                "2026-10-05T09:00:01.000000+00:00",
                f"Mail from Sender 1 <sender1@example.org> {ALICE}: Report 1 [Status: O]"),
        *_three("2026-10-07T11:00:00.000000+00:00", "2026-10-07T11:00:03.000000+00:00",
                "2026-10-07T11:00:03.000000+00:00",
                f"Mail from Sender 3 <sender3@example.org> {ALICE}: Report 3 [Status: O]"),
        *_three("2026-10-08T12:00:00.000000+00:00", "2026-10-08T12:00:04.000000+00:00",
                "2026-10-08T12:00:04.000000+00:00",
                f"Mail from Sender 4 <sender4@example.org> {ALICE}: Report 4 [Status: O]"),
        (written, "Spool Rewrite Time (modified after its newest delivery)", "mail:mbox:rewrite",
         f"Spool /var/mail/alice was rewritten in place at {written}, after its newest message was "
         "delivered (2026-10-08T12:00:04.000000+00:00): messages were deleted, or mail/mailx moved read "
         "messages to ~/mbox on quit (not a deletion; compare with the user's ~/mbox)",
         ("T1070.008", "mail_store_spool_rewritten"), False)]


def test_mailx_home_mbox_rows_are_plain_messages():
    """bsd-mailx (real) moved read message 1 to ~/mbox: a message row, no deletion evidence."""
    records, ctx = _parse(FIXTURES / "mailx-home-mbox.after-read", source="/home/alice/mbox",
                          mtime=iso_utc(TIMES["mailx-home-mbox.after-read"] * 1_000_000), artifact="UserMbox")
    assert ctx.warnings == []
    assert timeline_rows(records) == _three(
        "2026-10-05T09:00:00.000000+00:00", "2026-10-05T09:00:01.000000+00:00",
        "2026-10-05T09:00:01.000000+00:00",
        f"Mail from Sender 1 <sender1@example.org> {ALICE}: Report 1 [Status: RO]")


def test_status_header_with_d():
    """``Status: RD`` (the D some readers write into Status itself, not X-Status)."""
    records, ctx = _parse(
        _msg("a@x", "Mon Oct  5 09:00:00 2026", "Status: RD\nSubject: pine-deleted\n"
             "Date: Mon, 5 Oct 2026 08:59:00 +0000\n")
        + _msg("b@x", "Tue Oct  6 09:00:00 2026", "Status: RO\nX-Status: A\nSubject: kept\n"))
    assert ctx.warnings == []
    gone = "Mail from a@x to ?: pine-deleted [Status: RD] [marked deleted]"
    assert timeline_rows(records) == [
        ("2026-10-05T08:59:00.000000+00:00", SENT, MESSAGE, gone, ("T1070.008", "mail_store_marked_deleted"),
         False),
        ("2026-10-05T09:00:00.000000+00:00", ENVELOPE, MESSAGE, gone,
         ("T1070.008", "mail_store_marked_deleted"), False),
        ("2026-10-06T09:00:00.000000+00:00", ENVELOPE, MESSAGE, "Mail from b@x to ?: kept [Status: RO]", (),
         False)]


def test_content_length_disagreeing_and_short_body_rows():
    records, ctx = _parse(
        _msg("a@x", "Mon Oct  5 09:00:00 2026", "Subject: cut\nContent-Length: 500\n", "short\n")
        + _msg("b@x", "Tue Oct  6 09:00:00 2026", "Subject: ok\n"))
    assert [(w["offset"], w["message"]) for w in ctx.warnings] == [
        (0, "Content-Length 500 disagrees with the body (6 bytes)")]
    assert timeline_rows(records) == [
        ("2026-10-05T09:00:00.000000+00:00", ENVELOPE, MESSAGE, "Mail from a@x to ?: cut",
         ("T1070.008", "mail_store_content_length_mismatch"), False),
        ("2026-10-06T09:00:00.000000+00:00", ENVELOPE, MESSAGE, "Mail from b@x to ?: ok", (), False)]
    records, ctx = _parse(b"From a@x Mon Oct  5 09:00:00 2026\nSubject: cut\nContent-Length: 900\n\n"
                          b"only the first part\n")
    assert [w["message"] for w in ctx.warnings] == ["Content-Length 900 disagrees with the body (20 bytes)"]
    assert timeline_rows(records) == [
        ("2026-10-05T09:00:00.000000+00:00", ENVELOPE, MESSAGE, "Mail from a@x to ?: cut",
         ("T1070.008", "mail_store_content_length_mismatch", "mail_store_truncated_body"), False)]


def test_tail_cut_inside_a_header_and_a_nul_hole_rows():
    cut = (_msg("a@x", "Mon Oct  5 09:00:00 2026", "Subject: ok\n")
           + b"From b@x Tue Oct  6 09:00:00 2026\nSubj")
    records, ctx = _parse(cut)
    assert [(w["offset"], w["message"]) for w in ctx.warnings] == [
        (cut.index(b"From b@x"), "file ends inside the message header (truncated spool?)")]
    assert timeline_rows(records) == [
        ("2026-10-05T09:00:00.000000+00:00", ENVELOPE, MESSAGE, "Mail from a@x to ?: ok", (), False),
        ("2026-10-06T09:00:00.000000+00:00", ENVELOPE, MESSAGE, "Mail from b@x to ?: (no subject)",
         ("T1070.008", "mail_store_truncated_in_header"), False)]
    holed = (_msg("a@x", "Mon Oct  5 09:00:00 2026", "Subject: hole\n", "start\n" + "\0" * 64 + "\n")
             + _msg("b@x", "Tue Oct  6 09:00:00 2026", "Subject: fine\n"))
    records, ctx = _parse(holed)
    hole = holed.index(b"\0")
    assert [(w["offset"], w["message"]) for w in ctx.warnings] == [
        (hole, f"run of NUL bytes inside the message at offset {hole}")]
    assert timeline_rows(records) == [
        ("2026-10-05T09:00:00.000000+00:00", ENVELOPE, MESSAGE, "Mail from a@x to ?: hole",
         ("T1070.008", "mail_store_nul_bytes"), False),
        ("2026-10-06T09:00:00.000000+00:00", ENVELOPE, MESSAGE, "Mail from b@x to ?: fine", (), False)]


def test_mozilla_expunged_is_a_recovered_row_and_imap_deleted_a_tagged_one():
    records, ctx = _parse(
        _msg("-", "Mon Oct  5 09:00:00 2026",
             "X-Mozilla-Status: 0009\nX-Mozilla-Status2: 00000000\nSubject: gone\n")
        + _msg("-", "Tue Oct  6 09:00:00 2026", "X-Mozilla-Status: 0001\nX-Mozilla-Status2: 00200000\n"
               "Subject: imap\n"))
    assert ctx.warnings == []
    assert timeline_rows(records) == [
        ("2026-10-05T09:00:00.000000+00:00", ENVELOPE, MESSAGE,
         "Mail from - to ?: gone [expunged by Thunderbird, still in the file until compaction]",
         ("T1070.008", "mail_store_mozilla_expunged"), True),
        ("2026-10-06T09:00:00.000000+00:00", ENVELOPE, MESSAGE, "Mail from - to ?: imap [marked deleted]",
         ("T1070.008", "mail_store_mozilla_imap_deleted"), False)]
