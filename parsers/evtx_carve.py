"""EVTX chunks carved out of unallocated space, slack, or a deleted ``.evtx`` file whose header is gone.

An EVTX file is a 4 KiB header followed by self-contained 64 KiB ``ElfChnk`` chunks (each carries
its own string and template tables), so a chunk found anywhere can be read on its own. The stream
is scanned for the chunk magic on 512-byte boundaries (sector alignment; chunks inside a file sit at
4096 + n * 65536); python-evtx's chunk API checks each candidate (magic, header and data CRC32)
and gives each record's offset. The chunk is then wrapped in a minimal file header and read by the
same ``evtx`` path as a live log, so carved records look exactly like parsed ones, plus
``recovered: true`` and their byte offset in the scanned stream. The stream is read in blocks;
memory does not grow with its size.
"""

from __future__ import annotations

import io
import struct
import zlib
from collections.abc import Iterator
from typing import BinaryIO, ClassVar

from Evtx.Evtx import ChunkHeader

from parsers.base import ParseContext, Parser
from parsers.evtx import CHUNK_SIZE, FILE_HEADER_SIZE, EvtxParser, RawEvent, iter_events
from parsers.record import Record

CHUNK_MAGIC = b"ElfChnk\x00"
ALIGNMENT = 512
BLOCK = 4 << 20


def find_chunks(fh: BinaryIO, alignment: int = ALIGNMENT) -> Iterator[int]:
    """Offsets (from the start of ``fh``) of aligned ``ElfChnk`` magics, in order, not overlapping."""
    fh.seek(0)
    base = 0
    tail = b""
    next_allowed = 0
    while True:
        block = fh.read(BLOCK)
        if not block:
            return
        data = tail + block
        start = base - len(tail)
        index = data.find(CHUNK_MAGIC)
        while index != -1:
            offset = start + index
            if offset % alignment == 0 and offset >= next_allowed:
                yield offset
                next_allowed = offset + CHUNK_SIZE
            index = data.find(CHUNK_MAGIC, index + 1)
        tail = data[-(len(CHUNK_MAGIC) - 1):]
        base += len(block)


def file_header_for(chunk: bytes) -> bytes:
    """A minimal, valid EVTX file header (version 3.1, one chunk) for a carved chunk."""
    last_record = struct.unpack_from("<Q", chunk, 0x10)[0]
    head = struct.pack("<8sQQQIHHHH", b"ElfFile\x00", 0, 0, last_record + 1, 128, 1, 3, FILE_HEADER_SIZE, 1)
    head = head.ljust(0x78, b"\x00") + struct.pack("<I", 0)
    head += struct.pack("<I", zlib.crc32(head[:0x78]) & 0xFFFFFFFF)
    return head.ljust(FILE_HEADER_SIZE, b"\x00")


def plausible(header: ChunkHeader) -> bool:
    """Whether a chunk header whose checksum fails still looks like one (not a stray magic)."""
    try:
        return (header.header_size() == 0x80 and 0x200 <= header.next_record_offset() <= CHUNK_SIZE
                and header.file_first_record_number() <= header.file_last_record_number())
    except Exception:  # python-evtx field access on garbage raises many types
        return False


def chunk_events(chunk: bytes, offset: int, ctx: ParseContext) -> Iterator[RawEvent]:
    """Events of one carved chunk, each with its absolute byte offset."""
    header = ChunkHeader(chunk, 0)
    if header.calculate_header_checksum() != header.header_checksum():
        if not plausible(header):
            ctx.warn("evtx carve: chunk magic without a chunk header (skipped)", offset)
            return
        ctx.warn("evtx carve: chunk header checksum mismatch; reading what parses", offset)
    elif header.calculate_data_checksum() != header.data_checksum():
        ctx.warn("evtx carve: chunk data checksum mismatch (overwritten or partial chunk); reading what "
                 "parses", offset)
    offsets: dict[int, int] = {}
    try:
        for record in header.records():
            offsets[record.record_num()] = offset + record.offset()
    except Exception as exc:  # python-evtx raises many types on damaged data
        ctx.warn(f"evtx carve: record walk stopped: {type(exc).__name__}: {exc}", offset)
    synthetic = io.BytesIO(file_header_for(chunk) + chunk)
    for number, payload, header_time, _ in iter_events(synthetic, ctx, chunk_offset=offset):
        yield number, payload, header_time, offsets.get(number, offset)


def carved_events(fh: BinaryIO, ctx: ParseContext, base: int = 0) -> Iterator[RawEvent]:
    """Events of every chunk found in ``fh``; offsets (records and warnings) are ``base`` + file offset.

    ``base`` places a file of carved chunks back in its volume (the collector's ``carved_offset``).
    """
    for offset in find_chunks(fh):
        position = fh.tell()
        fh.seek(offset)
        chunk = fh.read(CHUNK_SIZE)
        fh.seek(position)
        if len(chunk) < 512:
            ctx.warn("evtx carve: chunk magic too close to the end of the data", base + offset)
            continue
        yield from chunk_events(chunk.ljust(CHUNK_SIZE, b"\x00"), base + offset, ctx)


class EvtxCarveParser(Parser):
    """Event log chunks carved from unallocated data or damaged/deleted event log files.

    The collector writes runs of whole chunks found in free space as files of the artifact
    ``carved_evtx_chunks`` whose manifest line holds ``carved_offset``, the byte offset of the run
    in its volume: record offsets are given in the volume (``carved_offset`` + offset in the file),
    so an examiner can find the bytes in the image.
    """

    NAME = "evtx_carve"
    DESCRIPTION = "EVTX chunks (ElfChnk) carved from unallocated space, slack or deleted .evtx files"
    DATA_TYPES = ("windows:evtx:",)
    ARTIFACTS: ClassVar[tuple[str, ...]] = ("carved_evtx_chunks",)

    def parse(self, fh: BinaryIO, ctx: ParseContext) -> Iterator[Record]:
        base = ctx.entry.get("carved_offset")
        base = base if isinstance(base, int) and not isinstance(base, bool) and base >= 0 else 0
        yield from EvtxParser().records(carved_events(fh, ctx, base), ctx, recovered=True, parser=self.NAME)
