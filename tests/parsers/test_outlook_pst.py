"""Outlook PST/OST parser: the real corpus PST (folders, items, times) and failure handling."""

from __future__ import annotations

import io
import struct
import zlib
from collections import Counter
from pathlib import Path

import pytest

from collector.timeutil import from_filetime, iso_utc
from parsers.base import ParseContext
from parsers.outlook_pst import OutlookPstParser
from parsers.record import Provenance, Record
from parsers.rules import default_engine
from tests.conftest import corpus_path

pytest.importorskip("pypff")

SOURCE = "C:/Users/saqib/Documents/Outlook Files/Outlook.pst"


def _ctx(source: str = SOURCE) -> ParseContext:
    return ParseContext(provenance=Provenance(bundle_path="files/Outlook.pst", source_path=source,
                                              sha256=None), host="xp", user="saqib")


def _parse(path: Path) -> tuple[list[Record], ParseContext]:
    ctx = _ctx()
    with path.open("rb") as handle:
        return list(OutlookPstParser().parse(handle, ctx)), ctx


@pytest.fixture(scope="module")
def pst_records() -> tuple[list[Record], ParseContext]:
    return _parse(corpus_path("mail/extra/Outlook.pst"))


def test_corpus_pst_item_counts_per_folder(pst_records):
    records, ctx = pst_records
    items = [r for r in records if r.data_type == "mail:outlook:item"]
    assert len(items) == 17
    assert Counter(r.attributes["folder_path"] for r in items) == {
        "/Top of Personal Folders/Inbox": 8, "/Top of Personal Folders/Sent Items": 6,
        "/Top of Personal Folders/Calendar": 1, "/Top of Personal Folders/Contacts": 1,
        "/Freebusy Data": 1}
    assert ctx.warnings == []
    assert not any(r.recovered or r.corrupted for r in records)


def test_corpus_pst_every_folder_is_a_record(pst_records):
    records, _ = pst_records
    folders = {r.attributes["folder_path"]: r for r in records if r.data_type == "mail:outlook:folder"}
    assert len(folders) == 26
    assert folders["/Top of Personal Folders/Inbox"].attributes["message_count"] == 8
    assert "/Top of Personal Folders/Inbox/SubInbox" in folders
    deleted = folders["/Top of Personal Folders/Deleted Items"]
    assert deleted.attributes["in_deleted_items"] is True
    assert deleted.attributes["message_count"] == 0
    assert [p for p, r in folders.items() if r.attributes.get("in_deleted_items")] == [
        "/Top of Personal Folders/Deleted Items"]


def test_corpus_pst_message_fields_and_times(pst_records):
    records, _ = pst_records
    inbox = [r for r in records if r.data_type == "mail:outlook:item"
             and r.attributes["folder_path"] == "/Top of Personal Folders/Inbox"]
    first = inbox[0]
    assert first.attributes["subject"] == "Multiple attachments"
    assert first.attributes["message_class"] == "IPM.Note"
    assert first.attributes["sender_name"] == "Saqib Razzaq"
    assert first.attributes["sender_email"] == "saqib.razzaq@xp.local"
    assert first.attributes["message_id"] == "<003c01cc306e$17006760$45013620$@razzaq@xp.local>"
    assert first.attributes["recipients"] == [
        {"name": "saqib.razzaq@xp.local", "email": "saqib.razzaq@xp.local", "type": "to"}]
    assert {k: iso_utc(v) for k, v in first.timestamps.items()} == {
        "Client Submit Time": "2011-06-21T23:51:07.000000+00:00",
        "Delivery Time": "2011-06-21T23:51:07.000000+00:00",
        "Creation Time": "2011-06-21T23:51:07.781000+00:00",
        "Modification Time": "2013-11-26T14:55:18.912000+00:00"}
    assert first.message == ("Outlook IPM.Note in /Top of Personal Folders/Inbox from Saqib Razzaq "
                             "to saqib.razzaq@xp.local: Multiple attachments")
    assert first.host == "xp" and first.user == "saqib"
    # Outlook's test message has no submit time: none is invented.
    test_message = inbox[-1]
    assert test_message.attributes["subject"] == "Microsoft Outlook Test Message"
    assert "Client Submit Time" not in test_message.timestamps
    assert iso_utc(test_message.timestamps["Delivery Time"]) == "2011-06-21T23:42:35.000000+00:00"


def test_corpus_pst_item_without_typed_object_is_kept(pst_records):
    records, _ = pst_records
    (freebusy,) = [r for r in records if r.data_type == "mail:outlook:item"
                   and r.attributes["folder_path"] == "/Freebusy Data"]
    assert freebusy.attributes["message_class"] == "IPM.Microsoft.ScheduleData.FreeBusy"
    assert freebusy.attributes["subject"] == "LocalFreebusy"
    assert iso_utc(freebusy.timestamps["Creation Time"]) == "2011-06-21T23:43:13.765000+00:00"


def test_corpus_pst_untagged_nothing_deleted(pst_records):
    records, _ = pst_records
    engine = default_engine()
    assert [r for r in (engine.tag(r) for r in records) if r.tags] == []


def test_deleted_items_and_orphans_are_tagged():
    engine = default_engine()
    base = dict(message="m", provenance=_ctx().provenance, parser="outlook_pst", order=0)
    in_bin = engine.tag(Record(data_type="mail:outlook:item", attributes={"in_deleted_items": True},
                               **base))
    assert in_bin.tags == ("T1070.008", "mail_client_outlook_deleted_items")
    orphan = engine.tag(Record(data_type="mail:outlook:item", attributes={"recovered_item": True},
                               recovered=True, **base))
    assert orphan.tags == ("T1070.008", "mail_client_outlook_orphan_or_recovered")
    purged = engine.tag(Record(data_type="mail:outlook:item",
                               attributes={"in_recoverable_items": True}, **base))
    assert purged.tags == ("T1070.008", "mail_client_outlook_recoverable_items")


