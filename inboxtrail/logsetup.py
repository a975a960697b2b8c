"""Logging for one CLI invocation: warnings on stderr, everything in ``OUT/run.log``.

The log is written to a temporary file in the output directory and renamed to ``run.log`` when
the command ends (also on errors and interrupts), so a reader never sees half a log in place of
the previous run's.
"""

from __future__ import annotations

import logging
import os
import sys
import tempfile
from pathlib import Path

_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


class RunLog:
    """Context manager that captures the ``inboxtrail`` loggers for one command."""

    def __init__(self, out_dir: Path | None, quiet: bool) -> None:
        self.out_dir = out_dir
        self.quiet = quiet
        self._handlers: list[logging.Handler] = []
        self._tmp: str | None = None

    def __enter__(self) -> RunLog:
        root = logging.getLogger("inboxtrail")
        root.setLevel(logging.INFO)
        root.propagate = False
        console = logging.StreamHandler(sys.stderr)
        console.setLevel(logging.ERROR if self.quiet else logging.WARNING)
        console.setFormatter(logging.Formatter("inboxtrail: %(levelname)s: %(message)s"))
        self._handlers.append(console)
        if self.out_dir is not None:
            self.out_dir.mkdir(parents=True, exist_ok=True)
            fd, self._tmp = tempfile.mkstemp(prefix=".run.log.", suffix=".part", dir=self.out_dir)
            os.close(fd)
            handler = logging.FileHandler(self._tmp, encoding="utf-8", errors="backslashreplace")
            handler.setFormatter(logging.Formatter(_FORMAT))
            handler.setLevel(logging.INFO)
            self._handlers.append(handler)
        for handler in self._handlers:
            root.addHandler(handler)
        return self

    def __exit__(self, *exc: object) -> None:
        root = logging.getLogger("inboxtrail")
        for handler in self._handlers:
            root.removeHandler(handler)
            handler.close()
        if self._tmp is not None and self.out_dir is not None:
            os.replace(self._tmp, self.out_dir / "run.log")
