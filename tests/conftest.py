"""Shared fixtures: the reference image, its ground truth and the shared corpus."""

from __future__ import annotations

import hashlib
import json
import shutil
import struct
import sysconfig
from pathlib import Path

import pytest

from inboxtrail.cli import main

ROOT = Path(__file__).resolve().parent.parent
IMAGES = ROOT / "images"
CORPUS = (ROOT.parent / "shared" / "corpus").resolve()
LINUX_IMAGE = IMAGES / "linux-suspect.raw"


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def first_mbr_partition(disk: Path) -> tuple[int, int]:
    """(first sector, sector count) of the first MBR partition entry of ``disk``."""
    with disk.open("rb") as handle:
        return struct.unpack_from("<II", handle.read(512), 0x1BE + 8)


def copy_first_mbr_partition(disk: Path, out: Path) -> Path:
    """The first MBR partition of ``disk`` copied to ``out`` (streamed, 1 MiB at a time)."""
    start, sectors = first_mbr_partition(disk)
    with disk.open("rb") as handle, out.open("wb") as target:
        handle.seek(start * 512)
        left = sectors * 512
        while left:
            chunk = handle.read(min(left, 1 << 20))
            target.write(chunk)
            left -= len(chunk)
    return out


def manifest_triples(lines: list[dict]) -> set[tuple[str, str | None, bool]]:
    """What two collections of the same files must share: (source path, sha256, deleted)."""
    return {(line["source_path"], line["sha256"], bool(line["deleted"])) for line in lines}


def skip_without_c_compiler(fallback: str) -> None:
    """Skip a test that needs the optional C modules built, where no C compiler could build them
    (the install then falls back to ``fallback``, the pure-Python twin)."""
    compiler = (sysconfig.get_config_var("CC") or "cc").split()[0]
    if shutil.which(compiler) is None:
        pytest.skip(f"no C compiler ({compiler}): falling back to {fallback}")


def corpus_path(relative: str) -> Path:
    """A path in ../shared/corpus, or skip the test with the reason."""
    path = CORPUS / relative
    if not path.exists():
        pytest.skip(f"shared corpus file {relative} not present (../shared/corpus is absent here)")
    return path


@pytest.fixture(scope="session")
def scenario() -> dict:
    """Ground truth of images/linux-suspect.raw (images/README.md tells the story)."""
    return json.loads((IMAGES / "linux-suspect.scenario.json").read_text(encoding="utf-8"))


@pytest.fixture(scope="session")
def linux_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One `inboxtrail run` on the reference image, shared by the end-to-end tests."""
    out = tmp_path_factory.mktemp("linux-run") / "out"
    assert main(["--quiet", "run", str(LINUX_IMAGE), "-o", str(out)]) == 0
    return out


@pytest.fixture(scope="session")
def linux_records(linux_run: Path) -> list[dict]:
    with (linux_run / "records.jsonl").open(encoding="utf-8") as handle:
        return [json.loads(line) for line in handle]


@pytest.fixture()
def copy_tree(tmp_path: Path):
    def _copy(src: Path, name: str = "src") -> Path:
        dest = tmp_path / name
        if src.is_dir():
            shutil.copytree(src, dest)
        else:
            dest.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest)
        return dest
    return _copy
