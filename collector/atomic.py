"""Atomic output files: write to a temporary sibling, fsync, then rename over the target.

A run that is interrupted (SIGINT, power loss, crash) therefore never leaves a half-written
timeline, manifest or bundle file behind: either the old file or the complete new one exists.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO


@contextlib.contextmanager
def atomic_open(path: str | os.PathLike[str], mode: str = "w", durable: bool = True,
                **kwargs: object) -> Iterator[IO]:
    """Open ``path`` for writing through a temporary file that replaces it only on success.

    Args:
        path: final destination.
        mode: ``"w"`` (text, UTF-8 unless ``encoding`` is given) or ``"wb"``.
        durable: fsync before the rename. Writers of many files (the bundle) pass False and
            flush the whole file system once at the end instead; the rename alone already
            guarantees that no reader sees a half-written file.
        **kwargs: passed to ``open`` (``newline``, ``encoding``...).

    Yields:
        The open temporary file; it is renamed to ``path`` when the block exits cleanly and removed
        when it raises.
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".part", dir=target.parent)
    if "b" not in mode:
        kwargs.setdefault("encoding", "utf-8")
    try:
        with os.fdopen(fd, mode, **kwargs) as handle:  # type: ignore[call-overload]
            yield handle
            handle.flush()
            if durable:
                os.fsync(handle.fileno())
        os.replace(tmp_name, target)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp_name)
        raise


class AtomicFile:
    """The explicit form of :func:`atomic_open`, for a writer that commits on another thread.

    The bundle hands each copy to its write lane, which writes it, then :meth:`commit` renames
    the temporary sibling over ``path`` (or :meth:`discard` removes it), after the caller's
    ``with`` block is long gone.
    """

    def __init__(self, path: str | os.PathLike[str], make_parents: bool = True) -> None:
        """``make_parents``: False where the caller made the directory (one mkdir per file saved)."""
        self.target = Path(path)
        if make_parents:
            self.target.parent.mkdir(parents=True, exist_ok=True)
        self.fd, self.tmp_name = tempfile.mkstemp(prefix=f".{self.target.name}.", suffix=".part",
                                                  dir=self.target.parent)

    def _close(self) -> None:
        if self.fd >= 0:
            fd, self.fd = self.fd, -1
            os.close(fd)

    def commit(self, durable: bool = False) -> None:
        """Rename the finished file into place (``durable``: fsync it first)."""
        if durable:
            os.fsync(self.fd)
        self._close()
        os.replace(self.tmp_name, self.target)

    def discard(self) -> None:
        """Remove the temporary file (a failed or interrupted copy); safe to call twice."""
        try:
            self._close()
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self.tmp_name)
