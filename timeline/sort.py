"""Sort rows in bounded memory: sorted runs spilled to disk, merged k-way with heapq.

Each row is serialised once, behind its sort key, and merged as plain strings (the fastest merge
measured here); memory is bounded by the run size, whatever the number of rows.
"""

from __future__ import annotations

import heapq
import json
import os
import tempfile
from collections.abc import Iterable, Iterator
from contextlib import ExitStack
from typing import Any

from timeline.rows import sort_key

DEFAULT_RUN_ROWS = 100_000
_SEP = "\x00"


class ExternalSorter:
    """Accepts rows in any order; yields them sorted by :func:`timeline.rows.sort_key`."""

    def __init__(self, temp_dir: str | None = None, run_rows: int = DEFAULT_RUN_ROWS) -> None:
        self._temp = tempfile.TemporaryDirectory(prefix="inboxtrail-sort-", dir=temp_dir)
        self._run_rows = run_rows
        self._buffer: list[str] = []
        self._runs: list[str] = []
        self.columns: set[str] = set()
        self.count = 0

    def add(self, row: dict[str, Any]) -> None:
        """Queue one row (its keys are remembered for the CSV header)."""
        self.columns.update(row)
        self._buffer.append(sort_key(row) + _SEP + json.dumps(row, ensure_ascii=False,
                                                              sort_keys=True, default=str))
        self.count += 1
        if len(self._buffer) >= self._run_rows:
            self._spill()

    def add_all(self, rows: Iterable[dict[str, Any]]) -> None:
        """Queue many rows."""
        for row in rows:
            self.add(row)

    def _spill(self) -> None:
        self._buffer.sort()
        path = os.path.join(self._temp.name, f"run{len(self._runs):05d}.txt")
        with open(path, "w", encoding="utf-8", newline="\n") as handle:
            # JSON escapes every control character, so a line never holds a raw newline.
            handle.writelines(line + "\n" for line in self._buffer)
        self._runs.append(path)
        self._buffer = []

    def sorted_rows(self) -> Iterator[dict[str, Any]]:
        """Yield every row in order (consumes the sorter)."""
        self._buffer.sort()
        with ExitStack() as stack:
            streams: list[Iterable[str]] = [self._buffer]
            for path in self._runs:
                handle = stack.enter_context(open(path, encoding="utf-8", newline="\n"))
                streams.append(line.rstrip("\n") for line in handle)
            for line in heapq.merge(*streams):
                yield json.loads(line.split(_SEP, 1)[1])
        self._temp.cleanup()
