"""Thunderbird (and SeaMonkey) mail folders: every mbox under ``Mail/`` and ``ImapMail/``.

A Thunderbird profile keeps each folder as an mbox file without extension (``Inbox``, ``Trash``,
``Sent``, sub-folders under ``<name>.sbd/``) next to its ``.msf`` summary. The artifact collects the
whole ``Mail/`` and ``ImapMail/`` trees; this parser reads the folder files with the mbox parser
(``mail:thunderbird:*`` data types) and ignores the profile's other files (summaries, filter
rules, ``popstate.dat``, JSON), so that no file produces noise.

What Thunderbird leaves of deleted mail (see ``parsers/mbox.py`` for the flag decoding):

* ``X-Mozilla-Status`` Expunged (0x0008): the user deleted the message (or it was moved away), the
  bytes stay in the folder file until it is compacted. The message is emitted with
  ``recovered=True``.
* ``X-Mozilla-Status2`` IMAPDeleted (0x00200000): marked deleted on the IMAP server.
* messages in a trash folder (``Trash``, ``Deleted``, ``Deleted Items``, ``Deleted Messages``).

The ``.msf`` summary (Mork, ``parsers/mork.py``) of each folder adds two more:

* ``mail:thunderbird:msf_removed``: a message row cut from the summary's message table whose cells
  are still in the file (Thunderbird appends the cut and keeps the old row until it rewrites the
  summary): the header of a deleted message, emitted as recovered with its dates.
* ``mail:thunderbird:msf_not_in_folder``: a row the summary still lists whose Message-ID the folder
  file does not hold (local folders; for IMAP folders only rows flagged Offline, since the folder
  file is only an offline cache): the folder file was edited behind Thunderbird's back, or a
  message went without the summary being updated.

The folder file is found through the bundle manifest (the ``.msf`` path without its extension), or
next to the ``.msf`` in a real directory; without it only the cut rows are reported.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path, PurePosixPath
from typing import Any, BinaryIO

from parsers.base import ParseContext
from parsers.mail_evidence import (
    MOZILLA_EXPUNGED,
    bundle_root,
    is_trash_folder,
    manifest_index,
    mozilla_flag_names,
)
from parsers.mbox import MboxParser, mapped, parse_headers
from parsers.mork import MAX_VALUE_CHARS, MorkDatabase, read_mork
from parsers.record import Record

MSGS_KIND = "ns:msg:db:table:kind:msgs"
MOZILLA_OFFLINE = 0x0080
#: The summary columns the records use: the Mork reader keeps only these cells of each row, so a
#: summary of any size costs its row ids and these values, not its bytes.
MSF_COLUMNS = ("message-id", "flags", "date", "dateReceived", "subject", "sender", "recipients",
               "msgOffset", "storeToken", "size")
MSF_DATE_DESC = "Sent Time (summary date)"
MSF_RECEIVED_DESC = "Delivery Time (summary dateReceived)"

#: Profile files that are not mail folders.
NOT_FOLDERS = (".msf", ".dat", ".json", ".html", ".htm", ".sqlite", ".sqlite-wal", ".sqlite-shm",
               ".txt", ".js", ".log", ".rdf", ".xml", ".lock", ".bak", ".mab", ".eml", ".wdseml",
               ".jsonlz4", ".tmp")
_STORE = re.compile(r"/(Mail|ImapMail|News)/([^/]+)/(.+)$")


def thunderbird_folder(source_path: str) -> dict[str, Any]:
    """Store (``Mail``/``ImapMail``), account directory and folder name of a folder file path.

    ``.../ImapMail/imap.example.org/INBOX.sbd/Projects`` gives account ``imap.example.org`` and
    folder ``INBOX/Projects`` (``.sbd`` directories hold a folder's sub-folders).
    """
    match = _STORE.search(source_path)
    if not match:
        return {"folder": PurePosixPath(source_path).name}
    parts = [p[:-4] if p.endswith(".sbd") else p for p in match.group(3).split("/")]
    return {"store": match.group(1), "account": match.group(2), "folder": "/".join(parts)}


class ThunderbirdParser(MboxParser):
    """Thunderbird mbox folders (Mail/, ImapMail/) with their deletion flags and trash folders."""

    NAME = "thunderbird"
    DESCRIPTION = ("Thunderbird profile mail folders (Mail/**, ImapMail/**): messages, X-Mozilla-Status "
                   "expunged/deleted flags, trash folders")
    DATA_TYPES = ("mail:thunderbird:message", "mail:thunderbird:uid_gap", "mail:thunderbird:msf_removed",
                  "mail:thunderbird:msf_not_in_folder")
    PREFIX = "mail:thunderbird"

    @classmethod
    def sniff(cls, head: bytes, name: str) -> bool:
        return False  # loose mbox files are the mbox parser's; this one needs the profile layout

    def folder_attributes(self, ctx: ParseContext) -> dict[str, Any]:
        attributes = {"mailbox": ctx.provenance.source_path,
                      **thunderbird_folder(ctx.provenance.source_path)}
        if is_trash_folder(attributes["folder"]):
            attributes["in_trash_folder"] = True
        return attributes

    def is_spool(self, ctx: ParseContext) -> bool:
        return False  # Thunderbird rewrites its folders for flag changes: an mtime proves nothing

    def parse(self, fh: BinaryIO, ctx: ParseContext) -> Iterator[Record]:
        name = PurePosixPath(ctx.provenance.source_path).name
        if name.lower().endswith(".msf"):
            yield from self._summary(fh, ctx)
            return
        if name.lower().endswith(NOT_FOLDERS):
            return
        if "." in name.lstrip("."):
            head = fh.read(5)
            fh.seek(0)
            if head not in (b"", b"From "):
                return  # some other profile file with an extension we do not know
        yield from super().parse(fh, ctx)

    # -- .msf summaries --------------------------------------------------------------------------
    def _summary(self, fh: BinaryIO, ctx: ParseContext) -> Iterator[Record]:
        head = fh.read(17)
        fh.seek(0)
        if head != b"// <!-- <mdb:mork":
            ctx.warn("not a Mork summary (no <mdb:mork> header)", 0)
            return
        db = read_mork(fh, columns=MSF_COLUMNS)  # streamed: memory follows the rows, not the file
        if db.skipped:
            ctx.warn(f"{db.skipped} unreadable Mork tokens skipped", None)
        if db.cut_values:
            ctx.warn(f"{db.cut_values} Mork value(s) over {MAX_VALUE_CHARS} characters kept cut",
                     db.first_cut_offset)
        folder_source = ctx.provenance.source_path[:-4]
        folder = {"mailbox": folder_source, "summary": ctx.provenance.source_path,
                  **thunderbird_folder(folder_source)}
        if is_trash_folder(folder["folder"]):
            folder["in_trash_folder"] = True
        held = self._folder_message_ids(fh, ctx, folder_source)
        imap = folder.get("store") == "ImapMail"
        order = 0
        for table in db.tables_of_kind(MSGS_KIND):
            for row_id, offset in table.cut.items():
                cells = db.rows.get((table.scope, row_id))
                if not cells:
                    continue
                yield self._msf_record(db, cells, row_id, offset, "msf_removed", folder, ctx, order)
                order += 1
            if held is None:
                continue
            for row_id in table.rows:
                cells = db.rows.get((table.scope, row_id)) or {}
                message_id = (cells.get("message-id") or "").strip("<> ")
                flags = _hex(cells.get("flags")) or 0
                if not message_id or message_id in held or flags & MOZILLA_EXPUNGED:
                    continue
                if imap and not flags & MOZILLA_OFFLINE:
                    continue  # not downloaded: an IMAP folder file is only an offline cache
                offset = db.row_offsets.get((table.scope, row_id), 0)
                yield self._msf_record(db, cells, row_id, offset, "msf_not_in_folder", folder, ctx,
                                       order)
                order += 1

    def _folder_message_ids(self, fh: BinaryIO, ctx: ParseContext, folder_source: str) -> set[str] | None:
        """Message-IDs (without <>) the folder file beside the summary holds, or None if it is absent."""
        path: Path | None = None
        root = bundle_root(fh, ctx.provenance.bundle_path)
        index = manifest_index(root) if root is not None else None
        if root is not None and index is not None:
            parent, _, name = folder_source.rpartition("/")
            for sibling in index.siblings(ctx.provenance.filesystem, parent):
                if sibling.name == name and sibling.bundle_path and not sibling.deleted:
                    path = root / sibling.bundle_path
        else:
            own = getattr(fh, "name", None)
            if isinstance(own, str) and own.endswith(".msf"):
                path = Path(own[:-4])
        if path is None or not path.is_file():
            return None
        ids: set[str] = set()
        with path.open("rb") as handle, mapped(handle) as buf:
            scratch = ParseContext(provenance=ctx.provenance)
            for span in self._spans(buf, scratch):
                values = parse_headers(span.header).get("message-id")
                if values:
                    ids.add(values[0].strip().strip("<>").strip())
        return ids

    def _msf_record(self, db: MorkDatabase, cells: dict[str, str], row_id: str, offset: int,
                    evidence: str, folder: dict[str, Any], ctx: ParseContext, order: int) -> Record:
        timestamps: dict[str, int] = {}
        for column, desc in (("date", MSF_DATE_DESC), ("dateReceived", MSF_RECEIVED_DESC)):
            seconds = _hex(cells.get(column))
            if seconds:
                timestamps[desc] = seconds * 1_000_000
        flags = _hex(cells.get("flags"))
        attributes: dict[str, Any] = {
            "evidence": evidence, "msf_row": row_id,
            "message_id": cells.get("message-id"), "subject": cells.get("subject"),
            "from": cells.get("sender"), "to": cells.get("recipients"),
            "msg_offset": (_hex(cells.get("msgOffset")) if cells.get("msgOffset")
                           else _decimal(cells.get("storeToken"))),
            "size": _hex(cells.get("size")), **folder}
        if flags is not None:
            attributes["msf_flags"] = f"0x{flags:08x}"
            attributes["mozilla_flags"] = mozilla_flag_names(flags)
        attributes = {k: v for k, v in attributes.items() if v is not None}
        where = folder.get("folder") or folder["mailbox"]
        if evidence == "msf_removed":
            text = (f"Deleted message still in the {where} summary: "
                    f"{cells.get('sender') or '?'}: {cells.get('subject') or '(no subject)'}")
        else:
            text = (f"Summary of {where} lists a message the folder file no longer holds: "
                    f"{cells.get('sender') or '?'}: {cells.get('subject') or '(no subject)'}")
        return Record(data_type=f"{self.PREFIX}:{evidence}", message=text,
                      provenance=ctx.provenance_at(offset), parser=self.NAME, order=order,
                      timestamps=timestamps, attributes=attributes, host=ctx.host, user=ctx.user,
                      recovered=evidence == "msf_removed")


def _hex(value: str | None) -> int | None:
    if not value:
        return None
    try:
        return int(value, 16)
    except ValueError:
        return None


def _decimal(value: str | None) -> int | None:
    return int(value) if value and value.isdigit() else None
