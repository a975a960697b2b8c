"""The evidence bundle: collected files, ``manifest.jsonl`` and ``report.json``.

Files are hashed (SHA-256 and MD5) while they are copied, so each byte of evidence is read once.
Every path the collector looked at gets exactly one manifest line with an outcome — ``collected``,
``empty``, ``recovered``, ``missing`` or ``failed`` — and the reason, so an examiner can tell
"not there" from "could not read". All outputs are written atomically.

Copying is pipelined over helper threads ("lanes"), because hashlib and ``os.write`` release
the GIL: the SHA-256 and MD5 lanes hash every large file while the caller's thread reads the
next chunk or walks the next directory, and the write lane writes each copy (``O_DIRECT`` where
allowed), renames it into place or removes a failed one, in order, so disk I/O overlaps reading
and hashing. A manifest line is written once its copy is renamed and its
digests are known, in the order the files were added; nothing is published before
:meth:`BundleWriter.close`.
"""

from __future__ import annotations

import ctypes
import functools
import hashlib
import json
import mmap
import os
import queue
import shutil
import sys
import tempfile
import threading
from collections import Counter, defaultdict, deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

from collector.atomic import AtomicFile, atomic_open
from collector.directio import DirectPolicy, DirectWriter
from collector.errors import BundleError
from collector.sanitize import CollisionResolver, sanitize_location
from collector.source import RestartRead, SourceFile
from collector.timeutil import iso_utc

MANIFEST = "manifest.jsonl"
REPORT = "report.json"
FILES_DIR = "files"
OUTCOMES = ("collected", "empty", "recovered", "missing", "failed")
_CHUNK = 1 << 20
#: From the first chunk at least this large on, a file is hashed on the hash lanes; below it,
#: handing the chunk over costs more than hashing it in place.
_OFFLOAD_MIN = 64 << 10
#: Calls a lane gathers before it is woken (see _Lane), unless their data fills a chunk first.
_BATCH_CALLS = 32
#: Digests a bundle can record: SHA-256 always (``verify`` checks it), MD5 by default.
HASHES = ("sha256", "md5")
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


class _Lane:
    """One helper thread that applies the calls handed to it, in order.

    hashlib releases the GIL while it hashes a buffer of 2 KiB or more, and ``os.write`` while
    the kernel works, so a hash update or a write on a lane runs in parallel with the caller's
    thread. The lane is bounded: at most ``depth`` batches wait besides the one running, each
    of about one chunk (``_CHUNK``) of data, so memory stays flat for any file size. The first
    error a call raises is kept and raised again by :meth:`wait`.

    Calls are handed over in batches: a small file's data alone would wake the lane for a few
    microseconds of work, and waking a thread (futex, context switch, GIL hand-over) costs more
    than that. A batch goes once it holds ``_CHUNK`` bytes or ``_BATCH_CALLS`` calls, and on
    :meth:`flush`, :meth:`wait` and :meth:`stop`. Batches travel through a C-level
    ``SimpleQueue``; the bound is a second one holding a token per free place.
    """

    def __init__(self, name: str, depth: int = 4) -> None:
        self._name = name
        self._places = depth + 1
        self._calls: queue.SimpleQueue[list[tuple[Any, Any]] | None] = queue.SimpleQueue()
        self._free: queue.SimpleQueue[None] = queue.SimpleQueue()
        for _ in range(self._places):
            self._free.put(None)
        self._batch: list[tuple[Any, Any]] = []
        self._batch_bytes = 0
        self._thread: threading.Thread | None = None
        self._busy = False
        self._error: BaseException | None = None

    def _run(self) -> None:
        calls, free = self._calls, self._free
        while True:
            batch = calls.get()
            if batch is None:
                return
            try:
                for call, argument in batch:
                    if self._error is None:
                        call(argument)
            except BaseException as exc:  # handed back to the caller by wait()
                self._error = exc
            finally:
                free.put(None)

    def submit(self, call: Any, argument: Any, size: int = 0) -> None:
        """Queue ``call(argument)``; ``argument`` must not change afterwards (bytes are safe).

        ``size``: the bytes the call carries, which decide when the batch goes.
        """
        if self._batch_bytes + size > _CHUNK:
            self.flush()  # a batch never carries more than a chunk, unless one call does
        self._batch.append((call, argument))
        self._batch_bytes += size
        if self._batch_bytes >= _CHUNK or len(self._batch) >= _BATCH_CALLS:
            self.flush()

    def flush(self) -> None:
        """Hand the calls gathered so far to the lane thread."""
        if not self._batch:
            return
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name=f"bundle-{self._name}", daemon=True)
            self._thread.start()
        batch, self._batch, self._batch_bytes = self._batch, [], 0
        self._busy = True
        self._free.get()  # blocks while the lane is full
        self._calls.put(batch)

    def wait(self) -> None:
        """Return once every queued call has run; raise the first error one of them raised."""
        self.flush()
        if self._busy:
            taken = 0
            try:
                while taken < self._places:  # every place free again: nothing queued or running
                    self._free.get()
                    taken += 1
            finally:
                for _ in range(taken):
                    self._free.put(None)
            self._busy = False
        error, self._error = self._error, None
        if error is not None:
            raise error

    def stop(self) -> None:
        """Run what is queued (gathered calls included), then end the thread."""
        self.flush()
        if self._thread is not None:
            self._calls.put(None)
            self._thread.join()
            self._thread = None


