"""Safe bundle destinations for arbitrary evidence names.

A suspect disk can hold any name: ``..``, ``/`` inside NTFS names, control characters, newlines,
reserved Windows device names, 4,000-byte names, names that differ only in case. The bundle path
must stay inside the bundle and be portable; the original name is always kept verbatim in the
manifest, so this mapping only has to be safe and deterministic, not reversible.
"""

from __future__ import annotations

import hashlib
import re

_RESERVED = {"CON", "PRN", "AUX", "NUL", "CONIN$", "CONOUT$",
             *(f"COM{i}" for i in range(10)), *(f"LPT{i}" for i in range(10))}
_UNSAFE = re.compile(r'[\x00-\x1f\x7f"*:<>?\\|/%]')
_MAX_COMPONENT_BYTES = 180


def _escape(match: re.Match[str]) -> str:
    return "".join(f"%{b:02X}" for b in match.group(0).encode("utf-8", "surrogateescape"))


def sanitize_component(name: str) -> str:
    """Map one path component to a safe, portable file name."""
    if name in ("", ".", ".."):
        return {"": "%00", ".": "%2E", "..": "%2E%2E"}[name]
    safe = _UNSAFE.sub(_escape, name)
    # Lone surrogates (undecodable bytes kept by surrogateescape) become %XX too.
    safe = "".join(c if not 0xDC80 <= ord(c) <= 0xDCFF else f"%{ord(c) - 0xDC00:02X}" for c in safe)
    if safe.rstrip(" .") != safe:  # Windows drops trailing dots and spaces silently
        stripped = safe.rstrip(" .")
        safe = stripped + "".join(f"%{ord(c):02X}" for c in safe[len(stripped):])
    if safe.split(".")[0].upper() in _RESERVED:
        safe = "_" + safe
    encoded = safe.encode("utf-8", "surrogateescape")
    if len(encoded) > _MAX_COMPONENT_BYTES:
        digest = hashlib.sha256(encoded).hexdigest()[:16]
        safe = encoded[:_MAX_COMPONENT_BYTES - 18].decode("utf-8", "ignore") + "~" + digest
    return safe


def sanitize_location(location: str) -> list[str]:
    """Split a source location into sanitised components (never absolute, never ``..``)."""
    return [sanitize_component(part) for part in location.split("/") if part != ""]


class CollisionResolver:
    """Keeps case-insensitive destination names unique, first come first served.

    Files are added in a deterministic order, so the ``~2`` suffixes are deterministic too.
    """

    def __init__(self) -> None:
        self._taken: set[str] = set()

    def claim(self, relative: str) -> str:
        """Return ``relative`` or a ``~N`` variant not yet taken (case-insensitively)."""
        candidate = relative
        counter = 1
        while candidate.lower() in self._taken:
            counter += 1
            stem, dot, ext = relative.rpartition(".")
            candidate = f"{stem}~{counter}.{ext}" if dot and "/" not in ext else f"{relative}~{counter}"
        self._taken.add(candidate.lower())
        return candidate
