"""Windows Mail end to end: ``inboxtrail run FOLDER -o OUT`` on a mounted Windows volume.

The folder holds ``Users/eve/AppData/Local/Comms/UnistoreDB/store.vol`` (written by the ESE writer)
and the ``Comms/Unistore/data`` body files, as a mounted copy of a suspect's C: drive would; the
timeline must hold exactly these Windows Mail rows: each message at its delivery and modification
time, the Deleted Items and missing-body messages tagged, the orphan body file tagged at its own
modification and status-change times (from the manifest: it has no row, so no other time).
"""

from __future__ import annotations

import csv
import hashlib
from pathlib import Path

import pytest

from collector.timeutil import to_datetime
from inboxtrail.cli import main
from tests.parsers.test_windows_mail import MAIL, body_name, build_store

STORE = "/" + MAIL + "/UnistoreDB/store.vol"
INBOX = "Windows Mail message in /eve@example.org/Inbox from mallory@example.net: "
DELETED = "Windows Mail message in /eve@example.org/Deleted Items from mallory@example.net: "
DELETED_SHORT = "Windows Mail message in /eve@example.org/Deleted Items from mallory@example.n..."
SENDER = "sender_email: mallory@example.net; sender_name: Mallory; "


def _message_extra(body: str, folder: str, row_id: int, subject: str, tagged: str = "") -> str:
    return (f"{body}; bundle_path: files/root{STORE}; corrupted: False; evidence: {{evidence}}; "
            f"filesystem: root; folder_path: /eve@example.org/{folder}; id: {row_id}; {tagged}"
            f"recovered: False; {{rule}}{SENDER}{{severity}}sha256: {{sha256}}; store: {STORE}; "
            f"subject: {subject}")


def _expected(evidence: str, sha256: str, orphan_changed: int) -> list[list[str]]:
    """The Windows Mail rows, in timeline order; ``orphan_changed`` is the orphan body file's
    status-change time (µs): set by the file system when the test wrote the file."""
    def row(date: str, time: str, kind: str, short: str, desc: str, notes: str, extra: str,
            rule: str = "", severity: str = "", macb: str = "....") -> list[str]:
        return [date, time, "UTC", macb, "EMAIL", "Windows Mail", kind, "eve", "-", short, desc,
                "2", "root:" + STORE, "-", notes, "windows_mail",
                extra.format(evidence=evidence, sha256=sha256, rule=rule, severity=severity)]

    orphan = "Windows Mail body file with no Message row: data/3/e/00000104000000031013.dat"
    deleted_rule = ("rule_hits: ['mail_client_windows_mail_deleted_items (T1070.008  medium): "
                    "Windows Mail message in Deleted Items']; ")
    missing_rule = ("rule_hits: ['mail_client_windows_mail_body_missing (T1070.008  medium): "
                    "Windows Mail message row whose body file is gone']; ")
    inbox = _message_extra("body_file: 3/b/00000101000000031013.dat", "Inbox", 257, "Quarterly report")
    trash = _message_extra("body_file: 3/c/00000102000000031013.dat", "Deleted Items", 258,
                           "Wire transfer details", "in_deleted_items: True; in_trash: True; ")
    gone = _message_extra("body_expected: 3/d/00000103000000031013.dat; body_missing: True", "Inbox",
                          259, "Invoice 7731")
    deleted_notes = "T1070.008 mail_client_windows_mail_deleted_items"
    missing_notes = "T1070.008 mail_client_windows_mail_body_missing"
    orphan_extra = ("body_file: 3/e/00000104000000031013.dat; body_without_row: True; bundle_path: "
                    f"files/root{STORE}; corrupted: False; evidence: {{evidence}}; filesystem: root; "
                    "recovered: True; rule_hits: ['mail_client_windows_mail_orphan_body (T1070.008  "
                    "high): Windows Mail body file with no Message row (row deleted  body left "
                    f"behind)']; severity: high; sha256: {{sha256}}; store: {STORE}")
    orphan_notes = "T1070.008 mail_client_windows_mail_orphan_body"
    changed = to_datetime(orphan_changed)
    return sorted([
        row("10/05/2026", "09:17:44", "Content Modification Time", orphan, orphan, orphan_notes,
            orphan_extra, macb="M..."),
        row(changed.strftime("%m/%d/%Y"), changed.strftime("%H:%M:%S"), "Metadata Modification Time",
            orphan, orphan, orphan_notes, orphan_extra, macb="..C."),
        row("10/05/2026", "09:12:44", "Delivery Time", INBOX + "Quar...", INBOX + "Quarterly report",
            "-", inbox),
        row("10/05/2026", "09:13:44", "Modification Time", INBOX + "Quar...",
            INBOX + "Quarterly report", "-", inbox),
        row("10/05/2026", "09:14:44", "Delivery Time", DELETED_SHORT,
            DELETED + "Wire transfer details [in Deleted Items]", deleted_notes, trash,
            deleted_rule, "severity: medium; "),
        row("10/05/2026", "09:15:44", "Delivery Time", INBOX + "Invo...", INBOX + "Invoice 7731",
            missing_notes, gone, missing_rule, "severity: medium; "),
        row("10/05/2026", "09:16:44", "Modification Time", INBOX + "Invo...", INBOX + "Invoice 7731",
            missing_notes, gone, missing_rule, "severity: medium; "),
        row("10/05/2026", "09:42:44", "Modification Time", DELETED_SHORT,
            DELETED + "Wire transfer details [in Deleted Items]", deleted_notes, trash,
            deleted_rule, "severity: medium; "),
    ], key=lambda r: (r[0][6:], r[0][:5], r[1]))  # the timeline's order: by time


def test_run_on_a_mounted_windows_volume(tmp_path: Path):
    pytest.importorskip("pyesedb")
    volume = tmp_path / "C"
    store = build_store(volume)
    (volume / "Windows" / "System32").mkdir(parents=True)  # a mounted C: drive, not loose files
    out = tmp_path / "out"
    assert main(["-q", "run", str(volume), "-o", str(out)]) == 0
    with (out / "timeline.l2t.csv").open(newline="", encoding="utf-8") as handle:
        rows = [row for row in csv.reader(handle) if row[5] == "Windows Mail"]
    sha256 = hashlib.sha256(store.read_bytes()).hexdigest()
    orphan = store.parents[1] / "Unistore" / "data" / body_name(0x104)
    assert rows == _expected(f"directory:{volume}", sha256, orphan.stat().st_ctime_ns // 1000)
    assert (out / "parse_warnings.jsonl").read_text(encoding="utf-8") == ""
