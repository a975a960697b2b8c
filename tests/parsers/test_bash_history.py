"""Bash (and sh/ash/ksh) history: timestamps, desynchronised files, multi-line and here-documents."""

from __future__ import annotations

import io

from collector.timeutil import parse_iso
from parsers.base import ParseContext
from parsers.bash_history import BashHistoryParser
from parsers.history import NOT_AFTER, NOT_BEFORE
from parsers.record import Provenance, Record
from parsers.rules import default_engine
from tests.conftest import corpus_path

MTIME = "2026-10-12T14:40:00+00:00"


def _parse(data: bytes, name: str = "/home/bob/.bash_history") -> tuple[list[Record], ParseContext]:
    ctx = ParseContext(provenance=Provenance(bundle_path=None, source_path=name, sha256=None),
                       user="bob", entry={"mtime": MTIME, "home": "/home/bob"})
    return list(BashHistoryParser().parse(io.BytesIO(data), ctx)), ctx


def test_desynchronised_file_keeps_every_line_with_honest_bounds():
    records, ctx = _parse(b"ls\n#1791900000\nid\nwhoami\n#1791900060\nw\nuptime\n")
    assert [r.attributes["command"] for r in records] == ["ls", "id", "whoami", "w", "uptime"]
    assert records[0].timestamps == {} and records[0].time_bounds == {NOT_AFTER: parse_iso(MTIME)}
    assert records[1].timestamps == {"Command Executed Time": 1791900000 * 10**6}
    assert records[2].timestamps == {}
    assert records[2].time_bounds == {NOT_BEFORE: 1791900000 * 10**6, NOT_AFTER: parse_iso(MTIME)}
    assert records[4].time_bounds[NOT_BEFORE] == 1791900060 * 10**6
    assert [r.order for r in records] == [0, 1, 2, 3, 4]
    assert [r.attributes["line_number"] for r in records] == [1, 3, 4, 6, 7]
    assert records[3].provenance.offset == len(b"ls\n#1791900000\nid\nwhoami\n#1791900060\n")
    assert not ctx.warnings


def test_multi_line_command_open_quote_and_continuation():
    records, _ = _parse(b'#1700000000\necho "a\nb"\n#1700000001\ntar czf x \\\n  y\n')
    assert [r.attributes["command"] for r in records] == ['echo "a\nb"', "tar czf x \\\n  y"]


def test_here_document_is_one_command_and_tagged():
    data = b"#1700000000\nmail -f /var/mail/carol <<EOF\nd *\nq\nEOF\nls\n"
    records, _ = _parse(data)
    assert [r.attributes["command"] for r in records] == ["mail -f /var/mail/carol <<EOF\nd *\nq\nEOF", "ls"]
    assert records[0].timestamps == {"Command Executed Time": 1700000000 * 10**6}
    assert records[1].timestamps == {}
    tags = default_engine().tag(records[0]).tags
    assert "shell_mail_client_delete" in tags and "T1070.008" in tags


def test_unterminated_here_document_gives_its_lines_back():
    records, _ = _parse(b"cat <<EOF\nfirst\n#1700000000\nsecond\n")
    assert [r.attributes["command"] for r in records] == ["cat <<EOF", "first", "second"]
    assert records[2].timestamps == {"Command Executed Time": 1700000000 * 10**6}
    records, _ = _parse(b"cat <<EOF\nno end\n")
    assert [r.attributes["command"] for r in records] == ["cat <<EOF", "no end"]


def test_invalid_utf8_is_kept_losslessly():
    records, _ = _parse(b"echo caf\xe9\n")
    command = records[0].attributes["command"]
    assert command.encode("utf-8", "surrogateescape") == b"echo caf\xe9"
    assert "\ufffd" not in command


def test_crlf_and_trailing_timestamp_warn_not_fail():
    records, ctx = _parse(b"#1700000000\r\nls\r\n#1700000001\r\n")
    assert [r.attributes["command"] for r in records] == ["ls"]
    assert ctx.warnings[0]["message"] == "file ends with a timestamp line and no command"


def test_other_shells_get_their_own_data_type():
    assert _parse(b"ls\n", "/root/.ash_history")[0][0].data_type == "shell:ash:command"
    assert _parse(b"ls\n", "/home/x/.ksh_history")[0][0].data_type == "shell:ksh:command"
    assert _parse(b"ls\n", "/home/x/.sh_history")[0][0].data_type == "shell:sh:command"
    assert _parse(b"ls\n")[0][0].data_type == "shell:bash:command"
    records, _ = _parse(b"\x81\x01ls -l\nrm /var/mail/x\n", "/home/x/.sh_history")
    assert [r.attributes["command"] for r in records] == ["ls -l", "rm /var/mail/x"]


def test_sniff():
    assert BashHistoryParser.sniff(b"", ".bash_history")
    assert BashHistoryParser.sniff(b"", ".ash_history")
    assert BashHistoryParser.sniff(b"#1700000000\nls\n#1700000001\nid\n", "history.txt")
    assert not BashHistoryParser.sniff(b"hello\n", "notes.txt")


def test_plaso_corpus_file_every_line():
    path = corpus_path("history/plaso/bash_history")
    with path.open("rb") as handle:
        records, ctx = _parse(handle.read())
    assert len(records) == 4  # 11 lines: 4 timestamps, 3 one-line commands, 1 command on 4 lines
    assert sum(r.attributes["command"].count("\n") + 1 for r in records) + 4 == 11
    assert records[2].attributes["command"] == "/usr/local/bin/splunk -p 8080"
    assert records[2].timestamps == {"Command Executed Time": 1380630979 * 10**6}
    assert records[3].attributes["command"] == (
        'binary argument1 "--params=\\\nparam1=foo,\nparam2=bar\n" argument2')
    assert records[3].timestamps == {"Command Executed Time": 1623364236 * 10**6}
    assert not ctx.warnings


def test_a_stray_quote_does_not_swallow_the_file():
    data = b"echo don't\n" + b"ls\n" * 500
    records, ctx = _parse(data)
    assert len(records) == 501 - 200
    assert records[0].attributes["command"].count("\n") == 200
    assert "200 lines" in ctx.warnings[0]["message"]
    assert sum(r.attributes["command"].count("\n") + 1 for r in records) == 501


def test_mksh_binary_history():
    data = (b"\xab\xcd" + b"\xff\x00\x00\x00\x01ls -l\x00"
            + b"\xff\x00\x00\x00\x02for f in *\ndo rm $f\ndone\x00"
            + b"\xff\x00\x00\x00\x03rm /var/mail/bob\x00")
    records, ctx = _parse(data, "/home/x/.mksh_history")
    assert [r.attributes["command"] for r in records] == [
        "ls -l", "for f in *\ndo rm $f\ndone", "rm /var/mail/bob"]
    assert [r.attributes["history_number"] for r in records] == [1, 2, 3]
    assert [r.provenance.offset for r in records] == [2, 13, 43]
    assert records[0].data_type == "shell:mksh:command"
    assert "shell_mail_file_removed" in default_engine().tag(records[2]).tags
    assert not ctx.warnings
    records, ctx = _parse(b"\xab\xcd\xff\x00\x00\x00\x01ls\x00junk\x00\xff\x00\x00\x00\x09cut sh",
                          "/home/x/.mksh_history")
    assert [r.attributes["command"] for r in records] == ["ls", "junk", "cut sh"]
    assert [w["message"] for w in ctx.warnings] == ["pdksh history record without its FF marker; kept as is",
                                                    "pdksh history ends inside a record"]
    assert records[2].attributes["history_number"] == 9
