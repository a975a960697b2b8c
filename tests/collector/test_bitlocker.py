"""A BitLocker volume, as an examiner receives one: unlocked from the command line, or reported.

The disk is built here: an MBR with p1 = the NTFS partition of the committed
``images/windows-suspect.raw`` encrypted by ``tests/fixtures/bde_writer.py`` (AES-XTS-128, a
recovery password and a user password) and p2 = the ext4 partition of ``images/linux-suspect.raw``
in plain. ``inboxtrail collect`` with ``--recovery-password`` or ``--password`` must collect from
p1 the same files with the same hashes as the plain Windows image (and from p2 what the Linux
image gives); without a credential, or with a wrong one, it must name the locked volume (label and
byte offset, as for LUKS) and still collect p2 in full. The disk is never written to.
"""

from __future__ import annotations

import json
import struct
from datetime import UTC, datetime
from pathlib import Path

import pytest

from collector.bundle import read_manifest
from collector.collect import collect
from collector.opener import open_source
from inboxtrail.cli import main
from tests.conftest import IMAGES, copy_first_mbr_partition, manifest_triples, sha256_of
from tests.fixtures.bde_writer import make_recovery_password, write_bitlocker

pytest.importorskip("pybde")

SEED = b"inboxtrail bitlocker end to end"
RECOVERY_PASSWORD = make_recovery_password(SEED)
PASSWORD = "Dave's BitLocker passphrase"
WRONG_RECOVERY_PASSWORD = "111111-222222-333333-444444-555555-666666-777777-888888"
SECTOR = 512
FIRST_SECTOR = 2048  # p1 starts at 1 MiB, as the reference images' partitions do



def _mbr_disk(partitions: list[tuple[int, Path]], out: Path) -> list[int]:
    """An MBR disk holding ``(type, image)`` partitions back to back from sector 2048.

    Returns each partition's byte offset.
    """
    table, offsets, start = b"", [], FIRST_SECTOR
    for kind, image in partitions:
        sectors = image.stat().st_size // SECTOR
        table += struct.pack("<B3sB3sII", 0, b"\xfe\xff\xff", kind, b"\xfe\xff\xff", start, sectors)
        offsets.append(start * SECTOR)
        start += sectors
    with out.open("wb") as disk:
        disk.write(bytes(0x1B8) + struct.pack("<I", 0x1F0E5A3C) + bytes(2) + table.ljust(64, b"\x00")
                   + b"\x55\xaa")
        for (_, image), offset in zip(partitions, offsets, strict=True):
            disk.seek(offset)
            with image.open("rb") as source:
                for chunk in iter(lambda source=source: source.read(1 << 20), b""):
                    disk.write(chunk)
        disk.truncate(start * SECTOR)
    return offsets


@pytest.fixture(scope="module")
def disk(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, int]:
    """The two-partition disk and the byte offset of its BitLocker partition."""
    folder = tmp_path_factory.mktemp("bitlocker-disk")
    ntfs = copy_first_mbr_partition(IMAGES / "windows-suspect.raw", folder / "ntfs.raw")
    ext4 = copy_first_mbr_partition(IMAGES / "linux-suspect.raw", folder / "ext4.raw")
    encrypted = folder / "ntfs.bde"
    write_bitlocker(ntfs, encrypted, recovery_password=RECOVERY_PASSWORD, password=PASSWORD, seed=SEED,
                    created=datetime(2026, 10, 2, 9, 0, tzinfo=UTC))
    image = folder / "bitlocker.raw"
    offsets = _mbr_disk([(0x07, encrypted), (0x83, ext4)], image)
    for path in (ntfs, ext4, encrypted):
        path.unlink()
    return image, offsets[0]


@pytest.fixture(scope="module")
def references(tmp_path_factory: pytest.TempPathFactory) -> dict[str, set]:
    """What the plain reference images give: (path, sha256, deleted) per file."""
    found = {}
    for name in ("windows-suspect.raw", "linux-suspect.raw"):
        source = open_source(str(IMAGES / name))
        bundle = tmp_path_factory.mktemp(name.replace(".", "-")) / "b"
        try:
            collect(source, bundle, quiet=True)
        finally:
            source.close()
        found[name] = manifest_triples(read_manifest(bundle))
    return found


def _run(image: Path, out: Path, *options: str) -> dict:
    assert main(["--quiet", "collect", str(image), "-o", str(out), *options]) == 0
    return json.loads((out / "report.json").read_text(encoding="utf-8"))


@pytest.mark.parametrize("options", [("--recovery-password", RECOVERY_PASSWORD), ("--password", PASSWORD)],
                         ids=["recovery-password", "user-password"])
def test_credential_unlocks_bitlocker_volume_and_collects_the_same_files(
        options: tuple[str, str], disk: tuple[Path, int], references: dict, tmp_path: Path) -> None:
    image, _ = disk
    before = sha256_of(image)
    report = _run(image, tmp_path / "case", *options)
    provenances = {fs["label"]: fs["provenance"] for fs in report["filesystems"]}
    assert set(provenances) == {"p1", "p2"}
    assert "|TSK_PARTITION/p1|BDE|NTFS" in provenances["p1"]
    assert not [w for w in report["warnings"] if w.startswith("locked")]
    lines = read_manifest(tmp_path / "case")
    by_filesystem = {label: [line for line in lines if line["filesystem"] == label] for label in provenances}
    assert manifest_triples(by_filesystem["p1"]) == references["windows-suspect.raw"]
    assert manifest_triples(by_filesystem["p2"]) == references["linux-suspect.raw"]
    assert sha256_of(image) == before


@pytest.mark.parametrize("options", [(), ("--recovery-password", WRONG_RECOVERY_PASSWORD)],
                         ids=["no-credential", "wrong-recovery-password"])
def test_locked_bitlocker_volume_reported_and_plain_partition_collected(
        options: tuple[str, ...], disk: tuple[Path, int], references: dict, tmp_path: Path) -> None:
    image, offset = disk
    before = sha256_of(image)
    report = _run(image, tmp_path / "case", *options)
    assert [fs["label"] for fs in report["filesystems"]] == ["p2"]
    (warning,) = [w for w in report["warnings"] if w.startswith("locked")]
    assert warning.startswith(f"locked BDE volume p1 (byte offset {offset}, ")
    assert "no given credential unlocks it" in warning and "recovery_password" in warning
    lines = read_manifest(tmp_path / "case")
    assert {line["filesystem"] for line in lines} == {"p2"}
    assert manifest_triples(lines) == references["linux-suspect.raw"]
    assert sha256_of(image) == before
