"""Windows Mail store.vol parser.

The row-to-record mapping is tested on rows shaped like the documented ``Message`` and ``Folders``
tables, and the whole parser on ``store.vol`` databases written by ``tests/fixtures/ese_writer.py``
(format-exact ESE, read by libesedb as Windows' are) with the ``Unistore/data`` body files beside
them: messages in Inbox and in Deleted Items, a row whose body file is gone, a body file no row
references, and damaged copies (truncated, a zeroed page, a wrong checksum).
"""

from __future__ import annotations

import io
import os
import struct
from pathlib import Path

import pytest

from collector.timeutil import from_filetime, iso_utc
from parsers.base import ParseContext
from parsers.record import Provenance
from parsers.rules import default_engine
from parsers.windows_mail import (
    WindowsMailParser,
    _time,
    body_file_times,
    body_files,
    body_name,
    body_row_id,
    build_records,
    column_lookup,
)
from tests.fixtures.ese_writer import LONG, LONG_LONG, LONG_TEXT, Column, Table, write_database

SOURCE = "C:/Users/eve/AppData/Local/Comms/UnistoreDB/store.vol"
FOLDER_COLUMNS = ["Id", "ParentFolderId", "0x3001001F"]
FOLDERS = [{"Id": 1, "ParentFolderId": None, "0x3001001F": "Outlook"},
           {"Id": 2, "ParentFolderId": 1, "0x3001001F": "Inbox"},
           {"Id": 3, "ParentFolderId": 1, "0x3001001F": "Deleted Items"}]
MESSAGE_COLUMNS = ["Id", "FolderId", "0x0037001F", "0x0C1A001F", "0x0C1F001F", "0x0E060040",
                   "0x30080040", "0x1035001F", "BodyPath"]
FT_2026_10_05 = 134_356_651_640_000_000  # FILETIME of 2026-10-05T09:12:44Z


def _ctx() -> ParseContext:
    return ParseContext(provenance=Provenance(bundle_path="b/store.vol", source_path=SOURCE, sha256=None))


def _row(ident: int, folder: int, subject: str, body: str | None) -> dict:
    return {"Id": ident, "FolderId": folder, "0x0037001F": subject, "0x0C1A001F": "Bob",
            "0x0C1F001F": "bob@example.org", "0x0E060040": FT_2026_10_05,
            "0x30080040": FT_2026_10_05 + 600_000_000,
            "0x1035001F": f"<m{ident}@example.org>", "BodyPath": body}


def test_column_lookup_accepts_tag_spellings():
    assert column_lookup(["0x0037", "0x0E06", "folder_id"]) == {
        "subject": "0x0037", "delivery": "0x0E06", "folder": "folder_id"}


def test_rows_become_records_with_folder_paths_and_times():
    rows = [_row(1, 2, "Quarterly report", None), _row(2, 3, "Wire transfer details", None)]
    records = [default_engine().tag(r) for r in
               build_records(rows, MESSAGE_COLUMNS, FOLDERS, FOLDER_COLUMNS, None, _ctx(), "windows_mail")]
    first, deleted = records
    assert first.data_type == "mail:windows_mail:message"
    assert first.attributes["folder_path"] == "/Outlook/Inbox"
    assert first.attributes["subject"] == "Quarterly report"
    assert first.attributes["sender_email"] == "bob@example.org"
    assert first.attributes["message_id"] == "<m1@example.org>"
    assert {k: iso_utc(v) for k, v in first.timestamps.items()} == {
        "Delivery Time": "2026-10-05T09:12:44.000000+00:00",
        "Modification Time": "2026-10-05T09:13:44.000000+00:00"}
    assert first.tags == ()
    assert deleted.attributes["folder_path"] == "/Outlook/Deleted Items"
    assert deleted.attributes["in_deleted_items"] is True
    assert deleted.tags == ("T1070.008", "mail_client_windows_mail_deleted_items")
    assert deleted.message == ("Windows Mail message in /Outlook/Deleted Items from bob@example.org: "
                               "Wire transfer details [in Deleted Items]")


