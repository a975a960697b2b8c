"""The Mork reader: the syntax Thunderbird writes, cuts and resets, escapes, broken input, and
streaming (same result from any piece size, memory that follows the rows kept, not the bytes)."""

from __future__ import annotations

import io
import tracemalloc
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from parsers import mork
from parsers.mork import decode_value, read_mork
from tests.fuzz.streams import lazy_reader

HEAD = '// <!-- <mdb:mork:z v="1.4"/> -->\n< <(a=c)> // (f=iso-8859-1)\n  (80=ns:s)(81=subject)(82=k:msgs)>\n'


def test_escapes_and_continuations():
    assert decode_value(r"a\)b\\c\$d") == "a)b\\c$d"
    assert decode_value("caf$C3$A9") == "café"
    assert decode_value("long\\\nline") == "longline"
    assert decode_value("$E9t$E9") == "été"  # not UTF-8: Latin-1


def test_rows_atoms_literal_columns_and_updates():
    db = read_mork(HEAD + "<(90=hello)>\n{1:^80 {(k^82:c)(s=9)}\n  [1(^81^90)(plain=x\\)y)]\n"
                   "  [2(^81=two)]}\n@$${1{@\n[1(^81=changed)]\n@$$}1}@\n")
    assert db.rows[("ns:s", "1")] == {"subject": "changed", "plain": "x)y"}
    table = db.tables[("ns:s", "1")]
    assert table.kind == "k:msgs" and list(table.rows) == ["1", "2"] and table.cut == {}


def test_cut_reset_and_aborted_groups():
    text = (HEAD + "{1:^80 {(k^82:c)} [1(^81=a)] [2(^81=b)] [3(^81=c)]}\n"
            "@$${2{@\n{1:^80 -3 }\n@$$}2}@\n"
            "@$${3{@\n{1:^80 - [-1]}\n@$$}~~}@\n")
    db = read_mork(text)
    table = db.tables[("ns:s", "1")]
    assert list(table.rows) == ["1", "2"] and list(table.cut) == ["3"]
    assert db.rows[("ns:s", "3")] == {"subject": "c"}
    assert db.groups == 2 and db.aborted_groups == 1
    reset = read_mork(text + "@$${4{@\n{1:^80 ! [2]}\n@$$}4}@\n")
    table = reset.tables[("ns:s", "1")]
    assert list(table.rows) == ["2"] and sorted(table.cut) == ["1", "3"]


def test_garbage_does_not_raise():
    db = read_mork("// <!-- <mdb:mork:z v=\"1.4\"/> -->\n<<<((( ]]] }}} @$${ \x00\xff zz")
    assert db.rows == {} and db.tables == {}


# -- streaming: the same result from a file read in pieces, in memory bounded by what is kept ---------
FIXTURE = Path(__file__).resolve().parents[1] / "fixtures/mail/thunderbird/Mail/Local Folders/Inbox.msf"
MSF_COLUMNS = ("message-id", "flags", "date", "dateReceived", "subject", "sender", "recipients",
               "msgOffset", "storeToken", "size")
_PIECES = [b"(", b")", b"\\", b"[", b"]", b"{", b"}", b"<", b">", b"-", b"!", b"@$${5{@", b"@$$}5}@",
           b"@$$}~~}@", b"//", b"\n", b"$", b"(a=c)", b"^", b":", b"=", b"\xff", b"\\)", b" ", b"[9(^81=x)]"]


def _state(db: mork.MorkDatabase) -> tuple:
    tables = {key: (t.scope, t.kind, list(t.rows), t.cut) for key, t in db.tables.items()}
    return (db.rows, db.row_offsets, tables, db.groups, db.aborted_groups, db.skipped, db.cut_values)


@settings(max_examples=150, deadline=None, derandomize=True, database=None,
          suppress_health_check=[HealthCheck.too_slow])
@given(edits=st.lists(st.tuples(st.integers(0, 1 << 16), st.sampled_from(_PIECES), st.integers(1, 40)),
                      max_size=6),
       cut=st.integers(0, 1 << 16), chunk=st.sampled_from([1, 2, 7, 64]))
def test_pieces_of_any_size_give_the_same_database(edits, cut, chunk) -> None:
    """Tokens, cells, group markers and escapes split across reads change nothing (nor str vs file)."""
    data = bytearray(FIXTURE.read_bytes())
    for at, piece, count in edits:
        at %= len(data) + 1
        data[at:at] = piece * count
    data = bytes(data[:cut % (len(data) + 1)] if cut % 3 == 0 else data)
    whole = _state(mork.read_mork(data.decode("latin-1")))
    saved = mork._CHUNK
    mork._CHUNK = chunk
    try:
        assert _state(mork.read_mork(io.BytesIO(data))) == whole
    finally:
        mork._CHUNK = saved


def test_file_and_text_give_the_fixture_rows() -> None:
    with FIXTURE.open("rb") as handle:
        db = mork.read_mork(handle)
    assert _state(db) == _state(mork.read_mork(FIXTURE.read_bytes().decode("latin-1")))
    table = next(db.tables_of_kind("ns:msg:db:table:kind:msgs"))
    assert list(table.rows) == ["1", "3", "7"] and list(table.cut) == ["2"]
    assert db.rows[(table.scope, "2")]["subject"] == "Wire transfer approval"
    assert db.groups == 2 and db.aborted_groups == 1
    assert FIXTURE.read_bytes()[table.cut["2"]:].startswith(b"-2]")  # offsets are byte offsets


