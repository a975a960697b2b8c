"""Volume systems and file systems of ``images/build_volume_variants.sh``: what only they show.

The same-files-same-hashes check of every variant is in ``test_image_variants.py``; here are the
behaviours around it: a LUKS volume without (or with a wrong) credential is reported by label
and byte offset while the plain partition beside it is still collected, the CLI's ``--password``
unlocks it, LVM logical volumes and logical MBR partitions are each a file system of their own,
the deleted spool on exFAT is recovered through TSK, and a LUKS2 volume dfvfs cannot scan is
reported while the partition beside it is still collected.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from dfvfs.helpers import volume_scanner

from collector.bundle import read_manifest
from collector.collect import collect
from collector.image import _Mediator, _PerVolumeScanner
from collector.opener import open_source
from inboxtrail.cli import main
from tests.conftest import IMAGES, manifest_triples, sha256_of

VARIANTS = IMAGES / "variants"
LAYOUT = VARIANTS / "volume-variants.json"


@pytest.fixture(scope="module")
def layout() -> dict:
    if not LAYOUT.exists():
        pytest.skip("images/variants/volume-variants.json not built (build_volume_variants.sh)")
    return json.loads(LAYOUT.read_text(encoding="utf-8"))


def _image(name: str) -> Path:
    path = VARIANTS / name
    if not path.exists():
        pytest.skip(f"images/variants/{name} not built (build_volume_variants.sh)")
    return path


@pytest.fixture(scope="module")
def linux_reference(tmp_path_factory: pytest.TempPathFactory) -> list[dict]:
    source = open_source(str(IMAGES / "linux-suspect.raw"))
    bundle = tmp_path_factory.mktemp("linux-ref") / "b"
    try:
        collect(source, bundle, quiet=True)
    finally:
        source.close()
    return read_manifest(bundle)


def _luks_volume(layout: dict) -> dict:
    (volume,) = [v for v in layout["images"]["luks1.E01"]["volumes"] if v.get("encrypted")]
    return volume


@pytest.mark.parametrize("credentials", [None, [("password", "not-the-password")]],
                         ids=["no-credential", "wrong-password"])
def test_locked_luks_volume_reported_and_plain_partition_collected(
        credentials, layout: dict, linux_reference: list[dict], tmp_path: Path) -> None:
    image = _image("luks1.E01")
    volume = _luks_volume(layout)
    before = sha256_of(image)
    source = open_source(str(image), credentials=credentials)
    try:
        labels = [fs.label for fs in source.filesystems()]
        report = collect(source, tmp_path / "b", quiet=True)
    finally:
        source.close()
    assert labels == ["p2"]
    (warning,) = [w for w in report["warnings"] if w.startswith("locked")]
    assert f"LUKSDE volume {volume['partition']} (byte offset {volume['offset']}," in warning
    assert "accepted: password" in warning
    # The plain ext4 beside it is the linux-suspect file system, collected in full.
    assert manifest_triples(read_manifest(tmp_path / "b")) == manifest_triples(linux_reference)
    assert sha256_of(image) == before


def test_cli_password_unlocks_luks_volume(layout: dict, tmp_path: Path) -> None:
    image = _image("luks1.E01")
    out = tmp_path / "case"
    assert main(["--quiet", "collect", str(image), "-o", str(out),
                 "--password", "wrong", "--password", layout["luks_password"]]) == 0
    report = json.loads((out / "report.json").read_text(encoding="utf-8"))
    provenances = {fs["label"]: fs["provenance"] for fs in report["filesystems"]}
    assert set(provenances) == {"p1", "p2"}
    assert "|LUKSDE|NTFS" in provenances["p1"]
    assert not [w for w in report["warnings"] if w.startswith("locked")]
    lines = read_manifest(out)
    assert any(line["filesystem"] == "p1" and line["outcome"] == "collected"
               and "/winevt/Logs/" in line["source_path"] for line in lines)


def test_cli_without_password_exits_zero_and_names_locked_volume(layout: dict,
                                                                tmp_path: Path) -> None:
    image = _image("luks1.E01")
    volume = _luks_volume(layout)
    out = tmp_path / "case"
    assert main(["--quiet", "collect", str(image), "-o", str(out)]) == 0
    report = json.loads((out / "report.json").read_text(encoding="utf-8"))
    assert [fs["label"] for fs in report["filesystems"]] == ["p2"]
    assert any(f"volume {volume['partition']} (byte offset {volume['offset']}," in w
               for w in report["warnings"])


def test_lvm_logical_volumes_are_file_systems(layout: dict) -> None:
    image = _image("lvm.E01")
    source = open_source(str(image))
    try:
        found = {fs.label: fs.provenance for fs in source.filesystems()}
        assert source.warnings() == []
    finally:
        source.close()
    assert len(layout["images"]["lvm.E01"]["volumes"]) == 2
    assert found.keys() == {"p1-lvm1", "p1-lvm2"}
    assert found["p1-lvm1"].endswith("|TSK_PARTITION/p1|LVM/lvm1|EXT/")
    assert found["p1-lvm2"].endswith("|TSK_PARTITION/p1|LVM/lvm2|NTFS:\\")


def test_logical_partitions_of_extended_mbr_are_file_systems(layout: dict) -> None:
    image = _image("mbr-extended.E01")
    source = open_source(str(image))
    try:
        found = [(fs.label, fs.provenance.rsplit("|", 1)[-1]) for fs in source.filesystems()]
    finally:
        source.close()
    assert [v["filesystem"] for v in layout["images"]["mbr-extended.E01"]["volumes"]] == [
        "ntfs", "ext4", "fat32"]
    # dfvfs numbers TSK's partition slots, so the logical partitions p5, p6 of sfdisk come out
    # as p5 and p9 (the extended containers and their tables take slots in between).
    assert found == [("p1", "NTFS:\\"), ("p5", "EXT/"), ("p9", "FAT:\\")]


def test_exfat_deleted_spool_listed_and_recovered(layout: dict, tmp_path: Path) -> None:
    image = _image("exfat.E01")
    source = open_source(str(image))
    try:
        collect(source, tmp_path / "b", quiet=True)
    finally:
        source.close()
    (line,) = [x for x in read_manifest(tmp_path / "b")
               if x["deleted"] and x["source_path"] == layout["deleted_path"]]
    assert line["outcome"] == "recovered"
    assert line["sha256"] == layout["deleted_sha256"]
    assert (tmp_path / "b" / line["bundle_path"]).stat().st_size == line["size"] > 0


def test_xfs_lists_no_deleted_entries_and_says_nothing_failed(layout: dict, tmp_path: Path) -> None:
    """XFS: the allocated tree is collected; deleted names stay invisible (no TSK support)."""
    image = _image("xfs.E01")
    source = open_source(str(image))
    try:
        report = collect(source, tmp_path / "b", quiet=True)
    finally:
        source.close()
    lines = read_manifest(tmp_path / "b")
    assert report["counts"]["failed"] == 0
    # Named deleted entries: none (carving of unallocated space and slack is another matter).
    assert not [x for x in lines if x["deleted"]
                and not x["source_path"].startswith(("/$Unallocated/", "/$Slack/"))]
    assert not [x for x in lines if x["source_path"] == layout["deleted_path"]
                and x["outcome"] != "missing"]


@pytest.fixture(scope="module")
def windows_reference(tmp_path_factory: pytest.TempPathFactory) -> list[dict]:
    source = open_source(str(IMAGES / "windows-suspect.raw"))
    bundle = tmp_path_factory.mktemp("windows-ref") / "b"
    try:
        collect(source, bundle, quiet=True)
    finally:
        source.close()
    return read_manifest(bundle)


def test_unreadable_luks2_volume_reported_and_other_partition_collected(
        layout: dict, windows_reference: list[dict], tmp_path: Path) -> None:
    """libluksde reads LUKS1 only: dfvfs's whole-image scan aborts on the LUKS2 header of p1.

    The image is then scanned volume by volume: p1 is named in a warning (label, byte offset,
    dfvfs's reason) and the NTFS of p2 is collected in full.
    """
    image = _image("luks2.E01")
    (locked, plain) = layout["images"]["luks2.E01"]["volumes"]
    before = sha256_of(image)
    source = open_source(str(image), credentials=[("password", layout["luks_password"])])
    try:
        found = [(fs.label, fs.provenance) for fs in source.filesystems()]
        report = collect(source, tmp_path / "b", quiet=True)
    finally:
        source.close()
    assert found == [(plain["partition"], f"image:luks2.E01|EWF|TSK_PARTITION/{plain['partition']}|NTFS:\\")]
    (warning,) = [w for w in report["warnings"] if "volume" in w]
    assert warning == (
        f"unreadable volume {locked['partition']} (byte offset {locked['offset']}, "
        f"EWF|TSK_PARTITION/{locked['partition']}|LUKSDE): dfvfs cannot scan it (Unable to open "
        "file system with error: pyluksde_volume_open_file_object: unable to open volume. "
        "libluksde_internal_volume_open_read: invalid master key size value out of bounds. "
        "libluksde_volume_open_file_io_handle: unable to read from volume handle.); skipped")
    # The NTFS beside it is the windows-suspect file system, collected in full.
    lines = read_manifest(tmp_path / "b")
    assert {line["filesystem"] for line in lines} == {plain["partition"]}
    assert manifest_triples(lines) == manifest_triples(windows_reference)
    assert sha256_of(image) == before


@pytest.mark.parametrize(("name", "credentials"), [
    ("luks1.E01", None), ("luks1.E01", "password"), ("lvm.E01", None), ("mbr-extended.E01", None)])
def test_volume_by_volume_scan_finds_what_the_whole_image_scan_finds(
        name: str, credentials: str | None, layout: dict) -> None:
    """The fallback scan runs dfvfs's own per-volume step, so a volume that scans is unchanged."""
    image = _image(name)
    options = volume_scanner.VolumeScannerOptions()
    options.partitions = ["all"]
    options.volumes = ["all"]
    options.snapshots = ["none"]
    options.credentials = [("password", layout["luks_password"])] if credentials else []
    whole_warnings: list[str] = []
    whole = volume_scanner.VolumeScanner(mediator=_Mediator(whole_warnings)).GetBasePathSpecs(
        str(image), options=options)
    split_warnings: list[str] = []
    scanner = _PerVolumeScanner(mediator=_Mediator(split_warnings))
    system = scanner.volume_system(str(image))
    split = [spec for volume in system.sub_nodes if getattr(volume.path_spec, "location", None)
             for spec in scanner.base_path_specs(volume.path_spec, options)]
    assert [spec.comparable for spec in split] == [spec.comparable for spec in whole]
    assert split_warnings == whole_warnings
