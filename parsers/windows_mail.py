"""Windows Mail (Windows 10/11 "Mail and Calendar", Unistore) ``store.vol`` through libesedb.

``store.vol`` is an ESE database whose ``Message`` and ``Folders`` tables name their columns by MAPI
property tag with the type suffix, as eight hex digits: ``0037001F`` subject, ``0C1A001F`` sender
name, ``0C1F001F``/``8279001F`` sender address, ``0E060040`` delivery time, ``30080040`` last
modification (FILETIMEs in 64-bit integer columns), ``00010003`` the row id, ``0E090013`` the parent
folder's row id, ``3001001F`` a folder's display name (H. Chivers, "Navigating the Windows Mail
database", Digital Investigation 2018; the table and column names as IPED's
``iped/parsers/mail/win10`` reads them). Columns are found by tag (with or without ``0x`` and the
type suffix, any case) or by a readable alias, never by position, and a missing column is a missing
field, not an error.

Deletion evidence: messages whose folder is Deleted Items (by folder name: the store keeps the
display name), message bodies under ``Unistore/data/3/`` that no row references (the row was
deleted, the body file left behind; its file-system times, from the manifest or the directory, are
then the only times that trace has) and rows whose body file is gone. Windows Mail names a body file
after its row id (:func:`body_name`, the derivation Chivers describes and IPED implements):
``3/<letter>/<name><tag>.dat`` with tag ``1013`` (HTML) or ``1000`` (plain text); a file's row id is
read back from its name, so a body of any tag is matched to its row. Files named otherwise are
matched by the row's id (decimal or hex) or by a ``.dat`` name a row value carries. Mail does not
download every body of a large mailbox, so a row with no body is a lead to check against the
account's sync window, not proof.

Body files are looked up in the bundle manifest (so a Dask worker, which is given the manifest,
needs no other file), or beside the database when it is parsed from a directory tree.

libesedb does not check page checksums, so before handing the file to it the parser reads every
page once (streaming) and warns, with the byte offset, about a header or page whose checksum is
wrong (the old XOR format, and the XOR half of the new format on pages up to 8 KiB; the ECC half and
32 KiB pages are not checked), a file that ends inside a page, and all-zero pages among the written
ones (wiped, or never written: rows on them are lost). Whatever libesedb then fails to read is a
warning too; the rows it can read are still emitted.

Tested on databases written by ``tests/fixtures/ese_writer.py`` (format-exact; no public
``store.vol`` exists) and read by both libesedb and dissect.esedb.
"""

from __future__ import annotations

import os
import re
import struct
from collections.abc import Callable, Iterable, Iterator, Mapping
from pathlib import Path, PurePosixPath
from typing import Any, BinaryIO

from collector.timeutil import from_filetime, from_posix
from parsers.base import ParseContext, Parser
from parsers.filestat import TIME_DESCRIPTIONS
from parsers.mail_evidence import bundle_root, manifest_index, manifest_times
from parsers.record import Record

