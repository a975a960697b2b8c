"""Progress display for long work: a bar on a terminal, silence otherwise or with ``--quiet``."""

from __future__ import annotations

import sys
from typing import Any

from tqdm import tqdm


def progress(total: int | None = None, desc: str = "", unit: str = "it", quiet: bool = False,
             **kwargs: Any) -> tqdm:
    """Return a tqdm bar on stderr that is disabled when stderr is not a TTY or ``quiet`` is set."""
    disable = quiet or not sys.stderr.isatty()
    return tqdm(total=total, desc=desc, unit=unit, disable=disable, file=sys.stderr,
                leave=False, dynamic_ncols=True, **kwargs)
