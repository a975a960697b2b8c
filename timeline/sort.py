"""Sort text lines in bounded memory: sorted runs spilled to disk, merged k-way with heapq.

Rows are formatted before they are sorted, so the merge handles plain strings, the fastest merge
measured here (≈2 M rows/s); memory is bounded by the run size, whatever the number of rows.
Lines must not contain ``\\n``: callers escape their payloads (see :mod:`timeline.build`).
"""

from __future__ import annotations

import heapq
import os
import tempfile
from collections.abc import Iterator
from contextlib import ExitStack

DEFAULT_RUN_ROWS = 200_000
#: Characters buffered before a run is spilled: keeps peak memory well under 100 MB whatever the
#: row count (a Python string costs its length plus ~50 bytes).
DEFAULT_RUN_CHARS = 24_000_000


class ExternalSorter:
    """Accepts lines in any order; yields them in sorted order."""

    def __init__(self, temp_dir: str | None = None, run_rows: int | None = None) -> None:
        self._temp = tempfile.TemporaryDirectory(prefix="inboxtrail-sort-", dir=temp_dir)
        self._run_rows = run_rows or DEFAULT_RUN_ROWS
        self._chars = 0
        self._buffer: list[str] = []
        self._runs: list[str] = []
        self.count = 0
        self.spilled_runs = 0

    def add(self, line: str) -> None:
        """Queue one line (no ``\\n`` inside)."""
        self._buffer.append(line)
        self.count += 1
        self._chars += len(line)
        if len(self._buffer) >= self._run_rows or self._chars >= DEFAULT_RUN_CHARS:
            self._spill()

    def _spill(self) -> None:
        self._buffer.sort()
        path = os.path.join(self._temp.name, f"run{len(self._runs):05d}.txt")
        with open(path, "w", encoding="utf-8", errors="surrogatepass", newline="\n",
                  buffering=1 << 20) as handle:
            handle.write("\n".join(self._buffer))
            handle.write("\n")
        self._runs.append(path)
        self._buffer = []
        self._chars = 0
        self.spilled_runs = len(self._runs)

    def sorted_lines(self) -> Iterator[str]:
        """Yield every line in order (consumes the sorter)."""
        self._buffer.sort()
        try:
            with ExitStack() as stack:
                streams: list = [self._buffer]
                for path in self._runs:
                    handle = stack.enter_context(open(path, encoding="utf-8", errors="surrogatepass",
                                                      newline="\n", buffering=1 << 20))
                    streams.append(line[:-1] for line in handle)
                yield from heapq.merge(*streams) if len(streams) > 1 else self._buffer
        finally:
            self._temp.cleanup()
