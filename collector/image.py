"""Disk images through dfvfs: containers, volume systems and file systems (the only dfvfs user).

``ImageSource`` scans the image with dfvfs's volume scanner (every partition, and the NTFS Volume
Shadow Copies asked for with ``--vss``) and exposes each file system it finds as a
:class:`FileSystemView`; a shadow copy's provenance names its store and creation time. For file
systems The Sleuth Kit can read, deleted names are listed through :mod:`collector.tsk_deleted` on
the same volume bytes, because dfvfs's own directory walk skips unallocated names.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Iterator
from typing import BinaryIO

from dfvfs.helpers import source_scanner, volume_scanner
from dfvfs.lib import definitions as dfvfs_definitions
from dfvfs.lib import errors as dfvfs_errors
from dfvfs.path import factory as path_spec_factory
from dfvfs.resolver import resolver
from dfvfs.volume import factory as volume_system_factory

from collector.errors import SourceNotFoundError, UnrecognisedSourceError
from collector.source import EntryKind, FileSystemView, Source, SourceFile
from collector.timeutil import from_filetime, iso_utc
from collector.tsk_deleted import TskDeletedLister

_TIME_ATTRIBUTES = {"mtime": "modification_time", "atime": "access_time",
                    "ctime": "change_time", "crtime": "creation_time"}
#: Scanner results that are just the file (or its container), not a volume inside it.
_CONTAINER_ONLY = {dfvfs_definitions.TYPE_INDICATOR_OS, dfvfs_definitions.TYPE_INDICATOR_RAW,
                   dfvfs_definitions.TYPE_INDICATOR_EWF, dfvfs_definitions.TYPE_INDICATOR_QCOW,
                   dfvfs_definitions.TYPE_INDICATOR_VHDI, dfvfs_definitions.TYPE_INDICATOR_VMDK,
                   dfvfs_definitions.TYPE_INDICATOR_MODI, dfvfs_definitions.TYPE_INDICATOR_PHDI,
                   dfvfs_definitions.TYPE_INDICATOR_FAKE}
#: Directory listings kept for reuse (see DfvfsFileSystem.list_dir): how many, and up to what size.
_LISTING_CACHE_DIRS = 8
_LISTING_CACHE_ENTRIES = 4096
#: Deleted-entry listings kept for reuse (see DfvfsFileSystem.deleted_entries). Most directories
#: hold no deleted name, so many small lists are kept; a long one is not.
_DELETED_CACHE_DIRS = 32
_DELETED_CACHE_ENTRIES = 256
#: File systems whose dfvfs inode number is The Sleuth Kit's too, so TSK can read the content.
_TSK_CONTENT = {dfvfs_definitions.TYPE_INDICATOR_EXT, dfvfs_definitions.TYPE_INDICATOR_NTFS,
                dfvfs_definitions.TYPE_INDICATOR_TSK}
_CASE_INSENSITIVE = {dfvfs_definitions.TYPE_INDICATOR_NTFS, dfvfs_definitions.TYPE_INDICATOR_FAT,
                     dfvfs_definitions.TYPE_INDICATOR_HFS, dfvfs_definitions.TYPE_INDICATOR_TSK}


class _DfvfsReader:
    """A plain binary file object over a dfvfs file object (read, seek, tell, close)."""

    def __init__(self, file_object: object) -> None:
        self._fo = file_object

    def read(self, size: int = -1) -> bytes:
        return self._fo.read(None if size is None or size < 0 else size)

    def seek(self, offset: int, whence: int = os.SEEK_SET) -> int:
        self._fo.seek(offset, whence)
        return self._fo.get_offset()

    def tell(self) -> int:
        return self._fo.get_offset()

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def close(self) -> None:
        pass

    def __enter__(self) -> _DfvfsReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _open_entry(file_entry: object) -> _DfvfsReader:
    return _open_stream(file_entry, "")


def _open_stream(file_entry: object, stream: str) -> _DfvfsReader:
    file_object = file_entry.GetFileObject(data_stream_name=stream)
    if file_object is None:  # e.g. NTFS $Secure: no unnamed $DATA stream
        raise OSError(f"no {'data stream ' + repr(stream) if stream else 'unnamed data stream'} to read")
    return _DfvfsReader(file_object)


def _timestamp(value: object) -> int | None:
    if value is None:
        return None
    try:
        micros = value.GetPlasoTimestamp()
    except (AttributeError, ValueError, OverflowError):
        return None
    return int(micros) if micros else None


def _inode_of(file_entry: object) -> int | None:
    """The inode / MFT entry number (NTFS file references are cut to their 48-bit entry)."""
    path_spec = file_entry.path_spec
    ntfs = path_spec.type_indicator == dfvfs_definitions.TYPE_INDICATOR_NTFS
    for attribute in ("inode", "mft_entry", "identifier"):
        value = getattr(path_spec, attribute, None)
        if value is not None:
            return int(value) & 0xFFFFFFFFFFFF if ntfs else int(value)
    try:
        stat_attribute = file_entry.GetStatAttribute()
    except (dfvfs_errors.Error, OSError, AttributeError):
        return None
    value = getattr(stat_attribute, "inode_number", None)
    if value is None:
        return None
    return int(value) & 0xFFFFFFFFFFFF if ntfs else int(value)


def _path_spec_chain(path_spec: object) -> list[str]:
    chain = []
    while path_spec is not None:
        item = path_spec.type_indicator
        location = getattr(path_spec, "location", None)
        if location and path_spec.type_indicator != dfvfs_definitions.TYPE_INDICATOR_OS:
            item += location if location.startswith("/") else f":{location}"
        chain.append(item)
        path_spec = path_spec.parent
    return list(reversed(chain))


class _RecentListings:
    """The last few directory listings, by location; long listings are not kept (flat memory)."""

    def __init__(self, dirs: int, max_entries: int) -> None:
        self._dirs, self._max_entries = dirs, max_entries
        self._lists: dict[str, list[SourceFile]] = {}

    def take(self, location: str) -> list[SourceFile] | None:
        """The kept listing of ``location`` (None if there is none); hand it back with :meth:`keep`."""
        return self._lists.pop(location, None)

    def keep(self, location: str, entries: list[SourceFile]) -> None:
        if len(entries) <= self._max_entries:
            self._lists[location] = entries  # most recent last
            while len(self._lists) > self._dirs:
                del self._lists[next(iter(self._lists))]


class DfvfsFileSystem(FileSystemView):
    """One file system inside an image, addressed with POSIX-style locations."""

    def __init__(self, base_path_spec: object, label: str, provenance: str) -> None:
        self._base = base_path_spec
        self._fs = resolver.Resolver.OpenFileSystem(base_path_spec)
        self._sep = self._fs.PATH_SEPARATOR
        self.type_indicator = base_path_spec.type_indicator
        self.label = label
        self.provenance = provenance
        self.case_sensitive = self.type_indicator not in _CASE_INSENSITIVE
        self._deleted: TskDeletedLister | None = None
        self._deleted_error: str | None = None
        self._listings = _RecentListings(_LISTING_CACHE_DIRS, _LISTING_CACHE_ENTRIES)
        self._deleted_listings = _RecentListings(_DELETED_CACHE_DIRS, _DELETED_CACHE_ENTRIES)

    # -- path mapping -------------------------------------------------------------------------
    def _native(self, location: str) -> str:
        parts = [p for p in location.split("/") if p]
        return self._sep + self._sep.join(parts)

    def _path_spec(self, location: str) -> object:
        kwargs = {"location": self._native(location)}
        return path_spec_factory.Factory.NewPathSpec(
            self._base.type_indicator, parent=self._base.parent, **kwargs)

    def _entry(self, location: str, file_entry: object) -> SourceFile:
        if file_entry.IsDirectory():
            kind: EntryKind = "dir"
        elif file_entry.IsLink():
            kind = "symlink"
        elif file_entry.IsFile():
            kind = "file"
        else:
            kind = "other"
        times = {}
        for key, attribute in _TIME_ATTRIBUTES.items():
            value = _timestamp(getattr(file_entry, attribute, None))
            if value is not None:
                times[key] = value
        inode = _inode_of(file_entry)
        link = None
        if kind == "symlink":
            try:
                link = file_entry.link or None
            except (dfvfs_errors.Error, OSError):
                link = None
        # The opener keeps the small path spec, not the file entry: a directory listing holds
        # one entry per name, and a dfvfs NTFS file entry costs ~6 KB (its MFT record).
        opener = None
        if kind == "file" and self._has_default_stream(file_entry):
            opener = functools.partial(self._open_spec, file_entry.path_spec)
        size = int(file_entry.size or 0) if kind == "file" else 0
        limit, reason = self._read_limit(file_entry, size) if opener is not None else (None, None)
        if opener is not None and limit is None and inode and self.type_indicator in _TSK_CONTENT:
            opener = functools.partial(self._open_content, file_entry.path_spec, inode, size)
        return SourceFile(location=location, name=location.rsplit("/", 1)[-1], kind=kind,
                          size=size, times=times, inode=inode, provenance=self.provenance,
                          link_target=link, opener=opener, read_limit=limit, limit_reason=reason)

    def _open_spec(self, path_spec: object) -> _DfvfsReader:
        """The default data stream of the file entry at ``path_spec`` (by inode / MFT entry)."""
        try:
            file_entry = self._fs.GetFileEntryByPathSpec(path_spec)
        except dfvfs_errors.Error as exc:
            raise OSError(str(exc)) from exc
        if file_entry is None:
            raise FileNotFoundError(f"no file entry at {getattr(path_spec, 'location', path_spec)}")
        return _open_entry(file_entry)

    def _open_content(self, path_spec: object, inode: int, size: int) -> BinaryIO:
        """The file's content through The Sleuth Kit where it reads it as dfvfs does, else dfvfs."""
        lister = self._deleted_lister()
        fallback = functools.partial(self._open_spec, path_spec)
        reader = lister.open_content(inode, size, fallback) if lister is not None else None
        return reader if reader is not None else fallback()

    def _volume_size(self) -> int | None:
        if not hasattr(self, "_volume_bytes"):
            try:
                parent = self._base.parent
                self._volume_bytes = resolver.Resolver.OpenFileObject(parent).get_size() if parent else None
            except (dfvfs_errors.Error, OSError):
                self._volume_bytes = None
        return self._volume_bytes

    def _read_limit(self, file_entry: object, size: int) -> tuple[int | None, str | None]:
        """A bound for files whose stated size is impossible (larger than their volume).

        A hostile inode can claim a terabyte over one block; reading it would copy a terabyte
        of zeros. Such a file is read up to the end of its last allocated extent only.
        """
        volume = self._volume_size()
        if volume is None or size <= volume:
            return None, None
        end = position = 0
        try:
            for extent in file_entry.GetExtents():
                position += int(extent.size or 0)
                if extent.extent_type != dfvfs_definitions.EXTENT_TYPE_SPARSE:
                    end = position
        except (dfvfs_errors.Error, OSError):
            end = 0
        end = min(end, size) or min(size, volume)
        return end, (f"states {size} bytes, more than its {volume}-byte volume holds; read up to the "
                     f"end of its allocated data ({end} bytes)")

    def _has_default_stream(self, file_entry: object) -> bool:
        """NTFS metadata files such as ``$Secure`` have no unnamed $DATA stream to read."""
        if self.type_indicator != dfvfs_definitions.TYPE_INDICATOR_NTFS:
            return True
        try:
            return any(not stream.name for stream in file_entry.data_streams)
        except (dfvfs_errors.Error, OSError):
            return True

    # -- FileSystemView --------------------------------------------------------------------------
    def stat(self, location: str) -> SourceFile | None:
        head, _, name = location.rpartition("/")
        if ":" in name and self.type_indicator == dfvfs_definitions.TYPE_INDICATOR_NTFS:
            return self._stat_stream(f"{head}/{name.split(':', 1)[0]}", name.split(":", 1)[1])
        try:
            file_entry = self._fs.GetFileEntryByPathSpec(self._path_spec(location))
        except (dfvfs_errors.Error, OSError):
            return None
        if file_entry is None:
            return None
        return self._entry(location, file_entry)

    def _stat_stream(self, location: str, stream: str) -> SourceFile | None:
        """An NTFS alternate data stream (``$UsnJrnl:$J``, ``file:Zone.Identifier``) as a file."""
        try:
            file_entry = self._fs.GetFileEntryByPathSpec(self._path_spec(location))
            if file_entry is None or not file_entry.GetDataStream(stream):
                return None
            size = file_entry.GetFileObject(data_stream_name=stream).get_size()
        except (dfvfs_errors.Error, OSError):
            return None
        base = self._entry(location, file_entry)
        return SourceFile(
            location=f"{location}:{stream}", name=f"{base.name}:{stream}", kind="file", size=size,
            times=base.times, inode=base.inode, provenance=self.provenance,
            opener=functools.partial(_open_stream, file_entry, stream))

    def list_dir(self, location: str) -> Iterator[SourceFile]:
        """The directory's entries, sorted by name; the last few listings are kept.

        Artifact specs and home-directory discovery list the same directories (``/``,
        ``/Users``...) many times; building a SourceFile costs ~50 µs, so a listing is reused.
        Only listings of up to ``_LISTING_CACHE_ENTRIES`` names are kept, so memory stays flat.
        """
        cached = self._listings.take(location)
        if cached is None:
            cached = list(self._list_dir(location))
        self._listings.keep(location, cached)
        yield from cached

    def _list_dir(self, location: str) -> Iterator[SourceFile]:
        try:
            file_entry = self._fs.GetFileEntryByPathSpec(self._path_spec(location))
        except (dfvfs_errors.Error, OSError) as exc:
            raise OSError(str(exc)) from exc
        if file_entry is None:
            raise FileNotFoundError(location)
        if not file_entry.IsDirectory():
            raise NotADirectoryError(location)
        base = location.rstrip("/")
        # Each child becomes a SourceFile as soon as it is read, so the heavy dfvfs file entries
        # are not all alive at once; errors of _entry itself stay outside the fallback below.
        entries: list[SourceFile] = []
        children = None
        while True:
            try:
                if children is None:
                    children = iter(file_entry.sub_file_entries)
                child = next(children)
                name = child.name
                if name is None or "/" in name or "\x00" in name:
                    raise OSError(f"dfvfs cannot name an entry of {location}")
            except StopIteration:
                break
            except (AttributeError, OSError, UnicodeError, dfvfs_errors.Error) as exc:
                # Names dfvfs cannot represent (not UTF-8, overlong, 255-byte multibyte): list the
                # directory through TSK instead, with the raw names kept as surrogate escapes.
                lister = self._deleted_lister()
                if lister is None:
                    raise OSError(f"{location}: {exc}") from exc
                yield from sorted(lister.live_entries(location), key=lambda entry: entry.name)
                return
            if name not in (".", ".."):
                entries.append(self._entry(f"{base}/{name}", child))
        entries.sort(key=lambda entry: entry.name)
        yield from entries

    def deleted_entries(self, location: str) -> Iterator[SourceFile]:
        """The directory's deleted entries through TSK; the last few listings are kept.

        Every artifact pattern asks for the deleted names of the directories it passes (``/``,
        ``/Users``...): on a root holding thousands of names, re-reading it per pattern cost more
        than the files' copies. Small results are reused, so the names come out as before.
        """
        lister = self._deleted_lister()
        if lister is None:
            return
        cached = self._deleted_listings.take(location)
        if cached is None:
            cached = list(lister.deleted_entries(self._tsk_location(location)))
        self._deleted_listings.keep(location, cached)
        yield from cached

    # -- deleted entries through pytsk3 ----------------------------------------------------------
    def _tsk_location(self, location: str) -> str:
        return "/" + "/".join(p for p in location.split("/") if p)

    def _deleted_lister(self) -> TskDeletedLister | None:
        if self._deleted is not None or self._deleted_error is not None:
            return self._deleted
        parent = self._base.parent
        try:
            volume = resolver.Resolver.OpenFileObject(parent) if parent is not None else None
            if volume is None:
                raise OSError("no volume below the file system")
            size = volume.get_size()
            self._deleted = TskDeletedLister(_DfvfsReader(volume), size, self.provenance,
                                             extra_times=self._inode_times,
                                             case_sensitive=self.case_sensitive,
                                             native=_native_volume(parent, volume, size))
        except (OSError, dfvfs_errors.Error) as exc:
            self._deleted_error = f"The Sleuth Kit cannot open {self.provenance}: {exc}"
        return self._deleted

    def _inode_times(self, inode: int) -> dict[str, int]:
        """Times only the native back-end knows for an inode (ext ``dtime``)."""
        if self.type_indicator != dfvfs_definitions.TYPE_INDICATOR_EXT:
            return {}
        try:
            path_spec = path_spec_factory.Factory.NewPathSpec(
                self.type_indicator, inode=inode, parent=self._base.parent)
            file_entry = self._fs.GetFileEntryByPathSpec(path_spec)
        except (dfvfs_errors.Error, OSError):
            return {}
        if file_entry is None:
            return {}
        value = _timestamp(getattr(file_entry, "deletion_time", None))
        return {"dtime": value} if value else {}


