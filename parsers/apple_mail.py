"""Apple Mail ``Envelope Index`` (SQLite, with its write-ahead log) and its ``.emlx`` files.

Why each check:
- ``messages.deleted = 1`` and rows in Trash / Deleted Messages mailboxes: messages the user
  deleted that Mail still indexes.
- ``mailboxes.deleted_count``: Mail's own count of deleted messages per mailbox.
- ROWID gaps (``messages.ROWID`` is AUTOINCREMENT; ``sqlite_sequence`` keeps the highest ever used):
  rows that once existed. Mail also renumbers a message it moves, so a gap is weaker evidence than
  a flag; the records say what is missing, not why.
- The WAL: SQLite appends changed pages to ``Envelope Index-wal`` and copies them into the main
  file only at a checkpoint. The database is rebuilt here at every commit the WAL holds (main file
  alone, then main + WAL up to each commit frame) and a row present in an earlier state but absent
  from the final one was deleted after the last checkpoint: it is emitted as recovered.
- Free pages of the main file (:mod:`parsers.sqlite_freelist`): leaf pages emptied by deletes keep
  their old rows unless SQLite's ``secure_delete`` was on; rows shaped like ``messages`` rows are
  carved and emitted as recovered.
- ``.emlx`` files with no row (the row was deleted, the file left behind) and rows whose ``.emlx``
  is gone, where the bundle holds the mail folders beside the database. Mail does not download
  every message of an IMAP account, so a missing ``.emlx`` is a lead, not a finding (no rule).

The collected files are never opened by SQLite: they are copied into a temporary directory first
(SQLite may write a ``-shm`` or checkpoint on close). Dates: see :func:`parsers.emlx.choose_epoch`.
"""

from __future__ import annotations

import os
import shutil
import sqlite3
import struct
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any, BinaryIO

from parsers.base import ParseContext, Parser
from parsers.emlx import apple_seconds_to_micros, choose_epoch, decode_flags, is_trash_mailbox
from parsers.record import Record
from parsers.sqlite_freelist import carve_free_pages

SQLITE_MAGIC = b"SQLite format 3\x00"
WAL_MAGICS = (0x377F0682, 0x377F0683)
WAL_HEADER = 32
WAL_FRAME_HEADER = 24
MAX_SNAPSHOTS = 64
COPY_BUDGET = 1 << 30  # bytes of database copies allowed where hard links are not available
DB_NAME = "envelope index"
FREE_PAGE = "free page"
SIDE_FILES = (DB_NAME + "-wal", DB_NAME + "-shm")
WAL_MAGIC_BYTES = tuple(struct.pack(">I", magic) for magic in WAL_MAGICS)
TIME_COLUMNS = (("date_received", "Received Time"), ("date_sent", "Sent Time"),
                ("date_last_viewed", "Last Viewed Time"))


@dataclass
class WalInfo:
    """Commit boundaries of a WAL file (byte offsets just after each commit frame)."""

    page_size: int = 0
    commits: list[int] = field(default_factory=list)
    frames: int = 0
    stale_frames: int = 0  # frames of an older WAL generation (other salts) after the valid ones
    uncommitted_frames: int = 0


def scan_wal(path: Path) -> WalInfo | None:
    """Read the WAL header and frame headers (not the pages), or None if it is not a WAL."""
    info = WalInfo()
    with path.open("rb") as handle:
        header = handle.read(WAL_HEADER)
        if len(header) < WAL_HEADER:
            return None
        magic, _version, page_size, _seq, salt1, salt2 = struct.unpack(">IIIIII", header[:24])
        if magic not in WAL_MAGICS or page_size < 512 or page_size & (page_size - 1):
            return None
        info.page_size = page_size
        offset = WAL_HEADER
        pending = 0
        valid = True
        while True:
            frame = handle.read(WAL_FRAME_HEADER)
            if len(frame) < WAL_FRAME_HEADER:
                break
            _page, commit, frame_salt1, frame_salt2 = struct.unpack(">IIII", frame[:16])
            if len(handle.read(page_size)) < page_size:
                break
            offset += WAL_FRAME_HEADER + page_size
            if not valid or (frame_salt1, frame_salt2) != (salt1, salt2):
                valid = False
                info.stale_frames += 1
                continue
            info.frames += 1
            pending += 1
            if commit:
                info.commits.append(offset)
                pending = 0
        info.uncommitted_frames = pending
    return info


