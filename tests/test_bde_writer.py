"""The BitLocker writer's volumes unlock and decrypt with libbde (pybde) and with dislocker.

The plain volume is the NTFS partition of the committed ``images/windows-suspect.raw``. Each
reader, given the recovery password or the user password, must return the plain volume byte for
byte (sha256 of the whole volume). What BitLocker itself changes (sector 0, the three 64 KiB FVE
metadata blocks and the 8 KiB where the NTFS boot sectors are moved) both readers show as the
original boot sectors and as zeros, and the writer only places its structures where the plain
volume is zero, so nothing is left out of the comparison. A wrong password leaves the volume locked.
"""

from __future__ import annotations

import hashlib
import shutil
import struct
import subprocess
import uuid
from datetime import UTC, datetime
from pathlib import Path

import pytest

from tests.conftest import IMAGES, copy_first_mbr_partition, sha256_of
from tests.fixtures.bde_writer import (
    AES_128_CBC,
    AES_128_XTS,
    BDE_IDENTIFIER,
    HEADER_SIZE,
    METADATA_SIZE,
    BitLockerLayout,
    make_recovery_password,
    recovery_key,
    write_bitlocker,
)

pybde = pytest.importorskip("pybde")

DISK = IMAGES / "windows-suspect.raw"
SEED = b"inboxtrail bde writer test"
RECOVERY_PASSWORD = make_recovery_password(SEED)
PASSWORD = "Tr0ub4dor&3 mailbox"
WRONG_RECOVERY_PASSWORD = "111111-222222-333333-444444-555555-666666-777777-888888"
CREATED = datetime(2026, 10, 2, 9, 0, 0, tzinfo=UTC)
DESCRIPTION = "WS-DAVE01 C: 02/10/2026"
METHODS = {"aes-xts-128": AES_128_XTS, "aes-cbc-128": AES_128_CBC}



