"""Progress display for long work: a bar on a terminal, silence otherwise or with ``--quiet``."""

from __future__ import annotations

import sys
from typing import Any, Protocol


class Bar(Protocol):
    """What callers use of a progress bar."""

    def update(self, n: float = 1) -> Any: ...

    def close(self) -> None: ...

    def __enter__(self) -> Bar: ...

    def __exit__(self, *exc: object) -> Any: ...


class _Silent:
    """The bar when nothing is shown: tqdm itself (~20 ms of imports) is then never loaded."""

    def update(self, n: float = 1) -> None:
        pass

    def close(self) -> None:
        pass

    def __enter__(self) -> _Silent:
        return self

    def __exit__(self, *exc: object) -> None:
        pass


def progress(total: int | None = None, desc: str = "", unit: str = "it", quiet: bool = False,
             **kwargs: Any) -> Bar:
    """Return a tqdm bar on stderr; a silent one when stderr is not a TTY or ``quiet`` is set."""
    if quiet or not sys.stderr.isatty():
        return _Silent()
    from tqdm import tqdm

    return tqdm(total=total, desc=desc, unit=unit, file=sys.stderr, leave=False,
                dynamic_ncols=True, **kwargs)