def _native_volume(volume_spec: object, volume: object, size: int) -> tuple[str, int] | None:
    """``(image path, byte offset)`` when the volume is a plain stretch of one raw image file.

    Then The Sleuth Kit can open the image itself and read it without calling back into Python
    for every block. Only for a single-segment raw image, whole or one MBR/GPT partition of it;
    the offset is checked by comparing the volume's first and last bytes through dfvfs and the
    file. Anything else (E01, VMDK, split raw, LVM, encryption) stays on dfvfs.
    """
    chain = []
    spec = volume_spec
    while spec is not None:
        chain.append(spec)
        spec = spec.parent
    kinds = [s.type_indicator for s in reversed(chain)]
    if kinds[:2] != [dfvfs_definitions.TYPE_INDICATOR_OS, dfvfs_definitions.TYPE_INDICATOR_RAW]:
        return None
    if kinds[2:] not in ([], [dfvfs_definitions.TYPE_INDICATOR_TSK_PARTITION],
                         [dfvfs_definitions.TYPE_INDICATOR_GPT]):
        return None
    path = chain[-1].location
    try:
        raw_size = resolver.Resolver.OpenFileObject(chain[-2]).get_size()
        if raw_size != os.path.getsize(path):  # more than one segment
            return None
        offset = 0 if len(kinds) == 2 else _partition_offset(volume_spec)
        if offset is None or offset + size > raw_size:
            return None
        probe = min(size, 4096)
        with open(path, "rb") as image:
            for position in {0, size - probe}:
                volume.seek(position)
                image.seek(offset + position)
                if image.read(probe) != volume.read(probe):
                    return None
    except (dfvfs_errors.Error, OSError):
        return None
    return path, offset


