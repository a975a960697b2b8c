"""The macOS reference tree on a real HFS+ volume, collected the way a user runs inboxtrail.

``images/macos-suspect.E01`` is a FAT32 stand-in for HFS+ (images/README.md). Here its live files
and folders are read out of the E01 (pyewf + pytsk3: bytes, and the times FAT keeps: create,
modify, access date) and written by ``tests/fixtures/hfsplus_writer.py`` onto an HFS+ volume in
a GPT disk (partition 1, type Apple HFS+, at sector 2048 as in the reference). The attribute-mod
time, which FAT has no field for, is the modify time. ``inboxtrail run DISK -o OUT`` must collect
the same (source_path, sha256) set as the FAT32 reference except the deleted
``Deleted Messages.mbox/.../4.emlx``: HFS+ removes a deleted file's catalog record from the
B-tree, so no reader lists it (and the writer writes no deleted entries), while FAT keeps the
directory entry. The times must come through at the written UTC instants, the disk must be
unchanged, and the Apple Mail findings of the reference must appear, less those that rest on the
deleted .emlx.
"""

from __future__ import annotations

import json
import struct
import uuid
import zlib
from datetime import UTC, datetime
from pathlib import Path

import pytest

from collector.bundle import read_manifest
from inboxtrail.cli import main
from tests.conftest import IMAGES, sha256_of
from tests.fixtures.hfsplus_writer import HfsEntry, HfsTimes, write_hfsplus

pyewf = pytest.importorskip("pyewf")
pytsk3 = pytest.importorskip("pytsk3")
pytest.importorskip("pyfshfs")

MACOS = IMAGES / "macos-suspect.E01"
SCENARIO = json.loads((IMAGES / "macos-suspect.scenario.json").read_text(encoding="utf-8"))
SECTOR = 512
FIRST_SECTOR = 2048
HFS_PLUS_TYPE = uuid.UUID("48465300-0000-11AA-AA11-00306543ECAC")
DISK_GUID = uuid.UUID("4d41434f-2d45-5249-4e00-0000000000f1")
PART_GUID = uuid.UUID("4d41434f-2d45-5249-4e00-0000000000f2")
VOLUME_CREATED = datetime(2026, 9, 5, 12, 0, 0, tzinfo=UTC)
DELETED = {item["path"] for item in SCENARIO["deleted_files"]}


class _Ewf(pytsk3.Img_Info):
    """An E01 as a pytsk3 image."""

    def __init__(self, path: Path) -> None:
        self._handle = pyewf.handle()
        self._handle.open(pyewf.glob(str(path)))
        super().__init__(url="", type=pytsk3.TSK_IMG_TYPE_EXTERNAL)

    def read(self, offset: int, size: int) -> bytes:
        self._handle.seek(offset)
        return self._handle.read(size)

    def get_size(self) -> int:
        return self._handle.get_media_size()


def _utc(seconds: int) -> datetime:
    return datetime.fromtimestamp(seconds, UTC)


def _fat_tree() -> list[HfsEntry]:
    """Every allocated folder and file of the reference FAT32 volume, with its bytes and times."""
    fs = pytsk3.FS_Info(_Ewf(MACOS), offset=SCENARIO["partition_offset_bytes"])
    entries: list[HfsEntry] = []

    def walk(path: str) -> None:
        for child in fs.open_dir(path or "/"):
            name = child.info.name.name.decode("utf-8")
            meta = child.info.meta
            if (name in (".", "..") or meta is None
                    or not child.info.name.flags & pytsk3.TSK_FS_NAME_FLAG_ALLOC
                    or meta.type not in (pytsk3.TSK_FS_META_TYPE_DIR, pytsk3.TSK_FS_META_TYPE_REG)
                    or name.startswith("$")):  # TSK's virtual files ($FAT1, the volume label entry)
                continue
            full = f"{path}/{name}"
            times = HfsTimes(created=_utc(meta.crtime), modified=_utc(meta.mtime), changed=_utc(meta.mtime),
                             accessed=_utc(meta.atime))
            if meta.type == pytsk3.TSK_FS_META_TYPE_DIR:
                mode = 0o755 if full == "/Users" else 0o700
                entries.append(HfsEntry(full, times, directory=True, mode=mode))
                walk(full)
            else:
                data = child.read_random(0, meta.size) if meta.size else b""
                mode = 0o600 if full.endswith("history") else 0o644
                entries.append(HfsEntry(full, times, data=data, mode=mode))

    walk("")
    return entries


def _gpt_disk(volume: Path, out: Path) -> None:
    """A GPT disk (protective MBR, both headers and entry arrays) with ``volume`` as partition 1."""
    sectors = volume.stat().st_size // SECTOR
    last_usable = FIRST_SECTOR + sectors - 1 + 2048
    total = last_usable + 1 + 32 + 1
    entry = (HFS_PLUS_TYPE.bytes_le + PART_GUID.bytes_le
             + struct.pack("<QQQ", FIRST_SECTOR, FIRST_SECTOR + sectors - 1, 0)
             + "Macintosh HD".encode("utf-16-le").ljust(72, b"\x00"))
    entries = entry.ljust(128 * 128, b"\x00")
    entries_crc = zlib.crc32(entries)

    def header(current: int, backup: int, entries_lba: int) -> bytes:
        fields = struct.pack("<8sIIIIQQQQ16sQIII", b"EFI PART", 0x00010000, 92, 0, 0, current, backup, 34,
                             last_usable, DISK_GUID.bytes_le, entries_lba, 128, 128, entries_crc)
        fields = fields[:16] + struct.pack("<I", zlib.crc32(fields)) + fields[20:]
        return fields.ljust(SECTOR, b"\x00")

    mbr = bytearray(SECTOR)
    mbr[0x1BE:0x1CE] = struct.pack("<B3sB3sII", 0, b"\x00\x02\x00", 0xEE, b"\xff\xff\xff", 1,
                                   min(total - 1, 0xFFFFFFFF))
    mbr[510:512] = b"\x55\xaa"
    with out.open("wb") as disk:
        disk.write(bytes(mbr) + header(1, total - 1, 2) + entries)
        disk.seek(FIRST_SECTOR * SECTOR)
        with volume.open("rb") as source:
            for chunk in iter(lambda: source.read(1 << 20), b""):
                disk.write(chunk)
        disk.seek((total - 33) * SECTOR)
        disk.write(entries + header(total - 1, 1, total - 33))


