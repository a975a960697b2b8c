"""Thunderbird folders: every mbox under Mail/ and ImapMail/, Mozilla flags and trash folders."""

from __future__ import annotations

import tracemalloc
from pathlib import Path

from parsers.base import ParseContext
from parsers.mbox import ENVELOPE_DESC
from parsers.mork import MAX_VALUE_CHARS
from parsers.record import Provenance, Record
from parsers.rules import default_engine
from parsers.thunderbird import ThunderbirdParser, thunderbird_folder

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "mail" / "thunderbird"
PROFILE = "/home/alice/.thunderbird/k3x9.default-release"


def _parse(relative: str) -> tuple[list[Record], ParseContext]:
    provenance = Provenance(bundle_path=None, source_path=f"{PROFILE}/{relative}", sha256=None)
    ctx = ParseContext(provenance=provenance, user="alice", entry={"mtime": "2026-11-01T00:00:00+00:00"})
    with (FIXTURES / relative).open("rb") as handle:
        return [default_engine().tag(r) for r in ThunderbirdParser().parse(handle, ctx)], ctx


def test_inbox_expunged_message_is_recovered_and_tagged():
    records, ctx = _parse("Mail/Local Folders/Inbox")
    assert [r.data_type for r in records] == ["mail:thunderbird:message"] * 3
    read, expunged, new = records
    assert read.attributes["x_mozilla_status"] == "0x00000001" and read.tags == ()
    assert read.attributes["account"] == "Local Folders" and read.attributes["folder"] == "Inbox"
    assert read.attributes["store"] == "Mail" and read.attributes["envelope_sender"] == "-"
    assert read.timestamps[ENVELOPE_DESC] == 1791190810 * 1_000_000  # Mon Oct 05 09:00:10 2026
    assert expunged.recovered and expunged.attributes["mozilla_expunged"] is True
    assert expunged.attributes["subject"] == "Wire transfer approval"
    assert "expunged by Thunderbird" in expunged.message
    assert expunged.tags == ("T1070.008", "mail_store_mozilla_expunged")
    assert new.attributes["mozilla_flags"] == ["New"] and not new.recovered
    assert ctx.warnings == []


def test_trash_folder_messages_are_tagged():
    records, _ = _parse("Mail/Local Folders/Trash")
    assert len(records) == 1
    assert records[0].attributes["in_trash_folder"] is True
    assert "mail_store_in_trash_folder" in records[0].tags


def test_imap_deleted_flag():
    records, _ = _parse("ImapMail/imap.example.org/INBOX")
    assert [r.attributes.get("mozilla_imap_deleted", False) for r in records] == [True, False]
    assert records[0].attributes["account"] == "imap.example.org"
    assert "mail_store_mozilla_imap_deleted" in records[0].tags
    assert "[marked deleted]" in records[0].message


def test_profile_files_that_are_not_folders_give_nothing():
    records, ctx = _parse("Mail/Local Folders/msgFilterRules.dat")
    assert records == [] and ctx.warnings == []


def test_no_rewrite_record_for_thunderbird_folders():
    records, _ = _parse("Mail/Local Folders/Inbox")
    assert not [r for r in records if r.data_type.endswith(":rewrite")]


def test_folder_names():
    assert thunderbird_folder(f"{PROFILE}/ImapMail/imap.x.org/INBOX.sbd/Projects.sbd/2026") == {
        "store": "ImapMail", "account": "imap.x.org", "folder": "INBOX/Projects/2026"}


