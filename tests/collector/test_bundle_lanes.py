"""The bundle writer's helper lanes: calls gathered into batches still run once each, in order."""

from __future__ import annotations

import pytest

from collector.bundle import _CHUNK, _Lane


def test_calls_run_in_order_across_batches_and_on_stop() -> None:
    lane = _Lane("test", depth=1)
    seen: list[int] = []
    for number in range(100):  # more calls than one batch holds, with data filling some
        lane.submit(seen.append, number, size=_CHUNK // 3 if number % 7 == 0 else 0)
    lane.wait()
    assert seen == list(range(100))
    lane.submit(seen.append, 100)  # gathered, not yet handed over: stop still runs it
    lane.stop()
    assert seen == list(range(101))


def test_first_error_is_raised_by_wait_and_later_calls_are_skipped() -> None:
    lane = _Lane("test")
    seen: list[str] = []

    def fail(_: object) -> None:
        raise OSError("disk full")

    lane.submit(seen.append, "before")
    lane.submit(fail, None)
    lane.submit(seen.append, "after")
    with pytest.raises(OSError, match="disk full"):
        lane.wait()
    assert seen == ["before"]
    lane.submit(seen.append, "next file")  # the error was handed back: the lane goes on
    lane.wait()
    lane.stop()
    assert seen == ["before", "next file"]
