"""Deletion evidence shared by the mail-store parsers (mbox, Maildir, Dovecot, Thunderbird).

Mail clients leave the same kinds of traces whatever the store: numbering (IMAP UIDs) that skips the
messages that were expunged, flags that mark a message deleted before it is purged, folders that
hold trashed mail, and message files that an index still names. The helpers here turn those into
facts (ranges, flags, names) so that each parser only has to say where it found them.
"""

from __future__ import annotations

import functools
import json
import os
import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import IO, Any, TypeVar

from collector.timeutil import parse_iso

T = TypeVar("T")
#: Thunderbird nsMsgMessageFlags bits that say a message is gone or going.
MOZILLA_EXPUNGED = 0x0008
MOZILLA_IMAP_DELETED = 0x00200000
_MOZILLA_NAMES = {
    0x0001: "Read", 0x0002: "Replied", 0x0004: "Marked", 0x0008: "Expunged", 0x0010: "HasRe",
    0x0020: "Elided", 0x0080: "Offline", 0x0100: "Watched", 0x0200: "SenderAuthed",
    0x0400: "Partial", 0x0800: "Queued", 0x1000: "Forwarded", 0x00010000: "New",
    0x00040000: "Ignored", 0x00200000: "IMAPDeleted", 0x00400000: "MDNReportNeeded",
    0x00800000: "MDNReportSent", 0x01000000: "Template", 0x10000000: "Attachment"}

#: Folder names that mail clients use for trashed mail (case-insensitive, last path element).
TRASH_FOLDER_NAMES = frozenset({
    "trash", "deleted", "deleted items", "deleted messages", "bin", "papierkorb",
    "gelöschte elemente", "corbeille", "éléments supprimés", "papelera", "cestino"})

#: Maildir "info" flags (after ``:2,``), as the Maildir specification and Dovecot name them.
MAILDIR_FLAGS = {"P": "passed", "R": "replied", "S": "seen", "T": "trashed", "D": "draft",
                 "F": "flagged"}
_MAILDIR_TIME = re.compile(r"^(\d{9,11})(?:\.|_|$)")


def mozilla_flags(status: str | None, status2: str | None) -> int | None:
    """The message flags Thunderbird keeps in ``X-Mozilla-Status`` (low 16 bits) and ``-Status2``."""
    value = None
    for text, mask in ((status, 0xFFFF), (status2, 0xFFFF0000)):
        if not text:
            continue
        try:
            part = int(text.strip(), 16)
        except ValueError:
            continue
        value = (value or 0) | (part & mask)
    return value


def mozilla_flag_names(flags: int) -> list[str]:
    """Readable names of the set bits (for the examiner; the raw value is kept as well)."""
    return [name for bit, name in _MOZILLA_NAMES.items() if flags & bit]


def is_trash_folder(name: str) -> bool:
    """Whether a folder name (``.Trash``, ``Deleted Items``, ``Trash.sbd``...) is a trash folder."""
    base = name.strip("/").rsplit("/", 1)[-1]
    for suffix in (".sbd", ".mbox", ".msf"):
        if base.lower().endswith(suffix):
            base = base[: -len(suffix)]
    return base.lstrip(".").replace("_", " ").lower() in TRASH_FOLDER_NAMES


def maildir_split(name: str) -> tuple[str, str | None]:
    """(unique base name, flags or None) of a Maildir file name ``base:2,FLAGS``.

    Bundle copies have ``:`` escaped as ``%3A`` (see collector/sanitize.py); both spellings work.
    """
    name = name.replace("%3A", ":").replace("%3a", ":")
    base, sep, info = name.partition(":")
    if not sep:
        # Windows Maildir clients use "!" or ";" instead of ":" (mbsync, Dovecot's maildir_sep).
        for alt in ("!2,", ";2,"):
            if alt in name:
                base, _, rest = name.partition(alt)
                return base, rest
        return name, None
    if info.startswith("2,"):
        return base, info[2:]
    return base, None


def maildir_name_time(base: str) -> int | None:
    """Delivery time (µs) that a Maildir unique name starts with (``<seconds>.<unique>.<host>``)."""
    match = _MAILDIR_TIME.match(base)
    if not match:
        return None
    seconds = int(match.group(1))
    if not 315532800 <= seconds <= 4102444800:  # 1980..2100: anything else is not a time
        return None
    return seconds * 1_000_000


