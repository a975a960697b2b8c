"""The running host (``--live`` means ``/``) or a mounted directory used as a file-system root.

Reading must not change what it reads: files are opened with ``O_NOATIME`` where the kernel
allows it (owner or CAP_FOWNER), symbolic links are recorded and never followed, and nothing is
ever opened for writing.

On Windows a running program keeps its EVTX logs, PST/OST stores and the Unistore database open
without sharing them; opening such a file fails with a sharing violation. Those files are then
read through the raw volume (``\\\\.\\C:``) with The Sleuth Kit, by their path inside it
(:class:`RawVolume`), and the manifest's provenance says so.
"""

from __future__ import annotations

import dataclasses
import errno
import functools
import io
import ntpath
import os
import stat as stat_mod
import sys
import threading
from collections.abc import Callable, Iterable, Iterator
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


#: Windows errors of a file another process holds open without sharing it:
#: ERROR_SHARING_VIOLATION (32) and ERROR_LOCK_VIOLATION (33).
_SHARING_VIOLATIONS = frozenset({32, 33})


def is_sharing_violation(exc: BaseException) -> bool:
    """Whether an open failed because another process locks the file (Windows only)."""
    return isinstance(exc, OSError) and getattr(exc, "winerror", None) in _SHARING_VIOLATIONS


class RawVolume:
    """One NTFS (or other TSK-readable) volume read below the OS: a locked file's bytes by path.

    Args:
        volume_path: the raw volume (``\\\\.\\C:`` on a live Windows host; an image of the
            volume, or a disk image with ``offset``, anywhere else). Opened read-only, on first use.
        offset: byte offset of the file system inside ``volume_path``.
    """

    def __init__(self, volume_path: str, offset: int = 0) -> None:
        self.volume_path = volume_path
        self.offset = offset
        self._fs: object | None = None
        self._lock = threading.Lock()

    def _file_system(self) -> object:
        with self._lock:
            if self._fs is None:
                import pytsk3  # only needed once a locked file is met

                try:
                    self._fs = pytsk3.FS_Info(pytsk3.Img_Info(self.volume_path), offset=self.offset)
                except OSError as exc:
                    raise OSError(f"cannot open raw volume {self.volume_path}: {exc}") from exc
            return self._fs

    def _meta(self, path: str) -> tuple[int, int]:
        """(inode, size) of the regular file at ``path`` (``/``-separated, from the volume root)."""
        fs = self._file_system()
        try:
            meta = fs.open("/" + path.strip("/")).info.meta
        except OSError as exc:
            raise FileNotFoundError(f"{path} not found in raw volume {self.volume_path}: {exc}") from exc
        if meta is None:
            raise OSError(f"{path}: no metadata in raw volume {self.volume_path}")
        return int(meta.addr), int(meta.size)

    def size(self, path: str) -> int:
        """The size the volume's own metadata gives ``path`` (what :meth:`open` will read)."""
        return self._meta(path)[1]

    def open(self, path: str) -> BinaryIO:
        """A read-only file object over the file at ``path`` inside the volume."""
        from collector.tsk_deleted import TskInodeReader

        inode, size = self._meta(path)
        return io.BufferedReader(TskInodeReader(self._file_system(), inode, size), buffer_size=1 << 20)


