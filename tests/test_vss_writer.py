"""The VSS writer's shadow copies read back exactly with libvshadow (pyvshadow) and vshadowinfo.

Each store must list the identifier, creation time and shadow copy identifiers written, and read,
byte for byte, as the older state it was made from (sha256 of the whole store volume); the "now"
volume keeps its files; the same input gives the same bytes. The volume is the NTFS partition of
the committed ``images/windows-suspect.raw``; the older states differ from it in chosen blocks.
"""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import subprocess
import uuid
from datetime import UTC, datetime
from pathlib import Path

import pytest

from tests.conftest import IMAGES, copy_first_mbr_partition, sha256_of
from tests.fixtures.vss_writer import (
    BLOCK_SIZE,
    VOLUME_HEADER_OFFSET,
    ShadowCopy,
    filetime,
    write_shadow_copies,
)

pyvshadow = pytest.importorskip("pyvshadow")
pytsk3 = pytest.importorskip("pytsk3")

DISK = IMAGES / "windows-suspect.raw"
VOLUME_ID = uuid.UUID("5c1f0e2a-7d3b-4e8f-9a61-2b4c6d8e0f13")
OLDER = (uuid.UUID("0d6c3b1e-52a4-4f0e-8c7d-91e2f3a4b5c6"), datetime(2026, 10, 1, 8, 0, tzinfo=UTC))
NEWER = (uuid.UUID("7a8b9c0d-1e2f-4a3b-8c4d-5e6f7a8b9c0d"), datetime(2026, 10, 15, 17, 30, 5, tzinfo=UTC))



def _edited(source: Path, out: Path, blocks: dict[int, bytes]) -> Path:
    """A copy of ``source`` with whole 16 KiB blocks replaced."""
    shutil.copyfile(source, out)
    with out.open("r+b") as handle:
        for number, data in blocks.items():
            assert len(data) == BLOCK_SIZE
            handle.seek(number * BLOCK_SIZE)
            handle.write(data)
    return out


