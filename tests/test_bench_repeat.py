"""The bench keeps the fastest of its passes, within its time budget, and cleans up between them."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "bench"))

import run as bench_run


def test_fastest_keeps_the_least_cpu_pass(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(bench_run, "REPEAT", 3)
    costs = iter([5.0, 2.0, 4.0, 1.0])
    cleaned = []
    best, count, passes = bench_run._fastest(lambda: next(costs), lambda cost: cost,
                                             cleanup=lambda: cleaned.append(True))
    assert (best, count, passes) == (2.0, 3, [5.0, 2.0, 4.0])
    assert len(cleaned) == 2  # before the second and third pass, not the first


def test_no_pass_starts_after_the_budget(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(bench_run, "REPEAT", 5)
    monkeypatch.setattr(bench_run, "REPEAT_BUDGET_S", 0.0)
    best, count, _ = bench_run._fastest(lambda: 7.0, lambda cost: cost)
    assert (best, count) == (7.0, 1)
