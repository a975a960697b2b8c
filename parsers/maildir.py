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
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import PurePosixPath
from typing import Any, BinaryIO

from parsers.base import ParseContext, Parser
from parsers.mail_evidence import MAILDIR_FLAGS, is_trash_folder, maildir_name_time, maildir_split
from parsers.mbox import MAX_HEADER_BYTES, mail_summary, message_fields, parse_headers
from parsers.record import Record

MAILDIR_TIME_DESC = "Delivery Time (Maildir file name)"
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


class MaildirParser(Parser):
    """One Maildir message file."""

    NAME = "maildir"
    DESCRIPTION = "Maildir/Maildir++ message files (cur/new/tmp): flags, trash folders, delivery time"
    DATA_TYPES = ("mail:maildir:message",)

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
