"""EVTX chunk carving: chunks found in arbitrary data come back as recovered records with offsets."""

from __future__ import annotations

import io
import random
from pathlib import Path

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


# -- deleted and carved logs in a bundle ------------------------------------------------------------
SYSMON = "evtx/evtx-attack-samples/Sysmon_UACME_64.evtx"


def _record_offsets(data: bytes) -> dict[int, int]:
    """Record number -> byte offset of every record python-evtx's chunk walk finds in ``data``."""
    from Evtx.Evtx import ChunkHeader

    offsets: dict[int, int] = {}
    for offset in range(FILE_HEADER_SIZE, len(data) - CHUNK_SIZE + 1, CHUNK_SIZE):
        if data[offset:offset + 8] == b"ElfChnk\x00":
            offsets.update((r.record_num(), r.offset()) for r in ChunkHeader(data, offset).records())
    return offsets


def _manifest_line(bundle_path: str, source_path: str, artifact: str, parsers: list[str],
                   data: bytes, **extra: object) -> dict[str, object]:
    """A manifest line as the collector writes one for a recovered (deleted or carved) file."""
    import hashlib

    return {"artifact": artifact, "category": "eventlog", "pattern": source_path, "filesystem": "p2",
            "source_path": source_path, "provenance": "image:windows.raw|p2|NTFS", "bundle_path": bundle_path,
            "size": len(data), "sha256": hashlib.sha256(data).hexdigest(), "md5": None, "inode": 77,
            "deleted": True, "kind": "file", "link_target": None, "user": None, "home": None,
            "parsers": parsers, "outcome": "recovered", "reason": "deleted entry", **extra}


def test_deleted_and_carved_logs_in_a_bundle(tmp_path: Path) -> None:
    """``inboxtrail parse`` on a bundle holding a deleted Sysmon log whose clusters were partly reused
    and a run of two real chunks carved from unallocated space: every readable record comes back
    flagged ``recovered`` with the byte offset of its bytes (in the file, or in the volume)."""
    import json

    from parsers.engine import parse_bundle

    original = corpus_path(SYSMON).read_bytes()
    deleted = bytearray(original)
    reused = FILE_HEADER_SIZE + 3 * CHUNK_SIZE  # records 143-191: the whole chunk overwritten
    deleted[reused:reused + CHUNK_SIZE] = _noise(CHUNK_SIZE, 5)
    damaged = FILE_HEADER_SIZE + 5 * CHUNK_SIZE  # records 241-288: the second half overwritten
    deleted[damaged + CHUNK_SIZE // 2:damaged + CHUNK_SIZE] = b"\x00" * (CHUNK_SIZE // 2)
    security = corpus_path("evtx/evtx-attack-samples/CA_chrome_firefox_opera_4663.evtx").read_bytes()
    powersploit = corpus_path("evtx/deepbluecli/powersploit-security.evtx").read_bytes()
    run = security[FILE_HEADER_SIZE:FILE_HEADER_SIZE + CHUNK_SIZE] + \
        powersploit[FILE_HEADER_SIZE:FILE_HEADER_SIZE + CHUNK_SIZE]
    carved_offset = 14_336 * 512

    bundle = tmp_path / "bundle"
    deleted_path = "files/p2/Windows/System32/winevt/Logs/Sysmon.evtx.deleted-inode77"
    run_path = f"files/p2/$Unallocated/carved_evtx_chunks-{carved_offset:013d}"
    for relative, data in ((deleted_path, bytes(deleted)), (run_path, run)):
        (bundle / relative).parent.mkdir(parents=True, exist_ok=True)
        (bundle / relative).write_bytes(data)
    logs = "/Windows/System32/winevt/Logs"
    lines = [
        _manifest_line(deleted_path, f"{logs}/Microsoft-Windows-Sysmon%4Operational.evtx",
                       "WindowsEventLogSysmon", ["evtx"], bytes(deleted)),
        _manifest_line(run_path, f"/$Unallocated/carved_evtx_chunks-{carved_offset:013d}",
                       "carved_evtx_chunks", ["evtx_carve"], run, carved_offset=carved_offset, inode=None)]
    (bundle / "manifest.jsonl").write_text("".join(json.dumps(line) + "\n" for line in lines))

    out = tmp_path / "out"
    parse_bundle(bundle, out)
    records = [json.loads(line) for line in (out / "records.jsonl").read_text().splitlines()]
    warnings = [json.loads(line) for line in (out / "parse_warnings.jsonl").read_text().splitlines()]

    sysmon = [r for r in records
              if r["provenance"]["bundle_path"] == deleted_path and r["parser"] != "filestat"]
    numbers = [r["attributes"]["record_number"] for r in sysmon]
    expected = _record_offsets(original)
    assert all(r["recovered"] and r["parser"] == "evtx_carve" for r in sysmon)
    assert not set(range(143, 192)) & set(numbers)  # the reused chunk is gone, and nothing is invented
    assert set(range(1, 143)) | set(range(192, 241)) | set(range(289, 531)) <= set(numbers)
    assert 0 < len(set(range(241, 289)) & set(numbers)) < 48  # the first half of the damaged chunk
    assert all(r["provenance"]["offset"] == expected[r["attributes"]["record_number"]] for r in sysmon)
    sysmon_warnings = [w for w in warnings if w["bundle_path"] == deleted_path]
    assert (damaged, "evtx carve: chunk data checksum mismatch (overwritten or partial chunk); "
            "reading what parses") in [(w["offset"], w["message"]) for w in sysmon_warnings]

    carved = [r for r in records if r["provenance"]["bundle_path"] == run_path and r["parser"] != "filestat"]
    in_run = {n: o - FILE_HEADER_SIZE for n, o in _record_offsets(security).items()}
    assert [r["attributes"]["record_number"] for r in carved] == [1, 2, 3, 4, 5, *range(1, 28)]
    assert all(r["recovered"] and r["parser"] == "evtx_carve" for r in carved)
    first = carved[0]  # the Security 1102 of the first chunk, at its place in the volume
    assert first["provenance"]["offset"] == carved_offset + in_run[1] == carved_offset + 0x200
    assert first["data_type"] == "windows:evtx:security:log_cleared"
    assert {"windows_security_log_cleared", "T1070.001"} <= set(first["tags"])
    second_chunk = [r["provenance"]["offset"] for r in carved[5:]]
    assert all(carved_offset + CHUNK_SIZE < o < carved_offset + 2 * CHUNK_SIZE for o in second_chunk)


def test_carve_parser_is_registered_for_carved_chunk_runs() -> None:
    from parsers.base import REGISTRY

    assert REGISTRY["evtx_carve"] is EvtxCarveParser
    assert "carved_evtx_chunks" in EvtxCarveParser.ARTIFACTS


def test_header_cut_short_falls_back_to_carving() -> None:
    """A live log whose header sector survives but whose chunks no longer sit at 4096: the library
    reads nothing (without an error); carving finds the chunk and reads every record."""
    log = corpus_path("evtx/deepbluecli/powersploit-security.evtx").read_bytes()
    data = log[:512] + log[FILE_HEADER_SIZE:FILE_HEADER_SIZE + CHUNK_SIZE]
    ctx = _ctx()
    records = list(EvtxParser().parse(io.BytesIO(data), ctx))
    assert len(records) == 27 and not any(r.recovered for r in records)
    assert records[0].provenance.offset == 512 + 0x200
    assert [w["message"] for w in ctx.warnings] == [
        "evtx: the library read no record from this file; carving ElfChnk chunks instead"]