def windows_raw_volume(root: str) -> tuple[RawVolume, str] | None:
    """The raw volume under a Windows directory and the directory's path inside it.

    ``C:\\`` gives ``(\\\\.\\C:, "/")``; ``C:\\Mount\\x`` gives ``(\\\\.\\C:, "/Mount/x")``.
    UNC and other drive-less paths have no raw volume to read.
    """
    drive, tail = ntpath.splitdrive(root)  # Windows rules on any OS, so it is testable
    if len(drive) != 2 or drive[1] != ":":
        return None
    inner = "/" + "/".join(p for p in tail.replace("\\", "/").split("/") if p)
    return RawVolume(f"\\\\.\\{drive.upper()}"), inner


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
    """A directory tree treated as a file system whose ``/`` is ``root``.

    Args:
        raw_volume: where a file that another process locks is read instead: the raw volume
            holding ``root`` and ``root``'s path inside it (see :func:`windows_raw_volume`).
        normal_open: how a file is opened normally (:func:`open_noatime`).
        account_homes: (user, home directory on the host) pairs from the host's own account
            database; only a live host's root has them (see :func:`live_account_homes`).
        live_os_name: ``linux``, ``darwin`` or ``windows`` for a live host's root (its homes
            are looked for where that OS keeps them, :data:`LIVE_HOMES`); None otherwise.
    """

    def __init__(self, root: str, label: str = "live", provenance: str | None = None,
                 raw_volume: tuple[RawVolume, str] | None = None,
                 normal_open: Callable[[str], BinaryIO] = open_noatime,
                 account_homes: Iterable[tuple[str, str]] = (),
                 live_os_name: str | None = None) -> None:
        self.root = os.path.abspath(root)
        self.label = label
        self.provenance = provenance or f"dir:{self.root}"
        self.case_sensitive = os.path.normcase("A") != os.path.normcase("a")
        self._raw = raw_volume
        self._open = normal_open
        self._account_homes = list(account_homes)
        self._live_os = live_os_name

    def account_homes(self) -> list[tuple[str, str]]:
        """(user, location) of every home of a live host: its OS's home folders and the homes
        its account database names inside ``root``. A mounted directory has none: the
        examiner's own accounts say nothing about it."""
        homes = set()
        for user, home in self._account_homes:
            location = home_location(self.root, home)
            if location is not None:
                homes.add((user, location))
        layout = LIVE_HOMES.get(self._live_os or "", {})
        for location in layout.get("homes", ()):
            if os.path.isdir(self._host_path(location)):
                homes.add((location.rsplit("/", 1)[-1], location))
        for parent in layout.get("parents", ()):
            try:
                names = _list_names(self._host_path(parent))
            except OSError:
                continue
            for name in names:
                path = self._host_path(f"{parent}/{name}")
                if name not in _NOT_HOMES and os.path.isdir(path) and not os.path.islink(path):
                    homes.add((name, f"{parent}/{name}"))
        return sorted(homes)

    def _raw_entry(self, entry: SourceFile, host_path: str) -> SourceFile:
        """Probe a file's normal open; a file locked by another process is read from the volume.

        The probe is what lets the manifest say how the bytes were read: the provenance of a
        locked file names the raw volume and the reason, and its size is the volume's.
        """
        try:
            self._open(host_path).close()
        except OSError as exc:
            if not is_sharing_violation(exc) or self._raw is None:
                return entry
            volume, inner_root = self._raw
            inner = inner_root.rstrip("/") + entry.location
            try:
                size = volume.size(inner)
            except OSError:
                return entry  # not in the volume either: the normal open fails with its reason
            reason = f"locked by another process ([WinError {exc.winerror}])"
            return dataclasses.replace(
                entry, size=size, opener=functools.partial(volume.open, inner),
                provenance=f"{entry.provenance}|raw:{volume.volume_path}|tsk:{inner} ({reason})")
        return entry

    def _open_live(self, host_path: str, location: str) -> BinaryIO:
        """The normal open; a file locked since it was probed is read from the raw volume."""
        try:
            return self._open(host_path)
        except OSError as exc:
            if self._raw is None or not is_sharing_violation(exc):
                raise
            volume, inner_root = self._raw
            try:
                return volume.open(inner_root.rstrip("/") + location)
            except OSError as raw_exc:
                raise exc from raw_exc  # the lock is the reason; the raw read's failure is its cause

    def _host_path(self, location: str) -> str:
        parts = [p for p in location.split("/") if p not in ("", ".", "..")]
        return os.path.join(self.root, *parts)

    def _entry(self, location: str, host_path: str, st: os.stat_result) -> SourceFile:
        kind = _kind(st.st_mode)
        link = os.readlink(host_path) if kind == "symlink" else None
        opener = None
        if kind == "file":
            opener = (functools.partial(self._open_live, host_path, location) if self._raw
                      else functools.partial(self._open, host_path))
        entry = SourceFile(
            location=location, name=location.rsplit("/", 1)[-1], kind=kind, size=st.st_size,
            times=_times(st), inode=st.st_ino, provenance=self.provenance, link_target=link,
            opener=opener)
        return self._raw_entry(entry, host_path) if self._raw and kind == "file" else entry

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
    """A live host (``/``) or a mounted image / extracted tree given as a root directory.

    On a live Windows host ``/`` means the system drive (``%SystemDrive%\\``, not the current
    drive), and locked files are read through the raw volume under the root. ``raw_volume`` and
    ``normal_open`` override both (what the tests give on Linux: an NTFS image as the volume).
    """

    def __init__(self, root: str, live: bool = False,
                 raw_volume: tuple[RawVolume, str] | None = None,
                 normal_open: Callable[[str], BinaryIO] = open_noatime) -> None:
        if live and os.name == "nt" and root in ("/", "\\"):
            root = os.environ.get("SystemDrive", "C:") + "\\"
        if not os.path.isdir(root):
            raise SourceNotFoundError(f"source directory not found: {root}")
        self.root = str(Path(root).resolve())
        self.kind = "live" if live else "directory"
        self.description = f"live:{self.root}" if live else self.root
        if raw_volume is None and live and os.name == "nt":
            raw_volume = windows_raw_volume(self.root)
        self._raw = raw_volume
        self._open = normal_open

    def filesystems(self) -> Iterator[FileSystemView]:
        label = "live" if self.kind == "live" else "root"
        live = self.kind == "live"
        yield DirectoryFileSystem(self.root, label=label, provenance=f"{self.kind}:{self.root}",
                                  raw_volume=self._raw, normal_open=self._open,
                                  account_homes=live_account_homes() if live else (),
                                  live_os_name=live_os() if live else None)