@pytest.fixture(scope="module")
def hfs_disk(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[HfsEntry]]:
    folder = tmp_path_factory.mktemp("hfsplus-disk")
    entries = _fat_tree()
    volume = folder / "volume.hfs"
    write_hfsplus(entries, volume, volume_name="Macintosh HD", created=VOLUME_CREATED,
                  modified=max(e.times.modified for e in entries), free_blocks=64)
    disk = folder / "macos-suspect-hfs.raw"
    _gpt_disk(volume, disk)
    volume.unlink()
    return disk, entries


def _run(image: Path, out: Path) -> Path:
    assert main(["--quiet", "run", str(image), "-o", str(out)]) == 0
    return out


def _manifest(run: Path) -> list[dict]:
    return read_manifest(run / "bundle")


@pytest.fixture(scope="module")
def runs(hfs_disk: tuple[Path, list[HfsEntry]], tmp_path_factory: pytest.TempPathFactory) -> dict:
    disk, _ = hfs_disk
    before = sha256_of(disk)
    hfs = _run(disk, tmp_path_factory.mktemp("hfs-run") / "out")
    reference = _run(MACOS, tmp_path_factory.mktemp("fat-run") / "out")
    return {"before": before, "after": sha256_of(disk), "hfs": hfs, "fat": reference}


def test_hfsplus_disk_collects_the_reference_files(runs: dict) -> None:
    hfs, fat = _manifest(runs["hfs"]), _manifest(runs["fat"])
    def triples(lines: list[dict]) -> set[tuple[str, str | None, str]]:
        return {(line["source_path"], line["sha256"], line["outcome"]) for line in lines
                if line["source_path"] not in DELETED}

    assert triples(hfs) == triples(fat)
    assert not [line for line in hfs if line["deleted"]]
    assert runs["after"] == runs["before"]


def test_hfsplus_filesystem_is_named_in_the_provenance(
        runs: dict, hfs_disk: tuple[Path, list[HfsEntry]]) -> None:
    report = json.loads((runs["hfs"] / "bundle" / "report.json").read_text(encoding="utf-8"))
    (filesystem,) = report["filesystems"]
    assert filesystem["label"] == "p1"
    assert filesystem["provenance"] == f"image:{hfs_disk[0].name}|RAW|GPT/p1|HFS/"  # dfvfs' HFS back-end
    assert filesystem["users"] == ["erin"]
    collected = [line for line in _manifest(runs["hfs"]) if line["outcome"] == "collected"]
    assert {line["provenance"] for line in collected} == {filesystem["provenance"]}


def test_hfsplus_times_come_through_at_the_written_instants(
        runs: dict, hfs_disk: tuple[Path, list[HfsEntry]]) -> None:
    written = {entry.path: entry.times for entry in hfs_disk[1]}
    lines = [line for line in _manifest(runs["hfs"]) if line["outcome"] == "collected"]
    assert len(lines) == 8
    for line in lines:
        times = written[line["source_path"]]
        got = {key: datetime.fromisoformat(line[key]) for key in ("crtime", "mtime", "ctime", "atime")}
        assert got == {"crtime": times.created, "mtime": times.modified, "ctime": times.changed,
                       "atime": times.accessed}, line["source_path"]


def _findings(run: Path) -> set[tuple[str, str, str, str]]:
    """(rule, timestamp, message, source path) of every tagged timeline row."""
    found = set()
    with (run / "timeline.jsonl").open(encoding="utf-8") as handle:
        for line in handle:
            row = json.loads(line)
            for rule in row["tag"]:
                found.add((rule, row["datetime"], row["message"], row["source"]))
    return found


def test_hfsplus_apple_mail_findings_match_the_reference(runs: dict) -> None:
    hfs, fat = _findings(runs["hfs"]), _findings(runs["fat"])
    assert hfs
    # the rows that rest on the deleted .emlx exist only where the file system still lists it
    assert hfs == {row for row in fat if row[3] not in DELETED}
    for clearing in SCENARIO["clearing_commands"]:  # both clearing commands of erin's .zsh_history
        for rule in ("T1070.008", clearing["rule_hint"]):
            assert (rule, clearing["time"].replace("+00:00", ".000000+00:00"), clearing["command"],
                    clearing["history"]) in hfs, (rule, clearing["command"])
    assert {row[0] for row in hfs} >= {"mail_client_apple_wal_removed", "mail_client_apple_orphan_emlx",
                                       "mail_client_apple_deleted_flag", "mail_client_apple_rowid_gap"}