ESE_SIGNATURE = b"\xef\xcd\xab\x89"  # at offset 4 of every ESE database header page
ESE_MAGIC = 0x89ABCDEF  # also the seed of the XOR checksums
#: field -> accepted column spellings (MAPI tag with/without type suffix, readable aliases).
COLUMNS: dict[str, tuple[str, ...]] = {
    "id": ("0x00010003", "Id", "RowId", "MessageId", "0x67AA"),
    "folder": ("0x0E090013", "FolderId", "ParentFolderId", "Folder", "0x6748"),
    "subject": ("0x0037", "0x0037001F", "Subject"),
    "sender_name": ("0x0C1A", "0x0C1A001F", "0x0042", "0x0042001F", "SenderName"),
    "sender_email": ("0x0C1F", "0x0C1F001F", "0x8279001F", "0x0065", "0x0065001F",
                     "SenderEmailAddress"),
    "to": ("0x0E04", "0x0E04001F", "DisplayTo"),
    "message_id": ("0x1035", "0x1035001F", "InternetMessageId"),
    "delivery": ("0x0E06", "0x0E060040", "DeliveryTime", "ReceivedTime"),
    "submit": ("0x0039", "0x00390040", "ClientSubmitTime", "SentTime"),
    "created": ("0x3007", "0x30070040", "CreationTime"),
    "modified": ("0x3008", "0x30080040", "LastModificationTime", "ModifiedTime"),
    "flags": ("0x0E07", "0x0E070003", "MessageFlags"),
    "folder_name": ("0x3001", "0x3001001F", "0x0080001F", "DisplayName", "Name"),
    "parent": ("0x0E090013", "ParentFolderId", "0x6749", "Parent"),
}
TIME_FIELDS = (("delivery", "Delivery Time"), ("submit", "Client Submit Time"),
               ("created", "Creation Time"), ("modified", "Modification Time"))
DELETED_FOLDER_NAMES = {"deleted items", "deleted", "trash", "papierkorb", "gelöschte elemente",
                        "éléments supprimés", "elementos eliminados", "posta eliminata"}
BODY_DIR = "3"
OLE_UNIX_DAYS = 25_569  # days from 1899-12-30 (OLE Automation epoch) to 1970-01-01
_PATHLIKE = re.compile(r"([0-9A-Za-z_-]+)\.dat\b")
#: a body file name: row id digits 7, 2-6 and 8 (1-based, 8 hex digits), category, property tag
_BODY_NAME = re.compile(r"([0-9a-f])([0-9a-f]{5})0([0-9a-f])0000000(\d)([0-9a-f]{4})")
BODY_TAGS = ("1013", "1000")  # PR_HTML (HTML body), PR_BODY (plain-text body)
MESSAGE_CATEGORY = "3"
#: The body file's times an orphan body record carries (atime is left out: reading moves it).
BODY_FILE_TIMES = ("mtime", "ctime", "crtime")
#: body files (paths under ``Unistore/data``) -> {manifest time key: µs} of each one found
BodyTimes = Callable[[list[str]], Mapping[str, Mapping[str, int]]]


def _normalise(name: str) -> str:
    name = name.lower().replace("_", "").replace(" ", "")
    return name[2:] if name.startswith("0x") else name


def body_name(row_id: int, tag: str = BODY_TAGS[0], category: str = MESSAGE_CATEGORY) -> str:
    """Path (under ``Unistore/data``) of a row's body file, as Windows Mail names it."""
    digits = f"{row_id & 0xFFFFFFFF:08x}"
    letter = "abcdefghijklmnop"[int(digits[7], 16)]
    return (f"{category}/{letter}/{digits[6]}{digits[1:6]}0{digits[7]}0000000"
            f"{category}{tag}.dat")


def body_row_id(stem: str) -> int | None:
    """The row id a body file name encodes (its leading hex digit is not kept: assumed 0)."""
    match = _BODY_NAME.fullmatch(stem.lower())
    if match is None or match.group(4) != MESSAGE_CATEGORY:
        return None
    return int(match.group(2) + match.group(1) + match.group(3), 16)


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


def body_file_times(unistore_data: Path) -> BodyTimes:
    """Times of body files in a real directory (paths under ``unistore_data``), by ``stat``:
    only asked for the few orphans, so no file is stat'ed for nothing."""
    def times(rels: list[str]) -> dict[str, dict[str, int]]:
        found: dict[str, dict[str, int]] = {}
        for rel in rels:
            try:
                stat = (unistore_data / rel).stat()
            except OSError:
                continue
            found[rel] = {"mtime": from_posix(0, stat.st_mtime_ns),
                          "ctime": from_posix(0, stat.st_ctime_ns)}
            birth = getattr(stat, "st_birthtime", None)
            if birth is not None:
                found[rel]["crtime"] = from_posix(birth)
        return found
    return times


