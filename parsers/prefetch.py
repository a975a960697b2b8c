"""Windows Prefetch files (``C:\\Windows\\Prefetch\\*.pf``) through libscca-python (``pyscca``).

Prefetch proves that a program ran, how often and when (up to eight run times on Windows 8+),
and which files it touched in its first seconds. For mail clearing that is the execution of
``wevtutil``, ``sdelete`` or ``cipher``, a mail client, ``scanpst``, an archiver, and references
to mail stores (``Comms\\Unistore``, ``.pst``/``.ost``, Thunderbird profiles) in the file list.

One record per file; every run time is its own named timestamp (one timeline row each). The
parser computes ``executable_category`` and ``references_mail_store`` so that the rules, kept as
data in ``rules/prefetch_*.yaml``, stay plain ``fields`` matches.

libscca quirks handled here: formats 17 and 23 hold one run time and
``get_last_run_time_as_integer(i)`` raises for ``i >= 1``; unused slots of newer formats are 0;
files that are not prefetch (or are zero-filled) are rejected at open.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any, BinaryIO

from collector.timeutil import from_filetime, iso_utc
from parsers.base import ParseContext, Parser
from parsers.record import Record

try:  # pragma: no cover - the dependency is declared; a missing build must not break imports
    import pyscca
except ImportError:  # pragma: no cover
    pyscca = None

DATA_TYPE = "windows:prefetch:execution"
_MAX_RUN_SLOTS = 8
#: Cap on the joined length of the referenced-file list kept in the record (one file can list
#: thousands of names; every timeline row repeats the record's attributes).
MAX_REFERENCED_CHARS = 32_000
_SIGNATURE_VERSIONS = {17, 23, 26, 30, 31}

#: Upper-case executable name -> category. Categories are what the rules match on.
EXECUTABLE_CATEGORIES: dict[str, str] = {
    "WEVTUTIL.EXE": "log_clearing",
    "SDELETE.EXE": "secure_delete", "SDELETE64.EXE": "secure_delete", "SDELETE64A.EXE": "secure_delete",
    "ERASER.EXE": "secure_delete", "ERASERL.EXE": "secure_delete",
    "CIPHER.EXE": "cipher",
    "POWERSHELL.EXE": "powershell", "PWSH.EXE": "powershell", "POWERSHELL_ISE.EXE": "powershell",
    "OUTLOOK.EXE": "mail_client", "OLK.EXE": "mail_client", "HXOUTLOOK.EXE": "mail_client",
    "HXMAIL.EXE": "mail_client", "HXTSR.EXE": "mail_client", "THUNDERBIRD.EXE": "mail_client",
    "WINMAIL.EXE": "mail_client", "WLMAIL.EXE": "mail_client", "EM CLIENT.EXE": "mail_client",
    "MAILCLIENT.EXE": "mail_client",
    "SCANPST.EXE": "mail_repair", "SCANOST.EXE": "mail_repair",
    "7Z.EXE": "archiver", "7ZG.EXE": "archiver", "7ZFM.EXE": "archiver", "7ZA.EXE": "archiver",
    "7ZR.EXE": "archiver", "WINRAR.EXE": "archiver", "RAR.EXE": "archiver", "WINZIP32.EXE": "archiver",
    "WINZIP64.EXE": "archiver", "WZZIP.EXE": "archiver", "ZIP.EXE": "archiver", "TAR.EXE": "archiver",
    "PEAZIP.EXE": "archiver", "BANDIZIP.EXE": "archiver", "MAKECAB.EXE": "archiver",
}
#: Referenced file names that lie inside a mail store (matched case-insensitively).
MAIL_STORE_PATTERNS = [re.compile(p, re.IGNORECASE) for p in (
    r"\\COMMS\\UNISTORE(\\|$)",
    r"\.(PST|OST|NST)$",
    r"\\THUNDERBIRD\\PROFILES(\\|$)",
    r"\\MICROSOFT\\OUTLOOK(\\|$)",
    r"\\OUTLOOK FILES(\\|$)",
    r"\\PACKAGES\\MICROSOFT\.WINDOWSCOMMUNICATIONSAPPS_",
    r"\\OLK\\",
)]



def executable_category(name: str) -> str:
    """The category of an executable name (``other`` when it is not one of interest)."""
    return EXECUTABLE_CATEGORIES.get(name.upper(), "other")


def is_mail_store_path(path: str) -> bool:
    """Whether a referenced file name lies in a mail store."""
    return any(p.search(path) for p in MAIL_STORE_PATTERNS)


def _run_times(scca: Any, ctx: ParseContext) -> dict[str, int]:
    times: dict[str, int] = {}
    for slot in range(_MAX_RUN_SLOTS):
        try:
            value = scca.get_last_run_time_as_integer(slot)
        except (OSError, IndexError, ValueError):
            if slot == 0:
                ctx.warn("no readable last-run time")
            # Formats 17/23 hold one slot and libscca raises for the next: nothing more to read.
            break
        micros = from_filetime(value)
        if micros is None:
            continue
        times["Last Run Time" if slot == 0 else f"Previous Run Time {slot}"] = micros
    return times


def _volumes(scca: Any, ctx: ParseContext) -> list[dict[str, Any]]:
    volumes = []
    try:
        count = scca.number_of_volumes
    except OSError as exc:
        ctx.warn(f"volume information unreadable: {exc}")
        return volumes
    for index in range(count):
        try:
            volume = scca.get_volume_information(index)
            created = from_filetime(volume.get_creation_time_as_integer())
            volumes.append({"device_path": volume.device_path,
                            "serial_number": f"{volume.serial_number:08X}",
                            "creation_time": iso_utc(created) if created is not None else None})
        except (OSError, ValueError, TypeError) as exc:
            ctx.warn(f"volume {index} unreadable: {exc}")
    return volumes


def _filenames(scca: Any, ctx: ParseContext) -> list[str]:
    names = []
    try:
        count = scca.number_of_filenames
    except OSError as exc:
        ctx.warn(f"file name strings unreadable: {exc}")
        return names
    for index in range(count):
        try:
            name = scca.get_filename(index)
        except (OSError, UnicodeDecodeError) as exc:
            ctx.warn(f"file name {index} unreadable: {exc}")
            continue
        if name:
            names.append(name)
    return names


def _capped(names: list[str]) -> tuple[list[str], bool]:
    kept, total = [], 0
    for name in names:
        total += len(name) + 1
        if total > MAX_REFERENCED_CHARS:
            return kept, True
        kept.append(name)
    return kept, False


class PrefetchParser(Parser):
    """Windows Prefetch, formats 17 (XP/2003), 23 (Vista/7), 26 (8.1), 30 and 31 (10/11, MAM)."""

    NAME = "prefetch"
    DESCRIPTION = "Windows Prefetch (.pf, all formats incl. MAM-compressed) via libscca"
    DATA_TYPES = (DATA_TYPE,)

    @classmethod
    def sniff(cls, head: bytes, name: str) -> bool:
        if head[4:8] == b"SCCA" and int.from_bytes(head[:4], "little") in _SIGNATURE_VERSIONS:
            return True
        if head[:4] == b"MAM\x04":
            return True
        # A .pf name alone is enough to try (and to get a clear warning when it is not prefetch).
        return name.lower().endswith(".pf")

    def parse(self, fh: BinaryIO, ctx: ParseContext) -> Iterator[Record]:
        if pyscca is None:
            ctx.warn("libscca-python (pyscca) is not installed: prefetch not parsed")
            return
        head = fh.read(4096)
        if not head:
            ctx.warn("empty file: not a prefetch file", 0)
            return
        if not head.strip(b"\x00"):
            ctx.warn("zero-filled file: no prefetch header (wiped or never written)", 0)
            return
        fh.seek(0)
        scca = pyscca.file()
        try:
            scca.open_file_object(fh)
        except OSError as exc:
            detail = str(exc).split(". ", 1)[-1].split(".")[0]
            ctx.warn(f"not a prefetch file or unsupported format (libscca: {detail})", 0)
            return
        try:
            yield self._record(scca, ctx)
        finally:
            scca.close()

    def _record(self, scca: Any, ctx: ParseContext) -> Record:
        corrupted = False
        try:
            executable = scca.executable_filename or ""
        except (OSError, UnicodeDecodeError) as exc:
            ctx.warn(f"executable name unreadable: {exc}")
            executable, corrupted = "", True
        attributes: dict[str, Any] = {"executable": executable,
                                      "executable_category": executable_category(executable)}
        for key, getter in (("format_version", "get_format_version"),
                            ("prefetch_hash", "get_prefetch_hash"), ("run_count", "get_run_count")):
            try:
                attributes[key] = getattr(scca, getter)()
            except OSError as exc:
                ctx.warn(f"{key} unreadable: {exc}")
                corrupted = True
        if isinstance(attributes.get("prefetch_hash"), int):
            attributes["prefetch_hash"] = f"{attributes['prefetch_hash']:08X}"
        timestamps = _run_times(scca, ctx)
        volumes = _volumes(scca, ctx)
        names = _filenames(scca, ctx)
        upper = executable.upper()
        path = next((n for n in names if n.upper().rsplit("\\", 1)[-1].startswith(upper)), None) \
            if upper else None
        mail_refs = [n for n in names if is_mail_store_path(n)]
        kept, truncated = _capped(names)
        attributes.update({
            "executable_path": path, "volumes": volumes,
            "volume_device_paths": [v["device_path"] for v in volumes],
            "volume_serial_numbers": [v["serial_number"] for v in volumes],
            "referenced_files_count": len(names), "referenced_files": kept,
            "referenced_files_truncated": truncated,
            "references_mail_store": bool(mail_refs), "mail_store_references": mail_refs,
            "run_times_recorded": len(timestamps)})
        runs = attributes.get("run_count")
        message = (f"Prefetch: {executable or '?'} ({attributes.get('prefetch_hash', '?')}) ran "
                   f"{runs if runs is not None else '?'} time(s)"
                   + (f", {len(timestamps)} run time(s) recorded" if timestamps else ", no run time")
                   + (f"; references {len(mail_refs)} mail-store file(s)" if mail_refs else ""))
        return Record(data_type=DATA_TYPE, message=message, provenance=ctx.provenance_at(0),
                      parser=self.NAME, order=0, timestamps=timestamps,
                      attributes={k: v for k, v in attributes.items() if v is not None},
                      host=ctx.host, user=ctx.user, corrupted=corrupted)