def test_aborted_group_across_many_reads(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(mork, "_CHUNK", 5)
    text = (HEAD + "{1:^80 {(k^82:c)} [1(^81=a)] [2(^81=b)]}\n@$${2{@\n{1:^80 -1 }\n[2(^81=lost)]"
            + " " * 300 + "\n@$$}~~}@\n@$${3{@\n{1:^80 -2 }\n@$$}3}@\n")
    db = mork.read_mork(io.BytesIO(text.encode("latin-1")))
    table = db.tables[("ns:s", "1")]
    assert list(table.rows) == ["1"] and list(table.cut) == ["2"]
    assert db.rows[("ns:s", "2")] == {"subject": "b"}
    assert (db.groups, db.aborted_groups) == (2, 1)


def test_columns_keeps_only_the_cells_asked_for() -> None:
    text = HEAD + "{1:^80 {(k^82:c)} [1(^81=a)(other=x)] [2(other=y)]}\n@$${2{@\n[-2(other=z)]\n@$$}2}@\n"
    db = mork.read_mork(text, columns=("subject",))
    assert db.rows[("ns:s", "1")] == {"subject": "a"}
    assert db.rows[("ns:s", "2")] == {}  # replaced by "[-2 ...]" as a whole, like without the filter
    assert mork.read_mork(text).rows[("ns:s", "2")] == {"other": "z"}


def test_a_value_of_256_mb_is_cut_and_streamed() -> None:
    """The value is kept to its first MAX_VALUE_CHARS characters, the rows after it are read, and
    the Python heap never holds more than a few pieces of the file."""
    head = (HEAD + "<(90=").encode("latin-1")
    tail = b")(91=tb9@example.org)>\n{1:^80 {(k^82:c)} [1(^81^90)(message-id^91)] [2(^81=after)]}\n"
    tracemalloc.start()
    try:
        db = mork.read_mork(lazy_reader(head, 256 << 20, tail, fill=b"\xff"))
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 2 << 20, f"heap peak {peak} bytes"
    assert db.cut_values == 1 and db.first_cut_offset == head.rindex(b"(")
    row = db.rows[("ns:s", "1")]
    # The cell text "90=ÿÿÿ..." is kept to MAX_VALUE_CHARS; not UTF-8, so read as Latin-1.
    assert row["subject"] == "\xff" * (mork.MAX_VALUE_CHARS - 3)
    assert row["message-id"] == "tb9@example.org"
    assert db.rows[("ns:s", "2")] == {"subject": "after"}


def _summary(messages: int, padding: int = 0) -> bytes:
    """A Thunderbird-shaped summary: atoms and rows per message, a cut per tenth message, and
    ``padding`` bytes of aborted groups (bytes that change nothing)."""
    parts = [HEAD.replace("(82=k:msgs)", "(82=k:msgs)(83=message-id)(84=flags)(85=sender)(86=date)")]
    for n in range(messages):
        parts.append(f"<({0x100 + 2 * n:X}=Subject {n})({0x101 + 2 * n:X}=msg{n}@example.org)>\n"
                     f"{{1:^80 {{(k^82:c)}} [{n + 1:X}(^81^{0x100 + 2 * n:X})(^83^{0x101 + 2 * n:X})"
                     f"(^84=1)(^85=Sender {n})(^86={0x6ac36715 + n:x})(preview=hello {n})]}}\n")
    for n in range(0, messages, 10):
        parts.append(f"@$${{{n:X}{{@\n{{1:^80 -{n + 1:X}}}\n@$$}}{n:X}}}@\n")
    garbage = "@$${FF{@\n" + "[1(^81=overwritten)]" * 1000 + "\n@$$}~~}@\n"
    parts.append(garbage * (padding // len(garbage)))
    return "".join(parts).encode("latin-1")


def _heap_peak(path: Path) -> tuple[int, mork.MorkDatabase]:
    tracemalloc.start()
    try:
        with path.open("rb") as handle:
            db = mork.read_mork(handle, columns=MSF_COLUMNS)
        return tracemalloc.get_traced_memory()[1], db
    finally:
        tracemalloc.stop()


def test_memory_follows_the_rows_kept_not_the_file_size(tmp_path: Path) -> None:
    """Same 3,000 messages, once in 0.9 MB and once with 40 MB more: the heap peak is the same
    (within a piece), and stays under 1.5 KiB per message row with the Thunderbird columns."""
    small, large = tmp_path / "small.msf", tmp_path / "large.msf"
    small.write_bytes(_summary(3000))
    large.write_bytes(_summary(3000, padding=40 << 20))
    small_peak, small_db = _heap_peak(small)
    large_peak, large_db = _heap_peak(large)
    assert _state(small_db)[:3] == _state(large_db)[:3]
    assert large_db.aborted_groups > 1000
    table = small_db.tables[("ns:s", "1")]
    assert len(table.rows) == 2700 and len(table.cut) == 300
    assert small_db.rows[("ns:s", "B")]["message-id"] == "msg10@example.org"
    assert "preview" not in small_db.rows[("ns:s", "B")]
    assert small_peak < 3000 * 1536
    assert large_peak < small_peak + (1 << 20)


@pytest.mark.parametrize("chunk", [3, 4096, 1 << 16])
def test_a_long_garbage_run_is_one_skipped_token_read_in_any_pieces(chunk) -> None:
    """Megabytes of characters that start no token (a fuzzer's 16 MB of "=") are one token, as one
    regex match per piece read: before, a loop turn per character took ~9 s for 16 MB."""
    data = FIXTURE.read_bytes().decode("latin-1")
    garbage = "=" * (3 << 20) + "%~"
    cut = data.index("<(C0=")
    damaged = data[:cut] + garbage + data[cut:]
    saved = mork._CHUNK
    mork._CHUNK = chunk
    try:
        db = mork.read_mork(io.BytesIO(damaged.encode("latin-1")))
    finally:
        mork._CHUNK = saved
    clean = mork.read_mork(data)
    assert db.skipped == clean.skipped + 1
    assert db.rows == clean.rows
