"""Outlook PST/OST parser: the real corpus PST (folders, items, times) and failure handling."""

from __future__ import annotations

import io
import shutil
from collections import Counter
from pathlib import Path

import pytest

from collector.timeutil import from_filetime, iso_utc
from parsers.base import ParseContext
from parsers.outlook_pst import OutlookPstParser
from parsers.record import Provenance, Record
from parsers.rules import default_engine
from tests.conftest import corpus_path
from tests.fixtures.pst_patch import Pst
from tests.parsers.mail_rows import timeline_rows

pytest.importorskip("pypff")

SOURCE = "C:/Users/saqib/Documents/Outlook Files/Outlook.pst"


def _ctx(source: str = SOURCE) -> ParseContext:
    return ParseContext(provenance=Provenance(bundle_path="files/Outlook.pst", source_path=source,
                                              sha256=None), host="xp", user="saqib")


def _parse(path: Path) -> tuple[list[Record], ParseContext]:
    ctx = _ctx()
    with path.open("rb") as handle:
        return list(OutlookPstParser().parse(handle, ctx)), ctx


def _warnings(ctx: ParseContext) -> list[dict]:
    """The parse warnings, less the one saying freed-block recovery was skipped for want of
    pffexport (Debian pff-tools): a machine without the tool gives it for every PST."""
    if shutil.which("pffexport") is not None:
        return ctx.warnings
    return [w for w in ctx.warnings if not w["message"].startswith(
        "recovery of items from freed blocks skipped: it needs pffexport")]


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
    assert _warnings(ctx) == []
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
    dumpster = engine.tag(Record(data_type="mail:outlook:item",
                                 attributes={"in_recoverable_items": True}, **base))
    assert dumpster.tags == ("T1070.008", "mail_client_outlook_recoverable_items")
    for folder, rule in (("Deletions", "mail_client_outlook_recoverable_deletions"),
                         ("Purges", "mail_client_outlook_recoverable_purges"),
                         ("DiscoveryHolds", "mail_client_outlook_recoverable_purges"),
                         ("Audits", None), ("Versions", None), ("Calendar Logging", None)):
        tagged = engine.tag(Record(data_type="mail:outlook:item", attributes={
            "in_recoverable_items": True, "recoverable_items_folder": folder}, **base))
        assert tagged.tags == (("T1070.008", rule) if rule else ()), folder


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