def _no_times(_rels: list[str]) -> Mapping[str, Mapping[str, int]]:
    return {}


def build_records(messages: Iterable[dict[str, Any]], message_columns: list[str],
                  folders: Iterable[dict[str, Any]], folder_columns: list[str],
                  bodies: dict[str, str] | None, ctx: ParseContext, parser: str,
                  complete: Callable[[], bool] = lambda: True,
                  body_times: BodyTimes = _no_times) -> Iterator[Record]:
    """Records from rows of the ``Message`` and ``Folders`` tables (plain dicts, column -> value).

    ``complete`` says, once the messages are read, whether every row was: body files are only
    called orphans when no row could be missing. ``body_times`` gives the orphan body files' times
    by their paths under ``Unistore/data`` (manifest keys ``mtime``, ``ctime``, ``crtime`` -> µs),
    asked once for all of them: an orphan body has no row, so its file's times are all it has."""
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
    by_row_id: dict[int, list[str]] = {}
    for stem in (bodies or {}):
        if (rid := body_row_id(stem)) is not None:
            by_row_id.setdefault(rid, []).append(stem)
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
        if bodies is not None:
            row_id = attributes.get("id")
            row_id = row_id if isinstance(row_id, int) and not isinstance(row_id, bool) else None
            match = sorted(set(by_row_id.get(row_id, ()) if row_id is not None else ())
                           | (row_keys(row, mcols) & bodies.keys()), key=lambda k: bodies[k])
            referenced |= set(match)
            attributes["body_file"] = bodies[match[0]] if match else None
            named = {m.group(1).lower() for v in row.values() if isinstance(v, str)
                     for m in _PATHLIKE.finditer(v)}
            if named and not (named & bodies.keys()):
                attributes["body_missing"] = True
            elif not match and row_id is not None:
                attributes["body_expected"] = body_name(row_id)
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
    if bodies and not complete():
        ctx.warn(f"{len(bodies) - len(referenced)} body file(s) not matched to a row, but the "
                 "Message table was not read completely: not reported as orphans")
        return
    orphans = [rel for stem, rel in sorted((bodies or {}).items()) if stem not in referenced]
    found = body_times(orphans) if orphans else {}
    for rel in orphans:
        times = found.get(rel, {})
        yield Record(data_type="mail:windows_mail:orphan_body",
                     message=f"Windows Mail body file with no Message row: data/{rel}",
                     provenance=ctx.provenance, parser=parser, order=order,
                     timestamps={TIME_DESCRIPTIONS[key]: times[key] for key in BODY_FILE_TIMES
                                 if times.get(key) is not None},
                     attributes={"body_file": rel, "body_without_row": True,
                                 "store": ctx.provenance.source_path},
                     host=ctx.host, user=ctx.user, recovered=True)
        order += 1


