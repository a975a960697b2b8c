"""The C twins in ``parsers._mboxscan`` give exactly what the pure-Python mbox code gives.

``header_fields`` is compared with ``mbox._header_fields`` and ``find_separator`` with the regex
search it replaces, on generated input built to hit their edges (names that are prefixes of other
names, any letter case, folded values, CR, bytes that are not UTF-8, separators at buffer ends);
then whole files are parsed both ways, records compared byte for byte. Where the extension is not
built (no C compiler at install), these tests skip, except the one that says it should be built.
"""

from __future__ import annotations

import io
import mmap
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from parsers import mbox
from parsers.base import ParseContext
from parsers.record import Provenance
from tests.conftest import corpus_path, skip_without_c_compiler
from tests.parsers.test_mbox import _HEADER_BLOCKS

native = pytest.mark.skipif(mbox._mboxscan is None, reason="parsers._mboxscan is not built (no C compiler)")
_SEPARATOR = re.compile(rb"\nFrom ")


def test_the_extension_is_built_where_a_c_compiler_is():
    """A broken build would silently cost a third of the mbox speed: fail loudly instead."""
    skip_without_c_compiler("the pure-Python mbox scans")
    assert mbox._mboxscan is not None, "setup.py did not build parsers._mboxscan; run pip install -e . again"
    assert mbox.NATIVE_HEADER_FIELDS is not None and mbox.NATIVE_FIND_SEPARATOR is not None


def _python_fields(block: bytes) -> tuple[list[tuple[str, str]], int, str | None] | None:
    """``mbox._header_fields`` as the C twin answers it: None where the twin defers to Python."""
    try:
        text = block.decode("utf-8")
    except UnicodeDecodeError:
        return None
    if "\r" in text:
        return None
    first, received, last = mbox._header_fields(block)
    return list(first.items()), received, last


def _native_fields(block: bytes) -> tuple[list[tuple[str, str]], int, str | None] | None:
    result = mbox.NATIVE_HEADER_FIELDS(block)
    if result is None:
        return None
    first, received, last = result
    return list(first.items()), received, last  # the key order too


_NAMES = [*mbox.WANTED_HEADERS, "x-imapbasex", "receiv", "received-spf", "x-mozilla-status3", "dates",
          "return-path", "x-", "t", "message", "content-type", "mime-version"]
_PIECES = [":", " ", "\t", "\n", "\n ", "\n\t", "\n\n", " : ", "\r", "\r\n", "é", "日本", "\u2028", "\x85",
           "value", "<a@b>", "Mon, 5 Oct 2026 05:12:37 -0400", ";", "=?utf-8?b?w6k=?="]


def _any_case(draw_bits: list[bool], name: str) -> str:
    bits = draw_bits + [False] * len(name)
    return "".join(c.upper() if bit else c for c, bit in zip(name, bits, strict=False))


@st.composite
def _blocks(draw: st.DrawFn) -> bytes:
    parts: list[bytes] = []
    for _ in range(draw(st.integers(0, 14))):
        if draw(st.booleans()):
            name = draw(st.sampled_from(_NAMES))
            parts.append(_any_case(draw(st.lists(st.booleans(), max_size=20)), name).encode())
        kind = draw(st.integers(0, 9))
        if kind == 0:
            parts.append(draw(st.sampled_from([b"\xff", b"\xc3", b"\xe9", b"\xed\xa0\x80", b"\xc0\xaf"])))
        else:
            parts.append(draw(st.sampled_from(_PIECES)).encode())
    return b"".join(parts)


@native
@settings(max_examples=1500, deadline=None)
@given(_blocks())
def test_header_fields_equals_the_python_twin(block: bytes) -> None:
    assert _native_fields(block) == _python_fields(block)


@native
@pytest.mark.parametrize("block", [*_HEADER_BLOCKS, b"Date:", b"date", b"\n",
                                   b"Date: x\n\tmore\n \n",
                                   b"x-imapbase : 1 2\nX-IMAP:3 4\nX-Mozilla-Status2:\t5\n",
                                   b"Received: a\n" * 200 + b"Subject: many\n",
                                   "Subject: caf\xe9\n".encode()])
def test_header_fields_on_chosen_blocks(block: bytes) -> None:
    assert _native_fields(block) == _python_fields(block)


@native
def test_header_fields_refuses_what_is_not_bytes_and_keeps_its_names_on_a_bad_list():
    with pytest.raises(TypeError):
        mbox.NATIVE_HEADER_FIELDS("Date: text, not bytes\n")
    for bad in (["Date"], ["date", "bad name"], ["da:te"], [], ["x" * 100], [b"date"]):
        with pytest.raises(ValueError):
            mbox._mboxscan.configure(bad)
    # the refused lists changed nothing
    assert _native_fields(_HEADER_BLOCKS[0]) == _python_fields(_HEADER_BLOCKS[0])


def _regex(buf: bytes | mmap.mmap, start: int, end: int) -> int:
    match = _SEPARATOR.search(buf, start, end)
    return -1 if match is None else match.start()


_SEP_PIECES = [b"\nFrom ", b"\nFrom", b"From ", b"\nF", b"\n", b"F", b"rom ", b"\n\nFrom  ", b"\r\nFrom ",
               b"QUJD" * 9, b"x", b"\nfrom ", b"\nFROM "]


