"""Declarative artifact specs: one YAML file per artifact in ``collector/artifacts/``.

The shape follows ForensicArtifacts (``name``, ``doc``, ``supported_os``, ``paths`` with
``%%users.homedir%%`` expansion) plus ``category`` and ``parsers`` (the parser names that read the
collected files). Adding an artifact is adding one YAML file; nothing here names a single one.
"""

from __future__ import annotations

import logging
import ntpath
import re
from collections.abc import Iterable
from dataclasses import dataclass
from importlib import resources

import pyregf

from collector.errors import InboxtrailError
from collector.source import FileSystemView, SourceFile
from collector.yamlfile import load_yaml

log = logging.getLogger("inboxtrail.collect")

_VARIABLE = re.compile(r"%%users\.(homedir|username)%%")
_HOME_GLOBS = ("/home/*", "/Users/*", "/export/home/*")
_SKIP_HOMES = {"Shared", "Public", "Default", "Default User", "All Users", "lost+found"}
#: Homes of their own: Unix root, macOS root (``/var`` links to ``/private/var`` there, and
#: collection never follows a link, so the real path comes first).
_FIXED_HOMES = (("root", "/root"), ("root", "/private/var/root"), ("root", "/var/root"))
#: Where Windows keeps the SOFTWARE hive, whose ProfileList names every profile folder.
SOFTWARE_HIVE = "/Windows/System32/config/SOFTWARE"
_CURRENT_VERSION = "\\Microsoft\\Windows NT\\CurrentVersion"
_PROFILE_LIST = _CURRENT_VERSION + "\\ProfileList"
#: Account names of the well-known system profiles (their folders are named otherwise).
_WELL_KNOWN_SIDS = {"S-1-5-18": "SYSTEM", "S-1-5-19": "LOCAL SERVICE", "S-1-5-20": "NETWORK SERVICE"}
_ENVIRONMENT = re.compile(r"%([A-Za-z_][A-Za-z0-9_]*)%")


@dataclass(frozen=True)
class ArtifactSpec:
    """One artifact: where it lives and which parsers read it."""

    name: str
    doc: str
    category: str
    supported_os: tuple[str, ...]
    paths: tuple[str, ...]
    parsers: tuple[str, ...]


@dataclass(frozen=True)
class UserHome:
    """A user profile directory on one file system."""

    username: str
    homedir: str
    #: The account's SID where the Windows registry names the profile.
    sid: str | None = None


def load_artifacts(names: Iterable[str] | None = None) -> list[ArtifactSpec]:
    """Load every bundled spec (sorted by name), optionally narrowed to ``names``."""
    specs: list[ArtifactSpec] = []
    folder = resources.files("collector") / "artifacts"
    for item in sorted(folder.iterdir(), key=lambda p: p.name):
        if not item.name.endswith((".yaml", ".yml")):
            continue
        data = load_yaml(item.read_text(encoding="utf-8"))
        try:
            specs.append(ArtifactSpec(
                name=data["name"], doc=data.get("doc", "").strip(),
                category=data.get("category", "other"),
                supported_os=tuple(data.get("supported_os", ())),
                paths=tuple(data["paths"]), parsers=tuple(data.get("parsers", ()))))
        except (KeyError, TypeError) as exc:
            raise InboxtrailError(f"artifact spec {item.name} is malformed: {exc}") from exc
    if names is not None:
        wanted = set(names)
        unknown = wanted - {s.name for s in specs}
        if unknown:
            raise InboxtrailError(
                f"unknown artifact(s): {', '.join(sorted(unknown))}; see `inboxtrail list artifacts`")
        specs = [s for s in specs if s.name in wanted]
    return specs


def _passwd_homes(fs: FileSystemView) -> list[UserHome]:
    entry = fs.stat("/etc/passwd")
    if entry is None or entry.kind != "file" or entry.size > 16 * 1024 * 1024:
        return []
    try:
        with entry.open() as handle:
            text = handle.read().decode("utf-8", "surrogateescape")
    except OSError:
        return []
    homes = []
    for line in text.splitlines():
        fields = line.split(":")
        if len(fields) >= 7 and fields[5].startswith("/") and fields[5] not in ("/", "/nonexistent"):
            homes.append(UserHome(username=fields[0], homedir=fields[5].rstrip("/") or "/"))
    return homes


