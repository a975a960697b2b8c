"""Windows Mail store.vol parser.

No ESE database can be written here (only Windows' esent.dll writes ESE; no Python package does),
so the row-to-record mapping is tested on rows shaped like the documented ``Message`` and
``Folders`` tables, and the ESE layer on sniffing and failure.
"""

from __future__ import annotations

import io
import struct
from pathlib import Path

import pytest

from collector.timeutil import iso_utc
from parsers.base import ParseContext
from parsers.record import Provenance
from parsers.rules import default_engine
from parsers.windows_mail import WindowsMailParser, _time, body_files, build_records, column_lookup

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
    (data / "7").mkdir()
    (data / "7" / "att.dat").write_bytes(b"attachment, not a body")
    bodies = body_files(data)
    assert bodies == {"1": "3/a/1.dat", "2a": "3/a/2A.dat"}
    rows = [_row(1, 2, "Has body", None), _row(3, 2, "Body gone", "data\\3\\a\\ff.dat")]
    records = [default_engine().tag(r) for r in
               build_records(rows, MESSAGE_COLUMNS, FOLDERS, FOLDER_COLUMNS, bodies, _ctx(), "windows_mail")]
    kept, gone, orphan = records
    assert kept.attributes["body_file"] == "3/a/1.dat" and "body_missing" not in kept.attributes
    assert gone.attributes["body_missing"] is True and gone.attributes["body_file"] is None
    assert gone.tags == ("T1070.008", "mail_client_windows_mail_body_missing")
    assert orphan.data_type == "mail:windows_mail:orphan_body" and orphan.recovered
    assert orphan.attributes["body_file"] == "3/a/2A.dat"
    assert orphan.tags == ("T1070.008", "mail_client_windows_mail_orphan_body")
    assert orphan.message == "Windows Mail body file with no Message row: data/3/a/2A.dat"


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
