"""The hostile inputs of issue 9, each fed to the parsers it fits.

Huge inputs are never created: a 2 GB single-line history is a lazy file object (50 MB here)
whose bytes are computed on demand, and the 10 GB mbox is a sparse file (1 GB here, holes cost no
disk). What is checked is the harness contract (which includes its hang guard) plus: memory
stays far below the input size, and the problem is a warning with the file's path and a byte
offset. How fast these inputs go is measured in bench/, not here.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.fuzz import harness
from tests.fuzz.streams import lazy_reader

LONG_LINE = 50 << 20
#: Heap bound for a 50 MB line: the parsers keep at most MAX_LINE_BYTES (1 MB) of a line.
LINE_MEMORY = 32 << 20

#: A header that makes each parser reach its line reader, then the long line.
LINE_HEADS: dict[str, bytes] = {
    "bash_history": b"#1791900000\nrm ",
    "zsh_history": b": 1791900000:0;rm ",
    "terminal_session": b'echo Restored session: "$(/bin/date -r 1791900000)"\nrm ',
    "fish_history": b"- cmd: rm ",
    "psreadline_history": b"Remove-Item ",
    "exchange_message_tracking": (b"#Software: Microsoft Exchange Server\n#Version: 15.01.2507.006\n"
                                  b"#Log-type: Message Tracking Log\n#Fields: date-time,event-id,"
                                  b"message-subject\n2023-09-19T08:00:00.000Z,DELETE,"),
    "maildir": b"Subject: ",
    "emlx": b"99999999\nSubject: ",
    "dovecot_uidlist": b"3 V1791900000 N9\n1 :",
    "m365_ual": b"CreationDate,UserIds,Operations,AuditData\n2023-09-19T08:00:00,a,HardDelete,\"",
    "exchange_admin_audit": b'"CmdletName","CmdletParameters","RunDate"\n"Remove-Mailbox","',
}
#: Parsers known not to stream a long line (none left: add one with the reason to mark it xfail).
NOT_STREAMED: dict[str, str] = {}


def _line_params() -> list:
    params = []
    for name in LINE_HEADS:
        marks = [pytest.mark.xfail(strict=False, reason=NOT_STREAMED[name])] if name in NOT_STREAMED else []
        params.append(pytest.param(name, marks=marks, id=name))
    return params


@pytest.mark.parametrize("name", _line_params())
def test_huge_single_line_is_not_loaded(name: str) -> None:
    target = harness.TARGETS_BY_NAME[name]
    head = LINE_HEADS[name]
    # Known offenders get a shorter line (and bound) so that their xfail stays cheap.
    length, bound = (LONG_LINE, LINE_MEMORY) if name not in NOT_STREAMED else (6 << 20, 3 << 20)
    outcome = harness.check(target, b"", memory=bound, seconds=30,
                            open_input=lambda: lazy_reader(head, length, b"\nls\n"))
    assert outcome.peak_bytes is not None and outcome.peak_bytes < bound


def test_cut_line_is_a_warning_with_path_and_offset() -> None:
    target = harness.TARGETS_BY_NAME["bash_history"]
    ctx = target.context()
    handle = lazy_reader(b"#1791900000\nls\n", 3 << 20, b"\nrm -rf ~/Maildir\n")
    records = list(target.parser_cls().parse(handle, ctx))
    assert [r.attributes["command"] for r in records][-1] == "rm -rf ~/Maildir"
    assert records[-1].provenance.offset == 15 + (3 << 20) + 1  # offsets stay those of the file
    assert len(records[1].attributes["command"]) == 1 << 20
    (warning,) = ctx.warnings
    assert warning["path"] == target.source_path and warning["offset"] == 15
    assert "cut" in warning["message"]


def test_sparse_mbox_is_scanned_without_reading_it_into_memory(tmp_path: Path) -> None:
    """A 1 GB sparse spool (the 10 GB case scales linearly): one message, then a hole of zeros."""
    path = tmp_path / "alice"
    with path.open("wb") as out:
        out.write(b"From bob@example.org Mon Oct 12 14:40:01 2026\nSubject: hi\n\nbody\n")
        out.truncate(1 << 30)
    if path.stat().st_blocks * 512 > 64 << 20:
        pytest.skip("the temporary file system does not keep sparse files sparse")
    outcome = harness.check(harness.TARGETS_BY_NAME["mbox"], b"", memory=64 << 20, seconds=60,
                            open_input=lambda: path.open("rb"))
    assert outcome.records == 1 and outcome.warnings >= 1


def test_zero_stream_without_fileno_is_spooled_not_held() -> None:
    """An image file object (no fileno) of 64 MB of zeros: spooled to disk, not kept in memory."""
    outcome = harness.check(harness.TARGETS_BY_NAME["mbox"], b"", memory=32 << 20, seconds=60,
                            open_input=lambda: lazy_reader(b"", 64 << 20, fill=b"\x00"))
    assert outcome.records == 0 and outcome.warnings == 1


@pytest.mark.parametrize("name", [t.name for t in harness.TARGETS if t.kind == "mail"])
@pytest.mark.parametrize("depth", [10_000])
def test_deeply_nested_mime(name: str, depth: int) -> None:
    target = harness.TARGETS_BY_NAME[name]
    for reuse in (False, True):
        data = harness.wrap_message(harness.nested_mime(depth, boundary_reuse=reuse), target.wrap)
        harness.check(target, data, seconds=20)


@pytest.mark.parametrize("name", [t.name for t in harness.TARGETS if t.kind in ("text", "mail")])
def test_invalid_utf8_and_utf16_surrogates(name: str) -> None:
    target = harness.TARGETS_BY_NAME[name]
    seeds = target.seeds()
    if not seeds:
        pytest.skip(f"no seeds for {name}: the shared corpus is absent")
    seed = min((data for _, data in seeds), key=len)
    for bad in harness.BAD_TEXT:
        for at in (0, len(seed) // 2, len(seed)):
            data = seed[:at] + bad * 3 + seed[at:]
            try:
                harness.check(target, data, memory=None)
            except harness.ContractViolation as violation:
                if not harness.known_bug(target, violation):
                    raise


def test_utf16_history_with_lone_surrogates() -> None:
    """A PSReadLine file saved as UTF-16 with a lone surrogate: decoded losslessly, written as JSON."""
    data = "\ufeffRemove-Item a\n".encode("utf-16-le") + b"\x00\xd8\n\x00" + "ls\n".encode("utf-16-le")
    outcome = harness.check(harness.TARGETS_BY_NAME["psreadline_history"], data)
    assert outcome.records >= 1


def test_lazy_file_reads_back_what_it_describes() -> None:
    handle = lazy_reader(b"ab", 5, b"cd", fill=b"x")
    assert handle.read() == b"abxxxxxcd"
    handle.seek(3)
    assert handle.read(3) == b"xxx" and handle.tell() == 6
    assert not hasattr(handle.raw, "fileno") or _no_fileno(handle)


def _no_fileno(handle: object) -> bool:
    try:
        handle.fileno()  # type: ignore[attr-defined]
    except (OSError, ValueError):
        return True
    return False


if os.name != "posix":  # pragma: no cover - signal.setitimer and sparse files
    pytestmark = pytest.mark.skip("POSIX only")


#: The issue's full sizes that run in seconds (bench/fuzz.py --full-size runs every one of them):
#: a 2 GB single-line bash history, a 10 GB sparse mbox, 1 GB single-line M365 exports and a 1 GB
#: Mork value. Each runs in its own process so that its peak RSS is its own.
FULL_SIZE_CASES = ("2GB-line:bash_history", "10GB-sparse-mbox", "1GB-line:m365-csv", "1GB-value:mork")
#: Peak RSS bound for a full-size case: the interpreter, the parsers and one 64 MiB mbox window.
FULL_SIZE_RSS_MIB = 200


@pytest.mark.slow
@pytest.mark.parametrize("case", FULL_SIZE_CASES)
def test_full_size_input_runs_in_flat_memory(case: str) -> None:
    import json
    import subprocess
    import sys

    root = Path(__file__).resolve().parents[2]
    done = subprocess.run([sys.executable, str(root / "bench" / "fuzz.py"), "--huge-case", case],
                          capture_output=True, text=True, cwd=root, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    row = json.loads(done.stdout.strip().splitlines()[-1])
    assert row["size"] >= 1_000_000_000
    assert row["peak_rss_mib"] < FULL_SIZE_RSS_MIB, row
    assert row["warnings"] >= 1 and "offset" in row["first_warning"], row  # cut, and said where
    assert row["records"] >= 1, row  # what follows the huge part (or the message) still comes out