def _sync_filesystem(path: Path) -> None:
    """Flush the file system holding ``path`` to disk: ``syncfs`` on Linux, else ``sync``.

    One flush for the whole bundle instead of an fsync per file; ``syncfs`` leaves the other
    disks of the examiner's machine alone.
    """
    syncfs = getattr(_libc(), "syncfs", None) if sys.platform.startswith("linux") else None
    if syncfs is not None:
        fd = os.open(path, os.O_RDONLY)
        try:
            if syncfs(fd) == 0:
                return
        finally:
            os.close(fd)
    os.sync()


@functools.lru_cache(maxsize=1)
def _libc() -> Any:
    try:
        return ctypes.CDLL(None, use_errno=True)
    except OSError:
        return None


def _hexdigests(sha256: Any, md5: Any | None) -> dict[str, str]:
    digests = {"sha256": sha256.hexdigest()}
    if md5 is not None:
        digests["md5"] = md5.hexdigest()
    return digests


class _CopyJob:
    """One bundle file on its way to disk; its methods run on the write lane, in order.

    A failure is kept (and later writes skipped) rather than raised on the lane, so the
    manifest line can say what went wrong; :meth:`commit` then removes the partial copy.
    """

    def __init__(self, file: AtomicFile, buffer: mmap.mmap, policy: DirectPolicy) -> None:
        self.file = file
        self.writer = DirectWriter(file.fd, buffer, policy)
        self.error: BaseException | None = None
        self.done = False
        #: Digests still being computed on their lanes (pipelined writers only), then them.
        self.sha256_pending = self.md5_pending = False
        self.digests: dict[str, str] = {}

    @property
    def hashes_pending(self) -> bool:
        return self.sha256_pending or self.md5_pending

    def finish_sha256(self, work: tuple[Any, bytes | None]) -> None:
        """Runs on the SHA-256 lane: ``(digest, last chunk or None)``, the file's last update."""
        digest, last = work
        if last:
            digest.update(last)
        self.digests["sha256"] = digest.hexdigest()
        self.sha256_pending = False

    def finish_md5(self, work: tuple[Any, bytes | None]) -> None:
        """Runs on the MD5 lane: ``(digest, last chunk or None)``, the file's last update."""
        digest, last = work
        if last:
            digest.update(last)
        self.digests["md5"] = digest.hexdigest()
        self.md5_pending = False

    def write(self, data: bytes) -> None:
        if self.error is None:
            try:
                self.writer.write(data)
            except Exception as exc:
                self.error = exc

    def restart(self, _: object = None) -> None:
        if self.error is None:
            try:
                self.writer.restart()
            except Exception as exc:
                self.error = exc

    def commit(self, last: bytes | None = None) -> None:
        """Write ``last`` (the file's last chunk, if any) and the tail, rename the copy into place.

        After a failure the partial copy is removed instead.
        """
        if last:
            self.write(last)
        try:
            if self.error is None:
                self.writer.finish()
                self.file.commit()
        except Exception as exc:
            self.error = exc
        finally:
            if self.error is not None:
                self.file.discard()
            self.done = True

    def discard(self, _: object = None) -> None:
        self.file.discard()
        self.done = True


