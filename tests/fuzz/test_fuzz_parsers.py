"""The short, fixed fuzz run of the test suite: every registered parser, mutated real seeds.

Deterministic (``derandomize=True``, no example database) and bounded in examples so that this
file stays under a minute; ``bench/fuzz.py`` runs the same harness for longer with random seeds.
The contract is :func:`tests.fuzz.harness.check`.
"""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, assume, given, reject, settings
from hypothesis import strategies as st

from parsers import REGISTRY
from tests.fuzz import harness

FUZZ = settings(deadline=None, derandomize=True, database=None, print_blob=False,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                       HealthCheck.large_base_example, HealthCheck.filter_too_much])
TARGETS = [t for t in harness.TARGETS if t.parser != "filestat"]


def test_every_registered_parser_is_fuzzed() -> None:
    assert {t.parser for t in harness.TARGETS} == set(REGISTRY)


def _seeds(target: harness.Target) -> list[harness.Seed]:
    seeds = target.seeds()
    if not seeds:
        pytest.skip(f"no seeds for {target.name}: the shared corpus ({harness.CORPUS}) is absent")
    return seeds


def _check(target: harness.Target, data: bytes) -> None:
    assume(harness.known_hang(target, data) is None)
    try:
        harness.check(target, data)
    except harness.ContractViolation as violation:
        if harness.known_bug(target, violation):
            reject()
        raise


@pytest.mark.parametrize("target", TARGETS, ids=[t.name for t in TARGETS])
def test_mutated_seeds(target: harness.Target) -> None:
    seeds = _seeds(target)

    @settings(FUZZ, max_examples=target.examples)
    @given(data=harness.mutated(target, seeds))
    def run(data: bytes) -> None:
        _check(target, data)

    run()


@pytest.mark.parametrize("target", TARGETS, ids=[t.name for t in TARGETS])
def test_truncated_and_blanked_seeds(target: harness.Target) -> None:
    """Each seed cut at 12 points across its length, plus empty, zero-filled and 0xFF-filled copies."""
    for _, seed in _seeds(target)[:3]:
        cuts = sorted({len(seed) * i // 12 for i in range(12)} | {1, 8, 512, 4096})
        for data in [seed[:cut] for cut in cuts if cut < len(seed)] + [bytes(len(seed)), b"\xff" * len(seed)]:
            if harness.known_hang(target, data) is None:
                harness.check(target, data, memory=None)


@settings(FUZZ, max_examples=60)
@given(entry=harness.manifest_entries())
def test_filestat_hostile_manifest_entries(entry: dict) -> None:
    harness.check(harness.TARGETS_BY_NAME["filestat"], b"", entry=entry)


@settings(FUZZ, max_examples=40)
@given(depth=st.sampled_from([1, 10, 200, 3000]), reuse=st.booleans(), cut=st.floats(0, 1),
       target=st.sampled_from([t for t in harness.TARGETS if t.kind == "mail"]))
def test_deeply_nested_mime(depth: int, reuse: bool, cut: float, target: harness.Target) -> None:
    message = harness.nested_mime(depth, boundary_reuse=reuse)
    data = harness.wrap_message(message[:int(len(message) * cut)] if cut < 0.5 else message, target.wrap)
    _check(target, data)
