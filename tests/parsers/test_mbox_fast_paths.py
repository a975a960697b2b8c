"""The mbox reader's fast paths give exactly what the plain search and the date pattern give.

``_next_separator`` jumps over space-free runs (base64) with ``memchr`` between regex chunks, and
``parse_rfc2822_date`` reuses the day and zone of a date written like one it read before. Both
are compared here with the reference they replace, on inputs built to hit their edges: separators
straddling chunk and window boundaries, long runs without a space, clocks that are not clocks.
"""

from __future__ import annotations

import email.utils
import mmap
import random
import re

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from parsers import mbox

_SEPARATOR = re.compile(rb"\nFrom ")


def _all_separators(find, buf: bytes | mmap.mmap, size: int) -> list[int]:
    found, pos = [], 0
    while True:
        index = find(buf, pos, size)
        if index < 0:
            return found
        found.append(index)
        pos = index + 1


def _reference(buf: bytes | mmap.mmap, pos: int, size: int) -> int:
    match = _SEPARATOR.search(buf, pos, size)
    return -1 if match is None else match.start()


@pytest.fixture(params=["native", "python"])
def separator_search(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Each test of the separator search runs with the C twin (where built) and without it."""
    if request.param == "native":
        if mbox.NATIVE_FIND_SEPARATOR is None:
            pytest.skip("parsers._mboxscan is not built (no C compiler at install)")
    else:
        monkeypatch.setattr(mbox, "NATIVE_FIND_SEPARATOR", None)
    return request.param


_PIECES = [b"\nFrom ", b"From ", b"\nFrom", b" ", b"\n", b"x" * 7, b"QUJD" * 40, b"rom ", b"\n>From ",
           b"text with spaces ", b"\r\nFrom "]


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.sampled_from(_PIECES) | st.integers(0, 40_000).map(lambda n: b"A" * n), max_size=30),
       st.integers(0, 64))
def test_next_separator_finds_what_the_plain_search_finds(separator_search: str, parts: list[bytes],
                                                         start: int) -> None:
    data = b"".join(parts)
    expected = _all_separators(_reference, data, len(data))
    assert _all_separators(mbox._next_separator, data, len(data)) == expected
    assert mbox._next_separator(data, start, len(data)) == _reference(data, start, len(data))


def test_separator_straddling_every_chunk_and_window_edge(separator_search: str,
                                                         monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:
    """Separators at each offset around a chunk edge and a (shrunk) window edge, in a file map."""
    monkeypatch.setattr(mbox, "SCAN_WINDOW", 3 * mbox.SEPARATOR_CHUNK)
    rng = random.Random(7)
    chunk = mbox.SEPARATOR_CHUNK
    for edge in (chunk, 2 * chunk, mbox.SCAN_WINDOW, mbox.SCAN_WINDOW + chunk):
        for shift in range(-8, 3):
            filler = bytearray(rng.choice(b"ABCDEFGHIJ+/") for _ in range(edge + 2 * chunk))
            at = edge + shift
            filler[at:at + 6] = b"\nFrom "
            if rng.random() < 0.5:
                filler[at - 3000:at - 2990] = b"some words"  # a space before the separator
            path = tmp_path / "spool"
            path.write_bytes(bytes(filler))
            with path.open("rb") as handle, mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ) as buf:
                assert mbox._next_separator(buf, 1, len(buf)) == at, (edge, shift)
                assert mbox._next_separator(buf, at + 1, len(buf)) == -1


_ZONES = ["-0000", "+0100", "-0430", "+2400", "UTC", "-0000 (UTC)", "+0000  "]
_CLOCKS = st.one_of(st.builds("{:02d}:{:02d}:{:02d}".format, st.integers(0, 25), st.integers(0, 61),
                              st.integers(0, 61)),
                    st.sampled_from(["1:02:03", "12:34", "aa:bb:cc", "١٢:00:00", "12:34:56.7"]))


@settings(max_examples=400, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(["Thu, ", "", " Mon,", "thu, "]),
                          st.sampled_from(["01", "1", "31", "32", "00"]),
                          st.sampled_from(["Jan", "Dec", "jan", "Foo"]),
                          st.sampled_from(["2026", "1999", "20261"]), st.sampled_from([" ", "  "]),
                          _CLOCKS, st.sampled_from(_ZONES)), min_size=1, max_size=12))
def test_date_fast_path_agrees_with_a_cold_read(dates: list[tuple[str, ...]]) -> None:
    """Whatever the dates read before, a date gives what it gives with every cache empty."""
    texts = [f"{day}{number} {month} {year}{space}{clock} {zone}"
             for day, number, month, year, space, clock, zone in dates]
    warm = [mbox.parse_rfc2822_date(text) for text in texts]
    cold = []
    for text in texts:
        mbox._DATE_HEADS.clear()
        mbox._MIDNIGHTS.clear()
        cold.append(mbox.parse_rfc2822_date(text))
    assert warm == cold


def test_date_fast_path_reads_known_dates() -> None:
    """A spool's worth of dates on one day: the cached reads equal the email package's."""
    mbox._DATE_HEADS.clear()
    for second in range(0, 86_400, 677):
        text = f"Thu, 01 Jan 2026 {second // 3600:02d}:{second // 60 % 60:02d}:{second % 60:02d} -0430"
        expected = email.utils.parsedate_to_datetime(text).timestamp()
        assert mbox.parse_rfc2822_date(text) == int(expected) * 1_000_000, text
    assert ("Thu, 01 Jan 2026", "-0430") in mbox._DATE_HEADS
