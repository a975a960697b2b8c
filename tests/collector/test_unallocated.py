"""Carving leftovers: real images built without mounting (ext4: mke2fs/debugfs; NTFS: ntfscp into
the reference Windows volume; FAT: mtools), files deleted or rewritten shorter."""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
import shutil
import struct
import subprocess
from pathlib import Path

import pytest

from collector.bundle import read_manifest
from collector.collect import collect
from collector.image import ImageSource
from collector.unallocated import (
    EVTX_ARTIFACT,
    MBOX_ARTIFACT,
    Carved,
    _bit_runs,
    carve_runs,
    carve_slack,
    merge_runs,
    slack_extent,
)
from parsers.engine import parse_bundle
from tests.conftest import IMAGES, LINUX_IMAGE, corpus_path

E2FS = all(shutil.which(tool) for tool in ("mke2fs", "debugfs"))
needs_e2fs = pytest.mark.skipif(not E2FS, reason="e2fsprogs (mke2fs, debugfs) not installed")
NTFS3G = shutil.which("ntfscp")
needs_ntfscp = pytest.mark.skipif(not NTFS3G, reason="ntfs-3g (ntfscp) not installed")
MTOOLS = all(shutil.which(tool) for tool in ("mformat", "mmd", "mcopy", "mdel"))
needs_mtools = pytest.mark.skipif(not MTOOLS, reason="mtools (mformat, mmd, mcopy, mdel) not installed")

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

    carved = [line for line in read_manifest(bundle) if line["artifact"] == MBOX_ARTIFACT]
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
    lines = {line["artifact"]: line for line in read_manifest(bundle)
             if line["artifact"].startswith("carved")}
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
    assert not [line for line in read_manifest(bundle) if line["artifact"].startswith("carved")]


def test_reference_image_deleted_spool_blocks_are_carved(tmp_path, scenario):
    """images/linux-suspect.raw: carol's deleted spool (inode 75) left its block, carved byte for byte."""
    bundle = tmp_path / "bundle"
    collect(ImageSource(str(LINUX_IMAGE)), bundle, quiet=True)
    carved = [line for line in read_manifest(bundle) if line["artifact"] == MBOX_ARTIFACT]
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


# -- file slack and FAT ----------------------------------------------------------------------------
def _message(sender: str, envelope_time: str, subject: str, message_id: str, body: str) -> str:
    return (f"From {sender} {envelope_time}\nDelivered-To: dave@corp.example\n"
            f"Date: Mon, 5 Oct 2026 05:12:37 -0400\nFrom: <{sender}>\nTo: dave@corp.example\n"
            f"Subject: {subject}\nMessage-ID: {message_id}\n\n{body}\n\n")


#: A spool rewritten shorter: OLD held three messages, NEW keeps only KEPT. The bytes of OLD past
#: NEW's end stay in the last cluster (slack) when the rewrite writes only NEW's sectors.
OLD_HEAD = _message("a@example.org", "Mon Oct  5 09:00:00 2026", "old", "<old-0@example.org>", "zero " * 280)
GONE = _message("c@example.org", "Mon Oct  5 11:00:00 2026", "gone", "<gone-2@example.org>", "two " * 100)
KEPT = _message("b@example.org", "Mon Oct  5 10:00:00 2026", "kept", "<kept-1@example.org>", "one " * 300)
OLD, NEW = (OLD_HEAD + GONE + KEPT).encode(), KEPT.encode()
SECTOR, CLUSTER = 512, 4096
#: What the slack carver finds: from GONE's envelope to the end of OLD (NUL bytes follow).
SLACK_RUN = OLD[len(OLD_HEAD):]


