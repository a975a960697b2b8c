"""Deleted directory entries through pytsk3, which sees the unallocated names dfvfs hides.

dfvfs walks only allocated names, so for every artifact directory we also open the same volume
with The Sleuth Kit and list the names flagged unallocated. Content is offered only when the
inode has not been reallocated to another file; otherwise the entry is listed without content.
The same TSK handle also reads allocated files' content (:meth:`TskDeletedLister.open_content`):
large reads straight from TSK cost about half of dfvfs's per byte. This module never imports
dfvfs: it is handed a file-like object over the volume's bytes, or for a plain raw image the
image path and the volume's offset, which TSK then reads natively without a Python callback.
"""

from __future__ import annotations

import functools
import io
import threading
from collections.abc import Callable, Iterator
from typing import BinaryIO

import pytsk3

from collector.source import RestartRead, SourceFile
from collector.timeutil import from_posix

_READ_CHUNK = 1 << 20
_NAME_DIR = int(pytsk3.TSK_FS_NAME_TYPE_DIR)
_NAME_UNALLOC = int(pytsk3.TSK_FS_NAME_FLAG_UNALLOC)
_META_DIR = int(pytsk3.TSK_FS_META_TYPE_DIR)
#: Directory name indexes kept by TskDeletedLister._names: how many, and up to what size.
_NAME_CACHE_DIRS = 32
_NAME_CACHE_ENTRIES = 16384
_NTFS_DATA = int(pytsk3.TSK_FS_ATTR_TYPE_NTFS_DATA)
_NTFS_REPARSE = int(pytsk3.TSK_FS_ATTR_TYPE_NTFS_REPARSE)
#: Attribute flags whose decoding is left to dfvfs (libfsntfs), the reference for content.
_NOT_PLAIN = int(pytsk3.TSK_FS_ATTR_COMP) | int(pytsk3.TSK_FS_ATTR_ENC)


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


class _OffsetReader:
    """Volume-relative ``read(offset, size)`` and ``get_size()`` over a whole-disk TSK image."""

    def __init__(self, img: pytsk3.Img_Info, offset: int, size: int) -> None:
        self._img, self._offset, self._size = img, offset, size

    def read(self, offset: int, size: int) -> bytes:
        size = min(size, self._size - offset)  # like the dfvfs volume: nothing past its end
        return self._img.read(self._offset + offset, size) if size > 0 and offset >= 0 else b""

    def get_size(self) -> int:
        return self._size


