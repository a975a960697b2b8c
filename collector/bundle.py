"""The evidence bundle: collected files, ``manifest.jsonl`` and ``report.json``.

Files are hashed (SHA-256 and MD5) while they are copied, so each byte of evidence is read once.
Every path the collector looked at gets exactly one manifest line with an outcome — ``collected``,
``empty``, ``recovered``, ``missing`` or ``failed`` — and the reason, so an examiner can tell
"not there" from "could not read". All outputs are written atomically.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from collector.atomic import atomic_open
from collector.errors import BundleError
from collector.sanitize import CollisionResolver, sanitize_location
from collector.source import SourceFile
from collector.timeutil import iso_utc

MANIFEST = "manifest.jsonl"
REPORT = "report.json"
FILES_DIR = "files"
OUTCOMES = ("collected", "empty", "recovered", "missing", "failed")
_CHUNK = 1 << 20
TIME_KEYS = ("mtime", "atime", "ctime", "crtime", "dtime")


@dataclass
class CollectContext:
    """What the collector knows about a file beyond the file system: why it was taken."""

    artifact: str
    category: str
    pattern: str
    parsers: tuple[str, ...] = ()
    user: str | None = None
    home: str | None = None
    filesystem: str = ""


@dataclass
class BundleWriter:
    """Writes a bundle directory; call :meth:`close` to publish manifest and report."""

    root: Path
    counts: Counter = field(default_factory=Counter)
    per_artifact: dict[str, Counter] = field(default_factory=lambda: defaultdict(Counter))
    bytes_collected: int = 0

    def __post_init__(self) -> None:
        self.root = Path(self.root)
        (self.root / FILES_DIR).mkdir(parents=True, exist_ok=True)
        fd, name = tempfile.mkstemp(prefix=".manifest.", suffix=".part", dir=self.root)
        self._manifest_tmp = name
        self._manifest = os.fdopen(fd, "w", encoding="utf-8", newline="\n")
        self._collisions = CollisionResolver()
        self._seen: set[tuple[str, str, int | None, bool]] = set()

    # -- adding entries ---------------------------------------------------------------------------
    def add_file(self, entry: SourceFile, ctx: CollectContext) -> dict[str, Any] | None:
        """Copy ``entry`` into the bundle (if it has content) and write its manifest line.

        Returns the manifest line, or None when the same entry was already collected through
        another pattern.
        """
        key = (ctx.filesystem, entry.location, entry.inode, entry.deleted)
        if key in self._seen:
            return None
        self._seen.add(key)
        line = self._base_line(entry, ctx)
        if entry.kind == "symlink":
            line.update(outcome="empty", reason=f"symbolic link to {entry.link_target!r}, not followed")
        elif entry.kind == "dir" and entry.deleted:
            line.update(outcome="empty", reason="deleted directory; its entries have lines of their own")
        elif entry.kind not in ("file",):
            line.update(outcome="failed", reason=f"not a regular file ({entry.kind})")
        elif not entry.deleted and entry.opener is None:
            line.update(outcome="empty", reason="the file system holds no data stream for it")
        elif entry.deleted and entry.opener is None:
            line.update(outcome="missing", reason=(
                "deleted entry; its inode was reallocated to another file" if
                "inode-reallocated" in entry.provenance else
                "deleted entry; no content left in the file system"))
        else:
            self._copy(entry, ctx, line)
        self._write(line)
        return line

    def add_missing(self, ctx: CollectContext, reason: str) -> None:
        """Record that an artifact pattern matched nothing."""
        line = {"artifact": ctx.artifact, "category": ctx.category, "pattern": ctx.pattern,
                "filesystem": ctx.filesystem, "source_path": ctx.pattern, "provenance": None,
                "bundle_path": None, "size": None, "sha256": None, "md5": None,
                **{k: None for k in TIME_KEYS}, "inode": None, "deleted": False, "kind": None,
                "link_target": None, "user": ctx.user, "home": ctx.home, "parsers": list(ctx.parsers),
                "outcome": "missing", "reason": reason}
        self._write(line)

    def _base_line(self, entry: SourceFile, ctx: CollectContext) -> dict[str, Any]:
        return {
            "artifact": ctx.artifact, "category": ctx.category, "pattern": ctx.pattern,
            "filesystem": ctx.filesystem, "source_path": entry.location,
            "provenance": entry.provenance, "bundle_path": None, "size": entry.size,
            "sha256": None, "md5": None,
            **{k: (iso_utc(entry.times[k]) if k in entry.times else None) for k in TIME_KEYS},
            "inode": entry.inode, "deleted": entry.deleted, "kind": entry.kind,
            "link_target": entry.link_target, "user": ctx.user, "home": ctx.home,
            "parsers": list(ctx.parsers), "outcome": None, "reason": None}

    def _destination(self, entry: SourceFile, ctx: CollectContext) -> str:
        parts = [FILES_DIR, *sanitize_location(ctx.filesystem or "fs"), *sanitize_location(entry.location)]
        if entry.deleted:
            parts[-1] += f".deleted-inode{entry.inode}" if entry.inode else ".deleted"
        return self._collisions.claim("/".join(parts))

    def _copy(self, entry: SourceFile, ctx: CollectContext, line: dict[str, Any]) -> None:
        relative = self._destination(entry, ctx)
        target = self.root / relative
        sha256, md5, size = hashlib.sha256(), hashlib.md5(), 0
        try:
            remaining = entry.read_limit
            with entry.open() as source, atomic_open(target, "wb", durable=False) as out:
                while remaining is None or remaining > 0:
                    chunk = source.read(_CHUNK if remaining is None else min(_CHUNK, remaining))
                    if not chunk:
                        break
                    if remaining is not None:
                        remaining -= len(chunk)
                    sha256.update(chunk)
                    md5.update(chunk)
                    out.write(chunk)
                    size += len(chunk)
        except FileNotFoundError as exc:
            line.update(outcome="failed", reason=f"vanished before it could be read: {exc}")
            return
        except PermissionError as exc:
            line.update(outcome="failed", reason=f"permission denied: {exc}")
            return
        except OSError as exc:
            line.update(outcome="failed", reason=f"read error: {exc}")
            return
        except Exception as exc:  # a library failing on hostile metadata must not stop the run
            line.update(outcome="failed", reason=f"read error: {type(exc).__name__}: {exc}")
            return
        self.bytes_collected += size
        line.update(bundle_path=relative, sha256=sha256.hexdigest(), md5=md5.hexdigest())
        if entry.read_limit is not None:
            line["size_read"] = size
            line["reason"] = entry.limit_reason
        elif size != entry.size:
            line["size_read"] = size
            line["reason"] = f"size changed while reading: stated {entry.size}, read {size}"
        if entry.deleted:
            line["outcome"] = "recovered"
            line["reason"] = line["reason"] or "content read from the unallocated inode's data"
        else:
            line["outcome"] = "collected" if size else "empty"

    def _write(self, line: dict[str, Any]) -> None:
        self.counts[line["outcome"]] += 1
        self.per_artifact[line["artifact"]][line["outcome"]] += 1
        text = json.dumps(line, ensure_ascii=False)
        try:
            text.encode("utf-8")
        except UnicodeEncodeError:  # a name with undecodable bytes: keep it as \udcXX escapes
            text = json.dumps(line, ensure_ascii=True)
        self._manifest.write(text + "\n")

    # -- finishing --------------------------------------------------------------------------------
    def close(self, report: dict[str, Any]) -> dict[str, Any]:
        """Publish ``manifest.jsonl`` and ``report.json`` (atomically) and return the report."""
        self._manifest.flush()
        os.sync()  # every collected file reaches the disk before the manifest names it
        self._manifest.close()
        os.replace(self._manifest_tmp, self.root / MANIFEST)
        report = {**report,
                  "counts": {k: self.counts.get(k, 0) for k in OUTCOMES},
                  "artifacts": {name: {k: c.get(k, 0) for k in OUTCOMES if c.get(k, 0)}
                                for name, c in sorted(self.per_artifact.items())},
                  "bytes_collected": self.bytes_collected}
        with atomic_open(self.root / REPORT, "w") as handle:
            json.dump(report, handle, indent=2, sort_keys=False, ensure_ascii=False)
            handle.write("\n")
        return report

    def abort(self) -> None:
        """Drop the unfinished manifest (an interrupted run publishes nothing half-done)."""
        self._manifest.close()
        Path(self._manifest_tmp).unlink(missing_ok=True)
        self.sweep_partials()

    def sweep_partials(self) -> None:
        """Remove temporary copies a signal may have left between their creation and cleanup."""
        for leftover in (self.root / FILES_DIR).rglob(".*.part"):
            leftover.unlink(missing_ok=True)


def read_manifest(bundle: str | os.PathLike[str]) -> list[dict[str, Any]]:
    """Load a bundle's manifest lines (a missing manifest is a :class:`BundleError`)."""
    path = Path(bundle) / MANIFEST
    if not path.is_file():
        raise BundleError(f"{bundle} is not an inboxtrail bundle: {MANIFEST} not found")
    lines = []
    with path.open(encoding="utf-8") as handle:
        for number, text in enumerate(handle, 1):
            try:
                lines.append(json.loads(text))
            except json.JSONDecodeError as exc:
                raise BundleError(f"{path}:{number}: malformed manifest line: {exc}") from exc
    return lines


def reset_bundle(root: Path) -> None:
    """Remove a previous bundle's files before a forced re-run into the same directory."""
    if root.exists():
        shutil.rmtree(root)
