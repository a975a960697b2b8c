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