def _partition_offset(partition_spec: object) -> int | None:
    """Byte offset of an MBR/GPT partition in its disk, from dfvfs's volume system."""
    from dfvfs.volume import factory  # the same module the locked-volume report uses

    kind = partition_spec.type_indicator
    try:
        system = factory.Factory.NewVolumeSystem(kind)
        system.Open(path_spec_factory.Factory.NewPathSpec(kind, location="/", parent=partition_spec.parent))
        volume = system.GetVolumeByIdentifier(partition_spec.location.lstrip("/"))
        return int(volume.extents[0].offset) if volume is not None and volume.extents else None
    except (dfvfs_errors.Error, OSError, AttributeError, IndexError, TypeError):
        return None


def _is_storage_image(path: str) -> bool:
    """Whether dfvfs sees a disk image (a partition table, say) even without file systems."""
    scanner = source_scanner.SourceScanner()
    context = source_scanner.SourceScannerContext()
    context.OpenSourcePath(path)
    try:
        scanner.Scan(context)
    except (dfvfs_errors.Error, OSError, RuntimeError):
        return False
    return context.source_type == dfvfs_definitions.SOURCE_TYPE_STORAGE_MEDIA_IMAGE


class _PerVolumeScanner(volume_scanner.VolumeScanner):
    """dfvfs's volume scanner run on one volume of a volume system instead of the whole image.

    dfvfs scans an image in one go: one volume it cannot open (a LUKS2 header libluksde does
    not read, a damaged file system) aborts the scan and every volume beside it is lost. Each
    volume is given to the same per-volume step (``_ScanVolume``: unlocking, LVM, VSS, file
    systems) as in the whole-image scan, so a volume that scans yields the same path specs.
    """

    def volume_system(self, source: str | object) -> object | None:
        """The scan node of the volume system in an image (a path) or a volume (a path spec).

        Scanned one level at a time (``auto_recurse=False``), so the volumes inside are listed
        but not yet opened. None unless it is a partition table or volume manager, whose
        volumes can be scanned apart (VSS stores are snapshots, not volumes to split on).
        """
        context = source_scanner.SourceScannerContext()
        if isinstance(source, str):
            context.OpenSourcePath(source)
        else:
            context.AddScanNode(source, None)
        node = context.GetRootScanNode()
        while node is not None and not node.IsVolumeSystemRoot():
            self._source_scanner.Scan(context, auto_recurse=False, scan_path_spec=node.path_spec)
            roots = [sub for sub in node.sub_nodes if sub.IsVolumeSystemRoot() and sub.sub_nodes]
            if len(roots) == 1:  # also an empty GPT beside the MBR that holds the partitions
                node = roots[0]
            else:
                node = node.sub_nodes[0] if len(node.sub_nodes) == 1 else None
        if node is None or node.type_indicator not in _SPLIT_VOLUME_SYSTEMS or not node.sub_nodes:
            return None
        return node

    def base_path_specs(self, volume_spec: object,
                        options: volume_scanner.VolumeScannerOptions) -> list[object]:
        """The file system path specs inside one volume; raises what dfvfs raises on it.

        On a failure the error names the innermost layer reached (``...|TSK_PARTITION/p1|LUKSDE``).
        """
        context = source_scanner.SourceScannerContext()
        root = context.AddScanNode(volume_spec, None)
        found: list[object] = []
        try:
            self._source_scanner.Scan(context)
            self._ScanVolume(context, root, options, found)
        except _SCAN_ERRORS as exc:
            node = root
            while node.sub_nodes:
                node = node.sub_nodes[-1]
            raise _VolumeScanError("|".join(_path_spec_chain(node.path_spec)[1:]), exc) from exc
        return found


