"""NTFS change journal (``$Extend/$UsnJrnl:$J``): when files were deleted, renamed, truncated.

The journal outlives the files it describes, so it is often the only record of when a PST, a
Unistore body or a Thunderbird mbox was deleted. Records are USN_RECORD_V2/V3 (Microsoft's
documented layout), 8-byte aligned; ``$J`` is sparse, so long zero runs are skipped with a
search rather than walked. Only the file name and the parent's MFT reference are in a record.
"""

from __future__ import annotations

import re
import struct
from collections.abc import Iterator
from typing import BinaryIO

from collector.timeutil import from_filetime
from parsers.base import ParseContext, Parser
from parsers.record import Record

_BLOCK = 1 << 20
_NONZERO = re.compile(rb"[^\x00]")
_V2 = struct.Struct("<IHHQQqqIIIIHH")
_V3 = struct.Struct("<IHH16s16sqqIIIIHH")
_MAX_RECORD = 64 * 1024
REASONS = {
    0x00000001: "DATA_OVERWRITE", 0x00000002: "DATA_EXTEND", 0x00000004: "DATA_TRUNCATION",
    0x00000010: "NAMED_DATA_OVERWRITE", 0x00000020: "NAMED_DATA_EXTEND",
    0x00000040: "NAMED_DATA_TRUNCATION", 0x00000100: "FILE_CREATE", 0x00000200: "FILE_DELETE",
    0x00000400: "EA_CHANGE", 0x00000800: "SECURITY_CHANGE", 0x00001000: "RENAME_OLD_NAME",
    0x00002000: "RENAME_NEW_NAME", 0x00004000: "INDEXABLE_CHANGE", 0x00008000: "BASIC_INFO_CHANGE",
    0x00010000: "HARD_LINK_CHANGE", 0x00020000: "COMPRESSION_CHANGE",
    0x00040000: "ENCRYPTION_CHANGE", 0x00080000: "OBJECT_ID_CHANGE",
    0x00100000: "REPARSE_POINT_CHANGE", 0x00200000: "STREAM_CHANGE",
    0x00400000: "TRANSACTED_CHANGE", 0x00800000: "INTEGRITY_CHANGE", 0x80000000: "CLOSE",
}
#: The description of a record's time, by the most telling reason it carries.
_DESCRIPTIONS = (
    (0x00000200, "Content Deletion Time"),
    (0x00001000, "Rename Time (old name)"),
    (0x00002000, "Rename Time (new name)"),
    (0x00000004, "Content Truncation Time"),
    (0x00000100, "Creation Time"),
)


def reason_names(reason: int) -> list[str]:
    """The USN_REASON_* flag names set in ``reason``."""
    return [name for flag, name in REASONS.items() if reason & flag]


def _mft_reference(raw: int) -> tuple[int, int]:
    return raw & 0xFFFFFFFFFFFF, raw >> 48


class UsnJournalParser(Parser):
    """``$UsnJrnl:$J`` change journals."""

    NAME = "usnjrnl"
    DESCRIPTION = "NTFS $UsnJrnl:$J change journal (deletes, renames, truncations of files)"
    DATA_TYPES = ("fs:ntfs:usn",)

    @classmethod
    def sniff(cls, head: bytes, name: str) -> bool:
        if name.lower().endswith(("$j", "usnjrnl")):
            return True
        match = _NONZERO.search(head)
        if match is None:
            return False
        start = match.start() & ~7
        if len(head) - start < _V2.size:
            return False
        length, major, minor = struct.unpack_from("<IHH", head, start)
        name_length, name_offset = struct.unpack_from("<HH", head, start + 56) if major == 2 else (0, 0)
        return major == 2 and minor == 0 and 60 < length < 4096 and name_offset == 60 and \
            60 + name_length <= length

    def parse(self, fh: BinaryIO, ctx: ParseContext) -> Iterator[Record]:
        buffer = b""
        pos = 0  # position in buffer
        base = 0  # file offset of buffer[0]
        order = 0
        bad = 0
        eof = False
        while True:
            if not eof and len(buffer) - pos < _MAX_RECORD:
                chunk = fh.read(_BLOCK)
                if chunk:
                    buffer, base, pos = buffer[pos:] + chunk, base + pos, 0
                else:
                    eof = True
            match = _NONZERO.search(buffer, pos)
            if match is None:  # a sparse or zero-filled run: nothing but zeros up to here
                base, buffer, pos = base + len(buffer), b"", 0
                if eof:
                    break
                continue
            pos = match.start() & ~7
            if len(buffer) - pos < 8:
                if eof:
                    ctx.warn("trailing bytes that are not a USN record", base + pos)
                    break
                continue
            length, major = struct.unpack_from("<IH", buffer, pos)
            record = None
            if major in (2, 3) and 8 <= length <= _MAX_RECORD and length % 8 == 0:
                if len(buffer) - pos < length and not eof:
                    continue  # read more before deciding
                if len(buffer) - pos >= length:
                    record = self._record(buffer[pos:pos + length], base + pos, order, ctx)
            if record is None:
                bad += 1
                if bad <= 10:
                    ctx.warn("bytes that are not a USN record; skipped to the next 8-byte boundary",
                             base + pos)
                pos += 8
                continue
            order += 1
            yield record
            pos += length
        if bad > 10:
            ctx.warn(f"{bad} unreadable 8-byte positions in all")

    def _record(self, data: bytes, offset: int, order: int, ctx: ParseContext) -> Record | None:
        layout = _V2 if struct.unpack_from("<H", data, 4)[0] == 2 else _V3
        if len(data) < layout.size:
            return None
        (length, major, minor, file_ref, parent_ref, usn, filetime, reason, source_info, security_id,
         attributes, name_length, name_offset) = layout.unpack_from(data, 0)
        if name_offset < layout.size or name_offset + name_length > length or name_length % 2:
            return None
        micros = from_filetime(filetime)
        if micros is None:  # zero, negative or the "never" sentinel: not a journal record
            return None
        name = data[name_offset:name_offset + name_length].decode("utf-16-le", "surrogatepass")
        if major == 2:
            entry, sequence = _mft_reference(file_ref)
            parent_entry, parent_sequence = _mft_reference(parent_ref)
        else:
            entry, sequence = int.from_bytes(file_ref[:6], "little"), int.from_bytes(file_ref[6:8], "little")
            parent_entry = int.from_bytes(parent_ref[:6], "little")
            parent_sequence = int.from_bytes(parent_ref[6:8], "little")
        reasons = reason_names(reason)
        desc = next((d for flag, d in _DESCRIPTIONS if reason & flag), "Journal Update Time")
        return Record(
            data_type="fs:ntfs:usn", message=f"{name}: {' '.join(reasons) or 'no reason'}",
            provenance=ctx.provenance_at(offset), parser=self.NAME, order=order,
            timestamps={desc: micros},
            attributes={"file_name": name, "mft_entry": entry, "mft_sequence": sequence,
                        "parent_mft_entry": parent_entry, "parent_mft_sequence": parent_sequence,
                        "usn": usn, "reasons": reasons, "reason_flags": f"0x{reason:08x}",
                        "file_deleted": bool(reason & 0x200), "file_attributes": f"0x{attributes:08x}",
                        "source_info": source_info, "security_id": security_id,
                        "usn_record_version": f"{major}.{minor}"},
            host=ctx.host, user=ctx.user)