@pytest.fixture(params=["avx2", "sse2"])
def vector_path(request: pytest.FixtureRequest) -> Iterator[str]:
    """The separator search on each of its vector paths (AVX2 where the CPU has it, SSE2)."""
    if mbox._mboxscan is None:
        pytest.skip("parsers._mboxscan is not built (no C compiler)")
    was = mbox._mboxscan.use_avx2(True)
    if request.param == "avx2" and not was:
        pytest.skip("this CPU has no AVX2")
    mbox._mboxscan.use_avx2(request.param == "avx2")
    try:
        yield request.param
    finally:
        mbox._mboxscan.use_avx2(was)


@native
@settings(max_examples=1000, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.sampled_from(_SEP_PIECES), max_size=40), st.integers(-3, 400), st.integers(-3, 400))
def test_find_separator_equals_the_regex_search(vector_path: str, parts: list[bytes], start: int,
                                                end: int) -> None:
    data = b"".join(parts)
    assert mbox.NATIVE_FIND_SEPARATOR(data, max(start, 0), end) == _regex(data, max(start, 0), end)
    position, found, expected = 0, [], []
    while (at := mbox.NATIVE_FIND_SEPARATOR(data, position, len(data))) >= 0:
        found.append(at)
        position = at + 1
    position = 0
    while (at := _regex(data, position, len(data))) >= 0:
        expected.append(at)
        position = at + 1
    assert found == expected


@native
def test_find_separator_at_every_offset_of_a_file_map(vector_path: str, tmp_path: Path) -> None:
    """A separator at each offset near the start and the end of a page-sized file map."""
    size = mmap.PAGESIZE
    for at in [*range(0, 40), *range(size - 40, size - 5)]:
        data = bytearray(b"A" * size)
        data[at:at + 6] = b"\nFrom "
        path = tmp_path / "spool"
        path.write_bytes(bytes(data))
        with path.open("rb") as handle, mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ) as buf:
            for start in (0, at, at + 1):
                for end in (size, at + 6, at + 5):
                    found = mbox.NATIVE_FIND_SEPARATOR(buf, start, end)
                    assert found == _regex(buf, start, end), (at, start, end)


def _records(data: bytes) -> list[bytes]:
    ctx = ParseContext(provenance=Provenance(bundle_path=None, source_path="/var/mail/alice", sha256=None),
                       host="mailhost", user="alice")
    records = [r.to_json_bytes() for r in mbox.MboxParser().parse(io.BytesIO(data), ctx)]
    return records + [repr(w).encode() for w in ctx.warnings]


def _both_ways(data: bytes, monkeypatch: pytest.MonkeyPatch) -> None:
    with_c = _records(data)
    with monkeypatch.context() as python_only:
        python_only.setattr(mbox, "NATIVE_HEADER_FIELDS", None)
        python_only.setattr(mbox, "NATIVE_FIND_SEPARATOR", None)
        assert _records(data) == with_c


def _message(index: int, headers: str, body: bytes) -> bytes:
    envelope = f"From sender{index}@example.org Mon Oct  5 05:12:{index % 60:02d} 2026\n"
    return f"{envelope}{headers}\n".encode() + body


@native
def test_whole_spools_parse_to_the_same_records_both_ways(monkeypatch: pytest.MonkeyPatch) -> None:
    body = b"text\n>From quoted\n\n" + (b"QUJD" * 19 + b"\n") * 3000 + b"end\n\n"
    spool = b"".join(_message(i, headers, body) for i, headers in enumerate([
        "Date: Mon, 5 Oct 2026 05:12:37 -0400\nSubject: one\nX-UID: 3\nStatus: RO",
        "Subject: crlf\r\nTo: a\r\nReceived: x; Mon, 5 Oct 2026 05:12:37 -0400\r",
        "From: caf\xe9 <x@y>\nX-Mozilla-Status: 0009\nX-IMAPbase: 1 9",
        "Content-Length: 5\nSubject: wrong length",
        "RECEIVED: a\n\tb; Mon, 5 Oct 2026 05:12:38 -0400\nreceived: c; 5 Oct 2026 05:12:36 +0000",
    ]))
    _both_ways(spool, monkeypatch)
    _both_ways(spool[:-7], monkeypatch)  # cut inside the last body
    _both_ways(spool.replace(b"\n", b"\r\n"), monkeypatch)


@native
def test_the_corpus_mail_parses_to_the_same_records_both_ways(monkeypatch: pytest.MonkeyPatch) -> None:
    files = 0
    for path in sorted(corpus_path("mail").rglob("*")):
        if path.is_file():
            data = path.read_bytes()
            if mbox.MboxParser.sniff(data[:64], path.name):
                files += 1
                _both_ways(data, monkeypatch)
    assert files, "no mbox file found in the corpus"


@native
@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.tuples(_blocks(), st.sampled_from([b"", b"body\n", b"From x\n", b"\n>From y\n",
                                                       b"\x00" * 20, b"QUJD" * 30 + b"\n"])), max_size=6))
def test_generated_spools_parse_to_the_same_records_both_ways(monkeypatch: pytest.MonkeyPatch,
                                                              messages: list[tuple[bytes, bytes]]) -> None:
    envelope = b"From a@b Mon Oct  5 05:12:37 2026\n"
    spool = b"".join(envelope + head + b"\n\n" + body for head, body in messages)
    _both_ways(spool, monkeypatch)