def test_slack_layout():
    """The sizes the slack tests rely on: NEW ends in OLD_HEAD's first sectors, OLD fits a cluster."""
    assert len(NEW) < -(-len(NEW) // SECTOR) * SECTOR < len(OLD_HEAD) < len(OLD) <= CLUSTER


def _file_start(image: Path, offset: int, path: str) -> tuple[int, int]:
    """(inode, volume byte offset of the first cluster) of ``path`` on the file system at ``offset``."""
    import pytsk3

    fs = pytsk3.FS_Info(pytsk3.Img_Info(str(image)), offset=offset)
    file = fs.open(path)
    runs = [run for attribute in file if int(attribute.info.type) in (1, 128) for run in attribute]
    return int(file.info.meta.addr), int(runs[0].addr) * int(fs.info.block_size)


def _assert_slack_run(bundle: Path, out: Path, live: str, inode: int, cluster: int, mailbox: str):
    """The one slack run: exact manifest line, GONE recovered and attributed, KEPT a duplicate."""
    carved = [line for line in read_manifest(bundle)
              if line["artifact"] == MBOX_ARTIFACT and line["source_path"].startswith("/$Slack/")]
    offset = cluster + len(OLD_HEAD)
    assert [(c["source_path"], c["carved_offset"], c["size"], c["sha256"], c["reason"], c["outcome"],
             c["deleted"], c["pattern"]) for c in carved] == [(
                 f"/$Slack/{inode}-{offset:013d}", offset, len(SLACK_RUN),
                 hashlib.sha256(SLACK_RUN).hexdigest(),
                 f"carved from the slack of {live} (inode {inode}) of {carved[0]['filesystem']} at byte "
                 f"{offset} ({len(SLACK_RUN)} bytes)", "recovered", True, "(file slack)")]
    assert carved[0]["slack_of"] == live
    assert (bundle / carved[0]["bundle_path"]).read_bytes() == SLACK_RUN
    parse_bundle(bundle, out, quiet=True)
    records = [r for r in _records(out) if r["provenance"]["source_path"] == carved[0]["source_path"]]
    messages = [r for r in records if r["data_type"] == "mail:mbox:message"]
    assert [(m["attributes"]["message_id"], m["recovered"], m["provenance"]["offset"],
             m["attributes"]["mailbox"], m["attributes"]["attributed_by"]) for m in messages] == [
        ("<gone-2@example.org>", True, offset, mailbox, "Delivered-To")]
    assert messages[0]["attributes"]["slack_of"] == live
    assert f" [carved from the slack of {live} at byte {offset}; mailbox " in messages[0]["message"]
    summary = next(r for r in records if r["data_type"] == "mail:mbox:carved_run")
    assert summary["message"].startswith(f"2 message(s) carved from the slack of {live} of ")
    assert summary["attributes"]["slack_of"] == live
    assert summary["attributes"]["messages"] == 2 and summary["attributes"]["new_messages"] == 1
    assert summary["attributes"]["duplicates"] == [{
        "message_id": "<kept-1@example.org>", "offset": offset + len(GONE), "copy": f"{live} (live file)"}]


@needs_ntfscp
def test_ntfs_slack_of_a_rewritten_mbox_is_carved(tmp_path):
    """NTFS: a Thunderbird Inbox rewritten shorter; its cluster's sectors past the new end keep OLD.

    ntfs-3g zeroes the rest of the cluster when it truncates, so the old sectors are put back with
    a write at the cluster's offset, as Windows leaves them (it writes only the sectors it needs).
    """
    volume = tmp_path / "ntfs.img"
    with (IMAGES / "windows-suspect.raw").open("rb") as disk:  # its NTFS partition: sector 2048
        disk.seek(2048 * SECTOR)
        volume.write_bytes(disk.read(6144 * SECTOR))
    inbox = ("/Users/dave/AppData/Roaming/Thunderbird/Profiles/k3v9x2qa.default-release/Mail/"
             "Local Folders/Inbox")
    for name, data in (("old", OLD), ("new", NEW)):
        (tmp_path / name).write_bytes(data)
        subprocess.run(["ntfscp", "-q", str(volume), str(tmp_path / name), inbox], check=True,
                       capture_output=True)
    inode, cluster = _file_start(volume, 0, inbox)
    written = -(-len(NEW) // SECTOR) * SECTOR  # the sectors the rewrite wrote
    with volume.open("r+b") as handle:
        handle.seek(cluster + written)
        handle.write(OLD[written:])
    before = hashlib.sha256(volume.read_bytes()).hexdigest()
    bundle = tmp_path / "bundle"
    collect(ImageSource(str(volume)), bundle, quiet=True)
    assert hashlib.sha256(volume.read_bytes()).hexdigest() == before
    # No spool names dave here: the message is attributed to its Delivered-To address.
    _assert_slack_run(bundle, tmp_path / "out", inbox, inode, cluster, "dave@corp.example")


def _fat_disk(tmp_path: Path, sectors: int, cluster_sectors: int, fat32: bool = False) -> str:
    """A disk with one FAT partition (MBR, type 0x0c/0x06) at 1 MiB; the mtools ``-i`` argument.

    dfvfs reads a bare FAT volume's boot sector as a partition table, so the partition is needed.
    """
    disk = tmp_path / "fat.img"
    start = 2048
    mbr = bytearray(512)
    mbr[446:462] = bytes([0, 0, 0, 0, 0x0C if fat32 else 0x06, 0, 0, 0]) + struct.pack("<II", start, sectors)
    mbr[510:512] = b"\x55\xaa"
    with disk.open("wb") as handle:
        handle.write(mbr)
        handle.truncate((start + sectors) * SECTOR)
    target = f"{disk}@@{start * SECTOR}"
    subprocess.run(["mformat", "-i", target, "-T", str(sectors), "-h", "2", "-s", "32",
                    "-c", str(cluster_sectors), "-N", "6d61696c", *(["-F"] if fat32 else []), "::"],
                   check=True, capture_output=True, env={**os.environ, "MTOOLS_SKIP_CHECK": "1"})
    _mtools(["mmd", "-i", target, "::/var", "::/var/mail"])
    return target


def _mtools(args: list[str]) -> None:
    subprocess.run(args, check=True, capture_output=True, env={**os.environ, "MTOOLS_SKIP_CHECK": "1"})


@needs_mtools
def test_fat_slack_of_a_rewritten_spool_is_carved(tmp_path):
    """FAT: mcopy -o rewrites the spool into the same cluster and leaves the old bytes past its end."""
    target = _fat_disk(tmp_path, 16384, CLUSTER // SECTOR)
    disk = Path(target.split("@@")[0])
    for name, data in (("old", OLD), ("new", NEW)):
        (tmp_path / name).write_bytes(data)
        _mtools(["mcopy", "-o", "-i", target, str(tmp_path / name), "::/var/mail/dave"])
    inode, cluster = _file_start(disk, 2048 * SECTOR, "/var/mail/dave")
    bundle = tmp_path / "bundle"
    report = collect(ImageSource(str(disk)), bundle, quiet=True)
    assert not [w for w in report["warnings"] if "carv" in w]  # FAT free clusters are searched
    _assert_slack_run(bundle, tmp_path / "out", "/var/mail/dave", inode, cluster, "/var/mail/dave")


@needs_e2fs
def test_ext4_rewritten_spool_leaves_no_slack_and_adds_nothing(tmp_path):
    """ext4 zeroes a file's last block past its end: the slack search finds nothing, adds nothing."""
    image = _build_image(tmp_path, {"var/mail/dave": OLD})
    old_blocks = _debugfs(image, "blocks /var/mail/dave").split()
    (tmp_path / "new").write_bytes(NEW)
    _debugfs(image, "rm /var/mail/dave", write=True)
    _debugfs(image, f"write {tmp_path / 'new'} /var/mail/dave", write=True)
    blocks = _debugfs(image, "blocks /var/mail/dave").split()
    assert blocks == old_blocks[:1]  # the block that held OLD holds NEW now
    block = image.read_bytes()[int(blocks[0]) * CLUSTER:(int(blocks[0]) + 1) * CLUSTER]
    assert block == NEW + bytes(CLUSTER - len(NEW))
    manifests = []
    for budget in (0, 300):
        bundle = tmp_path / f"bundle-{budget}"
        collect(ImageSource(str(image)), bundle, quiet=True, carve_budget=budget)
        manifests.append((bundle / "manifest.jsonl").read_bytes())
    assert manifests[0] == manifests[1]


@needs_mtools
@pytest.mark.parametrize(("sectors", "cluster_sectors", "fat32", "width"), [
    (16384, 8, False, "FAT12"), (16384, 1, False, "FAT16"), (69632, 1, True, "FAT32")])
def test_fat_free_clusters_of_a_deleted_spool_are_carved(tmp_path, sectors, cluster_sectors, fat32, width):
    """FAT12/16/32: a deleted spool's clusters are free in the FAT but keep its bytes."""
    target = _fat_disk(tmp_path, sectors, cluster_sectors, fat32)
    disk = Path(target.split("@@")[0])
    for name, data in (("alice", ALICE), ("carol", CAROL)):
        (tmp_path / name).write_text(data)
        _mtools(["mcopy", "-i", target, str(tmp_path / name), f"::/var/mail/{name}"])
    _, offset = _file_start(disk, 2048 * SECTOR, "/var/mail/carol")
    _mtools(["mdel", "-i", target, "::/var/mail/carol"])
    import pytsk3

    fs_type = pytsk3.FS_Info(pytsk3.Img_Info(str(disk)), offset=2048 * SECTOR).info.ftype
    assert int(fs_type) == int(getattr(pytsk3, f"TSK_FS_TYPE_{width}"))
    bundle = tmp_path / "bundle"
    collect(ImageSource(str(disk)), bundle, quiet=True)
    data = CAROL.encode()
    carved = [line for line in read_manifest(bundle) if line["artifact"] == MBOX_ARTIFACT]
    assert [(c["source_path"], c["carved_offset"], c["size"], c["sha256"], c["reason"]) for c in carved] == [
        (f"/$Unallocated/carved_mbox-{offset:013d}", offset, len(data), hashlib.sha256(data).hexdigest(),
         f"carved from unallocated blocks of p1 at byte {offset} ({len(data)} bytes)")]
    out = tmp_path / "out"
    parse_bundle(bundle, out, quiet=True)
    summary = next(r for r in _records(out) if r["data_type"] == "mail:mbox:carved_run")
    # FAT keeps the deleted entry (first letter overwritten) with its first cluster and size, so
    # the file is recovered too, and every carved message is a copy of a message still present.
    assert summary["attributes"]["messages"] == 3 and summary["attributes"]["new_messages"] == 0
    deleted = "/var/mail/_arol (deleted file, recovered)"
    assert summary["attributes"]["duplicates"] == [
        {"message_id": "<audit-7731@example.net>", "offset": offset, "copy": deleted},
        {"message_id": "<hr-interview@corp.example>", "offset": offset + CAROL.index("From hr@"),
         "copy": deleted},
        {"message_id": "<shared-1@example.org>", "offset": offset + CAROL.index("From dana@"),
         "copy": "/var/mail/alice (live file)"}]


def test_slack_carver_on_bytes():
    """A slack piece: leading zeros (the sector tail), a message cut by the slack's end, no From_."""
    piece = bytes(100) + b"old text\n" + GONE.encode()[:300]
    assert carve_slack(piece, 5000, SECTOR) == [Carved(MBOX_ARTIFACT, 5000 + 109, 5000 + len(piece))]
    assert carve_slack(bytes(4096), 0, SECTOR) == []
    assert carve_slack(b"zero zero zero\n" * 10, 0, SECTOR) == []


@needs_e2fs
def test_slack_extent_of_a_file_and_of_a_file_ending_in_a_hole(tmp_path):
    """The tail of a file's last block; nothing where the file ends in a hole (a sparse run)."""
    import pytsk3

    image = _build_image(tmp_path, {"plain": b"y" * 5000, "holey": b"x" * CLUSTER + bytes(CLUSTER + 100)})
    blocks = [int(b) for b in _debugfs(image, "blocks /plain").split()]
    fs = pytsk3.FS_Info(pytsk3.Img_Info(str(image)))
    assert slack_extent(fs.open("/plain"), CLUSTER) == (blocks[1] * CLUSTER + 5000 - CLUSTER,
                                                        (blocks[1] + 1) * CLUSTER)
    assert slack_extent(fs.open("/holey"), CLUSTER) is None  # mke2fs -d leaves zero blocks as holes


@needs_mtools
def test_spent_budget_stops_both_passes_with_warnings(tmp_path):
    """A budget spent before the first read: nothing carved, and each pass says where it stopped."""
    target = _fat_disk(tmp_path, 16384, CLUSTER // SECTOR)
    (tmp_path / "new").write_bytes(NEW)
    _mtools(["mcopy", "-i", target, str(tmp_path / "new"), "::/var/mail/dave"])
    disk = Path(target.split("@@")[0])
    _, cluster = _file_start(disk, 2048 * SECTOR, "/var/mail/dave")
    bundle = tmp_path / "bundle"
    report = collect(ImageSource(str(disk)), bundle, quiet=True, carve_budget=1e-9)
    assert not [line for line in read_manifest(bundle) if line["artifact"].startswith("carved")]
    stops = [w.split(";")[0] for w in report["warnings"] if "stopped" in w]
    assert stops == [
        # The free space starts with the cluster after the spool's (the only file).
        f"p1: carving stopped after 0 seconds (80% of the 0-second budget) at byte {cluster + CLUSTER} "
        f"of {16384 * SECTOR}",
        "p1: file slack search stopped after the 0-second budget at /var/mail/dave (0 files searched)"]