@dataclass
class UidRanges:
    """Missing IMAP UIDs found while reading UIDs in ascending order, in bounded memory.

    Memory grows with the number of gaps, not with the number of messages. UIDs that go backwards
    (a store edited by hand, or two stores concatenated) are counted and reported, not trusted.
    """

    highest: int | None = None
    count: int = 0
    gaps: list[tuple[int, int]] = field(default_factory=list)
    #: For each gap, the caller's marker of the UID before it (e.g. its delivery time).
    before: list[Any] = field(default_factory=list)
    out_of_order: int = 0
    _marker: Any = None

    def add(self, uid: int, marker: Any = None) -> None:
        """Feed the next UID in store order, with a marker (time) of the message that has it."""
        self.count += 1
        if self.highest is None:
            if uid > 1:
                self.gaps.append((1, uid - 1))
                self.before.append(None)
            self.highest, self._marker = uid, marker
            return
        if uid <= self.highest:
            self.out_of_order += 1
            self._fill(uid)
            return
        if uid > self.highest + 1:
            self.gaps.append((self.highest + 1, uid - 1))
            self.before.append(self._marker)
        self.highest, self._marker = uid, marker

    def _fill(self, uid: int) -> None:
        """A UID that came late is present after all: take it out of the gap that holds it."""
        for index, (low, high) in enumerate(self.gaps):
            if low <= uid <= high:
                marker = self.before[index]
                pieces = [(a, b) for a, b in ((low, uid - 1), (uid + 1, high)) if a <= b]
                self.gaps[index:index + 1] = pieces
                self.before[index:index + 1] = [marker] * len(pieces)
                return

    def tail(self, next_uid: int | None) -> tuple[int, int] | None:
        """The UIDs above the highest one still present that the store already handed out."""
        if next_uid is None:
            return None
        floor = (self.highest or 0) + 1
        return (floor, next_uid - 1) if next_uid > floor else None

    def expunged(self, next_uid: int | None) -> tuple[list[tuple[int, int]], tuple[int, int] | None,
                                                      list[Any]] | None:
        """(every missing range incl. the tail, the tail, markers before the gaps), or None.

        The markers are those of the message before each gap, plus the newest message's when
        the tail (UIDs handed out above the highest present) is missing too.
        """
        tail = self.tail(next_uid)
        gaps = list(self.gaps) + ([tail] if tail is not None else [])
        if not gaps:
            return None
        return gaps, tail, list(self.before) + ([self.last_marker] if tail is not None else [])

    @property
    def last_marker(self) -> Any:
        """The marker of the highest UID (the newest message still present)."""
        return self._marker


def count_uids(ranges: list[tuple[int, int]]) -> int:
    """How many UIDs a list of inclusive ranges holds."""
    return sum(high - low + 1 for low, high in ranges)


def format_ranges(ranges: list[tuple[int, int]], limit: int = 20) -> str:
    """``3, 7-9, 12`` (the first ``limit`` ranges; the rest are summarised)."""
    parts = [str(low) if low == high else f"{low}-{high}" for low, high in ranges[:limit]]
    if len(ranges) > limit:
        parts.append(f"... ({len(ranges) - limit} more ranges)")
    return ", ".join(parts)


# -- the other files of a bundle -------------------------------------------------------------------
def manifest_time(line: dict[str, Any], key: str) -> int | None:
    """µs of a manifest line's time ``key`` (``mtime``...); None when absent or unreadable."""
    value = line.get(key)
    if not isinstance(value, str) or not value:
        return None
    try:
        return parse_iso(value)
    except ValueError:
        return None


@dataclass(frozen=True)
class SiblingFile:
    """A file collected from the same folder as the one being parsed (from the bundle manifest)."""

    source_path: str
    name: str
    deleted: bool
    outcome: str | None
    bundle_path: str | None = None


def bundle_root(fh: IO[bytes], bundle_path: str | None) -> Path | None:
    """The bundle directory a parse-stage file handle was opened from, if it was.

    The parse stage opens ``<bundle>/<bundle_path>``; stripping the manifest's ``bundle_path`` from
    the handle's name gives the bundle root, where ``manifest.jsonl`` lists every collected file
    with its original name, deleted flag and outcome.
    """
    name = getattr(fh, "name", None)
    if not isinstance(name, str) or not bundle_path:
        return None
    full = Path(name).as_posix()
    if not full.endswith("/" + bundle_path.lstrip("/")):
        return None
    root = Path(full[: -len(bundle_path.lstrip("/")) - 1])
    return root if (root / "manifest.jsonl").is_file() else None


