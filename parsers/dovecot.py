"""Dovecot ``dovecot-uidlist``: the IMAP UIDs a Maildir folder handed out, and to which files.

Format (Dovecot ``maildir-uidlist.c``): a header ``3 V<uidvalidity> N<nextuid> G<guid>`` (version 3;
version 1 is ``1 <uidvalidity> <nextuid>``), then one ``<uid> [<ext>...] :<base name>`` line per
message (``<uid> <base name>`` in version 1). New deliveries are appended; Dovecot rewrites the
file from time to time, dropping expunged messages and updating ``N``. So the file keeps two kinds
of traces of removed mail:

* **a UID whose file is gone** — listed, but no ``cur/``, ``new/`` or ``tmp/`` file of the folder
  has that base name: expunged (or deleted by hand) since the last rewrite. One
  ``mail:dovecot:uid_missing_file`` record per such UID, at the delivery time its base name holds;
  when the file exists only as a deleted (unallocated) entry, the evidence says so.
* **UIDs missing from the list** — holes between listed UIDs, and ``N`` above the highest UID + 1
  (the newest messages went): expunged before the last rewrite. One ``mail:dovecot:uid_gap`` record
  with the ranges. (Right after appends ``N`` can lag behind the highest UID; that is normal.)

Which files exist: the parser reads the folder's file list from the **bundle manifest** (found
from the handle's path minus its ``bundle_path``), which keeps the original names (``:`` included),
says which entries are deleted ones, and lists what the collector looked for. Comparing against the
bundle directory instead would see sanitised names (``%3A``) and recovered deleted files as if they
were live. Outside a bundle (a live or mounted tree, a test), the real ``cur/new/tmp`` directories
next to the file are listed. If neither is available, or the bundle was collected without the
Maildir message artifact, only the UID gaps are reported and a warning says why.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any, BinaryIO

from collector.timeutil import iso_utc, parse_iso
from parsers.base import ParseContext, Parser
from parsers.history import MAX_LINE_BYTES, bounded_lines
from parsers.mail_evidence import (
    SiblingFile,
    UidRanges,
    bundle_root,
    count_uids,
    format_ranges,
    is_trash_folder,
    listdir_siblings,
    maildir_name_time,
    maildir_split,
    manifest_index,
)
from parsers.maildir import MAILDIR_TIME_DESC
from parsers.record import Record

#: Artifacts whose collection includes Maildir message files (so absence from the manifest counts).
MESSAGE_ARTIFACTS = frozenset({"MaildirMessages", "LooseFiles", "AdHocPath"})
_HEADER_V1 = re.compile(r"^1 (\d+) (\d+)\s*$")
_LINE = re.compile(r"^(\d+)(?: (.*))?$")  # matched on right-stripped text: no backtracking


@dataclass
class _Entry:
    uid: int
    base: str
    line: int
    offset: int


def _parse_header(text: str) -> tuple[int | None, int | None, int | None]:
    """(version, uidvalidity, nextuid) of the first line."""
    match = _HEADER_V1.match(text)
    if match:
        return 1, int(match.group(1)), int(match.group(2))
    fields = text.split()
    if not fields or not fields[0].isdigit():
        return None, None, None
    values: dict[str, int] = {}
    for field in fields[1:]:
        if field[:1] in ("V", "N") and field[1:].isdigit():
            values[field[0]] = int(field[1:])
    return int(fields[0]), values.get("V"), values.get("N")


def _base_name(rest: str) -> str | None:
    """The file base name of a record line's remainder (``W123 S100 :name`` or ``name``)."""
    if rest.startswith(":"):
        name = rest[1:]
    elif " :" in rest:
        name = rest.split(" :", 1)[1]
    else:
        name = rest.split()[-1] if rest.split() else ""
    name = maildir_split(name)[0] if name else name
    return name or None


