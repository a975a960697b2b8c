"""Deleted directory entries through pytsk3, which sees the unallocated names dfvfs hides.

dfvfs walks only allocated names, so for every artifact directory we also open the same volume
with The Sleuth Kit and list the names flagged unallocated. Content is offered only when the
inode has not been reallocated to another file; otherwise the entry is listed without content.
This module never imports dfvfs: it is handed a file-like object over the volume's bytes.
"""

from __future__ import annotations

import functools
import io
import threading
from collections.abc import Callable, Iterator
from typing import BinaryIO

import pytsk3

from collector.source import SourceFile
from collector.timeutil import from_posix

_READ_CHUNK = 1 << 20


class _VolumeImage(pytsk3.Img_Info):
    """A pytsk3 image backed by any seekable binary file object (a dfvfs volume, a partition)."""

    def __init__(self, handle: BinaryIO, size: int) -> None:
        self._handle = handle
        self._size = size
        self._lock = threading.Lock()
        super().__init__(url="", type=pytsk3.TSK_IMG_TYPE_EXTERNAL)

    def read(self, offset: int, size: int) -> bytes:
        with self._lock:
            self._handle.seek(offset)
            return self._handle.read(size)

    def get_size(self) -> int:
        return self._size

    def close(self) -> None:
        pass


class TskInodeReader(io.RawIOBase):
    """Read-only file object over one (possibly unallocated) inode's data."""

    def __init__(self, fs: pytsk3.FS_Info, inode: int, size: int) -> None:
        super().__init__()
        self._file = fs.open_meta(inode=inode)
        self._size = size
        self._pos = 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._pos, io.SEEK_END: self._size}[whence]
        self._pos = max(0, base + offset)
        return self._pos

    def tell(self) -> int:
        return self._pos

    def readinto(self, buffer: bytearray | memoryview) -> int:  # type: ignore[override]
        want = min(len(buffer), self._size - self._pos, _READ_CHUNK)
        if want <= 0:
            return 0
        data = self._file.read_random(self._pos, want, pytsk3.TSK_FS_ATTR_TYPE_DEFAULT, -1,
                                      pytsk3.TSK_FS_FILE_READ_FLAG_SLACK)
        n = len(data)
        buffer[:n] = data
        self._pos += n
        return n


def _open_inode(fs: pytsk3.FS_Info, inode: int, size: int) -> BinaryIO:
    return io.BufferedReader(TskInodeReader(fs, inode, size), buffer_size=_READ_CHUNK)


def _looks_like_index_noise(raw: bytes, meta: object) -> bool:
    """ext4 htree index blocks that TSK reads as deleted names: binary, pointing at live inodes.

    A real deleted name whose inode was reused is kept; what is dropped is a "name" that is
    not even text (control bytes, invalid UTF-8) *and* whose inode is allocated.
    """
    allocated = meta is not None and bool(int(meta.flags) & int(pytsk3.TSK_FS_META_FLAG_ALLOC))
    if not allocated:
        return False
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        return True
    return not text.isprintable()


def _decode(raw: bytes) -> str:
    return raw.decode("utf-8", "surrogateescape")


