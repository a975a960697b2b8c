"""Choose the right :class:`Source` for what the examiner pointed at."""

from __future__ import annotations

import os

from collector.errors import SourceNotFoundError, UnrecognisedSourceError
from collector.source import Source

#: Extensions that promise a disk image: failing to open one is an error, not a loose file.
IMAGE_EXTENSIONS = (".raw", ".dd", ".img", ".e01", ".ex01", ".s01", ".l01", ".vmdk", ".vhd",
                    ".vhdx", ".qcow", ".qcow2", ".001", ".aa", ".dmg", ".iso", ".bin")
#: Top-level names that mark a directory as a mounted file-system root rather than loose files.
_ROOT_MARKERS = ("etc", "home", "var", "Users", "Windows", "usr", "private", "Library",
                 "ProgramData", "root")
#: (offset, bytes) signatures of artifact files that are never a disk image: EVTX, PST/OST,
#: Prefetch (compressed and plain), ESE (Windows Mail), SQLite (Apple Mail) and an mbox spool.
#: Such a file is a loose artifact without the image scan (dfvfs's import and format scan cost
#: ~0.25 CPU-s, a tenth of a whole run on one event log).
ARTIFACT_SIGNATURES = ((0, b"ElfFile\0"), (0, b"!BDN"), (0, b"MAM\x04"), (4, b"SCCA"),
                       (4, b"\xef\xcd\xab\x89"), (0, b"SQLite format 3\0"), (0, b"From "))


def looks_like_root(path: str) -> bool:
    """A directory with two or more OS top-level folders is a mounted root, not an export."""
    try:
        names = set(os.listdir(path))
    except OSError:
        return False
    return sum(1 for marker in _ROOT_MARKERS if marker in names) >= 2


def is_artifact_file(path: str) -> bool:
    """Whether ``path`` starts with an :data:`ARTIFACT_SIGNATURES` signature and has no image
    extension (read without touching its access time where allowed; unreadable: False)."""
    if path.lower().endswith(IMAGE_EXTENSIONS):
        return False
    from collector.live import open_noatime

    try:
        with open_noatime(path) as handle:
            head = handle.read(20)
    except OSError:
        return False
    return any(head[offset:offset + len(magic)] == magic for offset, magic in ARTIFACT_SIGNATURES)


def open_source(path: str | None, live: bool = False, vss: str = "none",
                credentials: list[tuple[str, object]] | None = None) -> Source:
    """Open a disk image, a live root, a mounted directory or loose artifact files.

    Raises:
        SourceNotFoundError: the path does not exist.
        UnrecognisedSourceError: an image-looking file that no supported format matches.
    """
    # Each kind of source imports its own reader here: an image never loads the live-host and
    # loose-file readers, a live host or a folder never loads dfvfs.
    if live:
        from collector.live import DirectorySource

        return DirectorySource(path or "/", live=True)
    if path is None:
        raise SourceNotFoundError("no source given (a path, or --live)")
    if not os.path.exists(path):
        raise SourceNotFoundError(f"source not found: {path}")
    if os.path.isdir(path):
        from collector.live import DirectorySource
        from collector.loose import LooseSource

        return DirectorySource(path) if looks_like_root(path) else LooseSource(path)
    if not os.access(path, os.R_OK):
        raise SourceNotFoundError(f"source not readable (permission denied): {path}")
    if is_artifact_file(path):
        from collector.loose import LooseSource

        return LooseSource(path)
    from collector.image import ImageSource  # dfvfs is heavy: import only for images

    try:
        return ImageSource(path, vss=vss, credentials=credentials)
    except UnrecognisedSourceError:
        if path.lower().endswith(IMAGE_EXTENSIONS):
            raise
    from collector.loose import LooseSource

    return LooseSource(path)
