"""PowerShell PSReadLine history: one command per line, backtick continuations, no times."""

from __future__ import annotations

import io

from parsers.base import ParseContext
from parsers.history import NOT_AFTER, NOT_BEFORE
from parsers.psreadline_history import PSReadLineHistoryParser
from parsers.record import Provenance, Record
from tests.conftest import corpus_path

MTIME = "2026-10-12T08:40:17+00:00"
MTIME_US = 1791794417 * 10**6


def _parse(data: bytes) -> tuple[list[Record], ParseContext]:
    path = "/Users/bob/AppData/Roaming/Microsoft/Windows/PowerShell/PSReadLine/ConsoleHost_history.txt"
    ctx = ParseContext(provenance=Provenance(bundle_path=None, source_path=path, sha256=None),
                       user="bob", entry={"mtime": MTIME, "home": "/Users/bob"})
    return list(PSReadLineHistoryParser().parse(io.BytesIO(data), ctx)), ctx


def test_backtick_continuations_joined_and_every_entry_undated():
    data = b"\xef\xbb\xbfGet-Mailbox\r\nGet-ChildItem `\r\n  -Recurse`\r\n\r\ncd .\\x\r\n"
    records, ctx = _parse(data)
    assert [r.attributes["command"] for r in records] == [
        "Get-Mailbox", "Get-ChildItem \n  -Recurse\n", "cd .\\x"]
    assert [r.attributes["physical_lines"] for r in records] == [1, 3, 1]
    assert [r.attributes["line_number"] for r in records] == [1, 2, 5]
    for record in records:
        assert record.data_type == "shell:powershell:command"
        assert record.attributes["shell"] == "powershell"
        assert record.timestamps == {}
        assert record.time_bounds == {NOT_AFTER: MTIME_US}
        assert NOT_BEFORE not in record.time_bounds
        assert "cwd" not in record.attributes
    assert records[2].provenance.offset == data.index(b"cd ")
    assert not ctx.warnings


def test_file_ending_inside_a_continuation_warns_and_keeps_it():
    records, ctx = _parse(b"Remove-Item x `")
    assert [r.attributes["command"] for r in records] == ["Remove-Item x "]
    assert ctx.warnings[0]["message"] == "file ends inside a backtick-continued command"


def test_sniff():
    assert PSReadLineHistoryParser.sniff(b"", "ConsoleHost_history.txt")
    assert PSReadLineHistoryParser.sniff(b"", "Visual Studio Code Host_history.txt")
    assert not PSReadLineHistoryParser.sniff(b"", "history.txt")


def test_kaliheker69_crlf_every_line():
    records, ctx = _parse(corpus_path("history/kaliheker69/ConsoleHost_history.txt").read_bytes())
    assert len(records) == 8
    assert records[0].attributes["command"] == (
        "Install-WindowsFeature -Name WindowsPowerShellWebAccess -IncludeManagementTools")
    assert records[6].attributes["command"] == 'net localgroup "remote management users" t.minami /add'
    assert not any("\r" in r.attributes["command"] for r in records)
    assert not ctx.warnings


def test_ayush1959_every_line():
    data = corpus_path("history/ayush1959/ConsoleHost_history.txt").read_bytes()
    records, ctx = _parse(data)
    assert data.count(b"\n") == 465
    assert len(records) == 463  # two commands continued with a backtick over two lines each
    assert sum(r.attributes["physical_lines"] for r in records) == 465
    assert [r.attributes["line_number"] for r in records if r.attributes["physical_lines"] == 2] == [443, 446]
    assert records[442].attributes["command"] == "php artisan serve\n"
    # The first line holds several commands run together; it stays one entry, byte for byte.
    assert records[0].attributes["command"] == data.split(b"\n", 1)[0].decode()
    assert records[0].attributes["command"].count("pacman -S") == 6
    assert records[244].attributes["command"] == "npm install ——save firebase"
    assert not ctx.warnings


def test_records_reach_the_powershell_rules():
    from parsers.rules import default_engine

    records, _ = _parse(b"Get-ChildItem\r\nClear-History\r\n")
    engine = default_engine()
    assert engine.tag(records[0]).tags == ()
    assert "T1070.003" in engine.tag(records[1]).tags