#: What a dfvfs scan of one volume raises when a back-end library cannot read it.
_SCAN_ERRORS = (dfvfs_errors.Error, OSError, RuntimeError, ValueError, KeyError)
#: Volume systems whose volumes are scanned one by one when the whole scan fails.
_SPLIT_VOLUME_SYSTEMS = {dfvfs_definitions.TYPE_INDICATOR_TSK_PARTITION,
                         dfvfs_definitions.TYPE_INDICATOR_GPT, dfvfs_definitions.TYPE_INDICATOR_LVM,
                         dfvfs_definitions.TYPE_INDICATOR_APFS_CONTAINER,
                         dfvfs_definitions.TYPE_INDICATOR_CS}


class _VolumeScanError(Exception):
    """One volume dfvfs cannot scan: where the scan stopped (path-spec chain) and why."""

    def __init__(self, chain: str, cause: BaseException) -> None:
        super().__init__(f"{chain}: {cause}")
        self.chain = chain
        self.cause = cause


def _volume_label(path_spec: object) -> str:
    """``p1``, ``p1-lvm2``...: the volumes in ``path_spec``'s chain, as file systems are labelled."""
    chain = _path_spec_chain(path_spec)
    return "-".join(c.split("/")[-1] for c in chain if c.startswith(_VOLUME_PREFIXES))