class _Rows:
    """A table's rows as a stream; ``complete`` is False once any row could not be read."""

    def __init__(self, table: Any, ctx: ParseContext) -> None:
        self.table, self.ctx, self.complete = table, ctx, True
        self.name = _safe(lambda: table.name, "?")
        try:
            self.columns = [table.get_column(i).name for i in range(table.number_of_columns)]
        except OSError as exc:
            ctx.warn(f"{self.name}: columns unreadable: {exc}")
            self.columns, self.complete = [], False

    def __iter__(self) -> Iterator[dict[str, Any]]:
        if not self.columns:
            return
        try:
            count = self.table.number_of_records
        except OSError as exc:
            self.ctx.warn(f"{self.name}: records unreadable (damaged page tree?): {exc}")
            self.complete = False
            return
        for index in range(count):
            try:
                record = self.table.get_record(index)
            except OSError as exc:
                self.ctx.warn(f"{self.name}: record {index} unreadable: {exc}")
                self.complete = False
                continue
            row: dict[str, Any] = {}
            for column, name in enumerate(self.columns):
                try:
                    row[name] = _value(record, column)
                except (OSError, ValueError, UnicodeError):
                    row[name] = None
            yield row


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
            check_pages(fh, ctx)  # says where the damage is
            return
        try:
            objids = check_pages(fh, ctx)
            tables = _tables(database, ctx)
            check_tables(tables, objids, ctx)
            message = tables.get("Message")
            if message is None:
                ctx.warn(f"no Message table (tables: {', '.join(sorted(tables))})")
                return
            folder_columns: list[str] = []
            folder_rows: list[dict[str, Any]] = []
            if "Folders" in tables:
                folders = _Rows(tables["Folders"], ctx)
                folder_columns, folder_rows = folders.columns, list(folders)  # few; messages stream
            messages = _Rows(message, ctx)
            bodies, times = self._bodies(fh, ctx)
            yield from build_records(messages, messages.columns, folder_rows, folder_columns,
                                     bodies, ctx, self.NAME, complete=lambda: messages.complete,
                                     body_times=times)
        finally:
            database.close()

    @staticmethod
    def _bodies(fh: BinaryIO, ctx: ParseContext) -> tuple[dict[str, str] | None, BodyTimes]:
        """Body files of ``Unistore/data`` beside ``UnistoreDB/store.vol`` and a lookup of their
        times: from the bundle manifest when parsing a bundle (deleted entries are not bodies that
        are there), else from the directory the file was opened in; None when that folder was not
        collected at all."""
        source = PurePosixPath(ctx.provenance.source_path.replace("\\", "/"))
        root = bundle_root(fh, ctx.provenance.bundle_path)
        index = manifest_index(root) if root is not None else None
        if index is not None:
            data = str(source.parent.parent / "Unistore" / "data")
            found: dict[str, str] = {}
            collected = False
            for (filesystem, folder), files in index.folders.items():
                if filesystem != ctx.provenance.filesystem or not (
                        folder == data or folder.startswith(data + "/")):
                    continue
                collected = True
                if not (folder + "/").startswith(f"{data}/{BODY_DIR}/"):
                    continue
                for sibling in files:
                    if sibling.name.lower().endswith(".dat") and not sibling.deleted:
                        rel = sibling.source_path[len(data) + 1:]
                        found.setdefault(sibling.name[:-4].lower(), rel)

            def times(rels: list[str]) -> dict[str, dict[str, int]]:
                by_path = manifest_times(root, ctx.provenance.filesystem or "",
                                         (f"{data}/{rel}" for rel in rels), BODY_FILE_TIMES)
                return {path[len(data) + 1:]: value for path, value in by_path.items()}
            return (found if collected else None), times
        local = getattr(fh, "name", None)
        if not isinstance(local, str):
            return None, _no_times
        data_dir = Path(local).parent.parent / "Unistore" / "data"
        if not data_dir.is_dir():
            return None, _no_times
        return body_files(data_dir), body_file_times(data_dir)


def _safe(get: Any, default: Any) -> Any:
    try:
        return get()
    except OSError:
        return default


def _tables(database: Any, ctx: ParseContext) -> dict[str, Any]:
    """name -> table of every table libesedb can open; the others are warnings."""
    tables: dict[str, Any] = {}
    for index in range(_safe(lambda: database.number_of_tables, 0)):
        try:
            table = database.get_table(index)
            tables[table.name] = table
        except OSError as exc:
            ctx.warn(f"table {index} unreadable: {exc}")
    return tables


# -- page integrity (libesedb does not check checksums) -------------------------------------------
PAGE_HEADER_OBJID = 24  # offset of the father-data-page object id in every page header
PAGE_HEADER_FLAGS = 36  # offset of the page flags in the 40-byte (small page) header
NEW_CHECKSUM_FLAG = 0x2000
SMALL_PAGE_MAX = 8192