def test_msf_summary_keeps_the_deleted_header_and_lists_a_message_the_folder_lost():
    records, ctx = _parse("Mail/Local Folders/Inbox.msf")
    assert [(r.data_type, r.attributes["message_id"]) for r in records] == [
        ("mail:thunderbird:msf_removed", "tb2@example.org"),
        ("mail:thunderbird:msf_not_in_folder", "tb7@example.org")]
    removed, lost = records
    assert removed.recovered and removed.attributes["subject"] == "Wire transfer approval"
    assert removed.attributes["msg_offset"] == 514 and removed.attributes["msf_row"] == "2"
    assert removed.timestamps == {"Sent Time (summary date)": 1791280805 * 1_000_000,
                                  "Delivery Time (summary dateReceived)": 1791280810 * 1_000_000}
    assert removed.tags == ("T1070.008", "mail_store_msf_row_removed")
    assert removed.attributes["folder"] == "Inbox" and removed.attributes["mailbox"].endswith("/Inbox")
    assert not lost.recovered and lost.attributes["subject"] == "Board minutes \u2013 draft"
    assert lost.tags == ("T1070.008", "mail_store_msf_not_in_folder")
    assert lost.attributes["msg_offset"] == 0xFA0
    assert ctx.warnings == []


def test_msf_without_its_folder_file_reports_only_cut_rows(tmp_path):
    msf = tmp_path / "Inbox.msf"
    msf.write_bytes((FIXTURES / "Mail/Local Folders/Inbox.msf").read_bytes())
    source = f"{PROFILE}/Mail/Local Folders/Inbox.msf"
    ctx = ParseContext(provenance=Provenance(bundle_path=None, source_path=source, sha256=None))
    with msf.open("rb") as handle:
        records = list(ThunderbirdParser().parse(handle, ctx))
    assert [r.data_type for r in records] == ["mail:thunderbird:msf_removed"]


def test_msf_that_is_not_mork_warns(tmp_path):
    junk = tmp_path / "Junk.msf"
    junk.write_bytes(b"\x00\x01garbage")
    source = f"{PROFILE}/Mail/Local Folders/Junk.msf"
    ctx = ParseContext(provenance=Provenance(bundle_path=None, source_path=source, sha256=None))
    with junk.open("rb") as handle:
        assert list(ThunderbirdParser().parse(handle, ctx)) == []
    assert ctx.warnings[0]["message"] == "not a Mork summary (no <mdb:mork> header)"


def test_large_msf_is_streamed_in_a_bounded_heap(tmp_path):
    """A 40 MB summary (the fixture, 40 MB of aborted transaction groups and a 1 MB value) gives the
    fixture's records and a warning for the cut value, with a heap peak far below the file size:
    the summary is streamed, never read whole."""
    folder = FIXTURES / "Mail/Local Folders"
    (tmp_path / "Inbox").write_bytes((folder / "Inbox").read_bytes())
    fixture = (folder / "Inbox.msf").read_bytes()
    group = b"@$${FF{@\n" + b"[1(^81=overwritten)(^83=x@example.org)(^88=1)]\n" * 1000 + b"@$$}~~}@\n"
    long_value = b"<(FFF=" + b"v" * (1 << 20) + b")>\n"
    msf = tmp_path / "Inbox.msf"
    with msf.open("wb") as out:
        out.write(fixture)
        out.write(long_value)
        for _ in range((40 << 20) // len(group)):
            out.write(group)
    assert msf.stat().st_size > 40 << 20
    source = f"{PROFILE}/Mail/Local Folders/Inbox.msf"
    ctx = ParseContext(provenance=Provenance(bundle_path=None, source_path=source, sha256=None),
                       user="alice", entry={"mtime": "2026-11-01T00:00:00+00:00"})
    tracemalloc.start()
    try:
        with msf.open("rb") as handle:
            records = list(ThunderbirdParser().parse(handle, ctx))
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    expected, _ = _parse("Mail/Local Folders/Inbox.msf")
    assert [default_engine().tag(r).to_json() for r in records] == [r.to_json() for r in expected]
    assert ctx.warnings == [{"path": source, "bundle_path": None, "offset": len(fixture) + 1,
                             "message": f"1 Mork value(s) over {MAX_VALUE_CHARS} characters kept cut"}]
    assert peak < 4 << 20, f"heap peak {peak} bytes for a {msf.stat().st_size} byte summary"