def _find_dir(fs: FileSystemView, location: str) -> SourceFile | None:
    """The directory at ``location``, its names compared without case where the exact path
    fails (the registry says ``C:\\WINDOWS\\system32``; a mounted copy may be case-sensitive)."""
    entry = fs.stat(location)
    if entry is not None or location == "/":
        return entry if entry is None or entry.kind == "dir" else None
    current = "/"
    for part in [p for p in location.split("/") if p]:
        try:
            children = list(fs.list_dir(current))
        except OSError:
            return None
        match = next((c for c in children if c.name == part), None) or next(
            (c for c in children if c.name.casefold() == part.casefold()), None)
        if match is None or match.kind != "dir":
            return None
        current = match.location
    return fs.stat(current)


def _string(key: object, name: str) -> str | None:
    value = key.get_value_by_name(name)  # type: ignore[attr-defined]
    if value is None or value.get_type() not in (1, 2):  # REG_SZ, REG_EXPAND_SZ
        return None
    return value.get_data_as_string()


def _volume_location(path: str, variables: dict[str, str], drive: str) -> str | None:
    """``D:\\Profiles\\bob`` as a location on the volume whose drive letter is ``drive``."""
    expanded = _ENVIRONMENT.sub(lambda m: variables.get(m.group(1).lower(), m.group(0)), path)
    head, tail = ntpath.splitdrive(expanded)
    if "%" in expanded or head.upper() != drive.upper():
        return None  # another volume, a network share, or a variable we cannot know
    return "/" + "/".join(p for p in tail.replace("\\", "/").split("/") if p)


def registry_homes(fs: FileSystemView, warnings: list[str] | None = None) -> list[UserHome]:
    """Windows profiles from ``HKLM\\SOFTWARE\\...\\ProfileList`` (``ProfileImagePath``).

    Profiles outside ``C:/Users`` (a ``D:\\Profiles`` folder, the system and service profiles)
    are listed only there. A path maps onto ``fs`` when its drive letter is the system drive the
    hive names (``CurrentVersion\\SystemRoot``, the volume the hive lives on). A missing or
    unreadable hive on a Windows volume is a warning; the caller still has ``/Users/*``.
    """
    def warn(message: str) -> None:
        log.warning("%s", message)
        if warnings is not None:
            warnings.append(message)

    hive = fs.stat(SOFTWARE_HIVE) or _find_file(fs, SOFTWARE_HIVE)
    if hive is None:
        if _find_dir(fs, "/Windows/System32") is not None:
            warn(f"{fs.label}: no registry hive {SOFTWARE_HIVE}; Windows profiles are taken from "
                 "/Users/* only")
        return []
    homes: list[UserHome] = []
    try:
        with hive.open() as handle:
            regf = pyregf.file()
            regf.open_file_object(handle)
            try:
                version = regf.get_key_by_path(_CURRENT_VERSION)
                system_root = (version is not None and _string(version, "SystemRoot")) or "C:\\Windows"
                drive = ntpath.splitdrive(system_root)[0] or "C:"
                variables = {"systemroot": system_root, "windir": system_root, "systemdrive": drive}
                profiles = regf.get_key_by_path(_PROFILE_LIST)
                for key in profiles.sub_keys if profiles is not None else ():
                    sid = key.get_name()
                    path = _string(key, "ProfileImagePath")
                    location = _volume_location(path, variables, drive) if path else None
                    if location is None:
                        if path:
                            log.info("%s: profile %s at %s is not on this volume", fs.label, sid, path)
                        continue
                    account = sid.removesuffix(".bak")
                    name = _WELL_KNOWN_SIDS.get(account) or location.rsplit("/", 1)[-1] or account
                    homes.append(UserHome(name, location, account))
            finally:
                regf.close()
    except OSError as exc:
        warn(f"{fs.label}: registry hive {hive.location} unreadable ({exc}); Windows profiles are "
             "taken from /Users/* only")
        return []
    return homes


