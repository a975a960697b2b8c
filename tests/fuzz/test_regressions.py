"""Every crash the fuzzer found, as the minimised (or rebuilt) input that triggered it.

Each input must now meet the whole harness contract (no exception, no hang, writable records and
warnings). Crashes in modules that were still being edited elsewhere are ``xfail(strict=False)``
with the reason; they pass as soon as the module is fixed.
"""

from __future__ import annotations

import csv
import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from tests.conftest import corpus_path
from tests.fuzz import harness


def _target(name: str) -> harness.Target:
    return harness.TARGETS_BY_NAME[name]


def _envelope_index() -> bytes:
    return harness._envelope_index_seed()[0][1]


# -- fixed ----------------------------------------------------------------------------------------
FIXED: dict[str, tuple[str, bytes]] = {
    # plistlib raises xml.parsers.expat.ExpatError (not a ValueError) on a broken XML plist.
    "emlx-plist-expat-error": ("emlx", b"12\nSubject: x\n\n"
                               b"<?xml version='1.0'?><plist><dict><key>a</key><&/></dict></plist>\n"),
    # An XML declaration naming an unknown encoding: LookupError from expat.
    "emlx-plist-unknown-encoding": ("emlx", b"12\nSubject: x\n\n"
                                    b'<?xml version="1.0" encoding="U88TF-8"?><plist><dict/></plist>\n'),
    # A non-ASCII Date header is an email.header.Header under compat32: TypeError in the date regex.
    "emlx-date-header-not-ascii": ("emlx", b"8\nDate:\x80"),
    "emlx-date-header-not-ascii-2": ("emlx", b"10\nDate: \xe9\n\n"),
    # A warning quoting undecodable bytes (lone surrogate) could not be written as UTF-8 JSON.
    "exchange-tracking-warning-surrogate": ("exchange_message_tracking", b"#Log-type:\xdd"),
    # Sniffed as UTF-16-LE, then an odd trailing byte / ASCII-range half unit: UnicodeDecodeError.
    "m365-utf16-truncated": ("m365_ual", b"\x00\x00\x00\x00titai"),
    "m365-utf16-odd-json": ("m365_ual", b'\x00\x00\x00\x00"Rmio'),
}


@pytest.mark.parametrize("name", sorted(FIXED))
def test_fixed_crash(name: str) -> None:
    target, data = FIXED[name]
    harness.check(_target(target), data)


def test_envelope_index_schema_with_invalid_utf8() -> None:
    """SQLite's "malformed database schema" message quoted a name that is not UTF-8: the sqlite3
    module raised UnicodeDecodeError (not a DatabaseError) while building the exception."""
    data = bytearray(_envelope_index())
    at = data.find(b"tablemessagesmessages")
    assert at > 0
    data[at + 6] = data[at + 14] = 0xD1
    outcome = harness.check(_target("apple_mail_envelope"), bytes(data))
    assert outcome.records == 0 and outcome.warnings == 1


def test_envelope_index_mailbox_url_of_the_wrong_type(tmp_path: Path) -> None:
    """A damaged row can hold an integer where the URL text is: AttributeError in is_trash_mailbox."""
    db = tmp_path / "Envelope Index"
    db.write_bytes(_envelope_index())
    with sqlite3.connect(db) as conn:
        conn.execute("UPDATE mailboxes SET url = ROWID")
    conn.close()
    outcome = harness.check(_target("apple_mail_envelope"), db.read_bytes())
    assert outcome.records > 0


def test_admin_audit_csv_field_over_the_csv_limit() -> None:
    """csv raises _csv.Error for a field over field_size_limit (m365_ual raises the limit for the
    whole process, so the crash depended on which parser ran first)."""
    previous = csv.field_size_limit(131072)
    try:
        data = (b"#TYPE Microsoft.Exchange.Management.SystemConfigurationTasks.AdminAuditLogEvent\n"
                b'"CmdletName","CmdletParameters","RunDate"\n'
                b'"Remove-Mailbox","' + b"A" * 140_000 + b'","9/19/2023 8:00:00 AM"\n')
        outcome = harness.check(_target("exchange_admin_audit"), data)
    finally:
        csv.field_size_limit(previous)
    assert outcome.warnings >= 1


def test_pst_root_folder_memory_error() -> None:
    """pypff raises MemoryError ("unable to create folder object") for a damaged root folder."""
    data = bytearray(corpus_path("mail/extra/Outlook.pst").read_bytes())
    data[27648:27648 + 512] = bytes(512)
    outcome = harness.check(_target("outlook_pst"), bytes(data))
    assert outcome.warnings >= 1