def _orphan_copy(source: Path, target: Path, nid: int) -> None:
    """Copy a Unicode PST with the node ``nid`` re-parented to a folder that does not exist.

    That is what an item looks like once its folder's index entry is gone: libpff lists it as an
    orphan. Only the node B-tree leaf entry changes (its page CRC recomputed): a valid PST.
    """
    pst = Pst(source)
    pst.reparent(nid, 0x001FFFE2)  # a folder nid that does not exist
    pst.save(target)


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
    assert [w["message"] for w in _warnings(ctx)] == [
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


# -- Recoverable Items: the corpus PST patched into an Exchange dumpster ---------------------------
#: Node ids in the corpus PST: the root-level IPM_VIEWS folder, Inbox (8 messages, and SubInbox),
#: Sent Items (6 messages), Top of Personal Folders.
IPM_VIEWS, INBOX, SENT_ITEMS, TOP = 32994, 32898, 32962, 32802


@pytest.fixture(scope="module")
def dumpster_pst(tmp_path_factory) -> Path:
    """The corpus PST with root-level IPM_VIEWS renamed "Recoverable Items" and Inbox and Sent
    Items moved under it as "Deletions" and "Purges": display names rewritten in the folders'
    property contexts, ``nidParent`` in the node B-tree, the rows moved between hierarchy tables
    (IPM_VIEWS had the shared empty table, so it gets a new block; see tests/fixtures/pst_patch.py)."""
    pst = Pst(corpus_path("mail/extra/Outlook.pst"))
    pst.rename(IPM_VIEWS, "Recoverable Items")
    pst.move_folder(INBOX, IPM_VIEWS, "Deletions")
    pst.move_folder(SENT_ITEMS, IPM_VIEWS, "Purges")
    target = tmp_path_factory.mktemp("pst") / "dumpster.pst"
    pst.save(target)
    return target


def test_dumpster_fixture_is_a_valid_pst(dumpster_pst):
    """libpff opens the patched copy, shows the intended tree, and reads every message."""
    import pypff

    pff = pypff.file()
    pff.open(str(dumpster_pst))
    root = pff.get_root_folder()
    dumpster = next(root.get_sub_folder(i) for i in range(root.number_of_sub_folders)
                    if root.get_sub_folder(i).identifier == IPM_VIEWS)
    assert dumpster.name == "Recoverable Items"
    assert [(f.identifier, f.name, f.number_of_sub_messages) for f in
            (dumpster.get_sub_folder(i) for i in range(dumpster.number_of_sub_folders))] == [
        (INBOX, "Deletions", 8), (SENT_ITEMS, "Purges", 6)]
    top = next(root.get_sub_folder(i) for i in range(root.number_of_sub_folders)
               if root.get_sub_folder(i).identifier == TOP)
    names = [top.get_sub_folder(i).name for i in range(top.number_of_sub_folders)]
    assert "Inbox" not in names and "Sent Items" not in names and len(names) == 12
    assert pff.number_of_orphan_items == 0
    pff.close()
    hierarchy = Pst(dumpster_pst).read_table(IPM_VIEWS + 11)  # its hierarchy table (NID type 0x0D)
    assert [row.variable[0x3001001F].decode("utf-16-le") for row in hierarchy.rows] == ["Deletions", "Purges"]

    records, ctx = _parse(dumpster_pst)
    assert _warnings(ctx) == []
    items = [r for r in records if r.data_type == "mail:outlook:item"]
    assert len(items) == 17 and not any(r.corrupted or r.recovered for r in items)


DELETIONS = ("T1070.008", "mail_client_outlook_recoverable_deletions")
PURGES = ("T1070.008", "mail_client_outlook_recoverable_purges")


def test_dumpster_records_marked_by_subfolder(dumpster_pst):
    records, _ = _parse(dumpster_pst)
    engine = default_engine()
    marked = [engine.tag(r) for r in records if r.attributes.get("in_recoverable_items")]
    folder, item = "mail:outlook:folder", "mail:outlook:item"
    deletions, purges = "/Recoverable Items/Deletions", "/Recoverable Items/Purges"
    assert [(r.data_type, r.attributes["folder_path"], r.attributes.get("recoverable_items_folder"),
             r.attributes.get("subject"), r.tags, r.recovered) for r in marked] == [
        (folder, "/Recoverable Items", None, None, (), False),
        (folder, deletions, "Deletions", None, (), False),
        *[(item, deletions, "Deletions", subject, DELETIONS, False) for subject in (
            "Multiple attachments", "HTML body", "this message contains embedded MSG",
            "check sent date of this message", "message 2", "message 1",
            "Microsoft Office Outlook Test Message", "Microsoft Outlook Test Message")],
        (folder, deletions + "/SubInbox", "Deletions", None, (), False),
        (folder, purges, "Purges", None, (), False),
        *[(item, purges, "Purges", subject, PURGES, False) for subject in (
            "message 1", "message 2", "check sent date of this message",
            "this message contains embedded MSG", "HTML body", "Multiple attachments")]]
    # Nothing outside the dumpster is marked, and Deleted Items is still found by its entry id.
    assert not any(r.attributes.get("recoverable_items_folder") for r in records
                   if not r.attributes.get("in_recoverable_items"))
    assert [r.attributes["folder_path"] for r in records if r.attributes.get("in_deleted_items")] == [
        "/Top of Personal Folders/Deleted Items"]


SUBMIT, DELIVERY = "Client Submit Time", "Delivery Time"
CREATION, MODIFIED = "Creation Time", "Modification Time"
#: (subfolder, subject, "sender to recipients", [(UTC time, description)]) of every dumpster
#: message, in the parser's order; the times are the corpus messages' own (see the Inbox test).
DUMPSTER_MESSAGES = [
    ('Deletions', 'Multiple attachments', 'Saqib Razzaq to saqib.razzaq@xp.local',
     [('2011-06-21T23:51:07.000000', SUBMIT), ('2011-06-21T23:51:07.000000', DELIVERY),
      ('2011-06-21T23:51:07.781000', CREATION), ('2013-11-26T14:55:18.912000', MODIFIED)]),
    ('Deletions', 'HTML body', 'Saqib Razzaq to saqib.razzaq@xp.local',
     [('2011-06-21T23:49:21.000000', SUBMIT), ('2011-06-21T23:49:22.000000', DELIVERY),
      ('2011-06-21T23:49:22.078000', CREATION), ('2013-11-26T14:55:21.930000', MODIFIED)]),
    ('Deletions', 'this message contains embedded MSG', 'Saqib Razzaq to saqib.razzaq@xp.local',
     [('2011-06-21T23:48:10.000000', SUBMIT), ('2011-06-21T23:48:10.000000', DELIVERY),
      ('2011-06-21T23:48:10.937000', CREATION), ('2013-11-26T14:55:26.307000', MODIFIED)]),
    ('Deletions', 'check sent date of this message', 'Saqib Razzaq to saqib.razzaq@xp.local',
     [('2011-06-21T23:47:23.000000', SUBMIT), ('2011-06-21T23:47:23.000000', DELIVERY),
      ('2011-06-21T23:47:23.421000', CREATION), ('2013-11-26T14:59:23.932000', MODIFIED)]),
    ('Deletions', 'message 2', 'Saqib Razzaq to saqib.razzaq@xp.local',
     [('2011-06-21T23:47:01.000000', SUBMIT), ('2011-06-21T23:47:01.000000', DELIVERY),
      ('2011-06-21T23:47:01.109000', CREATION), ('2013-11-26T15:03:04.771000', MODIFIED)]),
    ('Deletions', 'message 1', 'Saqib Razzaq to saqib.razzaq@xp.local',
     [('2011-06-21T23:46:39.000000', SUBMIT), ('2011-06-21T23:46:39.000000', DELIVERY),
      ('2011-06-21T23:46:39.234000', CREATION), ('2011-06-21T23:48:08.671000', MODIFIED)]),
    ('Deletions', 'Microsoft Office Outlook Test Message', 'Microsoft Office Outlook to Saqib Razzaq',
     [('2011-06-21T23:44:21.000000', DELIVERY), ('2011-06-21T23:44:32.328000', CREATION),
      ('2011-06-21T23:44:40.562000', MODIFIED)]),
    ('Deletions', 'Microsoft Outlook Test Message', 'Microsoft Outlook to Saqib Razzaq',
     [('2011-06-21T23:42:35.000000', DELIVERY), ('2011-06-21T23:44:32.265000', CREATION),
      ('2011-06-21T23:46:00.000000', MODIFIED)]),
    ('Purges', 'message 1', "Saqib Razzaq to 'saqib.razzaq@xp.local'",
     [('2011-06-21T23:46:00.000000', DELIVERY), ('2011-06-21T23:46:03.875000', CREATION),
      ('2011-06-21T23:46:39.015000', MODIFIED), ('2011-06-21T23:46:39.156250', SUBMIT)]),
    ('Purges', 'message 2', "Saqib Razzaq to 'saqib.razzaq@xp.local'",
     [('2011-06-21T23:46:44.406000', CREATION), ('2011-06-21T23:47:00.000000', DELIVERY),
      ('2011-06-21T23:47:01.015000', MODIFIED), ('2011-06-21T23:47:01.046875', SUBMIT)]),
    ('Purges', 'check sent date of this message', "Saqib Razzaq to 'saqib.razzaq@xp.local'",
     [('2011-06-21T23:47:00.000000', DELIVERY), ('2011-06-21T23:47:05.531000', CREATION),
      ('2011-06-21T23:47:23.343000', MODIFIED), ('2011-06-21T23:47:23.390625', SUBMIT)]),
    ('Purges', 'this message contains embedded MSG', "Saqib Razzaq to 'saqib.razzaq@xp.local'",
     [('2011-06-21T23:47:26.625000', CREATION), ('2011-06-21T23:48:00.000000', DELIVERY),
      ('2011-06-21T23:48:10.843000', MODIFIED), ('2011-06-21T23:48:10.890625', SUBMIT)]),
    ('Purges', 'HTML body', "Saqib Razzaq to 'saqib.razzaq@xp.local'",
     [('2011-06-21T23:48:29.875000', CREATION), ('2011-06-21T23:49:00.000000', DELIVERY),
      ('2011-06-21T23:49:21.859000', MODIFIED), ('2011-06-21T23:49:21.906250', SUBMIT)]),
    ('Purges', 'Multiple attachments', "Saqib Razzaq to 'saqib.razzaq@xp.local'",
     [('2011-06-21T23:49:29.578000', CREATION), ('2011-06-21T23:51:00.000000', DELIVERY),
      ('2011-06-21T23:51:07.671000', MODIFIED), ('2011-06-21T23:51:07.703125', SUBMIT)]),
]


def test_dumpster_timeline_rows(dumpster_pst):
    records, _ = _parse(dumpster_pst)
    engine = default_engine()
    items = [engine.tag(r) for r in records
             if r.data_type == "mail:outlook:item" and r.attributes.get("in_recoverable_items")]
    tags = {"Deletions": DELETIONS, "Purges": PURGES}
    assert timeline_rows(items) == [
        (f"{when}+00:00", desc, "mail:outlook:item",
         f"Outlook IPM.Note in /Recoverable Items/{leaf} from {parties}: {subject}", tags[leaf], False)
        for leaf, subject, parties, times in DUMPSTER_MESSAGES for when, desc in times]


def test_user_folder_named_purges_is_not_the_dumpster(tmp_path):
    """Only the direct children of Recoverable Items are its subfolders: a user's own "Purges"."""
    pst = Pst(corpus_path("mail/extra/Outlook.pst"))
    pst.rename(SENT_ITEMS, "Purges")
    target = tmp_path / "purges.pst"
    pst.save(target)
    records, ctx = _parse(target)
    assert _warnings(ctx) == []
    purges = [r for r in records if r.attributes["folder_path"] == "/Top of Personal Folders/Purges"]
    assert len(purges) == 7  # the folder and its 6 messages
    assert not any("in_recoverable_items" in r.attributes or "recoverable_items_folder" in r.attributes
                   for r in records)
    assert [r for r in (default_engine().tag(r) for r in records) if r.tags] == []


# -- Items freed as Outlook frees them, recovered through pffexport ------------------------------
needs_pffexport = pytest.mark.skipif(
    shutil.which("pffexport") is None,
    reason="pffexport (Debian pff-tools) is not installed: libpff's item recovery is unavailable")
MESSAGE_1 = 2097700  # Inbox, "message 1"
RECOVERED_TAGS = ("T1070.008", "mail_client_outlook_orphan_or_recovered")


@pytest.fixture(scope="module")
def freed_pst(tmp_path_factory) -> Path:
    """The corpus PST with Inbox's "message 1" freed the way Outlook frees it: contents-table row
    and index entries removed, blocks freed, the old B-tree pages left in free space."""
    pst = Pst(corpus_path("mail/extra/Outlook.pst"))
    freed = pst.free_item(MESSAGE_1)
    assert len(freed) == 5  # the property context, its subnode block and three subnode blocks
    target = tmp_path_factory.mktemp("pst") / "freed.pst"
    pst.save(target)
    return target


def test_freed_item_is_gone_from_its_folder(freed_pst):
    """Whatever recovers it, the freed item is no longer a folder item; pypff binds no recovery."""
    import pypff

    assert not hasattr(pypff.file, "recover_items")
    records, _ = _parse(freed_pst)
    inbox = [r for r in records if r.data_type == "mail:outlook:item"
             and r.attributes["folder_path"] == "/Top of Personal Folders/Inbox"]
    assert [r.attributes["subject"] for r in inbox] == [
        "Multiple attachments", "HTML body", "this message contains embedded MSG",
        "check sent date of this message", "message 2", "Microsoft Office Outlook Test Message",
        "Microsoft Outlook Test Message"]
    (folder,) = [r for r in records if r.attributes["folder_path"] == "/Top of Personal Folders/Inbox"
                 and r.data_type == "mail:outlook:folder"]
    assert (folder.attributes["message_count"], folder.attributes["content_count"]) == (7, 7)


@needs_pffexport
def test_hard_deleted_item_is_recovered_by_pffexport(freed_pst):
    records, ctx = _parse(freed_pst)
    assert len([r for r in records if r.data_type == "mail:outlook:item"]) == 17
    (recovered,) = [r for r in records if r.recovered]
    assert recovered is records[-1] and recovered.order == len(records) - 1
    assert recovered.data_type == "mail:outlook:item" and not recovered.corrupted
    assert recovered.attributes == {
        "folder_path": None, "identifier": None, "message_class": None, "subject": "message 1",
        "sender_name": "Saqib Razzaq", "sender_email": "saqib.razzaq@xp.local",
        "display_to": None, "display_cc": None,
        "recipients": [{"name": "saqib.razzaq@xp.local", "email": "saqib.razzaq@xp.local", "type": "to"}],
        "message_id": "<000001cc306d$76f41d20$64dc5760$@razzaq@xp.local>", "message_flags": 0,
        "read": False, "size": 6228, "origin": "recovered", "store": SOURCE, "recovered_item": True,
        "recovered_by": "pffexport", "recovered_number": 30}
    # The times of the message while it was in Inbox (see the dumpster test's Deletions/message 1).
    assert {k: iso_utc(v) for k, v in recovered.timestamps.items()} == {
        SUBMIT: "2011-06-21T23:46:39.000000+00:00", DELIVERY: "2011-06-21T23:46:39.000000+00:00",
        CREATION: "2011-06-21T23:46:39.234000+00:00", MODIFIED: "2011-06-21T23:48:08.671000+00:00"}
    assert recovered.message == ("Outlook item in (recovered item, no folder) from Saqib Razzaq to "
                                 "saqib.razzaq@xp.local: message 1")
    assert (recovered.host, recovered.user) == ("xp", "saqib")
    tagged = default_engine().tag(recovered)
    assert tagged.tags == RECOVERED_TAGS and tagged.attributes["severity"] == "high"
    # The other messages pffexport exports are stale copies of present items: counted, not emitted.
    assert [w["message"] for w in ctx.warnings] == [
        "pffexport recovered 33 entries from freed blocks: 1 message(s) no longer in the PST, "
        "2 stale copies of items still present (not emitted), 2 of types it does not export, "
        "17 unreadable"]


@needs_pffexport
def test_stale_copies_in_the_corpus_pst_are_not_recovered_items(tmp_path):
    """Nothing was freed in the corpus PST, but its free space holds old copies of two items still
    present (Inbox's and Sent Items' "Multiple attachments", one without a submit time): pffexport
    exports both, and neither is a record."""
    from parsers.outlook_pst import _exported_items, _key_values, _run_pffexport

    source = corpus_path("mail/extra/Outlook.pst")
    ctx = _ctx()
    assert _run_pffexport(shutil.which("pffexport"), str(source), tmp_path, ctx) == (17, 2, 34)
    exported = [(number, _key_values(folder / "OutlookHeaders.txt"))
                for number, folder in _exported_items(tmp_path / "export.recovered")]
    assert [(n, f["subject"], f.get("client submit time"), f["delivery time"]) for n, f in exported] == [
        (19, "Multiple attachments", "Jun 21, 2011 23:51:07.000000000 UTC",
         "Jun 21, 2011 23:51:07.000000000 UTC"),
        (28, "Multiple attachments", None, "Jun 21, 2011 23:51:00.000000000 UTC")]
    records, ctx = _parse(source)
    assert not any(r.recovered for r in records) and ctx.warnings == []


@needs_pffexport
def test_pffexport_time_limit_is_a_warning(freed_pst, monkeypatch):
    import parsers.outlook_pst as outlook

    monkeypatch.setattr(outlook, "_PFFEXPORT_FLOOR_S", 0.0)
    monkeypatch.setattr(outlook, "_PFFEXPORT_BYTES_PER_S", 1e15)
    records, ctx = _parse(freed_pst)
    assert not any(r.recovered for r in records)
    assert [w["message"] for w in ctx.warnings] == [
        "recovery of items from freed blocks skipped: pffexport took longer than 0 s"]


def test_without_pffexport_recovery_is_skipped_with_a_warning(freed_pst, tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))  # a PATH with no pffexport on it
    records, ctx = _parse(freed_pst)
    assert len([r for r in records if r.data_type == "mail:outlook:item"]) == 16
    assert not any(r.recovered for r in records)
    assert [(w["path"], w["message"]) for w in ctx.warnings] == [(
        SOURCE, "recovery of items from freed blocks skipped: it needs pffexport (Debian pff-tools), "
        "which is not on PATH, and the installed pypff binds no recover_items")]


