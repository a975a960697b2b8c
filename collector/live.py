"""The running host (``--live`` means ``/``) or a mounted directory used as a file-system root.

Reading must not change what it reads: files are opened with ``O_NOATIME`` where the kernel
allows it (owner or CAP_FOWNER), symbolic links are recorded and never followed, and nothing is
ever opened for writing.
"""

from __future__ import annotations

import errno
import functools
import os
import stat as stat_mod
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

from collector.errors import SourceNotFoundError
from collector.source import EntryKind, FileSystemView, Source, SourceFile
from collector.timeutil import from_posix

_O_NOATIME = getattr(os, "O_NOATIME", 0)
_O_BINARY = getattr(os, "O_BINARY", 0)


def open_noatime(path: str) -> BinaryIO:
    """Open ``path`` read-only without updating its access time where the OS permits.

    ``O_NOATIME`` is refused with EPERM for files the caller does not own (unless root); we then
    fall back to a plain read-only open, which on ``relatime``/``noatime`` mounts is still harmless.
    """
    flags = os.O_RDONLY | _O_BINARY | getattr(os, "O_NOFOLLOW", 0)
    try:
        fd = os.open(path, flags | _O_NOATIME)
    except OSError as exc:
        if exc.errno not in (errno.EPERM, errno.EINVAL) or not _O_NOATIME:
            raise
        fd = os.open(path, flags)
    return os.fdopen(fd, "rb")


def _list_names(host_dir: str) -> list[str]:
    """Names in a directory, read without updating the directory's access time where allowed."""
    flags = os.O_RDONLY | getattr(os, "O_DIRECTORY", 0) | getattr(os, "O_NOFOLLOW", 0)
    try:
        fd = os.open(host_dir, flags | _O_NOATIME)
    except OSError as exc:
        if exc.errno not in (errno.EPERM, errno.EINVAL) or not _O_NOATIME:
            raise
        fd = os.open(host_dir, flags)
    try:
        with os.scandir(fd) as entries:
            return [entry.name for entry in entries]
    finally:
        os.close(fd)


def _kind(mode: int) -> EntryKind:
    if stat_mod.S_ISREG(mode):
        return "file"
    if stat_mod.S_ISDIR(mode):
        return "dir"
    if stat_mod.S_ISLNK(mode):
        return "symlink"
    return "other"


def _times(st: os.stat_result) -> dict[str, int]:
    times = {
        "mtime": from_posix(int(st.st_mtime_ns // 1_000_000_000), st.st_mtime_ns % 1_000_000_000),
        "atime": from_posix(int(st.st_atime_ns // 1_000_000_000), st.st_atime_ns % 1_000_000_000),
        "ctime": from_posix(int(st.st_ctime_ns // 1_000_000_000), st.st_ctime_ns % 1_000_000_000),
    }
    birth = getattr(st, "st_birthtime", None)
    if birth is not None:
        times["crtime"] = from_posix(float(birth))
    return times


class DirectoryFileSystem(FileSystemView):
    """A directory tree treated as a file system whose ``/`` is ``root``."""

    def __init__(self, root: str, label: str = "live", provenance: str | None = None) -> None:
        self.root = os.path.abspath(root)
        self.label = label
        self.provenance = provenance or f"dir:{self.root}"
        self.case_sensitive = os.path.normcase("A") != os.path.normcase("a")

    def _host_path(self, location: str) -> str:
        parts = [p for p in location.split("/") if p not in ("", ".", "..")]
        return os.path.join(self.root, *parts)

    def _entry(self, location: str, host_path: str, st: os.stat_result) -> SourceFile:
        kind = _kind(st.st_mode)
        link = os.readlink(host_path) if kind == "symlink" else None
        opener = functools.partial(open_noatime, host_path) if kind == "file" else None
        return SourceFile(
            location=location, name=location.rsplit("/", 1)[-1], kind=kind, size=st.st_size,
            times=_times(st), inode=st.st_ino, provenance=self.provenance, link_target=link,
            opener=opener)

    def stat(self, location: str) -> SourceFile | None:
        host_path = self._host_path(location)
        try:
            st = os.lstat(host_path)
        except FileNotFoundError:
            return None
        return self._entry(location, host_path, st)

    def list_dir(self, location: str) -> Iterator[SourceFile]:
        host_dir = self._host_path(location)
        base = location.rstrip("/")
        names = sorted(_list_names(host_dir))
        for name in names:
            host_path = os.path.join(host_dir, name)
            try:
                st = os.lstat(host_path)
            except FileNotFoundError:
                continue  # vanished between listing and stat: nothing to record yet
            yield self._entry(f"{base}/{name}", host_path, st)


class DirectorySource(Source):
    """A live host (``/``) or a mounted image / extracted tree given as a root directory."""

    def __init__(self, root: str, live: bool = False) -> None:
        if not os.path.isdir(root):
            raise SourceNotFoundError(f"source directory not found: {root}")
        self.root = str(Path(root).resolve())
        self.kind = "live" if live else "directory"
        self.description = f"live:{self.root}" if live else self.root

    def filesystems(self) -> Iterator[FileSystemView]:
        label = "live" if self.kind == "live" else "root"
        yield DirectoryFileSystem(self.root, label=label, provenance=f"{self.kind}:{self.root}")
