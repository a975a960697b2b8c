"""Zsh history (extended, plain, continued, metafied) and macOS Terminal session files."""

from __future__ import annotations

import io

from parsers.base import ParseContext
from parsers.history import NOT_AFTER
from parsers.record import Provenance, Record
from parsers.zsh_history import TerminalSessionParser, ZshHistoryParser, unmetafy
from tests.conftest import corpus_path

MTIME = "2026-10-12T08:40:17+00:00"
MTIME_US = 1791794417 * 10**6


def _ctx(name: str) -> ParseContext:
    return ParseContext(provenance=Provenance(bundle_path=None, source_path=name, sha256=None),
                        user="alice", entry={"mtime": MTIME, "home": "/Users/alice"})


def _parse(data: bytes, name: str = "/Users/alice/.zsh_history") -> list[Record]:
    return list(ZshHistoryParser().parse(io.BytesIO(data), _ctx(name)))


def test_extended_plain_and_continued():
    records = _parse(b": 1700000000:3;ls -l\nplain\n: 1700000010:0;for i in 1 2\\\ndo echo $i\\\ndone\n")
    assert [r.attributes["command"] for r in records] == ["ls -l", "plain", "for i in 1 2\ndo echo $i\ndone"]
    assert records[0].timestamps == {"Command Start Time": 1700000000 * 10**6}
    assert records[0].attributes["elapsed_seconds"] == 3
    assert records[1].timestamps == {} and records[1].time_bounds[NOT_AFTER] == MTIME_US


def test_metafied_bytes_are_decoded():
    # "é" is C3 A9; zsh stores 0x83-0x9F and NUL as 0x83 + (byte ^ 0x20).
    assert unmetafy(b"caf\xc3\x83\x89") == b"caf\xc3\xa9"
    records = _parse(b": 1700000000:0;echo caf\xc3\x83\x89\n")
    assert records[0].attributes["command"] == "echo café"


def test_zsh_sessions_history_is_read_and_tagged_like_any_zsh_history():
    from parsers.rules import default_engine
    records = _parse(b": 1700000000:0;unset HISTFILE\n", "/Users/alice/.zsh_sessions/3F2A.history")
    assert ZshHistoryParser.sniff(b"", "3F2A.history")
    assert "shell_history_disabled" in default_engine().tag(records[0]).tags


def test_terminal_session_file():
    data = b'echo Restored session: "$(/bin/date -r 1790259397)"\n'
    ctx = _ctx("/Users/alice/.zsh_sessions/3F2A-11.session")
    records = list(TerminalSessionParser().parse(io.BytesIO(data), ctx))
    assert len(records) == 1
    assert records[0].timestamps == {"Session Saved Time": 1790259397 * 10**6}
    assert records[0].attributes["session_id"] == "3F2A-11"
    assert records[0].data_type == "shell:session:saved"
    assert TerminalSessionParser.sniff(data, "3F2A-11.session")
    records = list(TerminalSessionParser().parse(io.BytesIO(data + b"export FOO=1\n"), ctx))
    assert records[1].timestamps == {} and records[1].time_bounds == {NOT_AFTER: MTIME_US}


def test_plaso_corpus_file_every_line():
    path = corpus_path("history/plaso/zsh_extended_history.txt")
    records = _parse(path.read_bytes())
    assert len(records) == 4  # 5 lines, one command continued over two
    assert [r.attributes["command"] for r in records] == [
        "cd plaso", "ls", "echo dfgdfg \\\n& touch /tmp/afile", "PYTHONPATH=. ./runtests.py"]
    assert records[3].timestamps == {"Command Start Time": 1458993297 * 10**6}