class _Mediator(volume_scanner.VolumeScannerMediator):
    """Never asks: a locked volume that the given credentials do not open is reported, skipped."""

    def __init__(self, warnings: list[str]) -> None:
        super().__init__()
        self._warnings = warnings

    def GetAPFSVolumeIdentifiers(self, volume_system, volume_identifiers):
        return volume_identifiers

    def GetLVMVolumeIdentifiers(self, volume_system, volume_identifiers):
        return volume_identifiers

    def GetPartitionIdentifiers(self, volume_system, volume_identifiers):
        return volume_identifiers

    def GetVolumeSnapshotIdentifiers(self, volume_system, volume_identifiers):
        return []

    def GetVSSStoreIdentifiers(self, volume_system, volume_identifiers):
        return []

    def PrintWarning(self, warning):
        self._warnings.append(str(warning))

    def UnlockEncryptedVolume(self, source_scanner_object, scan_context, locked_scan_node,
                              credentials):
        chain = _path_spec_chain(locked_scan_node.path_spec)
        label = _volume_label(locked_scan_node.path_spec) or "fs0"
        offset = _volume_offset(locked_scan_node.path_spec)
        where = f"byte offset {offset}" if offset is not None else "offset unknown"
        self._warnings.append(
            f"locked {locked_scan_node.type_indicator} volume {label} ({where}, "
            f"{'|'.join(chain[1:])}): no given credential unlocks it (accepted: "
            f"{', '.join(sorted(credentials.CREDENTIALS))}); skipped")
        return False


