"""$UsnJrnl:$J records built byte for byte after Microsoft's USN_RECORD_V2/V3 layout."""

from __future__ import annotations

import io
import struct

from collector.timeutil import parse_iso
from parsers.base import ParseContext
from parsers.record import Provenance
from parsers.rules import default_engine
from parsers.usnjrnl import UsnJournalParser

_EPOCH_DELTA = 11_644_473_600


def filetime(iso: str) -> int:
    return (parse_iso(iso) // 1_000_000 + _EPOCH_DELTA) * 10_000_000 + (parse_iso(iso) % 1_000_000) * 10


def usn_v2(name: str, entry: int, parent: int, usn: int, when: str, reason: int) -> bytes:
    encoded = name.encode("utf-16-le")
    length = (60 + len(encoded) + 7) & ~7
    head = struct.pack("<IHHQQqqIIIIHH", length, 2, 0, (3 << 48) | entry, (1 << 48) | parent, usn,
                       filetime(when), reason, 0, 0, 0x20, len(encoded), 60)
    return (head + encoded).ljust(length, b"\x00")


def usn_v3(name: str, entry: int, parent: int, usn: int, when: str, reason: int) -> bytes:
    encoded = name.encode("utf-16-le")
    length = (76 + len(encoded) + 7) & ~7
    head = struct.pack("<IHH16s16sqqIIIIHH", length, 3, 0, entry.to_bytes(16, "little"),
                       parent.to_bytes(16, "little"), usn, filetime(when), reason, 0, 0, 0x20,
                       len(encoded), 76)
    return (head + encoded).ljust(length, b"\x00")


def _ctx() -> ParseContext:
    return ParseContext(provenance=Provenance(bundle_path="files/p2/$Extend/$UsnJrnl:$J",
                                              source_path="/$Extend/$UsnJrnl:$J", sha256=None))


def test_sparse_journal_with_v2_v3_and_garbage():
    page = usn_v2("dave.pst", 1234, 567, 4096 * 768, "2026-10-12T14:40:01.123456+00:00", 0x100)
    page += usn_v2("dave.pst", 1234, 567, 4096 * 768 + 88, "2026-10-12T14:41:02+00:00", 0x80000200)
    page = page.ljust(4096, b"\x00")  # records never cross a journal page: zero padding
    page += b"\xff" * 8  # damage
    page += usn_v3("Inbox.msf", 99, 98, 4096 * 769, "2026-10-12T14:42:03+00:00", 0x1000)
    data = b"\x00" * (3 * 1024 * 1024 + 4096) + page  # $J is sparse: long leading zero run
    ctx = _ctx()
    records = list(UsnJournalParser().parse(io.BytesIO(data), ctx))
    assert [r.attributes["file_name"] for r in records] == ["dave.pst", "dave.pst", "Inbox.msf"]
    created, deleted, renamed = records
    assert created.timestamps == {"Creation Time": parse_iso("2026-10-12T14:40:01.123456+00:00")}
    assert deleted.timestamps == {"Content Deletion Time": parse_iso("2026-10-12T14:41:02+00:00")}
    assert deleted.attributes["reasons"] == ["FILE_DELETE", "CLOSE"]
    assert deleted.attributes["mft_entry"] == 1234 and deleted.attributes["mft_sequence"] == 3
    assert deleted.attributes["parent_mft_entry"] == 567
    assert deleted.provenance.offset == 3 * 1024 * 1024 + 4096 + 80  # after one 80-byte record
    assert renamed.attributes["usn_record_version"] == "3.0"
    assert renamed.timestamps == {"Rename Time (old name)": parse_iso("2026-10-12T14:42:03+00:00")}
    assert len(ctx.warnings) == 1 and ctx.warnings[0]["offset"] == 3 * 1024 * 1024 + 8192

    engine = default_engine()
    assert "usn_mail_file_deleted" in engine.tag(deleted).tags
    assert not engine.tag(created).tags


def test_zero_file_and_truncated_record():
    ctx = _ctx()
    assert list(UsnJournalParser().parse(io.BytesIO(b"\x00" * 100_000), ctx)) == []
    assert ctx.warnings == []
    record = usn_v2("a.ost", 1, 2, 3, "2026-01-01T00:00:00+00:00", 0x200)
    ctx = _ctx()
    assert list(UsnJournalParser().parse(io.BytesIO(record[:70]), ctx)) == []
    assert ctx.warnings


def test_sniff():
    record = usn_v2("x.pst", 1, 2, 3, "2026-01-01T00:00:00+00:00", 0x200)
    assert UsnJournalParser.sniff(b"\x00" * 64 + record, "journal.bin")
    assert not UsnJournalParser.sniff(b"From a@b Mon Oct  5 09:12:44 2026\n", "spool")