def _pattern(seed: str) -> bytes:
    return b"".join(hashlib.sha256(f"{seed}{i}".encode()).digest() for i in range(BLOCK_SIZE // 32))


def _block(path: Path, number: int) -> bytes:
    with path.open("rb") as handle:
        handle.seek(number * BLOCK_SIZE)
        return handle.read(BLOCK_SIZE)


def _store_sha256(store: object) -> str:
    digest = hashlib.sha256()
    store.seek(0)
    left = store.volume_size
    while left:
        chunk = store.read(min(left, 1 << 20))
        assert chunk, "the store ended early"
        digest.update(chunk)
        left -= len(chunk)
    return digest.hexdigest()


@pytest.fixture(scope="module")
def states(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """"now" (the reference partition) and two older states that differ in chosen blocks.

    The older state holds data in a block that is free and zero now (a file since deleted and
    wiped) and other MFT bytes; the newer one differs in the MFT block and a block of file data.
    """
    work = tmp_path_factory.mktemp("vss-states")
    now = copy_first_mbr_partition(DISK, work / "now.raw")
    free_zero = (now.stat().st_size // BLOCK_SIZE) - 8
    assert _block(now, free_zero) == bytes(BLOCK_SIZE), "premise: a zero block near the end"
    older = _edited(now, work / "older.raw", {1: _pattern("older mft"), free_zero: _pattern("wiped mail")})
    newer = _edited(now, work / "newer.raw", {1: _pattern("newer mft"), 3: _pattern("newer data")})
    return {"now": now, "older": older, "newer": newer}


@pytest.fixture(scope="module")
def written(states: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list]:
    out = tmp_path_factory.mktemp("vss-out") / "volume.raw"
    copies = [ShadowCopy(states["newer"], *NEWER), ShadowCopy(states["older"], *OLDER)]  # any order
    layouts = write_shadow_copies(states["now"], copies, out, volume_identifier=VOLUME_ID)
    return out, layouts


def test_pyvshadow_reads_each_store_as_its_older_state(states: dict[str, Path],
                                                        written: tuple[Path, list]) -> None:
    path, layouts = written
    volume = pyvshadow.volume()
    volume.open(str(path))
    try:
        assert volume.number_of_stores == 2
        for index, (name, (identifier, created)) in enumerate([("older", OLDER), ("newer", NEWER)]):
            store = volume.get_store(index)
            assert store.identifier == str(identifier)
            assert store.get_creation_time_as_integer() == filetime(created)
            assert store.creation_time == created.replace(tzinfo=None)
            assert store.copy_identifier == str(uuid.uuid5(identifier, "shadow copy"))
            assert store.copy_set_identifier == str(uuid.uuid5(identifier, "shadow copy set"))
            assert store.volume_size == states[name].stat().st_size
            assert _store_sha256(store) == sha256_of(states[name]), f"store {index + 1} ({name})"
            assert layouts[index].identifier == identifier and layouts[index].index == index + 1
    finally:
        volume.close()


def test_vshadowinfo_agrees(written: tuple[Path, list]) -> None:
    if shutil.which("vshadowinfo") is None:
        pytest.skip("vshadowinfo not installed (Debian package libvshadow-utils)")
    path, _ = written
    output = subprocess.run(["vshadowinfo", str(path)], check=True, capture_output=True,
                            text=True).stdout
    assert re.search(r"Number of stores:\s+2\b", output)
    stores = re.split(r"\nStore: (\d+)\n", output)[1:]
    found = {int(stores[i]): stores[i + 1] for i in range(0, len(stores), 2)}
    assert sorted(found) == [1, 2]
    for number, (identifier, created) in ((1, OLDER), (2, NEWER)):
        text = found[number]
        assert re.search(rf"Identifier\s+: {identifier}\n", text)
        assert re.search(rf"Shadow copy ID\s+: {uuid.uuid5(identifier, 'shadow copy')}\n", text)
        assert f"Creation time\t\t: {created:%b %d, %Y %H:%M:%S}.000000000 UTC" in text
        assert "Attribute flags\t\t: 0x0002000d" in text


def test_now_volume_keeps_its_files(states: dict[str, Path], written: tuple[Path, list]) -> None:
    """Only block 0's VSS header and blocks the newest store describes change; files read as before."""
    path, layouts = written
    newest = set(layouts[-1].described_blocks)
    with states["now"].open("rb") as before, path.open("rb") as after:
        for number in range(path.stat().st_size // BLOCK_SIZE):
            old, new = before.read(BLOCK_SIZE), after.read(BLOCK_SIZE)
            if number == 0:
                assert old[:VOLUME_HEADER_OFFSET] == new[:VOLUME_HEADER_OFFSET]
                assert old[VOLUME_HEADER_OFFSET + 512:] == new[VOLUME_HEADER_OFFSET + 512:]
                assert new[VOLUME_HEADER_OFFSET:VOLUME_HEADER_OFFSET + 16] == bytes.fromhex(
                    "6b870838 76c1484e b7ae0404 6e6cc752".replace(" ", ""))
            elif old != new:
                assert number * BLOCK_SIZE in newest, f"block {number} changed but is not kept"
    file_system = pytsk3.FS_Info(pytsk3.Img_Info(str(path)))
    scenario = json.loads((IMAGES / "windows-suspect.scenario.json").read_text(encoding="utf-8"))
    checked = 0
    for entry in scenario["files"]:
        handle = file_system.open(entry["path"])
        data = handle.read_random(0, entry["size"]) if entry["size"] else b""
        assert hashlib.sha256(data).hexdigest() == entry["sha256"], entry["path"]
        checked += 1
    assert checked >= 10


def test_same_input_same_bytes(states: dict[str, Path], written: tuple[Path, list],
                               tmp_path: Path) -> None:
    again = tmp_path / "again.raw"
    copies = [ShadowCopy(states["older"], *OLDER), ShadowCopy(states["newer"], *NEWER)]
    write_shadow_copies(states["now"], copies, again, volume_identifier=VOLUME_ID)
    assert sha256_of(again) == sha256_of(written[0])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["again.raw"]  # no temporary left behind


def test_many_changed_blocks_chain_the_block_list(tmp_path: Path) -> None:
    """600 changed blocks (and the diff area's own) take several chained block-list blocks."""
    if shutil.which("mkntfs") is None:
        pytest.skip("mkntfs not installed (Debian package ntfs-3g)")
    now = tmp_path / "now.raw"
    with now.open("wb") as handle:
        handle.truncate(48 << 20)
    subprocess.run(["mkntfs", "-F", "-Q", "-q", "-s", "512", "-c", "4096", "-L", "big", str(now)],
                   check=True, capture_output=True)
    changed = {number: _pattern(f"block {number}") for number in range(200, 800)}
    older = _edited(now, tmp_path / "older.raw", changed)
    out = tmp_path / "volume.raw"
    layouts = write_shadow_copies(now, [ShadowCopy(older, *OLDER)], out, volume_identifier=VOLUME_ID)
    assert layouts[0].stored_blocks == 601  # the changed blocks and block 0
    assert len(layouts[0].described_blocks) > 2 * 508  # the diff area's blocks are described too
    volume = pyvshadow.volume()
    volume.open(str(out))
    try:
        assert volume.number_of_stores == 1
        assert _store_sha256(volume.get_store(0)) == sha256_of(older)
    finally:
        volume.close()


def test_rejects_a_state_of_another_size(states: dict[str, Path], tmp_path: Path) -> None:
    short = tmp_path / "short.raw"
    with states["older"].open("rb") as source, short.open("wb") as target:
        target.write(source.read(BLOCK_SIZE * 4))
    with pytest.raises(ValueError, match="not the size"):
        write_shadow_copies(states["now"], [ShadowCopy(short, *OLDER)], tmp_path / "out.raw",
                            volume_identifier=VOLUME_ID)
    assert not (tmp_path / "out.raw").exists()
