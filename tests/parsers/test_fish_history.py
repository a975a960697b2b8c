"""Fish history: entries, times, paths, fish's escaping and lines fish would not write."""

from __future__ import annotations

import io

from parsers.base import ParseContext
from parsers.fish_history import FishHistoryParser, unescape_fish
from parsers.record import Provenance, Record
from parsers.rules import default_engine
from tests.conftest import corpus_path


def _parse(data: bytes) -> tuple[list[Record], ParseContext]:
    ctx = ParseContext(provenance=Provenance(bundle_path=None, sha256=None,
                                             source_path="/home/eve/.local/share/fish/fish_history"),
                       user="eve", entry={"mtime": "2026-10-12T08:40:17+00:00", "home": "/home/eve"})
    return list(FishHistoryParser().parse(io.BytesIO(data), ctx)), ctx


def test_unescape():
    assert unescape_fish(b"a\\nb") == b"a\nb"
    assert unescape_fish(b"c:\\\\temp") == b"c:\\temp"
    assert unescape_fish(b"keep \\t and trailing \\") == b"keep \\t and trailing \\"


def test_entries_times_paths_and_escapes():
    data = (b"- cmd: for f in /var/mail/*\\n  rm $f\\nend\n  when: 1700000000\n"
            b"- cmd: echo a\\\\b\n  when: 1700000005\n  paths:\n    - /tmp/x\n    - /var/mail/bob\n")
    records, ctx = _parse(data)
    assert [r.attributes["command"] for r in records] == ["for f in /var/mail/*\n  rm $f\nend", "echo a\\b"]
    assert records[0].data_type == "shell:fish:command"
    assert records[0].timestamps == {"Command Start Time": 1700000000 * 10**6}
    assert records[1].attributes["paths"] == ["/tmp/x", "/var/mail/bob"]
    assert records[1].provenance.offset == data.index(b"- cmd: echo")
    assert not ctx.warnings
    assert "shell_mail_file_removed" in default_engine().tag(records[0]).tags


def test_unknown_lines_are_kept_with_a_warning():
    records, ctx = _parse(b"garbage first\n- cmd: ls\n  when: oops\n  other: x\n")
    assert [r.attributes["command"] for r in records] == ["", "ls"]
    assert records[0].attributes["unparsed_lines"] == ["garbage first"]
    assert records[1].attributes["unparsed_lines"] == ["  when: oops", "  other: x"]
    assert records[1].timestamps == {}
    assert len(ctx.warnings) == 3


def test_history_clear_is_tagged():
    records, _ = _parse(b"- cmd: history clear\n  when: 1700000000\n")
    assert "shell_history_cleared" in default_engine().tag(records[0]).tags


def test_plaso_corpus_file_every_line():
    path = corpus_path("history/plaso/fish_history")
    records, ctx = _parse(path.read_bytes())
    assert len(records) == 10  # 28 lines: 10 cmd, 10 when, 4 paths headers, 4 path items
    assert sum(1 + 1 + (2 if "paths" in r.attributes else 0) for r in records) == 28
    assert records[5].attributes["command"] == "rm -rf test"
    assert records[5].timestamps == {"Command Start Time": 1619736858 * 10**6}
    assert records[5].attributes["paths"] == ["test"]
    assert records[9].attributes["paths"] == ["plaso"]
    assert not ctx.warnings
    assert FishHistoryParser.sniff(path.read_bytes()[:4096], "fish_history")