@pytest.fixture(scope="module")
def plain(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return copy_first_mbr_partition(DISK, tmp_path_factory.mktemp("bde-plain") / "ntfs.raw")


@pytest.fixture(scope="module")
def volumes(plain: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[Path, BitLockerLayout]]:
    """One BitLocker volume per encryption method (the key stretch runs once: same seed, same salts)."""
    folder = tmp_path_factory.mktemp("bde")
    written = {}
    for name, method in METHODS.items():
        out = folder / f"{name}.bde"
        layout = write_bitlocker(plain, out, recovery_password=RECOVERY_PASSWORD, password=PASSWORD,
                                 seed=SEED, created=CREATED, method=method, description=DESCRIPTION)
        written[name] = (out, layout)
    return written


def _open(path: Path, *, recovery_password: str | None = None, password: str | None = None) -> object:
    volume = pybde.volume()
    if recovery_password is not None:
        volume.set_recovery_password(recovery_password)
    if password is not None:
        volume.set_password(password)
    volume.open(str(path))
    return volume


def _volume_sha256(volume: object) -> str:
    digest = hashlib.sha256()
    volume.seek_offset(0, 0)
    left = volume.get_size()
    while left:
        chunk = volume.read_buffer(min(left, 1 << 20))
        assert chunk
        digest.update(chunk)
        left -= len(chunk)
    return digest.hexdigest()


# Each unlock runs libbde's key stretch (a second or more), so the user password is tried on one method.
CASES = [("aes-xts-128", "recovery_password"), ("aes-xts-128", "password"),
         ("aes-cbc-128", "recovery_password")]


@pytest.mark.parametrize(("name", "credential"), CASES)
def test_pybde_unlocks_and_reads_the_plain_volume(name: str, credential: str, plain: Path,
                                                   volumes: dict) -> None:
    path, layout = volumes[name]
    secret = {"recovery_password": RECOVERY_PASSWORD, "password": PASSWORD}[credential]
    volume = _open(path, **{credential: secret})
    try:
        assert not volume.is_locked()
        assert volume.get_size() == plain.stat().st_size
        assert volume.get_encryption_method() == METHODS[name]
        assert volume.get_description() == DESCRIPTION
        assert volume.get_creation_time() == CREATED.replace(tzinfo=None)
        assert uuid.UUID(volume.get_volume_identifier()) == layout.volume_identifier
        assert [protector.type for protector in volume.key_protectors] == [
            pybde.key_protection_types.RECOVERY_PASSWORD, pybde.key_protection_types.PASSWORD]
        assert _volume_sha256(volume) == sha256_of(plain)
    finally:
        volume.close()


@pytest.mark.parametrize("credentials", [{"recovery_password": WRONG_RECOVERY_PASSWORD}, {}],
                         ids=["wrong-recovery-password", "none"])
def test_pybde_keeps_the_volume_locked_without_the_right_credential(credentials: dict,
                                                                    volumes: dict) -> None:
    path, _ = volumes["aes-xts-128"]
    volume = _open(path, **credentials)
    try:
        assert volume.is_locked()
    finally:
        volume.close()


def test_layout_is_what_the_readers_are_told(plain: Path, volumes: dict) -> None:
    """Header fields, three identical metadata blocks, and structures only over free zeros."""
    path, layout = volumes["aes-xts-128"]
    with path.open("rb") as handle:
        header = handle.read(512)
        blocks = []
        for offset in layout.metadata_offsets:
            handle.seek(offset)
            blocks.append(handle.read(METADATA_SIZE))
    assert header[:11] == b"\xeb\x58\x90-FVE-FS-" and header[510:] == b"\x55\xaa"
    assert header[0xA0:0xB0] == BDE_IDENTIFIER.bytes_le
    assert struct.unpack_from("<QQQ", header, 0xB0) == layout.metadata_offsets
    assert blocks[0] == blocks[1] == blocks[2]
    assert blocks[0][:8] == b"-FVE-FS-"
    assert struct.unpack_from("<QQQQ", blocks[0], 0x20) == (*layout.metadata_offsets, layout.header_offset)
    with plain.open("rb") as handle:
        for offset, size in layout.regions():
            handle.seek(offset)
            assert handle.read(size) == bytes(size)
        handle.seek(0)
        boot = handle.read(HEADER_SIZE)
    with path.open("rb") as handle:
        handle.seek(layout.header_offset)
        moved = handle.read(HEADER_SIZE)
    assert boot[3:11] == b"NTFS    " and moved != boot and b"NTFS    " not in moved


def test_same_input_gives_the_same_bytes(plain: Path, volumes: dict, tmp_path: Path) -> None:
    path, _ = volumes["aes-xts-128"]
    again = tmp_path / "again.bde"
    write_bitlocker(plain, again, recovery_password=RECOVERY_PASSWORD, password=PASSWORD, seed=SEED,
                    created=CREATED, method=AES_128_XTS, description=DESCRIPTION)
    assert sha256_of(again) == sha256_of(path)
    assert [p.name for p in tmp_path.iterdir()] == ["again.bde"]  # no temporary left behind


def test_recovery_password_checks() -> None:
    assert recovery_key("000011-000022-000033-000044-000055-000066-000077-720885") == struct.pack(
        "<8H", 1, 2, 3, 4, 5, 6, 7, 65535)
    for bad in ("000011-000022", "000012-000022-000033-000044-000055-000066-000077-000088",
                "720896-000022-000033-000044-000055-000066-000077-000088"):
        with pytest.raises(ValueError):
            recovery_key(bad)


def test_writer_refuses_a_volume_that_is_not_ntfs(tmp_path: Path) -> None:
    blank = tmp_path / "blank.raw"
    blank.write_bytes(bytes(1 << 20))
    with pytest.raises(ValueError, match="not an NTFS volume"):
        write_bitlocker(blank, tmp_path / "out.bde", recovery_password=RECOVERY_PASSWORD, seed=SEED,
                        created=CREATED)
    assert not (tmp_path / "out.bde").exists()


DISLOCKER = shutil.which("dislocker-file")


@pytest.mark.skipif(DISLOCKER is None, reason="dislocker-file not installed (Debian package dislocker)")
@pytest.mark.parametrize(("name", "option"), [(name, "-p" if credential == "recovery_password" else "-u")
                                              for name, credential in CASES])
def test_dislocker_decrypts_to_the_plain_volume(name: str, option: str, plain: Path, volumes: dict,
                                                tmp_path: Path) -> None:
    path, _ = volumes[name]
    secret = RECOVERY_PASSWORD if option == "-p" else PASSWORD
    out = tmp_path / "decrypted.raw"
    result = subprocess.run([DISLOCKER, "-V", str(path), f"{option}{secret}", str(out)],
                            capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    assert sha256_of(out) == sha256_of(plain)


@pytest.mark.skipif(DISLOCKER is None, reason="dislocker-file not installed (Debian package dislocker)")
def test_dislocker_refuses_a_wrong_recovery_password(volumes: dict, tmp_path: Path) -> None:
    path, _ = volumes["aes-xts-128"]
    out = tmp_path / "decrypted.raw"
    result = subprocess.run([DISLOCKER, "-V", str(path), f"-p{WRONG_RECOVERY_PASSWORD}", str(out)],
                            capture_output=True, text=True, timeout=120, check=False)
    # dislocker 0.7.3 says so, then crashes on its way out (SIGSEGV): any non-zero exit will do.
    assert result.returncode != 0
    assert "None of the provided decryption mean is decrypting the keys" in result.stdout + result.stderr
    assert not out.exists() or out.stat().st_size == 0