def test_pst_folder_name_unreadable() -> None:
    """``folder.name`` raises OSError when the folder's property table points at a broken index node."""
    data = bytearray(corpus_path("mail/extra/Outlook.pst").read_bytes())
    data[87040:87040 + 512] = b"\xff" * 512
    outcome = harness.check(_target("outlook_pst"), bytes(data))
    assert outcome.records > 0


# -- not fixed here (modules other engineers were editing) -----------------------------------------
@pytest.mark.parametrize("target, data", [
    ("mbox", b"From \nSubject:=?\xff?Q??="),
    ("mbox", b"From \nFrom:=?\xbe?B??="),
    ("emlx", b"20\nSubject: =?\xff?Q??=\n\n"),  # emlx decodes headers with the mbox helper
], ids=["mbox-subject", "mbox-from", "emlx-subject"])
def test_encoded_word_with_an_invalid_charset(target: str, data: bytes) -> None:
    harness.check(_target(target), data)


def test_dovecot_uidlist_line_with_many_carriage_returns() -> None:
    data = b"3 V1791900000 N9\n1 :1791900000.M1P2.host" + b"\r" * 20_000 + b"x\n"
    # The entry is read (one record; the CRs make its file name unusable: one warning) instead of
    # the regex backtracking over the CR run; the harness's hang guard catches a relapse.
    outcome = harness.check(_target("dovecot_uidlist"), data, memory=None)
    assert (outcome.records, outcome.warnings) == (1, 1)


def _looping_evtx() -> bytes:
    """A corpus log whose first chunk has two common-string entries pointing at each other."""
    data = bytearray(corpus_path("evtx/velociraptor/EID4104_PowershellScriptblock.evtx").read_bytes())
    looped = harness.loop_evtx(bytes(data), 0, 1)
    assert harness.evtx_chain_cycle(looped) is not None
    return looped


def test_evtx_string_chain_loop_does_not_hang(tmp_path: Path) -> None:
    """(``evtx_carve`` reads carved chunks through the same ``iter_events`` and hangs the same way.)"""
    parser = "evtx"
    path = tmp_path / "loop.evtx"
    path.write_bytes(_looping_evtx())
    script = textwrap.dedent(f"""
        import io, sys
        sys.path.insert(0, {str(harness.ROOT)!r})
        from tests.fuzz import harness
        data = open({str(path)!r}, "rb").read()
        harness.check(harness.TARGETS_BY_NAME[{parser!r}], data, memory=None)
    """)
    try:
        subprocess.run([sys.executable, "-c", script], check=True, timeout=5, cwd=harness.ROOT)
    except subprocess.TimeoutExpired:
        pytest.fail("still running after 5 s (endless loop)")


def test_self_pointing_evtx_template_and_string_entries_do_not_hang() -> None:
    """A chain entry pointing at itself, at its table or far away is read (the package stops)."""
    data = corpus_path("evtx/velociraptor/EID4104_PowershellScriptblock.evtx").read_bytes()
    heads = harness.evtx_chain_heads(data)
    assert heads
    for choice in range(len(heads)):
        for mode in (0, 2, 3):
            mutated = harness.loop_evtx(data, choice, mode)
            assert harness.known_hang(_target("evtx"), mutated) is None
            harness.check(_target("evtx"), mutated, seconds=5.0, memory=None)


def test_msf_with_a_long_run_of_bytes_in_a_value() -> None:
    """parsers/mork.py used ~290 bytes of Python heap per byte of a Mork value (its cell regex kept
    backtracking state per character: a 3.3 MB .msf of 0xFF took 9 s and 930 MB RSS). Now the
    value is kept to MAX_VALUE_CHARS and the heap peak is the summary itself (which
    parsers/thunderbird.py reads whole) plus less than 2 MB."""
    msf = (harness.FIXTURES / "mail/thunderbird/Mail/Local Folders/Inbox.msf").read_bytes()
    cut = msf.index(b"(CC=") + 4
    for run in (1 << 20, 8 << 20):
        data = msf[:cut] + b"\xff" * run + msf[cut:]
        outcome = harness.check(_target("thunderbird_msf"), data, seconds=30, memory=len(data) + (2 << 20))
        assert outcome.records == 1  # the cut row (message 2) is still reported