def test_body_files_without_rows_and_rows_without_body(tmp_path: Path):
    data = tmp_path / "Unistore" / "data"
    (data / "3" / "a").mkdir(parents=True)
    (data / "3" / "a" / "1.dat").write_bytes(b"<html>body 1</html>")
    (data / "3" / "a" / "2A.dat").write_bytes(b"<html>orphan body</html>")
    os.utime(data / "3" / "a" / "2A.dat", (1_791_190_000, 1_791_191_564))
    (data / "7").mkdir()
    (data / "7" / "att.dat").write_bytes(b"attachment, not a body")
    bodies = body_files(data)
    assert bodies == {"1": "3/a/1.dat", "2a": "3/a/2A.dat"}
    rows = [_row(1, 2, "Has body", None), _row(3, 2, "Body gone", "data\\3\\a\\ff.dat")]
    records = [default_engine().tag(r) for r in
               build_records(rows, MESSAGE_COLUMNS, FOLDERS, FOLDER_COLUMNS, bodies, _ctx(), "windows_mail",
                             body_times=body_file_times(data))]
    kept, gone, orphan = records
    assert kept.attributes["body_file"] == "3/a/1.dat" and "body_missing" not in kept.attributes
    assert gone.attributes["body_missing"] is True and gone.attributes["body_file"] is None
    assert gone.tags == ("T1070.008", "mail_client_windows_mail_body_missing")
    assert orphan.data_type == "mail:windows_mail:orphan_body" and orphan.recovered
    assert orphan.attributes["body_file"] == "3/a/2A.dat"
    assert orphan.tags == ("T1070.008", "mail_client_windows_mail_orphan_body")
    assert orphan.message == "Windows Mail body file with no Message row: data/3/a/2A.dat"
    changed = (data / "3" / "a" / "2A.dat").stat().st_ctime_ns // 1000
    assert {k: iso_utc(v) for k, v in orphan.timestamps.items()} == {
        "Content Modification Time": "2026-10-05T09:12:44.000000+00:00",
        "Metadata Modification Time": iso_utc(changed)}
    assert kept.timestamps == gone.timestamps  # rows keep their own times, not the files'


def test_time_conversions():
    assert iso_utc(_time(FT_2026_10_05)) == "2026-10-05T09:12:44.000000+00:00"
    assert iso_utc(_time(struct.pack("<Q", FT_2026_10_05))) == "2026-10-05T09:12:44.000000+00:00"
    assert iso_utc(_time(25569.5)) == "1970-01-01T12:00:00.000000+00:00"  # OLE Automation date
    assert _time(0) is None and _time("x") is None


def test_sniff():
    header = b"\x00\x00\x00\x00\xef\xcd\xab\x89" + b"\x00" * 100
    assert WindowsMailParser.sniff(header, "store.vol")
    assert not WindowsMailParser.sniff(header, "WebCacheV01.dat")
    assert not WindowsMailParser.sniff(b"\x00" * 108, "store.vol")


def _parse(data: bytes, source: str = SOURCE) -> tuple[list, ParseContext]:
    ctx = ParseContext(provenance=Provenance(bundle_path="b", source_path=source, sha256=None))
    return list(WindowsMailParser().parse(io.BytesIO(data), ctx)), ctx


def test_not_ese_is_a_warning():
    records, ctx = _parse(b"SQLite format 3\x00" + b"\x00" * 100)
    assert records == []
    assert ctx.warnings[0]["message"] == "store.vol is not an ESE database (no 0x89ABCDEF signature)"


def test_damaged_ese_is_a_warning_not_a_crash():
    pytest.importorskip("pyesedb")
    records, ctx = _parse(b"\x00\x00\x00\x00\xef\xcd\xab\x89" + b"\x00" * 8192)
    assert records == []
    assert ctx.warnings[0]["message"].startswith("store.vol unreadable by libesedb")


def test_other_unistore_files_are_left_alone():
    records, ctx = _parse(b"<html/>", "C:/Users/eve/AppData/Local/Comms/Unistore/data/3/a/1.dat")
    assert records == [] and ctx.warnings == []


# -- a store.vol written by the ESE writer --------------------------------------------------------
MAIL = "Users/eve/AppData/Local/Comms"
FT = 134_356_651_640_000_000  # 2026-10-05T09:12:44Z
MINUTE = 600_000_000
#: Column names as store.vol has them: MAPI property tags with the type suffix (Chivers 2018; IPED).
FOLDER_SCHEMA = [Column("00010003", LONG), Column("00020003", LONG, tagged=True),
                 Column("0E090013", LONG, tagged=True), Column("3001001F", LONG_TEXT),
                 Column("30070040", LONG_LONG, tagged=True)]