# -- user homes of the running host ----------------------------------------------------------
#: Where each OS keeps its users' homes, relative to its root (the system drive on Windows):
#: folders whose subfolders are homes, and homes of their own. The account database adds homes
#: kept elsewhere.
LIVE_HOMES: dict[str, dict[str, tuple[str, ...]]] = {
    "linux": {"parents": ("/home",), "homes": ("/root",)},
    "darwin": {"parents": ("/Users",), "homes": ("/var/root",)},
    "windows": {"parents": ("/Users",), "homes": ()},
}
#: Profile folders that belong to nobody (Windows templates, macOS shared folder).
_NOT_HOMES = frozenset({"Shared", "Public", "Default", "Default User", "All Users", "lost+found"})


def live_os() -> str:
    """``windows``, ``darwin`` or ``linux`` (any other POSIX system counts as linux here)."""
    if os.name == "nt":
        return "windows"
    return "darwin" if sys.platform == "darwin" else "linux"


def homes_from_passwd(entries: Iterable[tuple[str, str]]) -> list[tuple[str, str]]:
    """(user, home) of password-database entries that own a real home directory.

    Service accounts with ``/``, ``/nonexistent`` or ``/dev/null`` as home are left out.
    """
    skip = {"", "/", "/nonexistent", "/dev/null", "/var/empty"}
    return sorted({(user, home.rstrip("/") or "/") for user, home in entries
                   if home.startswith("/") and home.rstrip("/") not in skip})


def homes_from_profile_list(profiles: Iterable[tuple[str, str]],
                            environ: dict[str, str]) -> list[tuple[str, str]]:
    """(user, home) from Windows ProfileList values: (SID, ProfileImagePath).

    ``ProfileImagePath`` is REG_EXPAND_SZ (``%SystemDrive%\\Users\\dave``,
    ``%systemroot%\\system32\\config\\systemprofile``); variables are expanded from
    ``environ`` (case-insensitive, as Windows does). The user is the profile folder's name.
    """
    env = {k.upper(): v for k, v in environ.items()}

    def expand(text: str) -> str:
        parts = text.split("%")
        out = [parts[0]]
        for i in range(1, len(parts), 2):
            name = parts[i]
            tail = parts[i + 1] if i + 1 < len(parts) else None
            out.append(env.get(name.upper(), f"%{name}%") if tail is not None else f"%{name}")
            out.append(tail or "")
        return "".join(out)

    homes = set()
    for _sid, path in profiles:
        expanded = expand(path).replace("/", "\\").rstrip("\\")
        if expanded and "%" not in expanded:
            homes.add((expanded.rsplit("\\", 1)[-1], expanded))
    return sorted(homes)


def home_location(root: str, home: str) -> str | None:
    """``home`` (a host path) as a location inside ``root``, or None when it lies elsewhere."""
    if os.name == "nt" or (len(home) > 1 and home[1] == ":"):
        norm_root = root.replace("/", "\\").rstrip("\\").lower()
        norm_home = home.replace("/", "\\")
        if not norm_home.lower().startswith(norm_root + "\\") and norm_home.lower() != norm_root:
            return None
        tail = norm_home[len(norm_root):]
        return "/" + "/".join(p for p in tail.split("\\") if p)
    norm_root = root.rstrip("/")
    if home != norm_root and not home.startswith(norm_root + "/"):
        return None
    return "/" + "/".join(p for p in home[len(norm_root):].split("/") if p)


def live_account_homes() -> list[tuple[str, str]]:
    """(user, home) pairs from the running host's own account database.

    Linux and macOS: ``getpwall()``, which also returns directory-service and NSS accounts
    (LDAP, sssd, Open Directory) that ``/etc/passwd`` does not list. Windows: the registry's
    ProfileList, which names every profile folder, wherever it lives. Unreadable databases give
    no homes (the artifact specs' home globs still apply).
    """
    if os.name == "nt":
        try:
            import winreg  # type: ignore[import-not-found]

            key_path = r"SOFTWARE\Microsoft\Windows NT\CurrentVersion\ProfileList"
            profiles = []
            with winreg.OpenKey(winreg.HKEY_LOCAL_MACHINE, key_path) as key:
                for index in range(winreg.QueryInfoKey(key)[0]):
                    sid = winreg.EnumKey(key, index)
                    with winreg.OpenKey(key, sid) as sub:
                        profiles.append((sid, str(winreg.QueryValueEx(sub, "ProfileImagePath")[0])))
        except OSError:
            return []
        return homes_from_profile_list(profiles, dict(os.environ))
    try:
        import pwd

        return homes_from_passwd((entry.pw_name, entry.pw_dir) for entry in pwd.getpwall())
    except (ImportError, OSError, KeyError):
        return []