def _find_file(fs: FileSystemView, location: str) -> SourceFile | None:
    folder = _find_dir(fs, location.rsplit("/", 1)[0])
    if folder is None:
        return None
    name = location.rsplit("/", 1)[1].casefold()
    try:
        return next((c for c in fs.list_dir(folder.location)
                     if c.kind == "file" and c.name.casefold() == name), None)
    except OSError:
        return None


def user_homes(fs: FileSystemView, warnings: list[str] | None = None) -> list[UserHome]:
    """Every user profile on ``fs``: ``/etc/passwd`` entries, the Windows registry's ProfileList,
    a live host's own account homes, ``/root`` and ``/var/root`` and the usual home roots.

    Only directories that exist are returned (at their real path and case), de-duplicated by
    path and sorted for determinism. Problems reading the registry go to ``warnings``.
    """
    candidates = [*_passwd_homes(fs), *registry_homes(fs, warnings),
                  *(UserHome(user, home) for user, home in _account_homes(fs)),
                  *(UserHome(user, home) for user, home in _FIXED_HOMES)]
    for home_glob in _HOME_GLOBS:
        parent = home_glob[:-2]
        try:
            children = list(fs.list_dir(parent)) if fs.stat(parent) else []
        except OSError:
            children = []
        candidates += [UserHome(c.name, c.location) for c in children
                       if c.kind == "dir" and c.name not in _SKIP_HOMES]
    seen: dict[object, UserHome] = {}
    for home in candidates:
        entry = _find_dir(fs, home.homedir)
        if entry is None:
            continue
        # One folder reached by two paths (macOS /var/root is /private/var/root) counts once.
        key = entry.inode or (entry.location if fs.case_sensitive else entry.location.lower())
        if key not in seen:
            seen[key] = UserHome(home.username, entry.location, home.sid)
    return sorted(seen.values(), key=lambda h: h.homedir)


def _account_homes(fs: FileSystemView) -> list[tuple[str, str]]:
    """A live host's homes from its own account database (``DirectoryFileSystem``), if any."""
    method = getattr(fs, "account_homes", None)
    try:
        return list(method()) if callable(method) else []
    except OSError:
        return []


def glob_escape(text: str) -> str:
    """Escape ``*``, ``?`` and ``[`` so that a pattern segment matches the text literally."""
    return "".join(f"[{c}]" if c in "*?[" else c for c in text)


def expand_path(pattern: str, homes: list[UserHome]) -> list[str]:
    """Expand ``%%users.homedir%%`` / ``%%users.username%%`` into one pattern per user."""
    if not _VARIABLE.search(pattern):
        return [pattern]
    expanded = []
    for home in homes:  # a home named like a glob (/home/m[a]llory) must match only itself
        value = {"homedir": glob_escape(home.homedir), "username": glob_escape(home.username)}
        expanded.append(_VARIABLE.sub(lambda m, v=value: v[m.group(1)], pattern))
    return sorted(set(expanded))


def owner_of(location: str, homes: list[UserHome]) -> tuple[str | None, str | None]:
    """(user, home directory) a path belongs to: the home it lies in, or the spool's own name."""
    match = re.match(r"^/var/(?:spool/)?mail/([^/]+)$", location)
    if match:  # a spool is named after its user (the `mail` account's home is /var/mail)
        user = match.group(1)
        return user, next((h.homedir for h in homes if h.username == user), None)
    for home in sorted(homes, key=lambda h: len(h.homedir), reverse=True):
        if location == home.homedir or location.startswith(home.homedir.rstrip("/") + "/"):
            return home.username, home.homedir
    return None, None


def read_hostname(fs: FileSystemView) -> str | None:
    """The host name a Unix-like file system was configured with, where it records one."""
    for location in ("/etc/hostname", "/etc/HOSTNAME", "/private/etc/hostname"):
        entry = fs.stat(location)
        if entry is None or entry.kind != "file" or entry.size > 4096:
            continue
        try:
            with entry.open() as handle:
                text = handle.read(4096).decode("utf-8", "replace")
        except OSError:
            continue
        for line in text.splitlines():
            line = line.split("#", 1)[0].strip()
            if line:
                return line
    return None
