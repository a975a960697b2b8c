"""Carving unallocated blocks: real ext4 images built with mke2fs, files deleted with debugfs."""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from collector.collect import collect
from collector.image import ImageSource
from collector.unallocated import (
    EVTX_ARTIFACT,
    MBOX_ARTIFACT,
    Carved,
    _bit_runs,
    carve_runs,
    merge_runs,
)
from parsers.engine import parse_bundle
from tests.conftest import LINUX_IMAGE, corpus_path

E2FS = all(shutil.which(tool) for tool in ("mke2fs", "debugfs"))
needs_e2fs = pytest.mark.skipif(not E2FS, reason="e2fsprogs (mke2fs, debugfs) not installed")

ALICE = (
    "From dana@example.org Mon Oct  5 09:12:44 2026\n"
    "Delivered-To: alice@corp.example\n"
    "Date: Mon, 5 Oct 2026 05:12:37 -0400\n"
    "From: Dana <dana@example.org>\nTo: alice@corp.example, carol@corp.example\n"
    "Subject: Team lunch\nMessage-ID: <shared-1@example.org>\n\nSee you at noon.\n\n")
CAROL = (
    "From auditor@example.net Tue Oct  6 10:00:05 2026\n"
    "Delivered-To: carol@corp.example\n"
    "Date: Tue, 6 Oct 2026 12:00:00 +0200\n"
    "From: Auditor <auditor@example.net>\nTo: Carol <carol@corp.example>\n"
    "Subject: Folio cross-check EC-7731\nMessage-ID: <audit-7731@example.net>\n\n"
    "Two nights billed, four claimed.\n>From the hotel: folio attached.\n\n"
    "From hr@corp.example Wed Oct  7 08:30:00 2026\n"
    "X-Original-To: carol@corp.example\n"
    "Date: Wed, 7 Oct 2026 08:29:55 +0000\n"
    "From: HR <hr@corp.example>\nTo: undisclosed-recipients:;\n"
    "Subject: Interview on 13 October\nMessage-ID: <hr-interview@corp.example>\n\nRoom 4.12.\n\n"
    "From dana@example.org Mon Oct  5 09:12:45 2026\n"
    "Delivered-To: carol@corp.example\n"
    "Date: Mon, 5 Oct 2026 05:12:37 -0400\n"
    "From: Dana <dana@example.org>\nTo: alice@corp.example, carol@corp.example\n"
    "Subject: Team lunch\nMessage-ID: <shared-1@example.org>\n\nSee you at noon.\n")


def _debugfs(image: Path, request: str, write: bool = False) -> str:
    args = ["debugfs", *(["-w"] if write else []), "-R", request, str(image)]
    result = subprocess.run(args, capture_output=True, text=True, check=True)
    return result.stdout


def _build_image(tmp_path: Path, files: dict[str, bytes]) -> Path:
    """An ext4 file system image (no partition table) holding ``files``, built without mounting."""
    staging = tmp_path / "staging"
    for name, data in files.items():
        target = staging / name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)
    (staging / "etc").mkdir(exist_ok=True)
    (staging / "etc" / "hostname").write_text("carvehost\n")
    image = tmp_path / "fs.img"
    env = {**os.environ, "E2FSPROGS_FAKE_TIME": "1791187200"}
    subprocess.run(["mke2fs", "-q", "-F", "-t", "ext4", "-b", "4096", "-I", "256",
                    "-U", "6d61696c-6361-7276-6500-000000000001", "-E",
                    "hash_seed=6d61696c-6361-7276-6500-000000000002", "-d", str(staging),
                    str(image), "8M"], check=True, env=env, capture_output=True)
    return image


def _delete(image: Path, path: str) -> tuple[Path, int, int]:
    """On a COPY of ``image``: remove ``path`` and clear its inode, so only the blocks hold it.

    Returns the copy, the volume byte offset of the file's first block and its number of blocks
    (read before; mke2fs -d leaves all-zero blocks as holes, so a file may have fewer blocks than
    its size needs).
    """
    copy = image.with_name(image.stem + "-deleted.img")
    shutil.copyfile(image, copy)
    inode = int(re.search(r"Inode: (\d+)", _debugfs(copy, f"stat {path}")).group(1))
    blocks = [int(b) for b in _debugfs(copy, f"blocks {path}").split()]
    assert blocks == list(range(blocks[0], blocks[0] + len(blocks)))  # one extent
    first_block = blocks[0]
    _debugfs(copy, f"rm {path}", write=True)
    _debugfs(copy, f"clri <{inode}>", write=True)  # the inode no longer names the blocks
    assert f"Block {first_block} not in use" in _debugfs(copy, f"testb {first_block}")
    return copy, first_block * 4096, len(blocks)