#: Path-spec chain items that name a volume: they make up a file system's label (``p1-lvm2``).
_VOLUME_PREFIXES = ("TSK_PARTITION/", "GPT/", "APFS_CONTAINER/", "LVM/", "VSHADOW/", "CS/")


def _volume_offset(path_spec: object) -> int | None:
    """Where the partition or logical volume holding ``path_spec`` starts in its parent, in bytes.

    An examiner told "a volume is locked" must be able to find it with mmls or a hex editor.
    """
    while path_spec is not None:
        location = getattr(path_spec, "location", None)
        if location and location != "/" and path_spec.type_indicator in _VOLUME_SYSTEMS:
            try:
                system = volume_system_factory.Factory.NewVolumeSystem(path_spec.type_indicator)
                system.Open(path_spec_factory.Factory.NewPathSpec(
                    path_spec.type_indicator, location="/", parent=path_spec.parent))
                volume = system.GetVolumeByIdentifier(location.lstrip("/"))
                return int(volume.extents[0].offset) if volume and volume.extents else None
            except (dfvfs_errors.Error, OSError, IndexError):
                return None
        path_spec = path_spec.parent
    return None


_VOLUME_SYSTEMS = {dfvfs_definitions.TYPE_INDICATOR_TSK_PARTITION, dfvfs_definitions.TYPE_INDICATOR_GPT,
                   dfvfs_definitions.TYPE_INDICATOR_LVM}