@dataclass
class BundleWriter:
    """Writes a bundle directory; call :meth:`close` to publish manifest and report.

    ``hashes`` is ``("sha256", "md5")`` (the default) or ``("sha256",)``: without MD5 each
    manifest line's ``md5`` is null and ``report.json`` lists the digests that were computed.
    Files are copied on helper threads (see the module docstring); manifest lines keep the
    order in which entries were added.
    """

    root: Path
    counts: Counter = field(default_factory=Counter)
    per_artifact: dict[str, Counter] = field(default_factory=lambda: defaultdict(Counter))
    bytes_collected: int = 0
    hashes: tuple[str, ...] = HASHES
    #: Let :meth:`add_file` return before a large file's digests are known (``collect`` sets
    #: it): the hash lanes then never hold up reading the next file, and the line gets its
    #: ``sha256``/``md5`` before it is written to the manifest. Off, the returned line is complete.
    pipelined: bool = False

    def __post_init__(self) -> None:
        self.root = Path(self.root)
        self.hashes = tuple(self.hashes)
        if "sha256" not in self.hashes or set(self.hashes) - set(HASHES):
            raise BundleError(f"hashes must be sha256 or sha256,md5, not {','.join(self.hashes)}")
        self.hashes = tuple(h for h in HASHES if h in self.hashes)
        self._md5 = "md5" in self.hashes
        self._sha256_lane = _Lane("sha256")
        self._md5_lane = _Lane("md5")
        self._write_lane = _Lane("write", depth=8)
        self._made_dirs: set[Path] = set()
        self._buffer = mmap.mmap(-1, _CHUNK)  # page-aligned, as O_DIRECT requires
        self._direct = DirectPolicy()
        #: Lines (with their copy, if any) waiting for the write lane, in the order added.
        self._pending: deque[tuple[dict[str, Any], _CopyJob | None, int]] = deque()
        #: Copies queued by :meth:`_copy` whose line :meth:`_write` has not taken yet.
        self._jobs: dict[int, tuple[_CopyJob, int]] = {}
        (self.root / FILES_DIR).mkdir(parents=True, exist_ok=True)
        fd, name = tempfile.mkstemp(prefix=".manifest.", suffix=".part", dir=self.root)
        self._manifest_tmp = name
        self._manifest = os.fdopen(fd, "w", encoding="utf-8", newline="\n")
        self._collisions = CollisionResolver()
        self._seen: set[tuple[str, str, int | None, bool]] = set()

    # -- adding entries ---------------------------------------------------------------------------
    def add_file(self, entry: SourceFile, ctx: CollectContext,
                 extra: dict[str, Any] | None = None) -> dict[str, Any] | None:
        """Copy ``entry`` into the bundle (if it has content) and write its manifest line.

        ``extra`` adds fields to the line (a carved run's ``carved_offset`` and reason).

        Returns the manifest line, or None when the same entry was already collected through
        another pattern.
        """
        key = (ctx.filesystem, entry.location, entry.inode, entry.deleted)
        if key in self._seen:
            return None
        self._seen.add(key)
        line = self._base_line(entry, ctx)
        line.update(extra or {})
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

    def add_directory(self, entry: SourceFile, ctx: CollectContext) -> dict[str, Any] | None:
        """Write a manifest line for a directory whose own times are the evidence.

        A Maildir folder's mtime moves with every delivery and every expunge, so it can date a
        removal that left no file behind. Nothing is copied (outcome ``empty``); the line holds the
        directory's MACB times and inode. Returns the line, or None when the directory already has
        one (two artifacts or patterns reached it).
        """
        if entry.kind != "dir":
            raise BundleError(f"add_directory needs a directory, not {entry.kind}: {entry.location}")
        key = (ctx.filesystem, entry.location, entry.inode, entry.deleted)
        if key in self._seen:
            return None
        self._seen.add(key)
        line = self._base_line(entry, ctx)
        line.update(outcome="empty", reason="directory: its times and inode are recorded, no content to copy")
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
        """Read, hash and queue the copy of ``entry``; fill ``line`` (a failure is an outcome).

        The copy is finished on the write lane; :meth:`_write` of the same line waits for it.
        """
        relative = self._destination(entry, ctx)
        target = self.root / relative
        parent = target.parent
        try:
            if parent not in self._made_dirs:  # one mkdir per new directory, not one per file
                parent.mkdir(parents=True, exist_ok=True)
                self._made_dirs.add(parent)
            job, digests, size = self._copy_content(entry, target)
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
        self._jobs[id(line)] = (job, size)
        line.update(bundle_path=relative, sha256=digests.get("sha256"), md5=digests.get("md5"))
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

    def _copy_content(self, entry: SourceFile, target: Path) -> tuple[_CopyJob, dict[str, str], int]:
        """Read and hash ``entry``, handing its bytes to the write lane; return job, digests, size.

        Large files are hashed on the SHA-256 and MD5 lanes and written on the write lane, so the
        digests, the read and the write overlap on all cores. A reader that switches to its fallback
        mid-file raises :class:`RestartRead`; the partial copy is then emptied and copied again.
        """
        with entry.open() as source:
            job = _CopyJob(AtomicFile(target, make_parents=False), self._buffer, self._direct)
            try:
                while True:
                    sha256 = hashlib.sha256()
                    md5 = hashlib.md5() if self._md5 else None
                    try:
                        size, offloaded, last = self._pump(source, job, entry.read_limit, sha256, md5)
                    except RestartRead:  # the fast reader gave up: start over through its fallback
                        self._write_lane.submit(job.restart, None)
                        continue
                    break
            except BaseException:
                self._write_lane.submit(job.discard, None)  # after the writes already queued
                raise
        # The last chunk travels with each lane's final call: one hand-off per lane for a file
        # read in one chunk (most files), not two.
        if offloaded and self.pipelined:  # the line waits for the digests in _drain
            job.sha256_pending = True
            self._sha256_lane.submit(job.finish_sha256, (sha256, last), len(last or b""))
            if md5 is not None:
                job.md5_pending = True
                self._md5_lane.submit(job.finish_md5, (md5, last), len(last or b""))
            digests: dict[str, str] = {}
        else:
            if offloaded:
                self._hash_on_lanes(last, sha256, md5)
                self._sha256_lane.wait()
                self._md5_lane.wait()
            digests = _hexdigests(sha256, md5)
        self._write_lane.submit(job.commit, last, len(last or b""))
        return job, digests, size

    def _hash_on_lanes(self, chunk: bytes, sha256: Any, md5: Any | None) -> None:
        self._sha256_lane.submit(sha256.update, chunk, len(chunk))
        if md5 is not None:
            self._md5_lane.submit(md5.update, chunk, len(chunk))

    def _pump(self, source: BinaryIO, job: _CopyJob, limit: int | None, sha256: Any,
              md5: Any | None) -> tuple[int, bool, bytes | None]:
        """Read ``source`` to its end (or ``limit`` bytes) into ``job``, but for the last chunk.

        Small files are hashed here; from the first large chunk on, every update of the file goes
        to the SHA-256 and MD5 lanes (never back: each lane keeps the order). After an error the lane may
        still update the abandoned digest objects; nothing reads them. Each chunk is handed over
        once the next one is read, so the last one is left for the caller to send with the
        lanes' final calls.

        Returns:
            The bytes read, whether the hashing went to the lanes, and the last chunk (None for
            an empty file), which is hashed here unless the hashing went to the lanes, and
            not written yet.
        """
        size = 0
        remaining = limit
        offload = False
        held: bytes | None = None
        while remaining is None or remaining > 0:
            chunk = source.read(_CHUNK if remaining is None else min(_CHUNK, remaining))
            if not chunk:
                break
            if remaining is not None:
                remaining -= len(chunk)
            if held is not None:
                if offload:
                    self._hash_on_lanes(held, sha256, md5)
                self._write_lane.submit(job.write, held, len(held))
            offload = offload or len(chunk) >= _OFFLOAD_MIN
            if not offload:
                sha256.update(chunk)
                if md5 is not None:
                    md5.update(chunk)
            held = chunk
            size += len(chunk)
        return size, offload, held

    def _drain(self, final: bool = False) -> None:
        """Write the waiting lines whose copies are done (``final``: all, the lanes stopped)."""
        while self._pending:
            line, job, size = self._pending[0]
            if job is not None and (not job.done or job.hashes_pending) and not final:
                return
            self._pending.popleft()
            if job is not None and job.digests:
                line.update(sha256=job.digests["sha256"], md5=job.digests.get("md5"))
            if job is not None and (job.error is not None or not job.done or job.hashes_pending):
                error = job.error or OSError("the copy was not finished")
                line.update(outcome="failed", reason=f"write error: {error}", bundle_path=None,
                            sha256=None, md5=None)
                line.pop("size_read", None)
            elif job is not None:
                self.bytes_collected += size
            self._write_now(line)

    def _write(self, line: dict[str, Any]) -> None:
        """Write ``line`` now, or once the copies queued before it (and its own) are done."""
        job, size = self._jobs.pop(id(line), (None, 0))
        if job is None and not self._pending:
            self._write_now(line)
            return
        self._pending.append((line, job, size))
        self._drain()

    def _write_now(self, line: dict[str, Any]) -> None:
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
        self._stop_lanes()
        self._drain(final=True)
        self._manifest.flush()
        _sync_filesystem(self.root)  # every collected file reaches the disk before the manifest names it
        self._manifest.close()
        os.replace(self._manifest_tmp, self.root / MANIFEST)
        report = {**report,
                  "counts": {k: self.counts.get(k, 0) for k in OUTCOMES},
                  "artifacts": {name: {k: c.get(k, 0) for k in OUTCOMES if c.get(k, 0)}
                                for name, c in sorted(self.per_artifact.items())},
                  "bytes_collected": self.bytes_collected, "hashes": list(self.hashes)}
        with atomic_open(self.root / REPORT, "w") as handle:
            json.dump(report, handle, indent=2, sort_keys=False, ensure_ascii=False)
            handle.write("\n")
        return report

    def abort(self) -> None:
        """Drop the unfinished manifest (an interrupted run publishes nothing half-done)."""
        self._stop_lanes()
        self._pending.clear()
        self._jobs.clear()
        self._manifest.close()
        Path(self._manifest_tmp).unlink(missing_ok=True)
        self.sweep_partials()

    def _stop_lanes(self) -> None:
        self._sha256_lane.stop()
        self._md5_lane.stop()
        self._write_lane.stop()

    def sweep_partials(self) -> None:
        """Remove temporary copies a signal may have left between their creation and cleanup."""
        self._stop_lanes()  # queued copies are finished (renamed or removed) first
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