MESSAGE_SCHEMA = [Column("00010003", LONG), Column("00020003", LONG, tagged=True),
                  Column("0E090013", LONG, tagged=True), Column("0037001F", LONG_TEXT),
                  Column("0C1A001F", LONG_TEXT), Column("0C1F001F", LONG_TEXT),
                  Column("0E060040", LONG_LONG, tagged=True), Column("30080040", LONG_LONG, tagged=True),
                  Column("0E080013", LONG, tagged=True)]
FOLDER_ROWS = [{"00010003": 1, "00020003": 1, "3001001F": "eve@example.org", "30070040": FT - 9 * MINUTE},
               {"00010003": 2, "00020003": 1, "0E090013": 1, "3001001F": "Inbox"},
               {"00010003": 3, "00020003": 1, "0E090013": 1, "3001001F": "Deleted Items"}]


def _message(row_id: int, folder: int, subject: str, delivered: int, modified: int) -> dict:
    return {"00010003": row_id, "00020003": 1, "0E090013": folder, "0037001F": subject,
            "0C1A001F": "Mallory", "0C1F001F": "mallory@example.net", "0E060040": delivered,
            "30080040": modified, "0E080013": 2048}


MESSAGE_ROWS = [_message(0x101, 2, "Quarterly report", FT, FT + MINUTE),
                _message(0x102, 3, "Wire transfer details", FT + 2 * MINUTE, FT + 30 * MINUTE),
                _message(0x103, 2, "Invoice 7731", FT + 3 * MINUTE, FT + 4 * MINUTE)]


#: When each body file was last written (FILETIME): as Mail downloads a body on delivery.
BODY_WRITTEN = {0x101: FT, 0x102: FT + 2 * MINUTE, 0x104: FT + 5 * MINUTE}


def build_store(root: Path) -> Path:
    """A user's Comms folder under ``root``: store.vol plus body files (0x101 and 0x102 have
    theirs, 0x103's is gone, 0x104's is left with no row), each modified at its
    :data:`BODY_WRITTEN` time. Returns store.vol's path."""
    comms = root / MAIL
    (comms / "UnistoreDB").mkdir(parents=True)
    for row_id, written in BODY_WRITTEN.items():
        body = comms / "Unistore" / "data" / body_name(row_id)
        body.parent.mkdir(parents=True, exist_ok=True)
        body.write_bytes(f"<html><body>message {row_id:#x}</body></html>".encode("utf-16-le"))
        seconds = from_filetime(written) // 1_000_000
        os.utime(body, (seconds, seconds))
    attachment = comms / "Unistore" / "data" / "7" / "a" / "not-a-body.dat"
    attachment.parent.mkdir(parents=True)
    attachment.write_bytes(b"attachment")
    return write_database(comms / "UnistoreDB" / "store.vol",
                          [Table("Folders", FOLDER_SCHEMA, FOLDER_ROWS, key="00010003"),
                           Table("Message", MESSAGE_SCHEMA, MESSAGE_ROWS, key="00010003")])


def _parse_store(path: Path) -> tuple[list, ParseContext]:
    source = "C:/" + path.relative_to(path.parents[6]).as_posix()
    ctx = ParseContext(provenance=Provenance(bundle_path=None, source_path=source, sha256=None))
    with path.open("rb") as handle:
        records = [default_engine().tag(r) for r in WindowsMailParser().parse(handle, ctx)]
    return records, ctx


def test_body_names_follow_the_row_id():
    assert body_name(0x101) == "3/b/0000010100000003" "1013.dat"
    assert body_name(0x12345678, "1000") == "3/i/7234560800000003" "1000.dat"
    assert body_row_id("0000010100000003" "1013") == 0x101
    assert body_row_id("7234560800000003" "1000") == 0x2345678  # the leading digit is not kept
    assert body_row_id("not-a-body") is None and body_row_id("00000101000000071013") is None