def _forget_dfvfs_state() -> None:
    """Empty dfvfs's process-wide key chain and file-object cache.

    Both are global: a LUKS volume object opened (locked or unlocked) for an earlier source stays
    cached under its path spec, and an unlock attempt for the next source with the same image
    would get that object back instead of trying the credentials it was given.
    """
    resolver.Resolver.key_chain.Empty()
    resolver.Resolver._resolver_context.Empty()  # dfvfs has no public reset


def _vss_creation_time(path_spec: object) -> str | None:
    """When the VSS store in ``path_spec``'s chain was created (ISO 8601 UTC); None without one.

    dfvfs numbers the stores (``vss1`` is the oldest) but does not say when each snapshot was
    taken, which is what places a file from a shadow copy on the examiner's timeline.
    """
    while path_spec is not None and path_spec.type_indicator != dfvfs_definitions.TYPE_INDICATOR_VSHADOW:
        path_spec = path_spec.parent
    location = getattr(path_spec, "location", None) if path_spec is not None else None
    if not location or location == "/":
        return None
    try:
        system = volume_system_factory.Factory.NewVolumeSystem(dfvfs_definitions.TYPE_INDICATOR_VSHADOW)
        system.Open(path_spec_factory.Factory.NewPathSpec(
            dfvfs_definitions.TYPE_INDICATOR_VSHADOW, location="/", parent=path_spec.parent))
        volume = system.GetVolumeByIdentifier(location.lstrip("/"))
        attribute = volume.GetAttribute("creation_time") if volume is not None else None
        micros = from_filetime(int(attribute.value)) if attribute is not None else None
    except (dfvfs_errors.Error, OSError, AttributeError, TypeError, ValueError):
        return None
    return iso_utc(micros) if micros is not None else None


def _snapshot_selection(vss: str) -> list[str]:
    if vss in ("none", "all"):
        return [vss]
    stores = [f"vss{int(n)}" for n in vss.split(",") if n.strip()]
    return stores or ["none"]