class TskContentReader:
    """An allocated file's default data stream read straight from TSK, with a fallback.

    Where TSK fails or reads short (metadata it does not decode the way dfvfs does), the
    reader changes over to ``fallback`` (a dfvfs reader) once: silently at byte 0, otherwise by
    raising :class:`~collector.source.RestartRead` so the copier starts the file again.
    """

    def __init__(self, file: pytsk3.File, size: int, fallback: Callable[[], BinaryIO]) -> None:
        self._file = file
        self._size = size
        self._pos = 0
        self._fallback_opener = fallback
        self._fallback: BinaryIO | None = None

    def read(self, size: int = -1) -> bytes:
        if self._fallback is not None:
            return self._fallback.read(size)
        left = self._size - self._pos
        want = left if size is None or size < 0 else min(size, left)
        if want <= 0:
            return b""
        try:
            data = self._file.read_random(self._pos, want, pytsk3.TSK_FS_ATTR_TYPE_DEFAULT, -1,
                                          pytsk3.TSK_FS_FILE_READ_FLAG_NONE)
        except OSError:
            data = b""
        if len(data) != want:
            started = self._pos > 0
            self._fallback = self._fallback_opener()
            self._pos = 0
            if started:
                raise RestartRead("The Sleuth Kit could not read the whole file; read again through dfvfs")
            return self._fallback.read(size)
        self._pos += want
        return data

    def readable(self) -> bool:
        return True

    def close(self) -> None:
        if self._fallback is not None:
            self._fallback.close()

    def __enter__(self) -> TskContentReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


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
                 case_sensitive: bool = True, native: tuple[str, int] | None = None) -> None:
        """``native`` is ``(raw image path, volume offset)`` for TSK to open the image itself.

        ``_img.read(offset, size)`` is volume-relative either way (the carver reads through it).
        """
        if native is not None:
            path, offset = native
            disk = pytsk3.Img_Info(path, type=pytsk3.TSK_IMG_TYPE_RAW)
            self._fs = pytsk3.FS_Info(disk, offset=offset)
            self._img = _OffsetReader(disk, offset, volume_size)
        else:
            self._img = _VolumeImage(volume, volume_size)
            self._fs = pytsk3.FS_Info(self._img)
        self._ntfs = int(self._fs.info.ftype) & int(pytsk3.TSK_FS_TYPE_NTFS_DETECT) != 0
        self._provenance = provenance
        self._extra_times = extra_times
        self._case_sensitive = case_sensitive
        self._dirs: dict[str, tuple[int, bool]] = {}
        self._name_cache: dict[int, dict[str, list[tuple[bool, int, bool, int | None]]]] = {}

    def _meta(self, inode: int) -> object | None:
        """Metadata of an inode TSK gave no metadata for (NTFS: a freed MFT record is readable)."""
        if not inode:
            return None
        try:
            return self._fs.open_meta(inode=inode).info.meta
        except OSError:
            return None

    def open_content(self, inode: int, size: int,
                     fallback: Callable[[], BinaryIO]) -> TskContentReader | None:
        """A TSK reader of allocated ``inode``'s default data stream, or None to use dfvfs.

        Only where TSK's view matches dfvfs's: the stated size agrees, and on NTFS the unnamed
        $DATA is neither compressed nor encrypted and the file has no reparse point (WOF-
        compressed system files keep their data in a named stream that only libfsntfs decodes).
        """
        try:
            file = self._fs.open_meta(inode=inode)
            meta = file.info.meta
            if (meta is None or int(meta.size) != size
                    or not int(meta.flags) & int(pytsk3.TSK_FS_META_FLAG_ALLOC)):
                return None
            if self._ntfs:
                plain = False
                for attribute in file:
                    info = attribute.info
                    kind = int(info.type)
                    if kind == _NTFS_REPARSE:
                        return None
                    if kind == _NTFS_DATA and not info.name:
                        if int(info.flags) & _NOT_PLAIN:
                            return None
                        plain = True
                if not plain:
                    return None
        except (OSError, RuntimeError):
            return None
        return TskContentReader(file, size, fallback)

    def _names(self, inode: int) -> dict[str, list[tuple[bool, int, bool, int | None]]]:
        """Directory ``inode``'s names (casefolded where names are case-insensitive), in order.

        Each name maps to (name says directory, inode, unallocated, meta type if TSK gave the
        entry's metadata). Resolving every subdirectory of a tree then reads each directory once,
        not once per child; the last few directories are kept, large ones are not.
        """
        names = self._name_cache.pop(inode, None)
        if names is None:
            names = {}
            count = 0
            for entry in self._fs.open_dir(inode=inode):
                info = entry.info.name
                if info is None:
                    continue
                count += 1
                name = _decode(info.name)
                is_dir = int(info.type) == _NAME_DIR
                meta_type = None
                if not is_dir:
                    meta = entry.info.meta
                    meta_type = int(meta.type) if meta is not None else None
                names.setdefault(name if self._case_sensitive else name.casefold(), []).append(
                    (is_dir, int(info.meta_addr), bool(int(info.flags) & _NAME_UNALLOC), meta_type))
            if count > _NAME_CACHE_ENTRIES:
                return names
        self._name_cache[inode] = names
        while len(self._name_cache) > _NAME_CACHE_DIRS:
            del self._name_cache[next(iter(self._name_cache))]
        return names

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
            wanted = parts[-1] if self._case_sensitive else parts[-1].casefold()
            for is_dir, address, unallocated, meta_type in self._names(parent).get(wanted, ()):
                if not is_dir:
                    if meta_type is None:
                        meta = self._meta(address)
                        meta_type = int(meta.type) if meta is not None else None
                    if meta_type != _META_DIR:
                        continue
                if match is None or (match[1] and not unallocated):
                    match = (address, unallocated)
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