def orphan_times(store: Path) -> dict[str, str]:
    """The times the orphan body record of :func:`build_store`'s store must carry: its body
    file's modification time (set), status change time (whenever the test ran) and birth time
    (where the platform has one)."""
    stat = (store.parents[1] / "Unistore" / "data" / body_name(0x104)).stat()
    times = {"Content Modification Time": "2026-10-05T09:17:44.000000+00:00",
             "Metadata Modification Time": iso_utc(stat.st_ctime_ns // 1000)}
    if getattr(stat, "st_birthtime", None) is not None:
        times["Creation Time"] = iso_utc(round(stat.st_birthtime * 1_000_000))
    return times


def test_store_vol_written_by_the_ese_writer(tmp_path: Path):
    pytest.importorskip("pyesedb")
    store = build_store(tmp_path)
    records, ctx = _parse_store(store)
    assert ctx.warnings == []
    rows = [(r.data_type, r.message, {k: iso_utc(v) for k, v in r.timestamps.items()},
             r.attributes.get("folder_path"), r.attributes.get("body_file"), r.tags, r.recovered)
            for r in records]
    assert rows == [
        ("mail:windows_mail:message",
         "Windows Mail message in /eve@example.org/Inbox from mallory@example.net: Quarterly report",
         {"Delivery Time": "2026-10-05T09:12:44.000000+00:00",
          "Modification Time": "2026-10-05T09:13:44.000000+00:00"},
         "/eve@example.org/Inbox", "3/b/00000101000000031013.dat", (), False),
        ("mail:windows_mail:message",
         "Windows Mail message in /eve@example.org/Deleted Items from mallory@example.net: "
         "Wire transfer details [in Deleted Items]",
         {"Delivery Time": "2026-10-05T09:14:44.000000+00:00",
          "Modification Time": "2026-10-05T09:42:44.000000+00:00"},
         "/eve@example.org/Deleted Items", "3/c/00000102000000031013.dat",
         ("T1070.008", "mail_client_windows_mail_deleted_items"), False),
        ("mail:windows_mail:message",
         "Windows Mail message in /eve@example.org/Inbox from mallory@example.net: Invoice 7731",
         {"Delivery Time": "2026-10-05T09:15:44.000000+00:00",
          "Modification Time": "2026-10-05T09:16:44.000000+00:00"},
         "/eve@example.org/Inbox", None, ("T1070.008", "mail_client_windows_mail_body_missing"), False),
        ("mail:windows_mail:orphan_body",
         "Windows Mail body file with no Message row: data/3/e/00000104000000031013.dat",
         orphan_times(store), None, "3/e/00000104000000031013.dat",
         ("T1070.008", "mail_client_windows_mail_orphan_body"), True),
    ]
    missing = records[2].attributes
    assert missing["body_missing"] is True and missing["body_expected"] == "3/d/00000103000000031013.dat"
    assert records[0].attributes["sender_name"] == "Mallory" and records[0].attributes["id"] == 0x101


def _damaged(tmp_path: Path, damage) -> tuple[list, list[str]]:
    store = build_store(tmp_path)
    data = bytearray(store.read_bytes())
    damage(data, data.find("Invoice 7731".encode("utf-16-le")) // PAGE * PAGE)
    store.write_bytes(bytes(data))
    records, ctx = _parse_store(store)
    assert {w["path"] for w in ctx.warnings} == {"C:/" + MAIL + "/UnistoreDB/store.vol"}
    return records, [f"{w['offset']}: {w['message']}" for w in ctx.warnings]


PAGE = 8192  # the writer's default page size


def test_truncated_store_is_a_warning(tmp_path: Path):
    pytest.importorskip("pyesedb")

    def cut(data: bytearray, page: int) -> None:
        del data[page + 100:]

    records, warnings = _damaged(tmp_path, cut)
    page = int(warnings[0].split(":")[0])
    assert warnings[0] == f"{page}: store.vol ends 100 bytes into page {page // PAGE - 1} " \
                          f"(page size {PAGE}): truncated"
    assert warnings[1] == ("None: store.vol table Message (object 6) has no page left in the file: "
                           "its pages were zeroed or cut off; its rows are lost")
    assert warnings[2].startswith("None: Message: records unreadable (damaged page tree?): ")
    assert warnings[3:] == ["None: 3 body file(s) not matched to a row, but the Message table was "
                            "not read completely: not reported as orphans"]
    assert records == []


def test_zeroed_page_is_a_warning(tmp_path: Path):
    pytest.importorskip("pyesedb")

    def wipe_folders(data: bytearray, message_page: int) -> None:
        data[message_page - PAGE:message_page] = bytes(PAGE)  # the Folders table, written before

    records, warnings = _damaged(tmp_path, wipe_folders)
    folders = int(warnings[0].split(":")[0])
    # libesedb reads a zeroed leaf as an empty one: only the page scan tells rows were lost
    assert warnings == [f"{folders}: store.vol has 1 all-zero page(s) among written ones (first "
                        f"at offset {folders}): wiped or never written; rows on them are lost",
                        "None: store.vol table Folders (object 5) has no page left in the file: its "
                        "pages were zeroed or cut off; its rows are lost"]
    assert [r.attributes.get("folder_path") for r in records[:3]] == ["2", "3", "2"]
    assert len(records) == 4


def test_zeroed_last_page_is_a_warning(tmp_path: Path):
    pytest.importorskip("pyesedb")

    def wipe_messages(data: bytearray, message_page: int) -> None:
        data[message_page:message_page + PAGE] = bytes(PAGE)  # the last page: no "hole" left

    records, warnings = _damaged(tmp_path, wipe_messages)
    # libesedb reads the zeroed Message root as an empty table; its object id is on no page
    assert warnings == ["None: store.vol table Message (object 6) has no page left in the file: "
                        "its pages were zeroed or cut off; its rows are lost"]
    assert [r.data_type for r in records] == ["mail:windows_mail:orphan_body"] * 3


def test_wrong_checksum_is_a_warning(tmp_path: Path):
    pytest.importorskip("pyesedb")

    def alter(data: bytearray, page: int) -> None:
        at = data.find("Invoice".encode("utf-16-le"))
        data[at:at + 2] = "X".encode("utf-16-le")  # a subject edited without fixing the checksum

    records, warnings = _damaged(tmp_path, alter)
    message_page = int(warnings[0].split(":")[0])
    assert warnings == [f"{message_page}: store.vol page {message_page // PAGE - 1} checksum mismatch "
                        "(damaged or altered page)"]
    assert records[2].attributes["subject"] == "Xnvoice 7731"  # libesedb reads it regardless


def test_header_checksum_and_tiny_files(tmp_path: Path):
    pytest.importorskip("pyesedb")

    def alter_header(data: bytearray, _page: int) -> None:
        data[52] = 2  # "dirty shutdown" written over the state without a new checksum

    records, warnings = _damaged(tmp_path, alter_header)
    assert warnings == ["0: store.vol header checksum mismatch (damaged header)"]
    assert len(records) == 4
    short, ctx = _parse(b"\x00\x00\x00\x00\xef\xcd\xab\x89" + b"\x00" * 100)
    assert short == [] and [w["message"] for w in ctx.warnings][1:] == [
        "store.vol is 108 bytes: too short for an ESE header (truncated)"]


def test_manifest_times_of_named_files_only(tmp_path: Path):
    """The orphan body's times come from its own live manifest line: not from a deleted entry of
    the same path, nor from the same path on another file system."""
    import json

    from parsers.mail_evidence import manifest_times

    body = "/Users/eve/AppData/Local/Comms/Unistore/data/3/e/00000104000000031013.dat"
    lines = [{"source_path": body, "filesystem": "p2", "deleted": False, "mtime": "2026-02-02T00:00:00Z"},
             {"source_path": body, "filesystem": "p1", "deleted": True, "mtime": "2026-01-01T00:00:00+00:00"},
             {"source_path": body, "filesystem": "p1", "deleted": False, "mtime": "2026-10-05T09:17:44+00:00",
              "ctime": "not a time", "crtime": "2026-10-05T09:17:43.5+00:00"},
             {"source_path": body + ".other", "filesystem": "p1", "mtime": "2026-01-01T00:00:00+00:00"}]
    (tmp_path / "manifest.jsonl").write_text("".join(json.dumps(line) + "\n" for line in lines) + "{broken\n")
    assert {path: {k: iso_utc(v) for k, v in times.items()}
            for path, times in manifest_times(tmp_path, "p1", [body, body + ".gone"]).items()} == {
        body: {"mtime": "2026-10-05T09:17:44.000000+00:00", "crtime": "2026-10-05T09:17:43.500000+00:00"}}