class TskDeletedLister:
    """Lists unallocated entries of one file system, given the bytes of its volume."""

    def __init__(self, volume: BinaryIO, volume_size: int, provenance: str,
                 extra_times: Callable[[int], dict[str, int]] | None = None,
                 case_sensitive: bool = True) -> None:
        self._img = _VolumeImage(volume, volume_size)
        self._fs = pytsk3.FS_Info(self._img)
        self._provenance = provenance
        self._extra_times = extra_times
        self._case_sensitive = case_sensitive
        self._dirs: dict[str, tuple[int, bool]] = {}

    def _meta(self, inode: int) -> object | None:
        """Metadata of an inode TSK gave no metadata for (NTFS: a freed MFT record is readable)."""
        if not inode:
            return None
        try:
            return self._fs.open_meta(inode=inode).info.meta
        except OSError:
            return None

    def _same(self, name: str, wanted: str) -> bool:
        return name == wanted if self._case_sensitive else name.casefold() == wanted.casefold()

    def _resolve_dir(self, location: str) -> tuple[int, bool]:
        """(inode, deleted) of the directory at ``location``, following deleted names too.

        Allocated names win; a path that only exists through unallocated names (a deleted
        folder, e.g. ``Unistore/data/3``) resolves as long as its records survive. Results are
        kept, so walking a tree resolves each directory from its parent in one lookup.
        """
        parts = [p for p in location.split("/") if p]
        key = "/" + "/".join(parts)
        if key in self._dirs:
            return self._dirs[key]
        if not parts:
            result = (int(self._fs.info.root_inum), False)
        else:
            parent, parent_deleted = self._resolve_dir("/".join(parts[:-1]))
            match: tuple[int, bool] | None = None
            for entry in self._fs.open_dir(inode=parent):
                info = entry.info.name
                if info is None or not self._same(_decode(info.name), parts[-1]):
                    continue
                meta = entry.info.meta or self._meta(int(info.meta_addr))
                if int(info.type) != int(pytsk3.TSK_FS_NAME_TYPE_DIR) and not (
                        meta is not None and int(meta.type) == int(pytsk3.TSK_FS_META_TYPE_DIR)):
                    continue
                unallocated = bool(int(info.flags) & pytsk3.TSK_FS_NAME_FLAG_UNALLOC)
                if match is None or (match[1] and not unallocated):
                    match = (int(info.meta_addr), unallocated)
            if match is None:
                raise FileNotFoundError(f"{location}: no directory {parts[-1]!r}")
            result = (match[0], parent_deleted or match[1])
        self._dirs[key] = result
        return result

    def deleted_entries(self, location: str) -> Iterator[SourceFile]:
        """Yield the deleted entries of directory ``location`` (may raise OSError).

        In a live directory those are its unallocated names; in a deleted directory every entry
        TSK still lists is deleted.
        """
        try:
            inode, directory_deleted = self._resolve_dir(location)
            directory = self._fs.open_dir(inode=inode)
        except OSError as exc:
            raise FileNotFoundError(f"{location}: {exc}") from exc
        seen: set[tuple[str, int]] = set()
        for entry in directory:
            name_info = entry.info.name
            if name_info is None:
                continue
            unallocated = bool(int(name_info.flags) & pytsk3.TSK_FS_NAME_FLAG_UNALLOC)
            if not (unallocated or directory_deleted):
                continue
            name = _decode(name_info.name)
            if name in (".", "..") or name.startswith("$OrphanFiles"):
                continue
            inode_number = int(name_info.meta_addr)
            if (name, inode_number) in seen:
                continue
            seen.add((name, inode_number))
            meta = entry.info.meta or self._meta(inode_number)
            if _looks_like_index_noise(name_info.name, meta):
                continue
            yield self._entry(location, name, inode_number, meta)

    def live_entries(self, location: str) -> Iterator[SourceFile]:
        """Allocated entries of ``location`` read through TSK, names as raw bytes.

        Used where dfvfs cannot name an entry (names that are not UTF-8, or that decode to
        something holding ``/``): the bytes are kept as surrogate escapes and the content is read
        by inode, so nothing depends on the name being printable.
        """
        try:
            inode, directory_deleted = self._resolve_dir(location)
            directory = self._fs.open_dir(inode=inode)
        except OSError as exc:
            raise FileNotFoundError(f"{location}: {exc}") from exc
        if directory_deleted:
            return
        for entry in directory:
            name_info = entry.info.name
            if name_info is None or int(name_info.flags) & pytsk3.TSK_FS_NAME_FLAG_UNALLOC:
                continue
            name = _decode(name_info.name)
            if name in (".", "..") or name.startswith("$OrphanFiles"):
                continue
            inode_number = int(name_info.meta_addr)
            yield self._entry(location, name, inode_number, entry.info.meta or self._meta(inode_number),
                              deleted=False)

    def _entry(self, location: str, name: str, inode: int, meta: object,
               deleted: bool = True) -> SourceFile:
        path = f"{location.rstrip('/')}/{name}"
        times: dict[str, int] = {}
        size = 0
        kind = "file"
        opener = None
        reallocated = False
        if meta is not None and inode:
            size = int(meta.size)
            meta_type = int(meta.type)
            if meta_type == int(pytsk3.TSK_FS_META_TYPE_DIR):
                kind = "dir"
            elif meta_type == int(pytsk3.TSK_FS_META_TYPE_LNK):
                kind = "symlink"
            for key in ("mtime", "atime", "ctime", "crtime"):
                seconds = int(getattr(meta, key))
                if seconds:
                    times[key] = from_posix(seconds, int(getattr(meta, f"{key}_nano", 0)))
            reallocated = deleted and bool(int(meta.flags) & int(pytsk3.TSK_FS_META_FLAG_ALLOC))
            if self._extra_times is not None:
                times.update(self._extra_times(inode))
            if kind == "file" and not reallocated and size > 0:
                opener = functools.partial(_open_inode, self._fs, inode, size)
        provenance = f"{self._provenance}|tsk-unallocated-name" if deleted else f"{self._provenance}|tsk"
        if reallocated:
            provenance += "|inode-reallocated"
        link = None
        if kind == "symlink" and meta is not None:
            link = _decode(getattr(meta, "link", b"") or b"") or None
        return SourceFile(location=path, name=name, kind=kind, size=size, times=times,
                          inode=inode or None, deleted=deleted, provenance=provenance, opener=opener,
                          link_target=link)
