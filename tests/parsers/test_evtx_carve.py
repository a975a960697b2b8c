"""EVTX chunk carving: chunks found in arbitrary data come back as recovered records with offsets."""

from __future__ import annotations

import io
import random

from parsers.base import ParseContext
from parsers.evtx import CHUNK_SIZE, FILE_HEADER_SIZE, EvtxParser
from parsers.evtx_carve import EvtxCarveParser, file_header_for, find_chunks
from parsers.record import Provenance
from parsers.rules import default_engine
from tests.conftest import corpus_path


def _ctx() -> ParseContext:
    return ParseContext(provenance=Provenance(bundle_path=None, source_path="unallocated.bin", sha256=None))


def _noise(size: int, seed: int) -> bytes:
    return random.Random(seed).randbytes(size)


def test_chunk_in_unallocated_noise() -> None:
    log = corpus_path("evtx/evtx-attack-samples/CA_chrome_firefox_opera_4663.evtx").read_bytes()
    chunk = log[FILE_HEADER_SIZE:FILE_HEADER_SIZE + CHUNK_SIZE]
    at = 7 * 512
    blob = _noise(at, 1) + chunk + b"ElfChnk\x00 not a chunk" + _noise(3000, 2)
    ctx = _ctx()
    records = [default_engine().tag(r) for r in EvtxCarveParser().parse(io.BytesIO(blob), ctx)]
    assert [r.attributes["record_number"] for r in records] == [1, 2, 3, 4, 5]
    assert all(r.recovered and r.parser == "evtx_carve" for r in records)
    assert records[0].provenance.offset == at + 0x200  # first record right after the chunk header
    assert all(at < r.provenance.offset < at + CHUNK_SIZE for r in records)
    cleared = records[0]
    assert cleared.data_type == "windows:evtx:security:log_cleared" and "T1070.001" in cleared.tags
    # The stray magic right after the chunk is sector-aligned, so it is checked and skipped.
    assert [(w["offset"], w["message"]) for w in ctx.warnings] == [
        (at + CHUNK_SIZE, "evtx carve: chunk magic without a chunk header (skipped)")]


def test_stray_aligned_magic_is_skipped_with_a_warning() -> None:
    blob = _noise(1024, 3) + b"ElfChnk\x00" + _noise(CHUNK_SIZE, 4)
    ctx = _ctx()
    assert list(EvtxCarveParser().parse(io.BytesIO(blob), ctx)) == []
    assert [w["offset"] for w in ctx.warnings] == [1024]


def test_unaligned_magic_is_not_a_chunk() -> None:
    blob = b"x" * 100 + b"ElfChnk\x00" + b"y" * 1000
    assert list(find_chunks(io.BytesIO(blob))) == []


def test_synthetic_header_is_a_valid_evtx_header() -> None:
    from Evtx.Evtx import FileHeader

    log = corpus_path("evtx/velociraptor/EID4104_PowershellScriptblock.evtx").read_bytes()
    chunk = log[FILE_HEADER_SIZE:FILE_HEADER_SIZE + CHUNK_SIZE]
    header = FileHeader(file_header_for(chunk) + chunk, 0)
    assert header.verify() and header.chunk_count() == 1


def test_damaged_chunk_data_still_yields_what_parses() -> None:
    log = corpus_path("evtx/deepbluecli/powersploit-security.evtx").read_bytes()
    chunk = bytearray(log[FILE_HEADER_SIZE:FILE_HEADER_SIZE + CHUNK_SIZE])
    end = int.from_bytes(chunk[0x30:0x34], "little")  # free space offset: end of the last record
    chunk[end - 300:end - 8] = b"\xff" * 292  # last record overwritten: data checksum fails
    ctx = _ctx()
    records = list(EvtxCarveParser().parse(io.BytesIO(bytes(chunk)), ctx))
    assert 20 <= len(records) < 27 and all(r.recovered for r in records)
    assert ctx.warnings[0]["message"].startswith("evtx carve: chunk data checksum mismatch")
    assert all(w["offset"] == 0 for w in ctx.warnings)


def test_carving_a_dirty_log_finds_every_chunk() -> None:
    """The 247 chunks of the stale-header System.evtx: same records as reading the file."""
    path = corpus_path("evtx/museum_StolenSzechuan_Win2012R2/System.evtx")
    with path.open("rb") as handle:
        offsets = list(find_chunks(handle))
    assert len(offsets) == 247 and all((o - FILE_HEADER_SIZE) % CHUNK_SIZE == 0 for o in offsets)
    ctx = _ctx()
    with path.open("rb") as handle:
        carved = [r.attributes["record_number"] for r in EvtxParser().records(
            _chunk_events(handle, offsets[:20], ctx), ctx)]
    with path.open("rb") as handle:
        parsed = [r.attributes["record_number"] for r in EvtxParser().parse(handle, _ctx())]
    assert carved == parsed[:len(carved)] and len(carved) > 4000


def _chunk_events(handle, offsets, ctx):  # type: ignore[no-untyped-def]
    from parsers.evtx_carve import chunk_events

    for offset in offsets:
        handle.seek(offset)
        yield from chunk_events(handle.read(CHUNK_SIZE), offset, ctx)