def _manifest(bundle: Path) -> list[dict]:
    return [json.loads(line) for line in (bundle / "manifest.jsonl").read_text().splitlines()]


def _records(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "records.jsonl").read_text().splitlines()]


@needs_e2fs
def test_deleted_spool_is_carved_attributed_and_deduplicated(tmp_path):
    image = _build_image(tmp_path, {"var/mail/alice": ALICE.encode(), "var/mail/carol": CAROL.encode()})
    deleted, offset, _ = _delete(image, "/var/mail/carol")
    before = hashlib.sha256(deleted.read_bytes()).hexdigest()
    bundle = tmp_path / "bundle"
    report = collect(ImageSource(str(deleted)), bundle, quiet=True)
    assert hashlib.sha256(deleted.read_bytes()).hexdigest() == before  # evidence never written to
    assert report["counts"]["recovered"] == 1

    carved = [line for line in _manifest(bundle) if line["artifact"] == MBOX_ARTIFACT]
    assert len(carved) == 1
    line = carved[0]
    data = CAROL.encode()
    assert line["carved_offset"] == offset
    assert line["outcome"] == "recovered" and line["deleted"] is True
    assert line["filesystem"] == "fs0" and line["parsers"] == ["mbox"]
    assert line["size"] == len(data)  # the run ends at the NUL bytes after the file's end
    assert line["sha256"] == hashlib.sha256(data).hexdigest()
    assert line["md5"] == hashlib.md5(data).hexdigest()
    assert line["source_path"] == f"/$Unallocated/carved_mbox-{offset:013d}"
    assert (bundle / line["bundle_path"]).read_bytes() == data

    out = tmp_path / "out"
    parse_bundle(bundle, out, quiet=True)
    records = [r for r in _records(out) if r["provenance"]["source_path"] == line["source_path"]]
    messages = [r for r in records if r["data_type"] == "mail:mbox:message"]
    assert [m["attributes"]["message_id"] for m in messages] == ["<audit-7731@example.net>",
                                                                 "<hr-interview@corp.example>"]
    first, second = messages
    assert first["recovered"] is True and second["recovered"] is True
    assert first["provenance"]["offset"] == offset and first["attributes"]["offset"] == offset
    second_in_run = CAROL.index("From hr@")
    assert second["provenance"]["offset"] == offset + second_in_run
    assert second["attributes"]["offset_in_carved_run"] == second_in_run
    assert first["attributes"]["carved_offset"] == offset
    # The deleted name /var/mail/carol is still listed, so the address maps to that spool.
    assert first["attributes"]["mailbox"] == "/var/mail/carol"
    assert first["attributes"]["attributed_by"] == "Delivered-To"
    assert second["attributes"]["attributed_by"] == "X-Original-To"
    assert second["attributes"]["attributed_address"] == "carol@corp.example"
    # Tue Oct  6 10:00:05 2026 UTC
    assert first["timestamps"]["Envelope Time (From_ line)"] == 1791280805000000
    assert first["message"].endswith(f"[carved from unallocated blocks at byte {offset}; mailbox "
                                     f"/var/mail/carol by Delivered-To]")
    summary = next(r for r in records if r["data_type"] == "mail:mbox:carved_run")
    assert summary["attributes"]["messages"] == 3 and summary["attributes"]["new_messages"] == 2
    assert summary["attributes"]["duplicates"] == [{
        "message_id": "<shared-1@example.org>", "offset": offset + CAROL.index("From dana@"),
        "copy": "/var/mail/alice (live file)"}]
    assert summary["time_bounds"] == {
        "Not before: newest delivery in the run (its blocks were freed later)": 1791361800000000}