class ImageSource(Source):
    """A disk image file (raw, split raw, E01, VMDK, VHD(X), QCOW2...) opened read-only.

    Args:
        path: the image (for split images, the first segment).
        vss: NTFS Volume Shadow Copies to include: ``none``, ``all`` or ``1,3`` (store numbers).
        credentials: ``(type, value)`` pairs for encrypted volumes, e.g. ``("password", "x")``,
            ``("recovery_password", "...")``, ``("startup_key", path)``, ``("key_data", bytes)``.
    """

    kind = "image"

    def __init__(self, path: str, vss: str = "none",
                 credentials: list[tuple[str, object]] | None = None) -> None:
        if not os.path.isfile(path):
            raise SourceNotFoundError(f"image not found: {path}")
        self.path = os.path.abspath(path)
        self.description = self.path
        self._warnings: list[str] = []
        _forget_dfvfs_state()
        options = volume_scanner.VolumeScannerOptions()
        options.partitions = ["all"]
        options.volumes = ["all"]
        options.snapshots = _snapshot_selection(vss)
        options.credentials = list(credentials or [])
        per_volume = False
        try:
            scanner = volume_scanner.VolumeScanner(mediator=_Mediator(self._warnings))
            self._base_path_specs = scanner.GetBasePathSpecs(self.path, options=options)
        except (dfvfs_errors.Error, OSError, RuntimeError) as exc:
            self._base_path_specs = self._scan_per_volume(options, exc)
            per_volume = True
        # Without a file system the scanner hands back the container itself (even the bare OS
        # file): that is not something we can walk, and walking an OS path spec would read the
        # examiner's own machine.
        found = self._base_path_specs
        self._base_path_specs = [
            spec for spec in found
            if spec.type_indicator in dfvfs_definitions.FILE_SYSTEM_TYPE_INDICATORS
            and spec.type_indicator != dfvfs_definitions.TYPE_INDICATOR_FAKE]
        volumes = [spec for spec in found if spec not in self._base_path_specs
                   and spec.type_indicator not in _CONTAINER_ONLY]
        for spec in volumes:  # a partition table whose volumes hold nothing we can read
            self._warnings.append(
                "no supported file system in " + "|".join(_path_spec_chain(spec)[1:]) + "; skipped")
        if not self._base_path_specs and not volumes and (per_volume or _is_storage_image(self.path)):
            self._warnings.append(f"{path}: a disk image, but no volume holds a supported file system")
        elif not self._base_path_specs and not volumes:
            raise UnrecognisedSourceError(
                f"no supported file system found in {path} (is it a disk image?)")

    def _scan_per_volume(self, options: volume_scanner.VolumeScannerOptions,
                         failure: Exception) -> list[object]:
        """Scan volume by volume after the whole-image scan failed on one of them.

        Every volume that scans is kept; each that does not becomes a warning with its label
        and byte offset, so the examiner can find it. Without a volume system there is nothing
        to split the scan on, and the image stays unrecognised as before.
        """
        self._warnings.clear()  # the failed scan may have reported volumes scanned again below
        scanner = _PerVolumeScanner(mediator=_Mediator(self._warnings))
        try:
            system = scanner.volume_system(self.path)
        except _SCAN_ERRORS:
            system = None
        if system is None:
            raise UnrecognisedSourceError(f"cannot scan image {self.path}: {failure}") from failure
        return self._scan_volumes(scanner, system, options)

    def _scan_volumes(self, scanner: _PerVolumeScanner, system: object,
                      options: volume_scanner.VolumeScannerOptions) -> list[object]:
        """The file systems of each volume of ``system``; a volume that fails is split further.

        A partition holding LVM fails as a whole when one logical volume does: its logical
        volumes are then scanned one by one, so only the unreadable one is lost.
        """
        found: list[object] = []
        # Sub nodes without a location are TSK's unallocated and table slots, which the
        # whole-image scan skips too (it asks for volumes by identifier: /p1, /lvm1...).
        for volume in [sub for sub in system.sub_nodes if getattr(sub.path_spec, "location", None)]:
            mark = len(self._warnings)
            try:
                found.extend(scanner.base_path_specs(volume.path_spec, options))
                continue
            except _VolumeScanError as exc:
                failure = exc
            del self._warnings[mark:]  # what the failed scan reported is reported again below
            try:
                inner = scanner.volume_system(volume.path_spec)
            except _SCAN_ERRORS:
                inner = None
            if inner is not None:
                found.extend(self._scan_volumes(scanner, inner, options))
                continue
            offset = _volume_offset(volume.path_spec)
            where = f"byte offset {offset}" if offset is not None else "offset unknown"
            self._warnings.append(
                f"unreadable volume {_volume_label(volume.path_spec) or 'fs0'} ({where}, "
                f"{failure.chain}): dfvfs cannot scan it ({failure.cause}); skipped")
        return found

    def filesystems(self) -> Iterator[FileSystemView]:
        name = os.path.basename(self.path)
        for index, base in enumerate(self._base_path_specs):
            chain = _path_spec_chain(base)
            parts = [c.split("/")[-1] for c in chain
                     if c.startswith(("TSK_PARTITION/", "GPT/", "APFS_CONTAINER/", "LVM/",
                                      "VSHADOW/", "CS/"))]
            label = "-".join(parts) if parts else f"fs{index}"
            created = _vss_creation_time(base)
            if created is not None:  # VSHADOW/vss1@2026-10-01T08:00:00.000000+00:00
                chain = [f"{c}@{created}" if c.startswith("VSHADOW/") else c for c in chain]
            provenance = f"image:{name}|" + "|".join(chain[1:])
            try:
                yield DfvfsFileSystem(base, label=label, provenance=provenance)
            except (dfvfs_errors.Error, OSError) as exc:
                self._warnings.append(f"cannot open file system {provenance}: {exc}")

    def warnings(self) -> list[str]:
        return list(self._warnings)

    def close(self) -> None:
        _forget_dfvfs_state()