def _columns(conn: sqlite3.Connection, table: str) -> list[str]:
    return [row[1] for row in conn.execute(f"PRAGMA table_info('{table}')")]


def _pick_commits(commits: list[int]) -> list[int]:
    """At most MAX_SNAPSHOTS commit offsets, evenly spread, always keeping the last."""
    if len(commits) <= MAX_SNAPSHOTS:
        return commits
    step = len(commits) / (MAX_SNAPSHOTS - 1)
    picked = sorted({commits[int(i * step)] for i in range(MAX_SNAPSHOTS - 1)} | {commits[-1]})
    return picked


class _Snapshots:
    """Temporary read-only copies of the database: main file alone, then at each WAL commit."""

    def __init__(self, tmp: Path, main: Path, wal: Path | None, wal_info: WalInfo | None) -> None:
        self.labels: list[str] = []
        self.paths: list[Path] = []
        self.main = main
        self._add(tmp / "main", main, None, None, "main database file (WAL not applied)")
        if wal is not None and wal_info is not None:
            commits = _pick_commits(wal_info.commits)
            if commits and not self._can_link(tmp, main) and \
                    main.stat().st_size > COPY_BUDGET // len(commits):
                commits = commits[-1:]  # no hard links here: a copy per commit would be too much
            for index, end in enumerate(commits):
                self._add(tmp / f"wal{index}", main, wal, end, f"WAL commit ending at byte {end}")

    @staticmethod
    def _can_link(tmp: Path, main: Path) -> bool:
        probe = tmp / "link-probe"
        try:
            os.link(main, probe)
        except OSError:
            return False
        probe.unlink()
        return True

    def _add(self, folder: Path, main: Path, wal: Path | None, end: int | None, label: str) -> None:
        folder.mkdir()
        target = folder / "db"
        try:
            os.link(main, target)  # a hard link keeps the name, so SQLite finds db-wal beside it
        except OSError:
            shutil.copyfile(main, target)
        if wal is not None and end is not None:
            with wal.open("rb") as src, (folder / "db-wal").open("wb") as dst:
                remaining = end
                while remaining > 0:
                    chunk = src.read(min(remaining, 1 << 20))
                    if not chunk:
                        break
                    dst.write(chunk)
                    remaining -= len(chunk)
        self.labels.append(label)
        self.paths.append(target)

    @staticmethod
    def connect(path: Path) -> sqlite3.Connection:
        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        conn.row_factory = sqlite3.Row
        # Text that is not UTF-8 (a damaged page) is kept losslessly instead of raising.
        conn.text_factory = _surrogateescape
        return conn


def _surrogateescape(raw: bytes) -> str:
    return raw.decode("utf-8", "surrogateescape")


