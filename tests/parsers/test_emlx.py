"""Apple Mail .emlx parser: byte-count header, headers, plist flags, dates in both epochs."""

from __future__ import annotations

import io

from collector.timeutil import iso_utc
from parsers.base import ParseContext
from parsers.emlx import COCOA_OFFSET, EmlxParser, choose_epoch, decode_flags, is_trash_mailbox
from parsers.record import Provenance, Record
from parsers.rules import default_engine
from tests.fixtures.apple_mail.build_envelope_index import build, emlx_bytes

BOX = "/Users/alice/Library/Mail/V10/4C1B2D7E-2F1A-4B8E-9C3D-1A2B3C4D5E6F"


def _parse(data: bytes, path: str) -> tuple[list[Record], ParseContext]:
    ctx = ParseContext(provenance=Provenance(bundle_path="b", source_path=path, sha256=None),
                       host="mac", user="alice")
    return [default_engine().tag(r) for r in EmlxParser().parse(io.BytesIO(data), ctx)], ctx


def test_message_headers_plist_and_times():
    (record,), ctx = _parse(emlx_bytes(1), f"{BOX}/INBOX.mbox/X/Data/Messages/1.emlx")
    assert ctx.warnings == []
    assert record.data_type == "mail:apple_mail:emlx"
    assert record.attributes["rowid"] == 1 and record.attributes["partial"] is False
    assert record.attributes["mailbox"] == "INBOX"
    assert record.attributes["from"] == "Bob Example <bob@example.org>"
    assert record.attributes["subject"] == "Quarterly report"
    assert record.attributes["message_id"] == "<msg1@example.org>"
    assert record.attributes["flags"] == 1 and record.attributes["flag_names"] == ["read"]
    assert record.attributes["remote_id"] == "101"
    assert record.attributes["date_epoch"] == "unix"
    assert {k: iso_utc(v) for k, v in record.timestamps.items()} == {
        "Sent Time (Date header)": "2026-10-05T09:12:40.000000+00:00",
        "Received Time (emlx plist)": "2026-10-05T09:12:44.000000+00:00",
        "Last Viewed Time (emlx plist)": "2026-10-05T09:13:44.000000+00:00"}
    assert record.tags == ()
    assert record.message == ("Apple Mail message in INBOX from Bob Example <bob@example.org> to "
                              "Alice <alice@example.com>: Quarterly report")


def test_cocoa_plist_dates_are_recognised_by_the_date_header():
    (record,), _ = _parse(emlx_bytes(1, epoch="cocoa"), f"{BOX}/INBOX.mbox/Messages/1.emlx")
    assert record.attributes["date_epoch"] == "cocoa"
    assert iso_utc(record.timestamps["Received Time (emlx plist)"]) == "2026-10-05T09:12:44.000000+00:00"


def test_deleted_bit_and_trash_mailbox_are_tagged():
    path = f"{BOX}/Deleted Messages.mbox/X/Data/Messages/4.emlx"
    (record,), _ = _parse(emlx_bytes(4), path)
    assert record.attributes["flags"] == 3
    assert record.attributes["deleted_flag"] is True and record.attributes["in_trash"] is True
    assert record.tags == ("T1070.008", "mail_client_apple_emlx_deleted_flag", "mail_client_apple_in_trash")
    assert record.message.endswith("Wire transfer details [deleted flag]")


def test_partial_emlx():
    (record,), _ = _parse(emlx_bytes(5), f"{BOX}/INBOX.mbox/X/Data/Messages/5.partial.emlx")
    assert record.attributes["partial"] is True and record.attributes["rowid"] == 5
    assert record.message.startswith("Apple Mail message (partial) in INBOX")


def test_truncated_file_keeps_the_headers_and_warns():
    data = emlx_bytes(2)
    cut = data[: data.index(b"<?xml")]
    (record,), ctx = _parse(cut, f"{BOX}/INBOX.mbox/2.emlx")
    assert record.corrupted and record.attributes["subject"] == "Lunch on Friday?"
    assert [w["message"] for w in ctx.warnings] == ["no property list after the message (truncated emlx?)"]
    assert ctx.warnings[0]["offset"] == len(cut)


def test_not_an_emlx():
    records, ctx = _parse(b"hello\n", f"{BOX}/INBOX.mbox/9.emlx")
    assert records == [] and ctx.warnings[0]["message"].startswith("not an emlx file")
    records, ctx = _parse(b"whatever", f"{BOX}/INBOX.mbox/Info.plist")
    assert records == [] and ctx.warnings == []


def test_files_built_for_the_envelope_fixture_parse(tmp_path):
    build(tmp_path)
    files = sorted(tmp_path.rglob("*.emlx"))
    assert len(files) == 6
    for path in files:
        (record,), ctx = _parse(path.read_bytes(), str(path))
        assert ctx.warnings == [] and record.attributes["rowid"] == int(path.name.split(".")[0])


def test_flag_layout():
    assert decode_flags(0x1 | 0x2 | (3 << 10) | (0x19 << 16) | (1 << 24)) == {
        "flag_names": ["read", "deleted", "junk"], "attachment_count": 3, "priority": 0x19}


def test_choose_epoch():
    unix_2026 = 1_791_191_564
    assert choose_epoch([unix_2026]) == "unix"
    assert choose_epoch([unix_2026 - COCOA_OFFSET]) == "cocoa"
    assert choose_epoch([]) == "unix"
    # a reference time decides even where the median rule would not
    assert choose_epoch([1_000_000_000], reference=(1_000_000_000 + COCOA_OFFSET) * 1_000_000) == "cocoa"


def test_trash_names():
    assert is_trash_mailbox("imap://a@b/Deleted%20Messages")
    assert is_trash_mailbox("Work/Trash")
    assert not is_trash_mailbox("INBOX")