def test_sniff():
    assert OutlookPstParser.sniff(b"!BDN\x00\x00\x00\x00SM\x17\x00", "x.pst")
    assert OutlookPstParser.sniff(b"!BDN\x00\x00\x00\x00SO\x24\x00", "x.ost")
    assert not OutlookPstParser.sniff(b"From x", "x.pst")


def test_not_a_pst_is_a_warning():
    ctx = _ctx()
    assert list(OutlookPstParser().parse(io.BytesIO(b"!BDN" + b"\x00" * 600), ctx)) == []
    assert len(ctx.warnings) == 1 and ctx.warnings[0]["message"].startswith("not a readable PST/OST")


def test_truncated_pst_does_not_raise(tmp_path):
    source = corpus_path("mail/extra/Outlook.pst")
    cut = tmp_path / "cut.pst"
    with source.open("rb") as src:
        cut.write_bytes(src.read(200_000))
    records, ctx = _parse(cut)
    assert ctx.warnings  # whatever survives is kept, the damage is reported
    assert all(r.parser == "outlook_pst" for r in records)


def test_filetime_conversion():
    assert from_filetime(129531738670000000) == 1308700267000000
    assert from_filetime(0) is None
    assert from_filetime(0x7FFFFFFFFFFFFFFF) is None


def _crc(data: bytes) -> int:
    """MS-PST page CRC: CRC-32 table update from 0 with no final inversion."""
    return zlib.crc32(data, 0xFFFFFFFF) ^ 0xFFFFFFFF


def _orphan_copy(source: Path, target: Path, nid: int) -> None:
    """Copy a Unicode PST with the node ``nid`` re-parented to a folder that does not exist.

    That is what an item looks like once its folder's index entry is gone: libpff lists it as an
    orphan. The node B-tree leaf entry (nid, bidData, bidSub, nidParent) is patched and the page's
    CRC recomputed, so the copy is a valid PST.
    """
    data = bytearray(source.read_bytes())
    _bid, root = struct.unpack_from("<QQ", data, 216)  # ROOT.BREFNBT in the Unicode header

    def find(offset: int) -> tuple[int, int] | None:
        count, _max, size, level = data[offset + 488:offset + 492]
        for index in range(count):
            entry = offset + index * size
            if level:
                found = find(struct.unpack_from("<Q", data, entry + 16)[0])
                if found:
                    return found
            elif struct.unpack_from("<Q", data, entry)[0] == nid:
                return offset, entry
        return None

    page, entry = find(root)
    assert struct.unpack_from("<I", data, page + 500)[0] == _crc(bytes(data[page:page + 496]))
    struct.pack_into("<I", data, entry + 24, 0x001FFFE2)  # a folder nid that does not exist
    struct.pack_into("<I", data, page + 500, _crc(bytes(data[page:page + 496])))
    target.write_bytes(bytes(data))


def test_orphan_item_is_recovered_and_tagged(tmp_path):
    patched = tmp_path / "orphan.pst"
    _orphan_copy(corpus_path("mail/extra/Outlook.pst"), patched, nid=2097476)
    records, ctx = _parse(patched)
    items = [r for r in records if r.data_type == "mail:outlook:item"]
    assert len(items) == 17
    inbox = [r for r in items if r.attributes["folder_path"] == "/Top of Personal Folders/Inbox"]
    assert len(inbox) == 7
    (orphan,) = [r for r in items if r.recovered]
    assert orphan.attributes["subject"] == "Multiple attachments"
    assert orphan.attributes["origin"] == "orphan" and orphan.attributes["recovered_item"] is True
    assert orphan.attributes["folder_path"] is None
    assert iso_utc(orphan.timestamps["Delivery Time"]) == "2011-06-21T23:51:07.000000+00:00"
    assert orphan.message == ("Outlook IPM.Note in (orphan item, no folder) from Saqib Razzaq to "
                              "saqib.razzaq@xp.local: Multiple attachments")
    assert default_engine().tag(orphan).tags == ("T1070.008", "mail_client_outlook_orphan_or_recovered")
    assert [w["message"] for w in ctx.warnings] == [
        "/Top of Personal Folders/Inbox: the folder counts 8 messages but only 7 are linked to it "
        "in the descriptor index (orphaned or unreadable items)"]


def test_collected_and_parsed_end_to_end(tmp_path):
    """The OutlookDataFiles artifact finds the PST under Documents/Outlook Files and parses it."""
    import json
    import shutil

    from inboxtrail.cli import main

    store = tmp_path / "root" / "Users" / "bob" / "Documents" / "Outlook Files"
    store.mkdir(parents=True)
    shutil.copyfile(corpus_path("mail/extra/Outlook.pst"), store / "Outlook.pst")
    out = tmp_path / "out"
    assert main(["--quiet", "run", str(tmp_path / "root"), "-o", str(out)]) == 0
    records = [json.loads(line) for line in (out / "records.jsonl").read_text(encoding="utf-8").splitlines()]
    outlook = [r for r in records if r["parser"] == "outlook_pst"]
    assert Counter(r["data_type"] for r in outlook) == {"mail:outlook:folder": 26, "mail:outlook:item": 17}
    assert {r["user"] for r in outlook} == {"bob"}
    rows = (out / "timeline.l2t.csv").read_text(encoding="utf-8").splitlines()
    assert any(",PST,Outlook PST/OST,Delivery Time," in row and "Multiple attachments" in row for row in rows)
