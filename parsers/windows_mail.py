"""Windows Mail (Windows 10/11 "Mail and Calendar", Unistore) ``store.vol`` through libesedb.

``store.vol`` is an ESE database whose ``Message`` and ``Folders`` tables name most columns by
MAPI property tag (H. Chivers, "Navigating the Windows Mail database", Digital Investigation
2018): ``0x0037`` subject, ``0x0E06`` delivery time and so on, written with or without the type
suffix. Columns are therefore found by tag (any spelling) or by a readable alias, never by
position, and a missing column is a missing field, not an error.

Deletion evidence: messages whose folder is Deleted Items (by folder name: the store keeps the
display name), message bodies under ``Unistore/data/3/`` that no row references (the row was
deleted, the body file left behind) and rows whose body file is gone. Body files are matched to
rows by the row's identifiers (decimal or hex) and by any path-like value naming a ``.dat`` file.

Limitation, stated plainly: no Windows Mail database could be produced here (ESE is written only by
Windows' esent.dll; no Python package writes ESE), so the mapping from rows to records is tested
on dictionaries shaped like the documented tables, and the ESE access on sniffing and failure.
"""

from __future__ import annotations

import os
import re
import struct
from collections.abc import Iterable, Iterator
from pathlib import Path, PurePosixPath
from typing import Any, BinaryIO

from collector.timeutil import from_filetime
from parsers.base import ParseContext, Parser
from parsers.record import Record

ESE_SIGNATURE = b"\xef\xcd\xab\x89"  # at offset 4 of every ESE database header page
#: field -> accepted column spellings (MAPI tag with/without type suffix, readable aliases).
COLUMNS: dict[str, tuple[str, ...]] = {
    "id": ("Id", "RowId", "MessageId", "0x67AA"),
    "folder": ("FolderId", "ParentFolderId", "Folder", "0x6748"),
    "subject": ("0x0037", "0x0037001F", "Subject"),
    "sender_name": ("0x0C1A", "0x0C1A001F", "0x0042", "0x0042001F", "SenderName"),
    "sender_email": ("0x0C1F", "0x0C1F001F", "0x0065", "0x0065001F", "SenderEmailAddress"),
    "to": ("0x0E04", "0x0E04001F", "DisplayTo"),
    "message_id": ("0x1035", "0x1035001F", "InternetMessageId"),
    "delivery": ("0x0E06", "0x0E060040", "DeliveryTime", "ReceivedTime"),
    "submit": ("0x0039", "0x00390040", "ClientSubmitTime", "SentTime"),
    "created": ("0x3007", "0x30070040", "CreationTime"),
    "modified": ("0x3008", "0x30080040", "LastModificationTime", "ModifiedTime"),
    "flags": ("0x0E07", "0x0E070003", "MessageFlags"),
    "folder_name": ("0x3001", "0x3001001F", "DisplayName", "Name"),
    "parent": ("ParentFolderId", "0x6749", "Parent"),
}
TIME_FIELDS = (("delivery", "Delivery Time"), ("submit", "Client Submit Time"),
               ("created", "Creation Time"), ("modified", "Modification Time"))
DELETED_FOLDER_NAMES = {"deleted items", "deleted", "trash", "papierkorb", "gelöschte elemente",
                        "éléments supprimés", "elementos eliminados", "posta eliminata"}
BODY_DIR = "3"
OLE_UNIX_DAYS = 25_569  # days from 1899-12-30 (OLE Automation epoch) to 1970-01-01
_PATHLIKE = re.compile(r"([0-9A-Za-z_-]+)\.dat\b")


def _normalise(name: str) -> str:
    return name.lower().replace("_", "").replace(" ", "")


def column_lookup(names: Iterable[str]) -> dict[str, str]:
    """field -> actual column name, for the columns a table has."""
    actual = {_normalise(n): n for n in names}
    found = {}
    for field, spellings in COLUMNS.items():
        for spelling in spellings:
            if _normalise(spelling) in actual:
                found[field] = actual[_normalise(spelling)]
                break
    return found


def _time(value: Any) -> int | None:
    """µs for a FILETIME (integer or 8 bytes) or an OLE Automation date (float days)."""
    if isinstance(value, float):
        return round((value - OLE_UNIX_DAYS) * 86_400_000_000) if value > 0 else None
    if isinstance(value, bytes) and len(value) == 8:
        value = struct.unpack("<Q", value)[0]
    if isinstance(value, int) and not isinstance(value, bool):
        return from_filetime(value)
    return None