@needs_pffexport
def test_pst_read_from_a_stream_skips_recovery_with_a_warning(freed_pst):
    ctx = _ctx()
    records = list(OutlookPstParser().parse(io.BytesIO(freed_pst.read_bytes()), ctx))
    assert len(records) == 42 and not any(r.recovered for r in records)
    assert [w["message"] for w in ctx.warnings] == [
        "recovery of items from freed blocks skipped: pffexport needs a local file and this PST is "
        "read from a stream"]


def test_pffexport_output_read_defensively(tmp_path):
    """Item folders in pffexport's numbering order; folders, entries without headers, lines with
    no value, bytes that are not UTF-8 and a "not set" time (1601) are passed over."""
    from parsers.outlook_pst import _exported_items, _exported_recipients, _key_values, _pff_time

    recovered = tmp_path / "export.recovered"
    for name in ("Message00100", "Message00009", "Folder00002", "Appointment00010", "Message00011",
                 "Inbox"):
        (recovered / name).mkdir(parents=True)
    for name in ("Message00100", "Message00009", "Folder00002", "Appointment00010"):
        (recovered / name / "OutlookHeaders.txt").write_bytes(
            b"Message:\nSubject:\t\t\t\tCaf\xe9 \xc3\xa9t\xc3\xa9\nSize:\t\t\nReminder time:\t\t"
            b"Jan 01, 1601 00:00:00.000000000 UTC\n\tGUID:\t\tx\n")
    assert [(n, f.name) for n, f in _exported_items(recovered)] == [
        (9, "Message00009"), (10, "Appointment00010"), (100, "Message00100")]
    fields = _key_values(recovered / "Message00009" / "OutlookHeaders.txt")
    assert fields == {"subject": "Caf\ufffd \u00e9t\u00e9",
                      "reminder time": "Jan 01, 1601 00:00:00.000000000 UTC"}
    assert _pff_time(fields["reminder time"]) is None
    assert _pff_time("Jun 21, 2011 23:46:39.234000000 UTC") == 1308699999234000
    assert _pff_time("Not set (0)") is None and _pff_time(None) is None
    assert _key_values(recovered / "Message00011" / "OutlookHeaders.txt") == {}
    assert _exported_recipients(recovered / "Message00011" / "Recipients.txt") == []
    (recovered / "Recipients.txt").write_text(
        "Display name:\t\tA\nEmail address:\t\ta@x\nRecipient type:\t\tCC\n\nDisplay name:\t\tB\n",
        encoding="utf-8")
    assert _exported_recipients(recovered / "Recipients.txt") == [
        {"name": "A", "email": "a@x", "type": "cc"}, {"name": "B", "email": None, "type": None}]


