"""Sort lines of bytes in bounded memory: sorted runs spilled to disk, merged k-way with heapq.

Rows are formatted before they are sorted (:mod:`timeline.lines`), so sorting and merging handle
opaque lines whose byte order is the timeline order, the fastest merge measured here. Memory is
bounded by the run size and the merge's fan-in (read buffers), whatever the number of rows: more
runs than :data:`FAN_IN` are merged in passes. Lines end with ``\\n`` and hold no other one.

A run file may also hold items of ``group`` consecutive lines (the timeline's runs keep a row's
key and its three renderings on four lines): they are merged as tuples of lines, compared first
by their first line.
"""

from __future__ import annotations

import contextlib
import heapq
import itertools
import os
from collections.abc import Iterable, Iterator
from contextlib import ExitStack
from pathlib import Path

DEFAULT_RUN_ROWS = 200_000
#: Bytes of lines buffered before a run is spilled: keeps a formatting process well under 100 MB
#: whatever the row count (a Python bytes object costs its length plus ~33 bytes).
DEFAULT_RUN_BYTES = 32_000_000
#: Runs merged at once: bounds the open files and their read buffers (64 x 64 KiB = 4 MiB).
FAN_IN = 64
#: Read buffer per merged run. Reads of 64 KiB cost the kernel ~3x less CPU than 256 KiB reads
#: here (the copy stays in the CPU cache), and the merge's fan-in keeps them few.
READ_BUFFER = 1 << 16
WRITE_BUFFER = 1 << 20


def grouped(lines: Iterable[bytes], group: int) -> Iterator[tuple[bytes, ...]]:
    """Consecutive lines in tuples of ``group`` (an incomplete last tuple is dropped)."""
    return zip(*[iter(lines)] * group, strict=False)


def merged_items(handles: list[Iterable], group: int = 1) -> Iterator:
    """The items of sorted runs in one sorted stream: lines, or tuples of ``group`` lines."""
    streams = handles if group == 1 else [grouped(h, group) for h in handles]
    if len(streams) == 1:
        return iter(streams[0])
    return heapq.merge(*streams)


def merge_files(paths: list[Path], target: Path, consume: bool = True, group: int = 1) -> Path:
    """Merge sorted run files (at most :data:`FAN_IN`) into the sorted file ``target``."""
    with ExitStack() as stack, open(target, "wb", buffering=WRITE_BUFFER) as out:
        handles = [stack.enter_context(open(p, "rb", buffering=READ_BUFFER)) for p in paths]
        merged = merged_items(handles, group)
        out.writelines(merged if group == 1 else itertools.chain.from_iterable(merged))
    if consume:
        for path in paths:
            os.unlink(path)
    return target


def reduce_runs(paths: list[Path], directory: Path, prefix: str, fan_in: int | None = None,
                consume: bool = True, group: int = 1) -> list[Path]:
    """Merge groups of runs in passes until at most ``fan_in`` are left.

    The inputs are deleted as they are merged unless ``consume`` is False; the intermediate runs
    of later passes always are.
    """
    fan_in = fan_in or FAN_IN
    level = 0
    while len(paths) > fan_in:
        level += 1
        paths = [merge_files(paths[i:i + fan_in], directory / f"{prefix}-m{level}-{i // fan_in:05d}.run",
                             consume=consume or level > 1, group=group)
                 for i in range(0, len(paths), fan_in)]
    return paths


class ExternalSorter:
    """Accepts lines in any order; gives them back sorted (:meth:`sorted_lines`)."""

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
        #: Runs written to disk so far.
        self.spilled_runs = 0

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
        self.spilled_runs += 1
        self._buffer = []
        self._bytes = 0

    @contextlib.contextmanager
    def sorted_lines(self) -> Iterator[Iterator[bytes]]:
        """Every line added, sorted: the spilled runs merged with what is still in memory.

        The last lines are merged from memory rather than spilled and read back. The spilled
        runs are deleted when the block exits.
        """
        self._buffer.sort()
        self.count += len(self._buffer)
        tail, self._buffer, self._bytes = self._buffer, [], 0
        with ExitStack() as stack:
            runs = reduce_runs(self._runs, self._directory, self._prefix, max(2, FAN_IN - 1))
            self._runs = []
            for run in runs:
                stack.callback(os.unlink, run)
            handles = [stack.enter_context(open(run, "rb", buffering=READ_BUFFER)) for run in runs]
            yield merged_items([*handles, tail] if tail else handles) if handles or tail else iter(())