def row_keys(row: dict[str, Any], columns: dict[str, str]) -> set[str]:
    """Lower-case names a body file of this row could carry (ids in decimal/hex, .dat names)."""
    keys: set[str] = set()
    value = row.get(columns["id"]) if "id" in columns else None
    if isinstance(value, int) and not isinstance(value, bool):
        keys |= {str(value), f"{value:x}", f"{value:08x}"}
    for item in row.values():
        if isinstance(item, str):
            keys |= {m.group(1).lower() for m in _PATHLIKE.finditer(item)}
    return keys


def body_files(unistore_data: Path | None) -> dict[str, str]:
    """stem (lower case) -> path relative to ``Unistore/data`` of every body file under ``3/``."""
    found: dict[str, str] = {}
    if unistore_data is None or not (unistore_data / BODY_DIR).is_dir():
        return found
    for folder, _dirs, files in os.walk(unistore_data / BODY_DIR):
        for name in files:
            if name.lower().endswith(".dat"):
                rel = PurePosixPath(Path(folder).relative_to(unistore_data).as_posix()) / name
                found.setdefault(name[:-4].lower(), str(rel))
    return found


def build_records(messages: Iterable[dict[str, Any]], message_columns: list[str],
                  folders: Iterable[dict[str, Any]], folder_columns: list[str],
                  bodies: dict[str, str] | None, ctx: ParseContext, parser: str) -> Iterator[Record]:
    """Records from rows of the ``Message`` and ``Folders`` tables (plain dicts, column -> value)."""
    fcols = column_lookup(folder_columns)
    names: dict[Any, str] = {}
    parents: dict[Any, Any] = {}
    for row in folders:
        key = row.get(fcols["id"]) if "id" in fcols else None
        if key is None:
            continue
        names[key] = str(row.get(fcols["folder_name"]) or key) if "folder_name" in fcols else str(key)
        if "parent" in fcols:
            parents[key] = row.get(fcols["parent"])

    def path_of(folder: Any) -> str | None:
        if folder is None or folder not in names:
            return None if folder is None else str(folder)
        parts, seen = [], set()
        while folder in names and folder not in seen:
            seen.add(folder)
            parts.append(names[folder])
            folder = parents.get(folder)
        return "/" + "/".join(reversed(parts))

    mcols = column_lookup(message_columns)
    referenced: set[str] = set()
    order = 0
    for row in messages:
        timestamps = {desc: t for field, desc in TIME_FIELDS
                      if field in mcols and (t := _time(row.get(mcols[field]))) is not None}
        folder_path = path_of(row.get(mcols["folder"])) if "folder" in mcols else None
        attributes: dict[str, Any] = {
            field: row.get(mcols[field]) for field in
            ("id", "subject", "sender_name", "sender_email", "to", "message_id", "flags")
            if field in mcols}
        attributes["folder_path"] = folder_path
        attributes["store"] = ctx.provenance.source_path
        leaf = folder_path.rsplit("/", 1)[-1].strip().lower() if folder_path else ""
        if leaf in DELETED_FOLDER_NAMES:
            attributes["in_deleted_items"] = True
            attributes["in_trash"] = True
        keys = row_keys(row, mcols)
        if bodies is not None:
            match = sorted(keys & bodies.keys())
            referenced |= set(match)
            attributes["body_file"] = bodies[match[0]] if match else None
            named = {m.group(1).lower() for v in row.values() if isinstance(v, str)
                     for m in _PATHLIKE.finditer(v)}
            if named and not (named & bodies.keys()):
                attributes["body_missing"] = True
        subject = attributes.get("subject")
        sender = attributes.get("sender_email") or attributes.get("sender_name")
        note = " [in Deleted Items]" if attributes.get("in_deleted_items") else ""
        yield Record(data_type="mail:windows_mail:message",
                     message=(f"Windows Mail message in {folder_path or '?'} from {sender or '?'}: "
                              f"{subject or '(no subject)'}{note}"),
                     provenance=ctx.provenance, parser=parser, order=order, timestamps=timestamps,
                     attributes=attributes, host=ctx.host, user=ctx.user,
                     recovered=bool(ctx.entry.get("deleted")))
        order += 1
    for stem, rel in sorted((bodies or {}).items()):
        if stem in referenced:
            continue
        yield Record(data_type="mail:windows_mail:orphan_body",
                     message=f"Windows Mail body file with no Message row: data/{rel}",
                     provenance=ctx.provenance, parser=parser, order=order,
                     attributes={"body_file": rel, "body_without_row": True,
                                 "store": ctx.provenance.source_path},
                     host=ctx.host, user=ctx.user, recovered=True)
        order += 1