@needs_e2fs
def test_deleted_event_log_chunks_are_carved(tmp_path):
    log = corpus_path("evtx/deepbluecli/powersploit-security.evtx").read_bytes()
    image = _build_image(tmp_path, {"Windows/System32/winevt/Logs/Security.evtx": log})
    deleted, offset, blocks = _delete(image, "/Windows/System32/winevt/Logs/Security.evtx")
    bundle = tmp_path / "bundle"
    collect(ImageSource(str(deleted)), bundle, quiet=True)
    lines = {line["artifact"]: line for line in _manifest(bundle) if line["artifact"].startswith("carved")}
    assert set(lines) == {EVTX_ARTIFACT}  # no mail artifact directory here: no mbox carving
    line = lines[EVTX_ARTIFACT]
    # The chunk's zero tail was never written (a hole): the run ends with the file's last block,
    # where the next file's allocated block begins.
    stored = min(65536, (blocks - 1) * 4096)
    chunk = log[4096:4096 + stored]
    assert chunk.startswith(b"ElfChnk\x00")
    assert line["carved_offset"] == offset + 4096  # the file header is not a chunk
    assert line["size"] == stored and line["sha256"] == hashlib.sha256(chunk).hexdigest()
    assert line["parsers"] == ["evtx_carve"] and line["outcome"] == "recovered"


def test_no_carving_without_a_mail_or_log_artifact(tmp_path):
    """Collection narrowed to shell histories: no mail or log artifact, so no carving."""
    bundle = tmp_path / "bundle"
    collect(ImageSource(str(LINUX_IMAGE)), bundle, artifacts=["BashShellHistory"], quiet=True)
    assert not [line for line in _manifest(bundle) if line["artifact"].startswith("carved")]


def test_reference_image_deleted_spool_blocks_are_carved(tmp_path, scenario):
    """images/linux-suspect.raw: carol's deleted spool (inode 75) left its block, carved byte for byte."""
    bundle = tmp_path / "bundle"
    collect(ImageSource(str(LINUX_IMAGE)), bundle, quiet=True)
    carved = [line for line in _manifest(bundle) if line["artifact"] == MBOX_ARTIFACT]
    truth = scenario["deleted_files"][0]
    assert [(c["size"], c["sha256"]) for c in carved] == [(truth["size"], truth["sha256"])]
    out = tmp_path / "out"
    parse_bundle(bundle, out, quiet=True)
    summary = next(r for r in _records(out) if r["data_type"] == "mail:mbox:carved_run")
    # Every carved message is also in the inode recovered from the deleted name: all skipped.
    assert summary["attributes"]["messages"] == 3 and summary["attributes"]["new_messages"] == 0
    assert {d["copy"] for d in summary["attributes"]["duplicates"]} == {
        "/var/mail/carol (deleted file, recovered)"}


def test_bitmap_runs_and_merging():
    # Blocks 0-7 allocated, 8-15 free, 16 free, 17 allocated, 18-23 free, 24-31 free.
    bitmap = bytes([0xFF, 0x00, 0b00000010, 0x00])
    assert list(merge_runs(_bit_runs(0, bitmap), limit=30)) == [(8, 9), (18, 12)]


def test_carve_runs_on_a_volume_in_memory():
    """A message run cut by a binary block, a lone From_ line without headers, an EVTX run."""
    block = 4096
    volume = bytearray(64 * block + 3 * 65536)
    message = b"From a@b Mon Oct  5 09:12:44 2026\nSubject: x\n\nbody\n"
    volume[block + 100:block + 100 + len(message)] = b"\n" + message[:-1] + b"\n"
    volume[block + 101 + len(message):2 * block] = b"x" * (2 * block - block - 101 - len(message))
    volume[2 * block:3 * block] = bytes(range(256)) * 16  # binary: ends the run at this block
    volume[5 * block:5 * block + 30] = b"From nobody here, no headers\n"
    evtx = 16 * block
    for index in range(2):
        at = evtx + index * 65536
        volume[at:at + 8] = b"ElfChnk\x00"
        volume[at + 0x28:at + 0x2C] = (0x80).to_bytes(4, "little")
        volume[at + 0x80:at + 65536] = b"\x01" * (65536 - 0x80)
    reader = io.BytesIO(bytes(volume))

    def read(offset: int, size: int) -> bytes:
        reader.seek(offset)
        return reader.read(size)

    found = list(carve_runs(read, [(0, len(volume) // block)], block, [MBOX_ARTIFACT, EVTX_ARTIFACT]))
    assert found == [Carved(MBOX_ARTIFACT, block + 101, 2 * block),
                     Carved(EVTX_ARTIFACT, evtx, evtx + 2 * 65536)]
    stopped = list(carve_runs(read, [(0, 4)], block, [MBOX_ARTIFACT], deadline=0.0))
    assert stopped == [0]  # the budget was already spent: where the search stopped
