"""NTFS master file table (``$MFT``): deleted files and folders under the artifact directories.

A deleted file's MFT record keeps its name, parent reference, size and its ``$STANDARD_INFORMATION``
and ``$FILE_NAME`` times until the record is reused, long after the directory entry is gone: a
deleted PST, Thunderbird ``Inbox`` or Unistore folder is still listed there. Records that are not
in use and whose path lies under an artifact directory become ``fs:stat:ntfs`` records (plaso's
data type for MFT times) with ``deleted: true`` and the artifact's category, so the same rules
that judge a deleted file found by TSK judge these.

The records are read with libfsntfs (``pyfsntfs.mft_metadata_file``), entry by entry, so memory
does not grow with the size of the ``$MFT``. The ``mft`` package was the first choice but is not
used: it follows parent references without a bound (a parent loop in a damaged or hostile
``$MFT`` overflows the stack and kills the process) and does not compare parent sequence numbers,
so a deleted file whose folder's record was reused gets the new folder's path. libfsntfs reports
the loop as an error and names such a file ``$Orphan\\name``.

There is no deletion time in an MFT record (deleting a file does not update its times), so none is
invented: the times are the record's own, and the change journal (``usnjrnl``) says when.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, BinaryIO

import pyfsntfs

from collector.artifacts import load_artifacts
from collector.timeutil import from_filetime
from parsers.base import ParseContext, Parser
from parsers.record import Record
from parsers.rules import default_engine

DATA_TYPE = "fs:stat:ntfs"
#: (pyfsntfs getter, plaso's timestamp_desc) for the four times of $STANDARD_INFORMATION.
TIMES = (
    ("get_creation_time_as_integer", "Creation Time"),
    ("get_modification_time_as_integer", "Content Modification Time"),
    ("get_access_time_as_integer", "Last Access Time"),
    ("get_entry_modification_time_as_integer", "Metadata Modification Time"),
)
#: $FILE_NAME holds the same four times; its descriptions carry this suffix.
FILE_NAME_SUFFIX = " ($FILE_NAME)"
_STANDARD_INFORMATION = 0x10
_FILE_NAME = 0x30
_DATA = 0x80
_DOS_NAMESPACE = 2
_REFERENCE_ENTRY = 0xFFFFFFFFFFFF
_RECORD_SIZES = (1024, 4096)
_MAX_WARNINGS = 10
#: Artifact categories whose folders are file-system metadata, not places where evidence lives.
_NOT_DIRECTORIES = {"filesystem"}
_HOMEDIR = "%%users.homedir%%"
_USERNAME = "%%users.username%%"


@dataclass(frozen=True)
class ArtifactDirectory:
    """A folder that a Windows artifact spec collects from, as a case-insensitive path regex."""

    artifact: str
    category: str
    folder: str
    regex: re.Pattern[str]


def _segment_regex(segment: str) -> str:
    if segment == _HOMEDIR:
        return r"(?:/[^/]+)+"
    pieces = []
    for char in segment.replace(_USERNAME, "\0"):
        pieces.append({"*": "[^/]*", "?": "[^/]", "\0": "[^/]+"}.get(char) or re.escape(char))
    return "/" + "".join(pieces)


def spec_folder(pattern: str) -> str | None:
    """The folder a spec path collects from: the pattern without its file part and ``**`` tail.

    ``%%users.homedir%%/AppData/Local/Comms/Unistore/**`` gives ``.../Comms/Unistore``. A
    pattern naming a file directly in a home or at the root gives None: the folder would be
    the whole home or volume, not an artifact's own.
    """
    segments = [s for s in pattern.split("/") if s][:-1]
    if "**" in segments:
        segments = segments[:segments.index("**")]
    if not segments or segments == [_HOMEDIR]:
        return None
    return "/" + "/".join(segments) if segments[0] != _HOMEDIR else "/".join(segments)


@functools.lru_cache(maxsize=1)
def artifact_directories() -> tuple[ArtifactDirectory, ...]:
    """Folders of every Windows artifact spec (collector/artifacts/*.yaml): the one definition
    of where the collector looks, reused here for where a deleted MFT record is evidence."""
    folders: dict[tuple[str, str], ArtifactDirectory] = {}
    for spec in load_artifacts():
        if "Windows" not in spec.supported_os or spec.category in _NOT_DIRECTORIES:
            continue
        for pattern in spec.paths:
            folder = spec_folder(pattern)
            if folder is None:
                continue
            regex = "^" + "".join(_segment_regex(s) for s in folder.split("/") if s) + "(?:/|$)"
            folders.setdefault((spec.name, folder), ArtifactDirectory(
                spec.name, spec.category, folder, re.compile(regex, re.IGNORECASE)))
    return tuple(folders.values())


def classify(path: str) -> tuple[str | None, str] | None:
    """(artifact, category) of a path under an artifact folder, or None when it is not evidence.

    The deepest matching folder wins. A path outside every folder that the rules' ``mail_store``
    path class names (a ``.pst`` anywhere, a Thunderbird profile) is mail without an artifact.
    """
    best: tuple[int, ArtifactDirectory] | None = None
    for folder in artifact_directories():
        match = folder.regex.match(path)
        if match and (best is None or match.end() > best[0]):
            best = (match.end(), folder)
    if best is not None:
        return best[1].artifact, best[1].category
    if default_engine().in_class(path, "mail_store"):
        return None, "mail"
    return None


def _reason(exc: BaseException) -> str:
    """The informative part of a libyal error (its first sentence only names the call)."""
    parts = [p.split(": ", 1)[-1] for p in str(exc).split(". ") if p]
    return (parts[1] if len(parts) > 1 else parts[0] if parts else type(exc).__name__)[:300]


@dataclass
class _Damage:
    """How many entries were damaged (only the first few get a warning of their own)."""

    count: int = 0
    last: int = -1


def _problem(ctx: ParseContext, damage: _Damage, index: int, size: int, what: str) -> None:
    if damage.last == index:
        return
    damage.count, damage.last = damage.count + 1, index
    if damage.count <= _MAX_WARNINGS:
        ctx.warn(f"MFT entry {index}: {what}", index * size)


def _blank(fh: BinaryIO, index: int, size: int) -> bool:
    """Whether a record libfsntfs refused has a zero signature: a slot never used, not damage."""
    position = fh.tell()
    try:
        fh.seek(index * size)
        return fh.read(4) == b"\0\0\0\0"
    finally:
        fh.seek(position)


def _record_size(total: int, count: int) -> int:
    return next((size for size in _RECORD_SIZES if count and total // size == count), 1024)


def _times(attribute: Any, suffix: str = "") -> dict[str, int]:
    found = {}
    for getter, description in TIMES:
        micros = from_filetime(getattr(attribute, getter)())
        if micros is not None:
            found[description + suffix] = micros
    return found


class MftParser(Parser):
    """``$MFT``: records not in use (deleted files and folders) under artifact directories."""

    NAME = "mft"
    DESCRIPTION = "NTFS $MFT: deleted files and folders under artifact directories (names, sizes, times)"
    DATA_TYPES = (DATA_TYPE,)

    def __init__(self, relevant: Callable[[str], tuple[str | None, str] | None] = classify) -> None:
        """``relevant`` maps a path to (artifact, category), or None to leave the record out."""
        self._relevant = relevant

    @classmethod
    def sniff(cls, head: bytes, name: str) -> bool:
        # The first record ($MFT itself): "FILE", update sequence array at 0x30, 3 or 9 entries.
        return name.lower() == "$mft" or head[:8] in (b"FILE0\x00\x03\x00", b"FILE0\x00\x09\x00")

    def parse(self, fh: BinaryIO, ctx: ParseContext) -> Iterator[Record]:
        total = fh.seek(0, 2)
        fh.seek(0)
        table = pyfsntfs.mft_metadata_file()
        try:
            table.open_file_object(fh)
        except OSError as exc:
            ctx.warn(f"not a readable $MFT: {_reason(exc)}", 0)
            return
        try:
            count = table.get_number_of_file_entries()
            size = _record_size(total, count)
            if total % size:
                ctx.warn(f"$MFT ends with a partial {total % size}-byte record", count * size)
            order = 0
            damage = _Damage()
            for index in range(count):
                try:
                    entry = table.get_file_entry(index)
                    if entry.is_allocated() or entry.get_base_record_file_reference():
                        continue  # in use, or an extension of another record
                    record = self._record(entry, index, size, order, ctx, damage)
                except OSError as exc:
                    if not _blank(fh, index, size):
                        _problem(ctx, damage, index, size, f"unreadable: {_reason(exc)}")
                    continue
                if record is not None:
                    order += 1
                    yield record
            if damage.count > _MAX_WARNINGS:
                ctx.warn(f"{damage.count} damaged MFT entries in all (the first {_MAX_WARNINGS} "
                         "are listed)")
        finally:
            table.close()

    def _record(self, entry: Any, index: int, size: int, order: int, ctx: ParseContext,
                damage: _Damage) -> Record | None:
        corrupted = False
        names: list[tuple[int, Any]] = []
        standard = data = None
        for number in range(entry.get_number_of_attributes()):
            try:
                attribute = entry.get_attribute(number)
            except OSError as exc:
                corrupted = True
                _problem(ctx, damage, index, size, f"attribute {number} unreadable: {_reason(exc)}")
                continue
            kind = attribute.get_attribute_type()
            if kind == _FILE_NAME:
                names.append((number, attribute))
            elif kind == _STANDARD_INFORMATION and standard is None:
                standard = attribute
            elif kind == _DATA and data is None and not attribute.get_attribute_name():
                data = attribute
        if not names:
            return None  # a blank record: nothing names what was there
        # Long names before DOS 8.3 aliases; the first one under an artifact folder is reported.
        names.sort(key=lambda item: item[1].get_name_space() == _DOS_NAMESPACE)
        chosen = None
        for number, attribute in names:
            path, orphan, loop = self._path(entry, number, attribute)
            if loop:
                corrupted = True
                _problem(ctx, damage, index, size,
                         "its parent references never reach the root folder (a loop)")
            where = self._relevant(path)
            if where is not None:
                chosen = (attribute, path, orphan, where)
                break
        if chosen is None:
            return None
        attribute, path, orphan, (artifact, category) = chosen
        reference = entry.get_file_reference()
        parent = attribute.get_parent_file_reference()
        is_dir = bool(entry.has_directory_entries_index())
        timestamps = _times(standard) if standard is not None else {}
        timestamps.update(_times(attribute, FILE_NAME_SUFFIX))
        byte_size = None if is_dir or data is None else data.get_data_size()
        attributes: dict[str, Any] = {
            "path": path, "file_name": attribute.get_name(), "deleted": True, "in_use": False,
            "kind": "dir" if is_dir else "file", "size": byte_size,
            "mft_entry": index, "mft_sequence": reference >> 48,
            "parent_mft_entry": parent & _REFERENCE_ENTRY, "parent_mft_sequence": parent >> 48,
            "orphan": orphan, "artifact": artifact, "category": category,
        }
        if standard is not None:
            attributes["file_attributes"] = f"0x{standard.get_file_attribute_flags():08x}"
            attributes["usn"] = standard.get_update_sequence_number()
        text = (f"{path} (deleted {'folder' if is_dir else 'file'}"
                + ("" if byte_size is None else f", {byte_size} bytes")
                + f", MFT entry {index}-{reference >> 48}{', parent unknown' if orphan else ''})")
        return Record(data_type=DATA_TYPE, message=text, provenance=ctx.provenance_at(index * size),
                      parser=self.NAME, order=order, timestamps=timestamps,
                      attributes={k: v for k, v in attributes.items() if v is not None},
                      host=ctx.host, user=ctx.user, recovered=True, corrupted=corrupted)

    @staticmethod
    def _path(entry: Any, number: int, attribute: Any) -> tuple[str, bool, bool]:
        """(path, orphan, loop) of one $FILE_NAME: ``/Users/x/...``, or ``/$Orphan/...`` when a
        parent record was reused (its sequence number differs) or the references loop."""
        try:
            hint = entry.get_path_hint(number)
        except OSError:
            return f"/$Orphan/{attribute.get_name()}", True, True
        if hint and hint.startswith("\\"):
            return hint.replace("\\", "/"), False, False
        return "/" + (hint or f"$Orphan\\{attribute.get_name()}").replace("\\", "/"), True, False