class DovecotUidlistParser(Parser):
    """``dovecot-uidlist`` of a Maildir folder: UIDs without files, and expunged UID ranges."""

    NAME = "dovecot_uidlist"
    DESCRIPTION = "Dovecot dovecot-uidlist: listed messages whose file is gone, expunged UID ranges"
    DATA_TYPES = ("mail:dovecot:uid_missing_file", "mail:dovecot:uid_gap")

    @classmethod
    def sniff(cls, head: bytes, name: str) -> bool:
        return name == "dovecot-uidlist" and bool(re.match(rb"^[123] ", head))

    def parse(self, fh: BinaryIO, ctx: ParseContext) -> Iterator[Record]:
        folder_path = str(PurePosixPath(ctx.provenance.source_path).parent)
        first = fh.readline(MAX_LINE_BYTES)
        version, uid_validity, next_uid = _parse_header(first.decode("utf-8", "replace"))
        if version is None:
            ctx.warn("not a dovecot-uidlist header line", 0)
            return
        files = self._files(fh, ctx, folder_path)
        uids = UidRanges()
        offset = len(first)
        order = 0
        listed = 0
        for number, (start, raw, _) in enumerate(bounded_lines(fh, ctx), 2):
            line_offset = offset + start
            text = raw.decode("utf-8", "surrogateescape").rstrip()
            match = _LINE.match(text)
            if not text.strip():
                continue
            if not match or not match.group(2):
                ctx.warn(f"unreadable uidlist line {number}: {text[:80]!r}", line_offset)
                continue
            base = _base_name(match.group(2))
            if base is None:
                ctx.warn(f"uidlist line {number} has no file name", line_offset)
                continue
            entry = _Entry(uid=int(match.group(1)), base=base, line=number, offset=line_offset)
            listed += 1
            uids.add(entry.uid, maildir_name_time(base))
            if files is None:
                continue
            present = files.get(base)
            if present is not None and any(not f.deleted for f in present):
                continue
            yield self._missing(entry, present, ctx, folder_path, order)
            order += 1
        if uids.out_of_order:
            ctx.warn(f"{uids.out_of_order} UIDs are not above the previous one", None)
        gap = self._gap(uids, uid_validity, next_uid, version, ctx, folder_path, order)
        if gap is not None:
            yield gap

    def _files(self, fh: BinaryIO, ctx: ParseContext,
               folder_path: str) -> dict[str, list[SiblingFile]] | None:
        """Base name -> files of this folder's cur/new/tmp, or None when that cannot be known."""
        siblings: list[SiblingFile] = []
        root = bundle_root(fh, ctx.provenance.bundle_path)
        index = manifest_index(root) if root is not None else None
        if index is not None:
            if not index.artifacts & MESSAGE_ARTIFACTS:
                ctx.warn("the bundle was collected without the Maildir message files; listed UIDs "
                         "cannot be checked against files", None)
                return None
            for sub in ("cur", "new", "tmp"):
                siblings += index.siblings(ctx.provenance.filesystem, f"{folder_path}/{sub}")
        else:
            name = getattr(fh, "name", None)
            if not isinstance(name, str) or not Path(name).is_file():
                ctx.warn("no bundle manifest or folder next to this uidlist; listed UIDs cannot "
                         "be checked against files", None)
                return None
            for sub in ("cur", "new", "tmp"):
                siblings += listdir_siblings(Path(name).parent / sub)
        files: dict[str, list[SiblingFile]] = {}
        for sibling in siblings:
            files.setdefault(maildir_split(sibling.name)[0], []).append(sibling)
        return files

    def _missing(self, entry: _Entry, present: list[SiblingFile] | None, ctx: ParseContext,
                 folder_path: str, order: int) -> Record:
        deleted = bool(present)
        delivered = maildir_name_time(entry.base)
        folder = PurePosixPath(folder_path).name
        state = ("is a deleted (unallocated) entry" if deleted else
                 "is gone from cur/, new/ and tmp/")
        text = (f"Dovecot UID {entry.uid} of {folder_path} lists {entry.base}, whose file {state}: "
                f"message expunged or deleted"
                + (f" after its delivery at {iso_utc(delivered)}" if delivered is not None else ""))
        attributes: dict[str, Any] = {
            "evidence": "uidlist_file_deleted" if deleted else "uidlist_file_missing",
            "uid": entry.uid, "maildir_name": entry.base, "uidlist_line": entry.line,
            "folder_path": folder_path, "folder": folder,
            "deleted_entries": [f.source_path for f in present or ()]}
        if is_trash_folder(folder):
            attributes["in_trash_folder"] = True
        timestamps = {MAILDIR_TIME_DESC: delivered} if delivered is not None else {}
        bounds: dict[str, int] = {}
        if not timestamps and ctx.entry.get("mtime"):
            bounds["Not after: uidlist last modified (the UID was listed by then)"] = parse_iso(
                ctx.entry["mtime"])
        return Record(data_type="mail:dovecot:uid_missing_file", message=text,
                      provenance=ctx.provenance_at(entry.offset), parser=self.NAME, order=order,
                      timestamps=timestamps, time_bounds=bounds, attributes=attributes,
                      host=ctx.host, user=ctx.user, recovered=deleted)

    def _gap(self, uids: UidRanges, uid_validity: int | None, next_uid: int | None, version: int,
             ctx: ParseContext, folder_path: str, order: int) -> Record | None:
        found = uids.expunged(next_uid)
        if found is None:
            return None
        gaps, tail, befores = found
        missing = count_uids(gaps)
        bounds: dict[str, int] = {}
        if befores and all(b is not None for b in befores):
            bounds["Not before: delivery of the message before the first gap"] = min(befores)
        if ctx.entry.get("mtime"):
            bounds["Not after: uidlist last modified"] = parse_iso(ctx.entry["mtime"])
        newest = (f"; the newest {count_uids([tail])} (UIDs {format_ranges([tail])}) went"
                  if tail else "")
        text = (f"{missing} message(s) expunged from {folder_path}: UIDs {format_ranges(gaps)} are "
                f"missing from dovecot-uidlist ({uids.count} listed, highest {uids.highest}, "
                f"next UID {next_uid}){newest}")
        folder = PurePosixPath(folder_path).name
        attributes: dict[str, Any] = {
            "evidence": "uid_gap", "missing_count": missing,
            "missing_uids": [[low, high] for low, high in gaps], "present_count": uids.count,
            "highest_uid": uids.highest, "next_uid": next_uid, "uid_validity": uid_validity,
            "uidlist_version": version, "newest_expunged": tail is not None,
            "folder_path": folder_path, "folder": folder}
        return Record(data_type="mail:dovecot:uid_gap", message=text, provenance=ctx.provenance,
                      parser=self.NAME, order=order, time_bounds=bounds, attributes=attributes,
                      host=ctx.host, user=ctx.user)
