"""Maildir messages (Dovecot, Courier, Postfix, notmuch, mbsync): one file is one message.

The collector gathers ``cur/``, ``new/`` and ``tmp/`` of every folder, Maildir++ sub-folders
(``.Trash``, ``.Deleted Messages``) included; each file becomes a ``mail:maildir:message`` record.
Besides the header fields shared with mbox (``parsers/mbox.py``), the record carries what the
store itself says:

* the unique name's leading number, the delivery time (``<seconds>.<unique>.<host>``), as a
  timestamp of its own;
* the flags after ``:2,`` (``T`` trashed: deleted in the client, waiting for expunge; ``S`` seen,
  ``R`` replied, ``F`` flagged, ``D`` draft, ``P`` passed);
* whether the folder is a trash folder and which sub-directory (``tmp/`` = a delivery that never
  finished, or one in progress);
* ``recovered`` when the file itself is a deleted entry that the collector recovered.

Only the header block is read (at most :data:`parsers.mbox.MAX_HEADER_BYTES`), so a huge message
costs no memory.

Folders: the collector also writes a manifest line (``kind: dir``) for every folder and its
``cur``/``new``/``tmp``. A delivery (into ``new/``, then ``cur/``), a flag change (a rename inside
``cur/``) and an expunge (an unlink from ``cur/``) all set the directory's mtime, while only the
first two leave a file whose mtime or ctime is that late. So each ``cur``/``new`` line becomes a
``mail:maildir:folder`` record at the directory's mtime, and when that mtime is later than the
newest mtime/ctime of the message files the manifest still lists there (or, for an empty
directory, later than its creation), ``removed_after_newest`` says that a message was removed or
moved out at that time (rule ``maildir_folder_message_removed`` tags it for ``cur/``; leaving
``new/`` for ``cur/`` is what every mail client does).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any, BinaryIO

from collector.timeutil import iso_utc
from parsers.base import ParseContext, Parser
from parsers.mail_evidence import (
    MAILDIR_FLAGS,
    is_trash_folder,
    maildir_name_time,
    maildir_split,
    manifest_lines,
    manifest_time,
    per_manifest,
)
from parsers.mbox import MAX_HEADER_BYTES, mail_summary, message_fields, parse_headers
from parsers.record import Record

MAILDIR_TIME_DESC = "Delivery Time (Maildir file name)"
#: plaso's description of an mtime, as on the directory's ``fs:stat`` record.
FOLDER_TIME_DESC = "Content Modification Time"
#: A directory mtime must be this much later than the newest file (or the creation) to count as a
#: later change: a rename sets the file's ctime and the directory's mtime from separate clock reads,
#: and FAT keeps mtimes in 2-second steps.
SAME_CHANGE_US = 2_000_000
_INFO = re.compile(r"(?::|%3A|!|;)2,[A-Za-z]*$")
_HEADER_LINE = re.compile(rb"^[!-9;-~]+:[ \t]?")


def read_header_block(fh: BinaryIO) -> tuple[bytes, bool, int]:
    """(header bytes, whether the blank line ending them was seen, bytes read), streamed."""
    block = bytearray()
    complete = False
    while len(block) < MAX_HEADER_BYTES:
        line = fh.readline(MAX_HEADER_BYTES - len(block))
        if not line:
            break
        if line in (b"\n", b"\r\n"):
            complete = True
            break
        block += line
    return bytes(block), complete, len(block)


def maildir_location(source_path: str) -> dict[str, Any]:
    """Folder, sub-directory and name facts of a Maildir message path.

    ``/home/a/Maildir/.Trash/cur/x:2,S`` gives folder ``.Trash``; the INBOX (the Maildir root) is
    the folder ``INBOX``. Paths that are not under ``cur``/``new``/``tmp`` keep their parent's name.
    """
    path = PurePosixPath(source_path)
    subdir = path.parent.name if path.parent.name in ("cur", "new", "tmp") else None
    folder_dir = path.parent.parent if subdir else path.parent
    folder = folder_dir.name
    if folder.lower() == "maildir" or not folder:
        folder = "INBOX"
    return {"folder": folder, "folder_path": str(folder_dir), "subdir": subdir}


@dataclass
class _DirectoryFiles:
    """The message files the manifest lists in one directory (live ones), and its deleted entries."""

    count: int = 0
    newest: int | None = None
    newest_path: str | None = None
    deleted: int = 0

    def add(self, line: dict[str, Any]) -> None:
        if line.get("deleted"):
            self.deleted += 1
            return
        self.count += 1
        times = [t for t in (manifest_time(line, "mtime"), manifest_time(line, "ctime")) if t is not None]
        path = line["source_path"]
        if times and (self.newest is None or (max(times), path) > (self.newest, self.newest_path or "")):
            self.newest, self.newest_path = max(times), path


@dataclass(frozen=True)
class _FolderIndex:
    """The manifest by directory: (filesystem, directory) -> its files; (filesystem, path) -> dir line."""

    files: dict[tuple[str, str], _DirectoryFiles]
    dirs: dict[tuple[str, str], dict[str, Any]]


def _build_folder_index(manifest: str) -> _FolderIndex:
    files: dict[tuple[str, str], _DirectoryFiles] = {}
    dirs: dict[tuple[str, str], dict[str, Any]] = {}
    for line in manifest_lines(manifest):
        if not isinstance(line.get("source_path"), str):
            continue
        filesystem = line.get("filesystem") or ""
        if line.get("kind") == "dir" and not line.get("deleted"):
            dirs[(filesystem, line["source_path"])] = line
        elif line.get("kind") == "file" and line.get("outcome") != "missing":
            parent = str(PurePosixPath(line["source_path"]).parent)
            files.setdefault((filesystem, parent), _DirectoryFiles()).add(line)
    return _FolderIndex(files=files, dirs=dirs)


def folder_index(bundle: Path) -> _FolderIndex | None:
    """The (cached) by-directory index of ``bundle/manifest.jsonl``; None without a manifest."""
    return per_manifest(Path(bundle), _build_folder_index)


class MaildirParser(Parser):
    """One Maildir message file, or the times of one Maildir ``cur``/``new`` directory."""

    NAME = "maildir"
    DESCRIPTION = ("Maildir/Maildir++ message files (cur/new/tmp): flags, trash folders, delivery time; "
                   "folder mtimes later than their newest message")
    DATA_TYPES = ("mail:maildir:message", "mail:maildir:folder")

    @classmethod
    def sniff(cls, head: bytes, name: str) -> bool:
        return bool(_INFO.search(name)) and bool(_HEADER_LINE.match(head))

    def parse(self, fh: BinaryIO, ctx: ParseContext) -> Iterator[Record]:
        source = ctx.provenance.source_path
        name = source.rsplit("/", 1)[-1]
        block, complete, _ = read_header_block(fh)
        if not block:
            ctx.warn("empty Maildir file or no header block: not a message", 0)
            return
        if not _HEADER_LINE.match(block):
            ctx.warn("file does not start with a header line: not a Maildir message?", 0)
        headers = parse_headers(block)
        timestamps, fields = message_fields(headers)
        base, flags = maildir_split(name)
        name_time = maildir_name_time(base)
        if name_time is not None:
            timestamps = {MAILDIR_TIME_DESC: name_time, **timestamps}
        location = maildir_location(source)
        attributes: dict[str, Any] = {**fields, **location, "maildir_name": base, "flags": flags}
        if flags is not None:
            attributes["flag_names"] = [MAILDIR_FLAGS[f] for f in flags if f in MAILDIR_FLAGS]
            if "T" in flags:
                attributes["trashed_flag"] = True
        if is_trash_folder(location["folder"]):
            attributes["in_trash_folder"] = True
        if location["subdir"] == "tmp":
            attributes["in_tmp"] = True
        size = ctx.entry.get("size")
        if size is not None:
            attributes["size"] = size
        corrupted = False
        if not complete:
            fh.seek(0, 2)
            if fh.tell() <= len(block):
                corrupted = True
                attributes["header_only"] = True
                ctx.warn("message file ends inside its header block (truncated?)", 0)
        text = mail_summary(attributes)
        marks = []
        if attributes.get("trashed_flag"):
            marks.append("flagged trashed")
        if attributes.get("in_trash_folder"):
            marks.append(f"in {location['folder']}")
        if location["subdir"] == "tmp":
            marks.append("in tmp/: delivery unfinished")
        if marks:
            text += " [" + "; ".join(marks) + "]"
        yield Record(data_type="mail:maildir:message", message=text,
                     provenance=ctx.provenance_at(0), parser=self.NAME, order=0,
                     timestamps=timestamps, attributes=attributes, host=ctx.host, user=ctx.user,
                     corrupted=corrupted, recovered=bool(ctx.entry.get("deleted")))

    def parse_directory(self, bundle: Path, ctx: ParseContext) -> Iterator[Record]:
        """A ``mail:maildir:folder`` record for a ``cur``/``new`` directory line of the manifest.

        The directory's mtime is the record's time. Later than the newest mtime/ctime of the
        message files still listed there (or, when none is left, than the directory's creation)
        means that the last change to the directory removed a message or moved one out.
        """
        entry = ctx.entry
        source = ctx.provenance.source_path
        subdir = PurePosixPath(source).name
        if subdir not in ("cur", "new"):
            return  # tmp/ changes with every delivery; the folder itself holds metadata files
        changed = manifest_time(entry, "mtime")
        if changed is None:
            ctx.warn("Maildir directory without a readable modification time: no folder record")
            return
        index = folder_index(bundle)
        if index is None:
            ctx.warn("no bundle manifest: the directory cannot be compared with its message files")
            return
        filesystem = ctx.provenance.filesystem
        present = index.files.get((filesystem, source), _DirectoryFiles())
        location = maildir_location(f"{source}/_")
        attributes: dict[str, Any] = {**location, "path": source, "message_files": present.count}
        if present.deleted:
            attributes["deleted_entries"] = present.deleted
        if is_trash_folder(location["folder"]):
            attributes["in_trash_folder"] = True
        where = f"Maildir folder {location['folder']} {subdir}/ ({source})"
        removed: bool | None = None
        if present.count and present.newest is not None:
            newest = iso_utc(present.newest)
            attributes.update(newest_file_time=newest, newest_file=present.newest_path)
            removed = changed > present.newest + SAME_CHANGE_US
            counted = f"{present.count} present, the newest changed at {newest}"
            text = (f"{where} changed after its newest message file ({counted}): a message was removed "
                    "(expunged or deleted) or moved out after the last one still present" if removed else
                    f"{where} changed: the arrival or flag change of a message still present ({counted})")
        elif present.count:
            text = f"{where} changed; its {present.count} message file(s) have no times to compare"
        else:
            parent = index.dirs.get((filesystem, location["folder_path"]), {})
            created = manifest_time(entry, "crtime")
            created = created if created is not None else manifest_time(parent, "crtime")
            if created is None:
                text = f"{where} is empty; no creation time to compare its last change with"
            else:
                attributes["created"] = iso_utc(created)
                removed = changed > created + SAME_CHANGE_US
                text = (f"{where} is empty and changed after its creation ({attributes['created']}): a "
                        "message was removed (expunged or deleted) or moved out, and none is left" if removed
                        else f"{where} is empty and unchanged since its creation ({attributes['created']})")
        if removed is not None:
            attributes["removed_after_newest"] = removed
        if removed:
            attributes["evidence"] = "folder_changed_after_newest" if present.count else "folder_emptied"
            if subdir == "new":
                text += " (new/: mail clients move messages to cur/ once seen, usually not a deletion)"
        yield Record(data_type="mail:maildir:folder", message=text, provenance=ctx.provenance,
                     parser=self.NAME, order=0, timestamps={FOLDER_TIME_DESC: changed},
                     attributes=attributes, host=ctx.host, user=ctx.user)
