"""Bundles as a single ``.zip`` (``collect -o case.zip``): written deterministically and atomically.

The bundle is first written as a directory beside the target, then stored into the zip with
sorted member names and a fixed timestamp, so the same collection gives the same archive; the
zip is published with a rename. Readers that need files on disk (the parse stage) get a
temporary extraction.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
import zipfile
from collections.abc import Iterator
from pathlib import Path

from collector.atomic import atomic_open
from collector.errors import BundleError

_FIXED_TIME = (1980, 1, 1, 0, 0, 0)


def is_zip_bundle(path: str | os.PathLike[str]) -> bool:
    """Whether ``path`` names a zip bundle (an existing zip file, or a ``.zip`` target)."""
    return str(path).lower().endswith(".zip")


def zip_directory(directory: Path, target: Path) -> None:
    """Store every file of ``directory`` into ``target`` (deterministic member order and times)."""
    files = sorted(p for p in directory.rglob("*") if p.is_file())
    with atomic_open(target, "wb") as raw, zipfile.ZipFile(raw, "w", zipfile.ZIP_DEFLATED,
                                                           allowZip64=True) as archive:
        for path in files:
            info = zipfile.ZipInfo(path.relative_to(directory).as_posix(), date_time=_FIXED_TIME)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            with path.open("rb") as source, archive.open(info, "w", force_zip64=True) as dest:
                shutil.copyfileobj(source, dest, 1 << 20)


@contextlib.contextmanager
def staging_directory(target: Path) -> Iterator[Path]:
    """A temporary directory beside ``target`` for writing a bundle before it is zipped."""
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    try:
        yield staging
    finally:
        shutil.rmtree(staging, ignore_errors=True)


@contextlib.contextmanager
def bundle_directory(path: str | os.PathLike[str]) -> Iterator[Path]:
    """The bundle at ``path`` as a directory: itself, or a temporary extraction of a zip."""
    path = Path(path)
    if path.is_dir() or not is_zip_bundle(path):
        yield path
        return
    if not zipfile.is_zipfile(path):
        raise BundleError(f"{path} is not a zip bundle")
    with tempfile.TemporaryDirectory(prefix="inboxtrail-bundle-") as tmp:
        with zipfile.ZipFile(path) as archive:
            for member in archive.infolist():
                name = member.filename
                if name.startswith("/") or ".." in Path(name).parts:
                    raise BundleError(f"{path}: unsafe member name {name!r}")
            archive.extractall(tmp)
        yield Path(tmp)