def xor32(data: bytes) -> int:
    """XOR of the little-endian 32-bit words of ``data``, folded with big-integer operations."""
    value = int.from_bytes(data, "little")
    bits = max(4, 1 << (len(data) - 1).bit_length()) * 8  # zero padding changes no XOR
    while bits > 32:
        bits //= 2
        value = (value >> bits) ^ (value & ((1 << bits) - 1))
    return value


def page_checksum_ok(page: bytes, pgno: int) -> bool | None:
    """Whether a database page's stored checksum matches; None where it cannot be checked here
    (the ECC half, and new-format pages over 8 KiB whose four blocks have their own checksums)."""
    stored_xor, stored_second = struct.unpack_from("<II", page)
    if len(page) < PAGE_HEADER_FLAGS + 4:
        return None
    flags = struct.unpack_from("<I", page, PAGE_HEADER_FLAGS)[0]
    if not flags & NEW_CHECKSUM_FLAG:  # old format: XOR seeded 0x89ABCDEF, page number in word 2
        return stored_xor == xor32(page[4:]) ^ ESE_MAGIC and stored_second == pgno
    if len(page) > SMALL_PAGE_MAX:
        return None
    return stored_xor == xor32(page[8:]) ^ pgno


def check_pages(fh: BinaryIO, ctx: ParseContext) -> set[int]:
    """Read the database once, page by page, and warn about what libesedb would read silently:
    a wrong header or page checksum, a file that ends inside a page, all-zero pages among written
    ones. Returns the object ids (B+-trees) that have at least one written page."""
    objids: set[int] = set()
    fh.seek(0)
    header = fh.read(4096)
    if len(header) < 668:
        ctx.warn(f"store.vol is {len(header)} bytes: too short for an ESE header (truncated)", 0)
        return objids
    if struct.unpack_from("<I", header)[0] != xor32(header[4:]) ^ ESE_MAGIC:
        ctx.warn("store.vol header checksum mismatch (damaged header)", 0)
    page_size = struct.unpack_from("<I", header, 236)[0]
    if page_size not in (2048, 4096, 8192, 16384, 32768):
        ctx.warn(f"store.vol header gives an unsupported page size {page_size}", 236)
        return objids
    fh.seek(2 * page_size)  # after the header page and its shadow copy
    pgno = 1
    zero_run: list[int] = []
    zero_inside = 0
    first_zero: int | None = None
    zero = bytes(page_size)
    while True:
        page = fh.read(page_size)
        offset = (pgno + 1) * page_size
        if not page:
            break
        if len(page) < page_size:
            ctx.warn(f"store.vol ends {len(page)} bytes into page {pgno} (page size "
                     f"{page_size}): truncated", offset)
            break
        if page == zero:
            zero_run.append(offset)
        else:
            if zero_run:
                zero_inside += len(zero_run)
                first_zero = zero_run[0] if first_zero is None else first_zero
                zero_run = []
            if page_checksum_ok(page, pgno) is False:
                ctx.warn(f"store.vol page {pgno} checksum mismatch (damaged or altered page)",
                         offset)
            objids.add(struct.unpack_from("<I", page, PAGE_HEADER_OBJID)[0])
        pgno += 1
    if zero_inside:
        ctx.warn(f"store.vol has {zero_inside} all-zero page(s) among written ones (first at "
                 f"offset {first_zero}): wiped or never written; rows on them are lost", first_zero)
    return objids


def check_tables(tables: dict[str, Any], objids: set[int], ctx: ParseContext) -> None:
    """Warn about a table none of whose pages is left (libesedb reads a zeroed root as empty)."""
    for name in ("Folders", "Message"):
        objid = _safe(lambda t=tables.get(name): t.identifier if t is not None else None, None)
        if objid is not None and objids and objid not in objids:
            ctx.warn(f"store.vol table {name} (object {objid}) has no page left in the file: its "
                     "pages were zeroed or cut off; its rows are lost")
