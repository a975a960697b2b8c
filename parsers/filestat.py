"""File-system metadata of every acquired path as timeline records (``fs:stat``).

The collector's manifest already holds each file's MACB times, inode and deleted flag; turning
them into records puts "when was the spool last written / deleted" next to the commands and
messages, which is where an examiner needs it. Times use plaso's descriptions so that l2tcsv
gets the right MACB letters.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import BinaryIO

from collector.timeutil import parse_iso
from parsers.base import ParseContext, Parser
from parsers.record import Record

TIME_DESCRIPTIONS = {
    "mtime": "Content Modification Time",
    "atime": "Last Access Time",
    "ctime": "Metadata Modification Time",
    "crtime": "Creation Time",
    "dtime": "Deletion Time",
}


class FileStatParser(Parser):
    """Manifest entries (not file content) to ``fs:stat`` records."""

    NAME = "filestat"
    DESCRIPTION = "File-system times, inode and deleted flag of every acquired path"
    DATA_TYPES = ("fs:stat",)

    def parse(self, fh: BinaryIO | None, ctx: ParseContext) -> Iterator[Record]:
        entry = ctx.entry
        if entry.get("kind") is None:
            return
        timestamps = {desc: parse_iso(entry[key]) for key, desc in TIME_DESCRIPTIONS.items()
                      if entry.get(key)}
        state = "deleted " if entry.get("deleted") else ""
        kind = entry.get("kind") or "file"
        text = (f"{entry['source_path']} ({state}{kind}, {entry.get('size')} bytes"
                + (f", inode {entry['inode']}" if entry.get("inode") is not None else "")
                + f"; {entry['outcome']}" + (f": {entry['reason']}" if entry.get("reason") else "")
                + ")")
        attributes = {
            "path": entry["source_path"], "size": entry.get("size"), "inode": entry.get("inode"),
            "deleted": bool(entry.get("deleted")), "kind": kind, "artifact": entry.get("artifact"),
            "category": entry.get("category"), "outcome": entry.get("outcome"),
            "reason": entry.get("reason"), "link_target": entry.get("link_target")}
        yield Record(data_type="fs:stat", message=text, provenance=ctx.provenance,
                     parser=self.NAME, order=0, timestamps=timestamps,
                     attributes={k: v for k, v in attributes.items() if v is not None},
                     host=ctx.host, user=ctx.user, recovered=bool(entry.get("deleted")))
