"""The one ``Source`` contract that disk images, live hosts and loose files all implement.

The collector only ever talks to :class:`FileSystemView` objects: list a directory, stat a path,
open a file, and (where the file system still remembers them) list deleted entries. Whether the
bytes come from dfvfs inside an E01 or from ``os.open`` on a live host is invisible above this
module, so artifact specs, globbing and the bundle writer are written once.
"""

from __future__ import annotations

import abc
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import BinaryIO, Literal

EntryKind = Literal["file", "dir", "symlink", "other"]


@dataclass(frozen=True)
class SourceFile:
    """One directory entry of a source file system, live or deleted.

    Attributes:
        location: POSIX-style absolute path inside the file system (``/var/mail/alice``; NTFS paths
            use ``/`` too, e.g. ``/Windows/System32``).
        name: the entry's own name, kept verbatim (it may hold any byte the file system allows).
        kind: file, dir, symlink or other (device, socket...).
        size: size in bytes as the file system states it.
        times: MACB times and friends in µs since the epoch, keyed ``mtime``/``atime``/``ctime``/
            ``crtime``/``dtime``; a time the file system does not hold is absent, never invented.
        inode: inode / MFT entry number, where the file system has one.
        deleted: the name or inode is unallocated (recovered from file-system metadata).
        provenance: where the bytes come from, e.g. ``image:linux.raw|p1|ext4`` or ``live:/``.
        link_target: the target of a symbolic link (never followed out of the artifact directory).
        opener: returns a fresh binary file object positioned at 0; None when there is no content.
    """

    location: str
    name: str
    kind: EntryKind
    size: int
    times: dict[str, int] = field(default_factory=dict)
    inode: int | None = None
    deleted: bool = False
    provenance: str = ""
    link_target: str | None = None
    opener: Callable[[], BinaryIO] | None = field(default=None, compare=False, repr=False)
    #: Read at most this many bytes: set when the stated size cannot be true (larger than the
    #: volume) and only the data up to the end of the file's last allocated extent is real.
    read_limit: int | None = None
    #: Why ``read_limit`` was set, for the manifest.
    limit_reason: str | None = None

    def open(self) -> BinaryIO:
        """Open the content read-only; raises OSError where there is none or it cannot be read."""
        if self.opener is None:
            raise OSError(f"no content available for {self.location}")
        return self.opener()


class RestartRead(OSError):
    """Raised by a reader that switched to its fallback mid-file: copy again from byte 0.

    The fast path for image content reads through The Sleuth Kit; where TSK fails on a file that
    dfvfs can read, the reader changes over once and the bundle writer discards what it copied.
    """


class FileSystemView(abc.ABC):
    """A read-only view of one file system (a partition, a snapshot, a live mount, a folder)."""

    #: Short label used in bundle paths and provenance (``p1``, ``live``, ``vss1``...).
    label: str
    #: Human-readable description of where the file system lives.
    provenance: str
    #: Whether names compare case-sensitively (ext: yes; NTFS/FAT/HFS+ default: no).
    case_sensitive: bool = True

    @abc.abstractmethod
    def stat(self, location: str) -> SourceFile | None:
        """Return the entry at ``location`` or None when it does not exist."""

    @abc.abstractmethod
    def list_dir(self, location: str) -> Iterator[SourceFile]:
        """Yield the allocated entries of the directory ``location`` (may raise OSError)."""

    def deleted_entries(self, location: str) -> Iterator[SourceFile]:
        """Yield unallocated names/inodes under the directory ``location``.

        File systems that cannot see deleted entries (a live mount) yield nothing.
        """
        return iter(())


class Source(abc.ABC):
    """A piece of evidence: an image, a live host, a mounted directory or loose files."""

    #: What the examiner pointed us at (path or ``live:/``), for the report.
    description: str
    #: ``image``, ``live``, ``directory`` or ``loose``.
    kind: str

    @abc.abstractmethod
    def filesystems(self) -> Iterator[FileSystemView]:
        """Yield every file system found in the source."""

    def warnings(self) -> list[str]:
        """Problems found while opening the source (locked volumes, unreadable partitions)."""
        return []

    def close(self) -> None:  # noqa: B027 - optional hook, most sources hold nothing
        """Release handles on the evidence."""
