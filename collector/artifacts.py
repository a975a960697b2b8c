"""Declarative artifact specs: one YAML file per artifact in ``collector/artifacts/``.

The shape follows ForensicArtifacts (``name``, ``doc``, ``supported_os``, ``paths`` with
``%%users.homedir%%`` expansion) plus ``category`` and ``parsers`` (the parser names that read the
collected files). Adding an artifact is adding one YAML file; nothing here names a single one.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from importlib import resources

from collector.errors import InboxtrailError
from collector.source import FileSystemView
from collector.yamlfile import load_yaml

_VARIABLE = re.compile(r"%%users\.(homedir|username)%%")
_HOME_GLOBS = ("/home/*", "/Users/*", "/export/home/*")
_SKIP_HOMES = {"Shared", "Public", "Default", "Default User", "All Users", "lost+found"}


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


def user_homes(fs: FileSystemView) -> list[UserHome]:
    """Every user profile on ``fs``: ``/etc/passwd`` entries, ``/root`` and the usual home roots.

    Only directories that exist are returned, de-duplicated by path and sorted for determinism.
    """
    candidates = [*_passwd_homes(fs), UserHome("root", "/root")]
    for home_glob in _HOME_GLOBS:
        parent = home_glob[:-2]
        try:
            children = list(fs.list_dir(parent)) if fs.stat(parent) else []
        except OSError:
            children = []
        candidates += [UserHome(c.name, c.location) for c in children
                       if c.kind == "dir" and c.name not in _SKIP_HOMES]
    seen: dict[str, UserHome] = {}
    for home in candidates:
        key = home.homedir if fs.case_sensitive else home.homedir.lower()
        if key in seen:
            continue
        entry = fs.stat(home.homedir)
        if entry is not None and entry.kind == "dir":
            seen[key] = home
    return sorted(seen.values(), key=lambda h: h.homedir)


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