@dataclass(frozen=True)
class ManifestIndex:
    """A bundle manifest grouped by folder, and the artifacts that were collected at all."""

    folders: dict[tuple[str, str], list[SiblingFile]]
    artifacts: frozenset[str]

    def siblings(self, filesystem: str, folder: str) -> list[SiblingFile]:
        """Files the manifest lists directly in ``folder`` (original names, deleted flags)."""
        return list(self.folders.get((filesystem, folder), ()))


@functools.lru_cache(maxsize=8)  # each kind of index for the last two bundles or so
def _built(build: Callable[[str], T], manifest: str, _mtime_ns: int, _size: int) -> T:
    return build(manifest)


def per_manifest(root: Path, build: Callable[[str], T]) -> T | None:
    """``build(manifest_path)`` for the bundle at ``root``, cached until the manifest changes.

    Parsers that compare a file with the rest of the bundle (siblings, folder times, copies of a
    carved message) each index the manifest once per worker, not once per file; None when the
    bundle has no manifest.
    """
    manifest = Path(root) / "manifest.jsonl"
    try:
        stat = manifest.stat()
    except OSError:
        return None
    return _built(build, str(manifest), stat.st_mtime_ns, stat.st_size)


def manifest_lines(manifest: str | Path, keep: Callable[[str], bool] | None = None
                   ) -> Iterator[dict[str, Any]]:
    """The decoded lines of a bundle manifest, streamed; a line that is not a JSON object is
    skipped (a damaged manifest still gives what it holds). ``keep`` tests the raw text first, so
    lines that cannot matter are not decoded at all."""
    with open(manifest, encoding="utf-8") as handle:
        for text in handle:
            if keep is not None and not keep(text):
                continue
            try:
                line = json.loads(text)
            except json.JSONDecodeError:
                continue
            if isinstance(line, dict):
                yield line


def _build_manifest_index(manifest: str) -> ManifestIndex:
    folders: dict[tuple[str, str], list[SiblingFile]] = {}
    artifacts: set[str] = set()
    for line in manifest_lines(manifest):
        if line.get("artifact"):
            artifacts.add(line["artifact"])
        if line.get("kind") is None:
            continue
        path = PurePosixPath(line["source_path"])
        folders.setdefault((line.get("filesystem") or "", str(path.parent)), []).append(
            SiblingFile(source_path=str(path), name=path.name, deleted=bool(line.get("deleted")),
                        outcome=line.get("outcome"), bundle_path=line.get("bundle_path")))
    return ManifestIndex(folders=folders, artifacts=frozenset(artifacts))


def manifest_index(root: Path) -> ManifestIndex | None:
    """The (cached) index of ``root/manifest.jsonl``; None when there is none."""
    return per_manifest(root, _build_manifest_index)


def manifest_times(root: Path, filesystem: str, paths: Iterable[str],
                   keys: tuple[str, ...] = ("mtime", "ctime", "crtime")) -> dict[str, dict[str, int]]:
    """source path -> {time key: µs} of the manifest lines of ``paths`` (live entries only).

    For the few files that are the only trace of a message (a body file whose row is gone): one
    pass over the manifest, decoding only the lines that name one of them, so the index every
    parser shares does not carry (and parse) the times of every file.
    """
    wanted = set(paths)
    names = {PurePosixPath(path).name for path in wanted}
    found: dict[str, dict[str, int]] = {}
    if not wanted:
        return found
    # json.dumps escapes non-ASCII names, so only ASCII names can be looked for in the raw line
    needles = [name for name in names
               if name.isascii() and name.isprintable() and '"' not in name and "\\" not in name]
    prefilter = len(needles) == len(names)
    for line in manifest_lines(Path(root) / "manifest.jsonl",
                               (lambda text: any(needle in text for needle in needles)) if prefilter
                               else None):
        if line.get("deleted"):
            continue
        if line.get("source_path") not in wanted or (line.get("filesystem") or "") != filesystem:
            continue
        found[line["source_path"]] = {key: value for key in keys
                                      if (value := manifest_time(line, key)) is not None}
    return found


def listdir_siblings(folder: Path) -> Iterator[SiblingFile]:
    """Files in a real directory (a live or mounted tree, or a test fixture), as sibling files."""
    try:
        names = sorted(os.listdir(folder))
    except OSError:
        return
    for name in names:
        if (folder / name).is_file():
            yield SiblingFile(source_path=str(folder / name), name=name, deleted=False,
                              outcome="collected", bundle_path=None)
