"""Disk images through dfvfs: containers, volume systems and file systems (the only dfvfs user).

``ImageSource`` scans the image with dfvfs's volume scanner (every partition, no snapshots yet)
and exposes each file system it finds as a :class:`FileSystemView`. For file systems The Sleuth
Kit can read, deleted names are listed through :mod:`collector.tsk_deleted` on the same volume
bytes, because dfvfs's own directory walk skips unallocated names.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Iterator

from dfvfs.helpers import source_scanner, volume_scanner
from dfvfs.lib import definitions as dfvfs_definitions
from dfvfs.lib import errors as dfvfs_errors
from dfvfs.path import factory as path_spec_factory
from dfvfs.resolver import resolver

from collector.errors import SourceNotFoundError, UnrecognisedSourceError
from collector.source import EntryKind, FileSystemView, Source, SourceFile
from collector.tsk_deleted import TskDeletedLister

_TIME_ATTRIBUTES = {"mtime": "modification_time", "atime": "access_time",
                    "ctime": "change_time", "crtime": "creation_time"}
#: Scanner results that are just the file (or its container), not a volume inside it.
_CONTAINER_ONLY = {dfvfs_definitions.TYPE_INDICATOR_OS, dfvfs_definitions.TYPE_INDICATOR_RAW,
                   dfvfs_definitions.TYPE_INDICATOR_EWF, dfvfs_definitions.TYPE_INDICATOR_QCOW,
                   dfvfs_definitions.TYPE_INDICATOR_VHDI, dfvfs_definitions.TYPE_INDICATOR_VMDK,
                   dfvfs_definitions.TYPE_INDICATOR_MODI, dfvfs_definitions.TYPE_INDICATOR_PHDI,
                   dfvfs_definitions.TYPE_INDICATOR_FAKE}
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
        opener = None
        if kind == "file" and self._has_default_stream(file_entry):
            opener = functools.partial(_open_entry, file_entry)
        size = int(file_entry.size or 0) if kind == "file" else 0
        limit, reason = self._read_limit(file_entry, size) if opener is not None else (None, None)
        return SourceFile(location=location, name=location.rsplit("/", 1)[-1], kind=kind,
                          size=size, times=times, inode=inode, provenance=self.provenance,
                          link_target=link, opener=opener, read_limit=limit, limit_reason=reason)

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
        try:
            file_entry = self._fs.GetFileEntryByPathSpec(self._path_spec(location))
        except (dfvfs_errors.Error, OSError) as exc:
            raise OSError(str(exc)) from exc
        if file_entry is None:
            raise FileNotFoundError(location)
        if not file_entry.IsDirectory():
            raise NotADirectoryError(location)
        base = location.rstrip("/")
        try:
            children = []
            for child in file_entry.sub_file_entries:
                name = child.name
                if name is None or "/" in name or "\x00" in name:
                    raise OSError(f"dfvfs cannot name an entry of {location}")
                if name not in (".", ".."):
                    children.append((name, child))
        except (AttributeError, OSError, UnicodeError, dfvfs_errors.Error) as exc:
            # Names dfvfs cannot represent (not UTF-8, overlong, 255-byte multibyte): list the
            # directory through TSK instead, with the raw names kept as surrogate escapes.
            lister = self._deleted_lister()
            if lister is None:
                raise OSError(f"{location}: {exc}") from exc
            yield from sorted(lister.live_entries(location), key=lambda entry: entry.name)
            return
        for name, child in sorted(children, key=lambda item: item[0]):
            yield self._entry(f"{base}/{name}", child)

    def deleted_entries(self, location: str) -> Iterator[SourceFile]:
        lister = self._deleted_lister()
        if lister is None:
            return iter(())
        return lister.deleted_entries(self._tsk_location(location))

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
                                             case_sensitive=self.case_sensitive)
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
        chain = "|".join(_path_spec_chain(locked_scan_node.path_spec)[1:])
        self._warnings.append(
            f"locked {locked_scan_node.type_indicator} volume at {chain}: no given credential "
            f"unlocks it (accepted: {', '.join(sorted(credentials.CREDENTIALS))}); skipped")
        return False


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
        options = volume_scanner.VolumeScannerOptions()
        options.partitions = ["all"]
        options.volumes = ["all"]
        options.snapshots = _snapshot_selection(vss)
        options.credentials = list(credentials or [])
        try:
            scanner = volume_scanner.VolumeScanner(mediator=_Mediator(self._warnings))
            self._base_path_specs = scanner.GetBasePathSpecs(self.path, options=options)
        except (dfvfs_errors.Error, OSError, RuntimeError) as exc:
            raise UnrecognisedSourceError(f"cannot scan image {path}: {exc}") from exc
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
        if not self._base_path_specs and not volumes and _is_storage_image(self.path):
            self._warnings.append(f"{path}: a disk image, but no volume holds a supported file system")
        elif not self._base_path_specs and not volumes:
            raise UnrecognisedSourceError(
                f"no supported file system found in {path} (is it a disk image?)")

    def filesystems(self) -> Iterator[FileSystemView]:
        name = os.path.basename(self.path)
        for index, base in enumerate(self._base_path_specs):
            chain = _path_spec_chain(base)
            parts = [c.split("/")[-1] for c in chain
                     if c.startswith(("TSK_PARTITION/", "GPT/", "APFS_CONTAINER/", "LVM/",
                                      "VSHADOW/", "CS/"))]
            label = "-".join(parts) if parts else f"fs{index}"
            provenance = f"image:{name}|" + "|".join(chain[1:])
            try:
                yield DfvfsFileSystem(base, label=label, provenance=provenance)
            except (dfvfs_errors.Error, OSError) as exc:
                self._warnings.append(f"cannot open file system {provenance}: {exc}")

    def warnings(self) -> list[str]:
        return list(self._warnings)

    def close(self) -> None:
        resolver.Resolver.key_chain.Empty()