class AppleMailEnvelopeParser(Parser):
    """Apple Mail's Envelope Index database (V2 to V10 layouts), WAL-aware."""

    NAME = "apple_mail_envelope"
    DESCRIPTION = ("Apple Mail Envelope Index (SQLite + WAL): deleted flags, Trash mailboxes, "
                   "deleted_count, ROWID gaps, rows deleted since the last checkpoint, emlx cross-check")
    DATA_TYPES = ("mail:apple_mail:message", "mail:apple_mail:mailbox", "mail:apple_mail:rowid_gap",
                  "mail:apple_mail:orphan_emlx")

    @classmethod
    def sniff(cls, head: bytes, name: str) -> bool:
        lower = name.lower()
        return (head.startswith(SQLITE_MAGIC) and lower == DB_NAME) or (
            lower in SIDE_FILES and (lower.endswith("-shm") or head[:4] in WAL_MAGIC_BYTES))

    def parse(self, fh: BinaryIO, ctx: ParseContext) -> Iterator[Record]:
        name = ctx.provenance.source_path.replace("\\", "/").rsplit("/", 1)[-1]
        if name.lower() in SIDE_FILES:
            # Read together with the database; only say so when the database was not collected.
            local = getattr(fh, "name", None)
            if isinstance(local, str) and not Path(local).with_name("Envelope Index").is_file():
                ctx.warn(f"{name} without its Envelope Index beside it: not parsed")
            return
        if name.lower() != DB_NAME:
            return  # other files of ~/Library/Mail belong to other parsers
        head = fh.read(len(SQLITE_MAGIC))
        if head != SQLITE_MAGIC:
            ctx.warn("Envelope Index is not an SQLite 3 database", 0)
            return
        fh.seek(0)
        local = Path(fh.name) if isinstance(getattr(fh, "name", None), str) else None
        wal = local.with_name(local.name + "-wal") if local is not None else None
        if wal is not None and (not wal.is_file() or wal.stat().st_size == 0):
            wal = None
        self._order = 0
        with tempfile.TemporaryDirectory(prefix="inboxtrail-envidx-") as tmp_name:
            tmp = Path(tmp_name)
            main = tmp / "source.db"
            with main.open("wb") as dst:
                shutil.copyfileobj(fh, dst, 1 << 20)
            wal_info = None
            if wal is not None:
                wal_info = scan_wal(wal)
                if wal_info is None:
                    ctx.warn(f"{wal.name} is not a SQLite WAL: ignored")
                else:
                    if wal_info.stale_frames:
                        ctx.warn(f"{wal.name}: {wal_info.stale_frames} frames of an earlier WAL "
                                 "generation follow the valid ones (old page versions, not read)")
                    if wal_info.uncommitted_frames:
                        ctx.warn(f"{wal.name}: {wal_info.uncommitted_frames} frames after the last "
                                 "commit (an unfinished transaction, not applied)")
            try:
                snapshots = _Snapshots(tmp, main, wal if wal_info else None, wal_info)
                yield from self._parse_snapshots(snapshots, local, ctx)
            except (sqlite3.DatabaseError, UnicodeDecodeError) as exc:  # SQLite's error text can be
                ctx.warn(f"Envelope Index unreadable: {exc}")  # invalid UTF-8 from a damaged schema

    # -- the work -----------------------------------------------------------------------------
    def _parse_snapshots(self, snapshots: _Snapshots, local: Path | None,
                         ctx: ParseContext) -> Iterator[Record]:
        # Snapshots are hard links of one file: SQLite shares locks and wal-index per inode, so
        # only one snapshot is open at a time.
        final = _Snapshots.connect(snapshots.paths[-1])
        try:
            tables = {row[0] for row in final.execute("SELECT name FROM sqlite_master WHERE type='table'")}
            if "messages" not in tables:
                ctx.warn("no messages table: not an Apple Mail Envelope Index")
                return
            query = self._message_query(final, tables)
            epoch = self._epoch(final)
            final_ids = {row[0] for row in final.execute("SELECT ROWID FROM messages")}
        finally:
            final.close()
        # Rows that an earlier state (main file, earlier WAL commits) holds and the final lacks.
        removed: dict[int, tuple[dict[str, Any], str]] = {}
        for path, label in zip(snapshots.paths[:-1], snapshots.labels[:-1], strict=True):
            try:
                conn = _Snapshots.connect(path)
                try:
                    ids = {row[0] for row in conn.execute("SELECT ROWID FROM messages")}
                    for rowid in sorted(ids - final_ids - removed.keys()):
                        row = conn.execute(query + " WHERE m.ROWID = ?", (rowid,)).fetchone()
                        if row is not None:
                            data = dict(row)
                            data["_recipients"] = self._recipients(conn, tables, rowid)
                            removed[rowid] = (data, label)
                finally:
                    conn.close()
            except (sqlite3.DatabaseError, UnicodeDecodeError) as exc:
                ctx.warn(f"{label}: unreadable ({exc})")
        final = _Snapshots.connect(snapshots.paths[-1])
        try:
            self._carve(snapshots.main, final, tables, final_ids, removed, ctx)
            emlx = self._emlx_files(local, ctx)
            received: dict[int, int] = {}
            yield from self._mailboxes(final, tables, ctx)
            for row in final.execute(query + " ORDER BY m.ROWID"):
                data = dict(row)
                record = self._message(data, final, tables, epoch, emlx, ctx, removed_from=None)
                if "Received Time" in record.timestamps:
                    received[data["_rowid"]] = record.timestamps["Received Time"]
                yield record
            for rowid, (data, label) in sorted(removed.items()):
                record = self._message(data, None, tables, epoch, emlx, ctx, removed_from=label)
                if "Received Time" in record.timestamps:
                    received[rowid] = record.timestamps["Received Time"]
                yield record
            yield from self._gaps(final, tables, final_ids | removed.keys(), received, ctx)
            if emlx is not None:
                known = final_ids | removed.keys()
                for rowid, rel in sorted(emlx.items()):
                    if rowid not in known:
                        yield self._orphan_emlx(rowid, rel, ctx)
        finally:
            final.close()

    def _carve(self, main: Path, conn: sqlite3.Connection, tables: set[str], final_ids: set[int],
               removed: dict[int, tuple[dict[str, Any], str]], ctx: ParseContext) -> None:
        """Add ``messages`` rows found on the main file's free pages to ``removed``."""
        columns = _columns(conn, "messages")
        with main.open("rb") as handle:
            carved = [row for row in carve_free_pages(handle)
                      if len(row.values) == len(columns) and row.values[0] is None
                      and row.rowid not in final_ids and row.rowid not in removed]
        for row in carved:
            data = dict(zip(columns, row.values, strict=True))
            if not all(isinstance(data.get(c), int | None) for c in ("date_received", "mailbox", "subject")):
                continue  # same width as a messages row, but not one
            data.update(_rowid=row.rowid, _offset=row.offset, **self._lookups(conn, tables, data))
            removed.setdefault(row.rowid, (data, f"{FREE_PAGE} {row.page}"))

    @staticmethod
    def _lookups(conn: sqlite3.Connection, tables: set[str], data: dict[str, Any]) -> dict[str, Any]:
        """Subject, sender and mailbox of a carved row, where those rows still exist."""
        found: dict[str, Any] = {}
        for table, column, key, names in (
                ("subjects", "subject", "subject", ("_subject",)),
                ("addresses", "address, comment", "sender", ("_sender_address", "_sender_comment")),
                ("mailboxes", "url", "mailbox", ("_mailbox_url",))):
            if table in tables and isinstance(data.get(key), int):
                row = conn.execute(f"SELECT {column} FROM {table} WHERE ROWID = ?", (data[key],)).fetchone()
                if row is not None:
                    found.update(zip(names, tuple(row), strict=True))
        return found

    @staticmethod
    def _message_query(conn: sqlite3.Connection, tables: set[str]) -> str:
        columns = set(_columns(conn, "messages"))
        select = ["m.ROWID AS _rowid", "m.*"]
        joins = []
        if "subjects" in tables and "subject" in columns:
            select.append("s.subject AS _subject")
            joins.append("LEFT JOIN subjects s ON s.ROWID = m.subject")
        if "addresses" in tables and "sender" in columns:
            select += ["a.address AS _sender_address", "a.comment AS _sender_comment"]
            joins.append("LEFT JOIN addresses a ON a.ROWID = m.sender")
        if "mailboxes" in tables and "mailbox" in columns:
            select.append("mb.url AS _mailbox_url")
            joins.append("LEFT JOIN mailboxes mb ON mb.ROWID = m.mailbox")
        if "message_global_data" in tables and "global_message_id" in columns and \
                "message_id_header" in _columns(conn, "message_global_data"):
            select.append("g.message_id_header AS _message_id_header")
            joins.append("LEFT JOIN message_global_data g ON g.ROWID = m.global_message_id")
        return f"SELECT {', '.join(select)} FROM messages m {' '.join(joins)}"

    @staticmethod
    def _epoch(conn: sqlite3.Connection) -> str:
        columns = set(_columns(conn, "messages"))
        if "date_received" not in columns:
            return "unix"
        values = [row[0] for row in conn.execute(
            "SELECT date_received FROM messages WHERE date_received > 0 ORDER BY date_received "
            "LIMIT 1 OFFSET (SELECT COUNT(*) / 2 FROM messages WHERE date_received > 0)")]
        return choose_epoch(values)

    def _recipients(self, conn: sqlite3.Connection | None, tables: set[str],
                    rowid: int) -> list[dict[str, Any]] | None:
        if conn is None or "recipients" not in tables or "addresses" not in tables:
            return None
        columns = set(_columns(conn, "recipients"))
        message_col = "message" if "message" in columns else "message_id"
        address_col = "address" if "address" in columns else "address_id"
        if message_col not in columns or address_col not in columns:
            return None
        order = " ORDER BY r.position" if "position" in columns else " ORDER BY r.ROWID"
        rows = conn.execute(
            f"SELECT r.type AS type, a.address AS address, a.comment AS comment FROM recipients r "
            f"LEFT JOIN addresses a ON a.ROWID = r.{address_col} WHERE r.{message_col} = ?{order}",
            (rowid,))
        return [{"address": r["address"], "comment": r["comment"] or None, "type": r["type"]}
                for r in rows]

    def _message(self, data: dict[str, Any], conn: sqlite3.Connection | None, tables: set[str],
                 epoch: str, emlx: dict[int, str] | None, ctx: ParseContext,
                 removed_from: str | None) -> Record:
        rowid = data["_rowid"]
        timestamps: dict[str, int] = {}
        for column, desc in TIME_COLUMNS:
            value = data.get(column)
            if isinstance(value, int | float) and not isinstance(value, bool) and value > 0:
                timestamps[desc] = apple_seconds_to_micros(value, epoch)
        subject = data.get("_subject")
        if subject is not None and data.get("subject_prefix"):
            subject = f"{data['subject_prefix']}{subject}"
        sender = data.get("_sender_address")
        mailbox = data.get("_mailbox_url")
        flags = data.get("flags") if isinstance(data.get("flags"), int) else None
        attributes: dict[str, Any] = {
            "rowid": rowid, "mailbox": mailbox, "mailbox_id": data.get("mailbox"),
            "subject": subject, "sender": sender, "sender_name": data.get("_sender_comment") or None,
            "recipients": self._recipients(conn, tables, rowid) if conn is not None
            else data.get("_recipients"),
            "message_id": data.get("_message_id_header"), "remote_id": data.get("remote_id"),
            "read": _bool(data.get("read")), "flagged": _bool(data.get("flagged")),
            "deleted": _bool(data.get("deleted")), "flags": flags, "size": data.get("size"),
            "date_epoch": epoch if timestamps else None,
            "database": ctx.provenance.source_path}
        if flags is not None:
            attributes["flag_names"] = decode_flags(flags)["flag_names"]
        if data.get("deleted") == 1:
            attributes["deleted_flag"] = True
        if is_trash_mailbox(mailbox):
            attributes["in_trash"] = True
        if emlx is not None:
            attributes["emlx_path"] = emlx.get(rowid)
            if rowid not in emlx:
                attributes["emlx_missing"] = True
        notes = []
        if removed_from is not None and removed_from.startswith(FREE_PAGE):
            attributes["freelist_carved"] = True
            attributes["seen_in"] = removed_from
            notes.append(f"deleted row carved from a {removed_from}")
        elif removed_from is not None:
            attributes["wal_removed"] = True
            attributes["seen_in"] = removed_from
            notes.append(f"row deleted after the last checkpoint (seen in {removed_from})")
        if attributes.get("deleted_flag"):
            notes.append("deleted = 1")
        if attributes.get("in_trash"):
            notes.append("in Trash")
        if attributes.get("emlx_missing"):
            notes.append("no .emlx file")
        note = f" [{'; '.join(notes)}]" if notes else ""
        record = Record(
            data_type="mail:apple_mail:message",
            message=(f"Apple Mail message {rowid} in {mailbox or '?'} from {sender or '?'}: "
                     f"{subject or '(no subject)'}{note}"),
            provenance=ctx.provenance_at(data["_offset"]) if "_offset" in data else ctx.provenance,
            parser=self.NAME, order=self._order, timestamps=timestamps,
            attributes=attributes, host=ctx.host, user=ctx.user,
            recovered=removed_from is not None or bool(ctx.entry.get("deleted")))
        self._order += 1
        return record

    def _mailboxes(self, conn: sqlite3.Connection, tables: set[str],
                   ctx: ParseContext) -> Iterator[Record]:
        if "mailboxes" not in tables:
            return
        columns = set(_columns(conn, "mailboxes"))
        counts = dict(conn.execute("SELECT mailbox, COUNT(*) FROM messages GROUP BY mailbox").fetchall()) \
            if "mailbox" in set(_columns(conn, "messages")) else {}
        for row in conn.execute("SELECT ROWID AS _rowid, * FROM mailboxes ORDER BY ROWID"):
            data = dict(row)
            url = data.get("url")
            attributes: dict[str, Any] = {
                "mailbox_id": data["_rowid"], "mailbox": url,
                "rows_in_index": counts.get(data["_rowid"], 0), "database": ctx.provenance.source_path}
            for column in ("total_count", "unread_count", "unseen_count", "deleted_count"):
                if column in columns:
                    attributes[column] = data.get(column)
            if isinstance(data.get("deleted_count"), int) and data["deleted_count"] > 0:
                attributes["has_deleted_count"] = True
            if is_trash_mailbox(url):
                attributes["in_trash"] = True
            deleted = f", deleted_count {data.get('deleted_count')}" if "deleted_count" in columns else ""
            yield Record(data_type="mail:apple_mail:mailbox",
                         message=(f"Apple Mail mailbox {url}: total {data.get('total_count')}, "
                                  f"{attributes['rows_in_index']} rows in the index{deleted}"),
                         provenance=ctx.provenance, parser=self.NAME, order=self._order,
                         attributes=attributes, host=ctx.host, user=ctx.user)
            self._order += 1

    def _gaps(self, conn: sqlite3.Connection, tables: set[str], ids: set[int],
              received: dict[int, int], ctx: ParseContext) -> Iterator[Record]:
        ordered = sorted(ids)
        sequence = None
        if "sqlite_sequence" in tables:
            row = conn.execute("SELECT seq FROM sqlite_sequence WHERE name = 'messages'").fetchone()
            sequence = row[0] if row else None
        ranges: list[tuple[int, int, int | None, int | None]] = []
        previous = 0
        for rowid in ordered:
            if rowid > previous + 1:
                ranges.append((previous + 1, rowid - 1, previous or None, rowid))
            previous = rowid
        if sequence is not None and sequence > previous:
            ranges.append((previous + 1, sequence, previous or None, None))
        for first, last, before, after in ranges:
            bounds: dict[str, int] = {}
            if before is not None and before in received:
                bounds[f"Not before: received time of row {before}"] = received[before]
            if after is not None and after in received:
                bounds[f"Not after: received time of row {after}"] = received[after]
            count = last - first + 1
            attributes = {"first_missing_rowid": first, "last_missing_rowid": last,
                          "missing_count": count, "rowid_gap": True,
                          "trailing": after is None, "sqlite_sequence": sequence,
                          "database": ctx.provenance.source_path}
            where = "above the highest row (newest rows deleted)" if after is None else \
                f"between rows {before or 0} and {after}"
            yield Record(data_type="mail:apple_mail:rowid_gap",
                         message=f"Apple Mail Envelope Index: {count} message row(s) {first}-{last} "
                                 f"missing {where}",
                         provenance=ctx.provenance, parser=self.NAME, order=self._order,
                         time_bounds=bounds, attributes=attributes, host=ctx.host, user=ctx.user)
            self._order += 1

    @staticmethod
    def _emlx_files(local: Path | None, ctx: ParseContext) -> dict[int, str] | None:
        """ROWID -> bundle-relative path of every ``N.emlx`` under the mail root, or None."""
        if local is None or local.parent.name != "MailData":
            return None
        root = local.parent.parent
        found: dict[int, str] = {}
        for folder, _dirs, files in os.walk(root):
            for name in files:
                lower = name.lower()
                if not lower.endswith(".emlx"):
                    continue
                stem = lower.split(".", 1)[0]
                if stem.isdigit():
                    rel = PurePosixPath(Path(folder).relative_to(root).as_posix()) / name
                    found.setdefault(int(stem), str(rel))
        if not found:
            return None  # mail folders not collected: no cross-check rather than false alarms
        return found

    def _orphan_emlx(self, rowid: int, rel: str, ctx: ParseContext) -> Record:
        source_root = ctx.provenance.source_path.replace("\\", "/").rsplit("/", 2)[0]
        source = f"{source_root}/{rel}"
        attributes = {"rowid": rowid, "emlx_path": source, "emlx_without_row": True,
                      "database": ctx.provenance.source_path}
        record = Record(data_type="mail:apple_mail:orphan_emlx",
                        message=(f"Apple Mail .emlx with no Envelope Index row: {source} "
                                 "(its row was deleted; the file remains)"),
                        provenance=ctx.provenance, parser=self.NAME, order=self._order,
                        attributes=attributes, host=ctx.host, user=ctx.user, recovered=True)
        self._order += 1
        return record


def _bool(value: object) -> bool | None:
    return bool(value) if isinstance(value, int) else None