def _table_rows(table: Any, ctx: ParseContext) -> tuple[list[str], Iterator[dict[str, Any]]]:
    names = [table.get_column(i).name for i in range(table.number_of_columns)]

    def rows() -> Iterator[dict[str, Any]]:
        for index in range(table.number_of_records):
            try:
                record = table.get_record(index)
            except OSError as exc:
                ctx.warn(f"{table.name}: record {index} unreadable: {exc}")
                continue
            row: dict[str, Any] = {}
            for column, name in enumerate(names):
                try:
                    row[name] = _value(record, column)
                except (OSError, ValueError, UnicodeError):
                    row[name] = None
            yield row
    return names, rows()


def _value(record: Any, column: int) -> Any:
    kind = record.get_column_type(column)
    # libesedb column types: 1 bool, 2-5/14/15/17 integers, 8 filetime, 10/12 text, 9/11 binary.
    if kind in (10, 12):
        return record.get_value_data_as_string(column)
    if kind in (1, 2, 3, 4, 5, 14, 15, 17):
        return record.get_value_data_as_integer(column)
    if kind == 8:  # JET_coltypDateTime: an OLE Automation date (double, days since 1899-12-30)
        data = record.get_value_data(column)
        return struct.unpack("<d", data)[0] if data and len(data) == 8 else None
    data = record.get_value_data(column)
    return bytes(data) if data is not None else None


class WindowsMailParser(Parser):
    """Windows Mail / Calendar Unistore database (``store.vol``)."""

    NAME = "windows_mail"
    DESCRIPTION = ("Windows Mail store.vol (ESE, libesedb): messages with folder, subject, sender, "
                   "times; Deleted Items; body files with no row and rows with no body file")
    DATA_TYPES = ("mail:windows_mail:message", "mail:windows_mail:orphan_body")

    @classmethod
    def sniff(cls, head: bytes, name: str) -> bool:
        return head[4:8] == ESE_SIGNATURE and name.lower() == "store.vol"

    def parse(self, fh: BinaryIO, ctx: ParseContext) -> Iterator[Record]:
        name = ctx.provenance.source_path.replace("\\", "/").rsplit("/", 1)[-1]
        if name.lower() != "store.vol":
            return  # the Unistore artifact hands body files to this parser too
        head = fh.read(8)
        fh.seek(0)
        if head[4:8] != ESE_SIGNATURE:
            ctx.warn("store.vol is not an ESE database (no 0x89ABCDEF signature)", 4)
            return
        try:
            import pyesedb
        except ImportError:
            ctx.warn("libesedb-python (pyesedb) is not installed: store.vol not parsed")
            return
        database = pyesedb.file()
        try:
            database.open_file_object(fh)
        except OSError as exc:
            ctx.warn(f"store.vol unreadable by libesedb (dirty shutdown or damage?): {exc}", 0)
            return
        try:
            tables = {database.get_table(i).name: database.get_table(i)
                      for i in range(database.number_of_tables)}
            message = tables.get("Message")
            if message is None:
                ctx.warn(f"no Message table (tables: {', '.join(sorted(tables))})")
                return
            folder_columns: list[str] = []
            folder_rows: list[dict[str, Any]] = []
            if "Folders" in tables:
                folder_columns, rows = _table_rows(tables["Folders"], ctx)
                folder_rows = list(rows)  # folders are few; messages stream
            message_columns, message_rows = _table_rows(message, ctx)
            yield from build_records(message_rows, message_columns, folder_rows, folder_columns,
                                     self._bodies(fh, ctx), ctx, self.NAME)
        finally:
            database.close()

    @staticmethod
    def _bodies(fh: BinaryIO, ctx: ParseContext) -> dict[str, str] | None:
        """Body files of the collected ``Unistore/data`` beside ``UnistoreDB/store.vol``."""
        local = getattr(fh, "name", None)
        if not isinstance(local, str):
            return None
        data = Path(local).parent.parent / "Unistore" / "data"
        found = body_files(data if data.is_dir() else None)
        return found or None