@needs_pffexport
def test_recovered_item_end_to_end(freed_pst, tmp_path):
    """``inboxtrail run`` on a folder holding the freed PST: the recovered message is a tagged
    record, timeline rows with its times, and a high-severity finding."""
    import json

    from inboxtrail.cli import main

    store = tmp_path / "root" / "Users" / "bob" / "Documents" / "Outlook Files"
    store.mkdir(parents=True)
    shutil.copyfile(freed_pst, store / "Outlook.pst")
    out = tmp_path / "out"
    assert main(["--quiet", "run", str(tmp_path / "root"), "-o", str(out)]) == 0
    records = [json.loads(line) for line in (out / "records.jsonl").read_text(encoding="utf-8").splitlines()]
    outlook = [r for r in records if r["parser"] == "outlook_pst"]
    assert Counter(r["data_type"] for r in outlook) == {"mail:outlook:folder": 26, "mail:outlook:item": 17}
    (recovered,) = [r for r in outlook if r["recovered"]]
    assert (recovered["attributes"]["subject"], recovered["user"], recovered["tags"]) == (
        "message 1", "bob", list(RECOVERED_TAGS))
    rows = [row for row in (out / "timeline.l2t.csv").read_text(encoding="utf-8").splitlines()
            if "(recovered item  no folder)" in row]
    assert [row.split(",")[6] for row in rows] == [
        "Client Submit Time; Delivery Time", "Creation Time", "Modification Time"]
    warnings = [json.loads(line) for line in
                (out / "parse_warnings.jsonl").read_text(encoding="utf-8").splitlines()]
    assert [w["message"] for w in warnings if w["path"].endswith("Outlook.pst")] == [
        "pffexport recovered 33 entries from freed blocks: 1 message(s) no longer in the PST, "
        "2 stale copies of items still present (not emitted), 2 of types it does not export, "
        "17 unreadable"]
    assert "**Mail clearing: evidence found**" in (out / "findings.md").read_text(encoding="utf-8")
