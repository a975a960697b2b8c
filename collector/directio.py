"""Writing fresh output through ``O_DIRECT`` from a reused page-aligned buffer.

Used by the bundle writer (collected files) and the timeline merge (the three timeline files):
both write large amounts of data nobody reads back soon, whose page-cache copies cost as much CPU
as producing them on a VM.
"""

from __future__ import annotations

import errno
import mmap
import os

try:
    import fcntl
except ImportError:  # Windows: no O_DIRECT, buffered writes only
    fcntl = None  # type: ignore[assignment]

#: ``O_DIRECT`` wants buffer address, length and file offset aligned to the logical block size;
#: 4 KiB covers both 512-byte and 4 KiB devices.
_ALIGN = 4096
_O_DIRECT = getattr(os, "O_DIRECT", 0) if fcntl is not None else 0


class DirectPolicy:
    """Whether bundle writes still try ``O_DIRECT`` (False once the file system refused it)."""

    enabled: bool = _O_DIRECT != 0


class DirectWriter:
    """Writes one bundle file through ``O_DIRECT`` from a reused page-aligned buffer.

    Buffered writes of fresh data cost a page-cache page per 4 KiB, which on a VM is as
    expensive as hashing the bytes twice; ``O_DIRECT`` hands the buffer to the disk instead and
    leaves both cores to the hashes. Whole 4 KiB blocks go direct; the unaligned tail is written
    after switching the descriptor back to buffered mode. Where the file system refuses
    ``O_DIRECT`` (tmpfs, some network file systems, non-Linux systems) every write is buffered.
    Only the write lane calls it, so the one buffer is never shared between two files.
    """

    def __init__(self, fd: int, buffer: mmap.mmap, policy: DirectPolicy) -> None:
        self._fd = fd
        self._buffer = buffer
        self._policy = policy
        self._fill = 0
        self._flags = 0
        self.direct: bool | None = None  # decided at the first write

    def _start(self) -> None:
        self.direct = False
        if not self._policy.enabled:
            return
        try:
            self._flags = fcntl.fcntl(self._fd, fcntl.F_GETFL)
            fcntl.fcntl(self._fd, fcntl.F_SETFL, self._flags | _O_DIRECT)
        except OSError:
            self._policy.enabled = False
            return
        self.direct = True

    def _write_all(self, data: memoryview) -> None:
        while data:
            data = data[os.write(self._fd, data):]

    def _flush_direct(self, length: int) -> None:
        with memoryview(self._buffer) as buffer:
            view = buffer[:length]
            while view:
                try:
                    written = os.write(self._fd, view)
                except OSError as exc:
                    if exc.errno != errno.EINVAL or not self.direct:
                        raise
                    self._policy.enabled = False  # an alignment the device refuses: buffered from now on
                    self._buffered()
                    continue
                view = view[written:]
            view.release()

    def _buffered(self) -> None:
        if self.direct:
            fcntl.fcntl(self._fd, fcntl.F_SETFL, self._flags & ~_O_DIRECT)
            self.direct = False

    def write(self, data: bytes) -> None:
        if self.direct is None:
            self._start()
        if not self.direct:
            self._write_all(memoryview(data))
            return
        size = len(self._buffer)
        with memoryview(data) as view:
            while view:
                take = min(size - self._fill, len(view))
                self._buffer[self._fill:self._fill + take] = view[:take]
                self._fill += take
                view = view[take:]
                if self._fill == size:
                    self._flush_direct(size)
                    self._fill = 0

    def finish(self) -> None:
        """Write what is left: its whole blocks direct, the last partial block buffered."""
        fill, self._fill = self._fill, 0
        if not self.direct or not fill:
            return
        aligned = fill - fill % _ALIGN
        if aligned:
            self._flush_direct(aligned)
        if fill > aligned:
            tail = bytes(self._buffer[aligned:fill])
            self._buffered()
            self._write_all(memoryview(tail))

    def restart(self) -> None:
        """Empty the file, to copy it again from its first byte."""
        self._fill = 0
        os.ftruncate(self._fd, 0)
        os.lseek(self._fd, 0, os.SEEK_SET)
