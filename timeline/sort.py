"""Sort lines of bytes in bounded memory: sorted runs spilled to disk, merged k-way with heapq.

Rows are formatted before they are sorted (:mod:`timeline.lines`), so sorting and merging handle
opaque lines whose byte order is the timeline order, the fastest merge measured here. Memory is
bounded by the run size and the merge's fan-in (read buffers), whatever the number of rows: more
runs than :data:`FAN_IN` are merged in passes. Lines end with ``\\n`` and hold no other one.
"""

from __future__ import annotations

import heapq
import os
from collections.abc import Iterable
from contextlib import ExitStack
from pathlib import Path

DEFAULT_RUN_ROWS = 200_000
#: Bytes of lines buffered before a run is spilled: keeps a formatting process well under 100 MB
#: whatever the row count (a Python bytes object costs its length plus ~33 bytes).
DEFAULT_RUN_BYTES = 32_000_000
#: Runs merged at once: bounds the open files and their read buffers (64 x 256 KiB = 16 MiB).
FAN_IN = 64
READ_BUFFER = 1 << 18
WRITE_BUFFER = 1 << 20


def merge_files(paths: list[Path], target: Path, consume: bool = True) -> Path:
    """Merge sorted run files (at most :data:`FAN_IN`) into the sorted file ``target``."""
    with ExitStack() as stack, open(target, "wb", buffering=WRITE_BUFFER) as out:
        handles = [stack.enter_context(open(p, "rb", buffering=READ_BUFFER)) for p in paths]
        out.writelines(heapq.merge(*handles))
    if consume:
        for path in paths:
            os.unlink(path)
    return target


def reduce_runs(paths: list[Path], directory: Path, prefix: str, fan_in: int | None = None,
                consume: bool = True) -> list[Path]:
    """Merge groups of runs in passes until at most ``fan_in`` are left.

    The inputs are deleted as they are merged unless ``consume`` is False; the intermediate runs
    of later passes always are.
    """
    fan_in = fan_in or FAN_IN
    level = 0
    while len(paths) > fan_in:
        level += 1
        paths = [merge_files(paths[i:i + fan_in], directory / f"{prefix}-m{level}-{i // fan_in:05d}.run",
                             consume=consume or level > 1)
                 for i in range(0, len(paths), fan_in)]
    return paths


class ExternalSorter:
    """Accepts lines in any order; leaves them as one sorted run file in ``directory``."""

    def __init__(self, directory: str | Path, prefix: str = "run", run_rows: int | None = None,
                 run_bytes: int | None = None) -> None:
        self._directory = Path(directory)
        self._prefix = prefix
        self._run_rows = run_rows or DEFAULT_RUN_ROWS
        self._run_bytes = run_bytes or DEFAULT_RUN_BYTES
        self._bytes = 0
        self._buffer: list[bytes] = []
        self._runs: list[Path] = []
        self.count = 0

    @property
    def spilled_runs(self) -> int:
        """Runs written to disk so far."""
        return len(self._runs)

    def add_lines(self, lines: Iterable[bytes]) -> None:
        """Queue lines (each ending with its only ``\\n``)."""
        buffer = self._buffer
        for line in lines:
            buffer.append(line)
            self._bytes += len(line)
        if len(buffer) >= self._run_rows or self._bytes >= self._run_bytes:
            self._spill()

    def _spill(self) -> None:
        self._buffer.sort()
        path = self._directory / f"{self._prefix}-{len(self._runs):05d}.run"
        with open(path, "wb", buffering=WRITE_BUFFER) as handle:
            handle.writelines(self._buffer)
        self.count += len(self._buffer)
        self._runs.append(path)
        self._buffer = []
        self._bytes = 0

    def finish(self) -> Path | None:
        """Spill what is left and merge every spilled run into one; None when there were no lines."""
        if self._buffer:
            self._spill()
        if not self._runs:
            return None
        runs = reduce_runs(self._runs, self._directory, self._prefix)
        if len(runs) == 1:
            return runs[0]
        return merge_files(runs, self._directory / f"{self._prefix}.run")
