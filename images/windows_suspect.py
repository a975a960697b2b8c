#!/usr/bin/env python3
"""Single source of truth for the ``windows-suspect`` NTFS test images.

Every file that goes into the image, every operation on it (create, write, delete, rename, the
clock each one runs at) and the ground-truth JSON the tests assert against come from the tables
in this file.

Sub-commands (called by build_windows_suspect.sh, usable by hand):

  populate MOUNTPOINT CLOCK_FILE WORK FS_IMAGE
      MOUNTPOINT is the NTFS volume mounted with ntfs-3g under libfaketime, whose frozen clock is
      read from CLOCK_FILE (``FAKETIME_TIMESTAMP_FILE`` with ``FAKETIME_NO_CACHE=1``). Each
      operation first writes its instant into CLOCK_FILE, so ntfs-3g stamps the MFT change time
      (and the parent directory's times) with the story's time; the $STANDARD_INFORMATION
      created/modified/accessed times are then set with the ``system.ntfs_times`` xattr. The EVTX
      files come from tests/fixtures/evtx_scenarios.py. WORK receives plan.json (what was
      written and deleted, sha256 of every file).

  finalize WORK DISK_IMAGE PART_START_SECTOR OUT_JSON
      Read the MFT entry numbers, sizes and times back with The Sleuth Kit (fls -r -p, fls -d,
      istat, icat), check every live file and every deleted file byte for byte against the plan
      and write the scenario JSON.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import os
import re
import struct
import subprocess
import sys
from pathlib import Path

UTC = _dt.timezone.utc
REPO = Path(__file__).resolve().parent.parent

HOST = "WS-DAVE01"
FQDN = "WS-DAVE01.corp.example.com"
USER = "dave"
USER_SID = "S-1-5-21-1004336348-1177238915-682003330-1107"
INSTALL_TIME = "2026-09-01T08:00:00"
EVTX_START = _dt.datetime(2026, 10, 20, 9, 14, 7, 125000, tzinfo=UTC)
TB_PROFILE = "k3v9x2qa.default-release"

HOME = f"/Users/{USER}"
LOCAL = f"{HOME}/AppData/Local"
ROAMING = f"{HOME}/AppData/Roaming"
UNISTORE = f"{LOCAL}/Comms/Unistore/data"
TB = f"{ROAMING}/Thunderbird/Profiles/{TB_PROFILE}"
LOCAL_FOLDERS = f"{TB}/Mail/Local Folders"
PSREADLINE = f"{ROAMING}/Microsoft/Windows/PowerShell/PSReadLine/ConsoleHost_history.txt"
EVTX_DIR = "/Windows/System32/winevt/Logs"


def ts(s: str) -> _dt.datetime:
    return _dt.datetime.fromisoformat(s).replace(tzinfo=UTC)


def epoch(s: str) -> int:
    return int(ts(s).timestamp())


def iso(value: int | float | None) -> str | None:
    if value is None:
        return None
    return _dt.datetime.fromtimestamp(value, UTC).isoformat()


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


# --------------------------------------------------------------------------------------------
# Mail content
# --------------------------------------------------------------------------------------------
def _message(sender: str, to: str, subject: str, when: str, msgid: str, body: list[str],
             status: str = "0001") -> bytes:
    dt = ts(when)
    from_line = f"From - {dt.strftime('%a %b %d %H:%M:%S %Y')}"
    headers = [
        from_line,
        f"X-Mozilla-Status: {status}",
        "X-Mozilla-Status2: 00000000",
        f"Return-Path: <{re.sub(r'.*<|>.*', '', sender)}>",
        f"Received: from mx1.corp.example.com (mx1.corp.example.com [10.20.0.30])"
        f" by pop.corp.example.com; {dt.strftime('%a, %d %b %Y %H:%M:%S +0000')}",
        f"From: {sender}",
        f"To: {to}",
        f"Subject: {subject}",
        f"Date: {dt.strftime('%a, %d %b %Y %H:%M:%S +0000')}",
        f"Message-ID: <{msgid}>",
        "MIME-Version: 1.0",
        "Content-Type: text/plain; charset=UTF-8",
        "Content-Transfer-Encoding: 7bit",
    ]
    return ("\r\n".join(headers + [""] + body) + "\r\n\r\n").encode()


OLD_INBOX_MESSAGES = [
    ("Finance Controller <controller@corp.example.com>", "dave@corp.example.com",
     "Q3 wire transfers - reconciliation", "2026-10-12T08:31:05", "q3-wires-0012@corp.example.com",
     ["Dave,", "", "please reconcile the three wire transfers to Baltic Trade OU before Friday.",
      "", "-- Controller"]),
    ("CEO Office <ceo@corp.example.com>", "dave@corp.example.com",
     "RE: mailbox export for the audit", "2026-10-16T14:02:44", "ceo-export-0016@corp.example.com",
     ["Dave,", "", "no export of my mailbox leaves the building. Cancel it.", "", "M."]),
    ("Internal Audit <audit@corp.example.com>", "dave@corp.example.com",
     "Audit hold AH-2026-14: do not delete mail", "2026-10-19T17:03:12",
     "audit-hold-0019@corp.example.com",
     ["All recipients:", "", "a legal hold applies to all mail about the Q3 wire transfers.",
      "Do not delete, move or export any message until further notice.", "", "Internal Audit"]),
]
NEW_INBOX_MESSAGES = [
    ("IT Service Desk <servicedesk@corp.example.com>", "dave@corp.example.com",
     "Your password expires in 5 days", "2026-10-20T10:21:14", "itsd-pw-1020@corp.example.com",
     ["Hello Dave,", "", "your Windows password expires on 25 October.", "", "IT Service Desk"]),
]


def mbox(messages: list[tuple]) -> bytes:
    return b"".join(_message(*m) for m in messages)


def mork(folder: str, count: int, when: str) -> bytes:
    """A small Mork summary (.msf) like the one Thunderbird keeps beside each folder."""
    lines = [
        "// <!-- <mdb:mork:z v=\"1.4\"/> -->",
        "< <(a=c)> // (f=iso-8859-1)",
        "  (8A=folderName)(8B=numMsgs)(8C=numNewMsgs)(8D=MRMTime)>",
        f"<(80={folder})(81={count:x})(82=0)(83={epoch(when):x})>",
        "{1:^80 {(k^8B:c)(s=9)} [1:^80(^8A^80)(^8B^81)(^8C^82)(^8D^83)]}",
        "",
    ]
    return "\n".join(lines).encode()


def unistore_body(subject: str, when: str, body: str) -> bytes:
    return (f"<html><head><meta charset=\"utf-8\"><title>{subject}</title></head>"
            f"<body><!-- received {when}Z --><p>{body}</p></body></html>\r\n").encode()


PSREADLINE_COMMANDS = [
    # (command, clearing rule or None); PSReadLine keeps no timestamps
    ("Add-PSSnapin Microsoft.Exchange.Management.PowerShell.SnapIn", None),
    ("New-MailboxExportRequest -Mailbox ceo -FilePath \\\\EXCH01\\c$\\Users\\Public\\ceo.pst", None),
    ('Get-MailboxExportRequest -Identity "ceo\\MailboxExport" | Format-List Status,PercentComplete',
     None),
    ('Remove-MailboxExportRequest -Identity "ceo\\MailboxExport" -Confirm:$false',
     "exchange_remove_export_request"),
    ('New-TransportRule -Name "Invoice filter" -SubjectContainsWords "invoice","wire" '
     "-DeleteMessage $true", "exchange_transport_rule_delete"),
    ('Search-Mailbox -Identity ceo -SearchQuery \'Subject:"wire transfer"\' -DeleteContent -Force',
     "exchange_search_mailbox_delete"),
    ("Set-Mailbox -Identity ceo -AuditEnabled $false", "exchange_audit_disabled"),
    ('Get-ChildItem "$env:LOCALAPPDATA\\Comms\\Unistore\\data"', None),
    ('Remove-Item -Recurse "$env:LOCALAPPDATA\\Comms\\Unistore\\data\\3"', "unistore_removed"),
    ('Get-ChildItem "$env:APPDATA\\Thunderbird\\Profiles\\*\\Mail\\Local Folders" -Filter Inbox* | '
     "Remove-Item -Force", "thunderbird_folder_removed"),
    ('wevtutil.exe cl "MSExchange Management"', "log_cleared"),
    ("wevtutil.exe cl Security", "log_cleared"),
    ("Get-History", None),
    ("Clear-History", "history_cleared"),
    ("exit", None),
]


def psreadline_text() -> bytes:
    return "".join(f"{c}\r\n" for c, _ in PSREADLINE_COMMANDS).encode()


# --------------------------------------------------------------------------------------------
# Prefetch: a minimal uncompressed SCCA version 30 writer (Windows 10 writes the same structure
# MAM-compressed; libscca reads both).  Layout per libscca's "Windows Prefetch File (PF) format":
# 84-byte header, 220-byte file information, metrics array (32-byte entries), trace chains
# (8-byte entries), filename strings, volumes information (96-byte entries + device path, file
# references, directory strings).
# --------------------------------------------------------------------------------------------
VOLUME_CREATED = "2026-09-01T08:00:00"


def scca_hash(device_path: str) -> int:
    """The Vista-and-later Prefetch hash of the executable's full device path (upper case)."""
    value = 314159
    for byte in device_path.upper().encode("utf-16-le"):
        value = (value * 37 + byte) % 0x100000000
    return value


def _utf16z(text: str) -> bytes:
    return text.encode("utf-16-le") + b"\0\0"


def scca_v30(exe: str, device_path: str, run_times: list[str], run_count: int,
             volume_path: str, volume_serial: int, files: list[str],
             directories: list[str]) -> bytes:
    """An uncompressed SCCA v30 file: ``run_times`` most recent first (up to 8)."""
    header_size, info_size = 84, 220  # metrics array at 0x130, as libscca expects for v30
    metrics_off = header_size + info_size
    metrics = b""
    strings = b""
    for index, name in enumerate(files):
        metrics += struct.pack("<IIIIII Q", index, 1, 1, len(strings), len(name), 0x200, 0)
        strings += _utf16z(name)
    traces_off = metrics_off + len(metrics)
    traces = b"".join(struct.pack("<IBBH", 1, 2, 1, 0xFFFF) for _ in files)
    strings_off = traces_off + len(traces)
    strings_size = len(strings)  # without the alignment padding (libscca counts every NUL)
    strings += b"\0" * (-len(strings) % 8)
    volumes_off = strings_off + len(strings)
    entry_size = 96
    path_off = entry_size
    body = _utf16z(volume_path)
    body += b"\0" * (-len(body) % 8)
    refs_off = path_off + len(body)
    refs = struct.pack("<II", 3, 1) + struct.pack("<Q", 0)
    dirs_off = refs_off + len(refs)
    dirs = b"".join(struct.pack("<H", len(d)) + _utf16z(d) for d in directories)
    dirs += b"\0" * (-len(dirs) % 8)
    entry = struct.pack("<IIQIIIIII", path_off, len(volume_path), _ft(VOLUME_CREATED),
                        volume_serial, refs_off, len(refs), dirs_off, len(directories), 0)
    entry += b"\0" * 24 + struct.pack("<I", len(directories)) + b"\0" * 24 + b"\0" * 4
    assert len(entry) == entry_size
    volumes = entry + body + refs + dirs
    total = volumes_off + len(volumes)
    times = [_ft(t) for t in run_times[:8]] + [0] * (8 - len(run_times[:8]))
    info = struct.pack("<IIIIIIIII", metrics_off, len(files), traces_off, len(files),
                       strings_off, strings_size, volumes_off, 1, len(volumes))
    info += b"\0" * 8 + struct.pack("<8Q", *times) + b"\0" * 16
    info += struct.pack("<III", run_count, min(len(run_times), 8), 0)
    info += b"\0" * (info_size - len(info))
    name = exe.upper().encode("utf-16-le")[:58]
    header = struct.pack("<I4sII", 30, b"SCCA", 0x11, total) + name + b"\0" * (60 - len(name))
    header += struct.pack("<II", scca_hash(device_path), 0)
    data = header + info + metrics + traces + strings + volumes
    assert len(data) == total
    return data


def prefetch_files(volume_serial: int) -> list[dict]:
    """The Prefetch files of the story, with what pyscca must read back from each."""
    vol = f"\\VOLUME{{{_ft(VOLUME_CREATED):016x}-{volume_serial:08x}}}"
    sys32 = f"{vol}\\WINDOWS\\SYSTEM32"
    profile = f"{vol}\\USERS\\DAVE"
    tb_folder = (f"{profile}\\APPDATA\\ROAMING\\THUNDERBIRD\\PROFILES\\"
                 f"{TB_PROFILE.upper()}\\MAIL\\LOCAL FOLDERS")
    specs = [
        ("WEVTUTIL.EXE", f"{sys32}\\WEVTUTIL.EXE",
         ["2026-10-20T10:00:06", "2026-10-20T09:59:06"], 2,
         [f"{sys32}\\NTDLL.DLL", f"{sys32}\\KERNEL32.DLL", f"{sys32}\\WEVTAPI.DLL",
          f"{sys32}\\WEVTUTIL.EXE"], [vol + "\\WINDOWS", sys32]),
        ("POWERSHELL.EXE", f"{sys32}\\WINDOWSPOWERSHELL\\V1.0\\POWERSHELL.EXE",
         ["2026-10-20T09:14:05", "2026-10-16T08:02:11", "2026-10-09T15:40:27"], 3,
         [f"{sys32}\\NTDLL.DLL", f"{sys32}\\WINDOWSPOWERSHELL\\V1.0\\POWERSHELL.EXE",
          f"{profile}\\APPDATA\\ROAMING\\MICROSOFT\\WINDOWS\\POWERSHELL\\PSREADLINE\\"
          "CONSOLEHOST_HISTORY.TXT"],
         [vol + "\\WINDOWS", sys32, f"{sys32}\\WINDOWSPOWERSHELL\\V1.0"]),
        ("THUNDERBIRD.EXE", f"{vol}\\PROGRAM FILES\\MOZILLA THUNDERBIRD\\THUNDERBIRD.EXE",
         ["2026-10-20T10:21:10", "2026-10-20T09:31:30", "2026-10-19T08:12:45"], 14,
         [f"{sys32}\\NTDLL.DLL", f"{vol}\\PROGRAM FILES\\MOZILLA THUNDERBIRD\\THUNDERBIRD.EXE",
          f"{tb_folder}\\INBOX", f"{tb_folder}\\INBOX.MSF"],
         [vol + "\\PROGRAM FILES\\MOZILLA THUNDERBIRD", tb_folder]),
    ]
    out = []
    for exe, volume_path, runs, count, files, dirs in specs:
        # Windows hashes the kernel device path of the executable, not the \VOLUME{} form
        device_path = "\\DEVICE\\HARDDISKVOLUME1" + volume_path[len(vol):]
        name = f"{exe}-{scca_hash(device_path):08X}.pf"
        data = scca_v30(exe, device_path, runs, count, vol, volume_serial, files, dirs)
        out.append({"name": name, "data": data, "executable": exe, "hash": scca_hash(device_path),
                    "hashed_path": device_path,
                    "run_count": count, "run_times": runs, "files": files, "volume": vol,
                    "volume_serial": volume_serial})
    return out


def check_prefetch(entry: dict) -> None:
    """Read a Prefetch file back with pyscca (libscca); raise if anything differs."""
    import io

    import pyscca

    scca = pyscca.file()
    scca.open_file_object(io.BytesIO(entry["data"]))
    try:
        assert scca.format_version == 30, scca.format_version
        assert scca.executable_filename == entry["executable"], scca.executable_filename
        assert scca.prefetch_hash == entry["hash"], scca.prefetch_hash
        assert scca.run_count == entry["run_count"], scca.run_count
        for index, when in enumerate(entry["run_times"]):
            got = scca.get_last_run_time_as_integer(index)
            assert got == _ft(when), (index, got)
        names = [scca.get_filename(i) for i in range(scca.number_of_filenames)]
        assert names == entry["files"], names
        volume = scca.get_volume_information(0)
        assert volume.device_path == entry["volume"], volume.device_path
        assert volume.serial_number == entry["volume_serial"], volume.serial_number
    finally:
        scca.close()


# --------------------------------------------------------------------------------------------
# The operations, in build order.  Each op: (clock, action, path, extra).  Times of the
# $STANDARD_INFORMATION attribute are set by "times" ops (crtime, mtime, atime); the MFT change
# time is the clock of the last op that touched the entry.
# --------------------------------------------------------------------------------------------
DIRS = [
    ("2026-09-01T08:00:00", "/Windows"),
    ("2026-09-01T08:00:00", "/Windows/System32"),
    ("2026-09-01T08:00:00", "/Windows/System32/winevt"),
    ("2026-09-01T08:00:00", EVTX_DIR),
    ("2026-09-01T08:00:00", "/Windows/Prefetch"),
    ("2026-09-01T08:00:00", "/Users"),
    ("2026-09-01T08:30:00", HOME),
    ("2026-09-01T08:30:00", f"{HOME}/AppData"),
    ("2026-09-01T08:30:00", LOCAL),
    ("2026-09-01T08:30:00", ROAMING),
    ("2026-09-01T08:30:00", f"{HOME}/Documents"),
    ("2026-09-01T08:31:00", f"{HOME}/Documents/Outlook Files"),
    ("2026-09-01T08:35:00", f"{ROAMING}/Microsoft"),
    ("2026-09-01T08:35:00", f"{ROAMING}/Microsoft/Windows"),
    ("2026-09-01T08:35:00", f"{ROAMING}/Microsoft/Windows/PowerShell"),
    ("2026-09-01T08:35:00", f"{ROAMING}/Microsoft/Windows/PowerShell/PSReadLine"),
    ("2026-09-02T10:11:00", f"{LOCAL}/Comms"),
    ("2026-09-02T10:11:00", f"{LOCAL}/Comms/Unistore"),
    ("2026-09-02T10:11:00", UNISTORE),
    ("2026-09-02T10:11:00", f"{UNISTORE}/0"),
    ("2026-09-02T10:11:00", f"{UNISTORE}/0/qc"),
    ("2026-09-02T10:11:00", f"{UNISTORE}/0/qc/00000A1F"),
    ("2026-09-02T10:11:00", f"{UNISTORE}/3"),
    ("2026-09-02T10:11:00", f"{UNISTORE}/3/qc"),
    ("2026-09-02T10:11:00", f"{UNISTORE}/3/qc/00000A1F"),
    ("2026-09-02T10:15:00", f"{ROAMING}/Thunderbird"),
    ("2026-09-02T10:15:00", f"{ROAMING}/Thunderbird/Profiles"),
    ("2026-09-02T10:15:00", TB),
    ("2026-09-02T10:15:00", f"{TB}/Mail"),
    ("2026-09-02T10:15:00", LOCAL_FOLDERS),
    # where Thunderbird's folder rebuild of 20 Oct writes before renaming into Local Folders
    ("2026-10-20T10:21:15", f"{TB}/Mail/.rebuild"),
]

# path, content, (crtime, mtime, atime) of $STANDARD_INFORMATION, deleted_at or None
FILES: list[tuple[str, bytes, tuple[str, str, str], str | None]] = [
    (f"{ROAMING}/Thunderbird/profiles.ini",
     (f"[Profile0]\r\nName=default-release\r\nIsRelative=1\r\nPath=Profiles/{TB_PROFILE}\r\n"
      "Default=1\r\n\r\n[General]\r\nStartWithLastProfile=1\r\nVersion=2\r\n").encode(),
     ("2026-09-02T10:15:00", "2026-09-02T10:15:00", "2026-10-20T10:21:10"), None),
    (f"{TB}/prefs.js",
     b'// Mozilla User Preferences\r\nuser_pref("mail.server.server1.type", "none");\r\n'
     b'user_pref("mail.server.server2.hostname", "pop.corp.example.com");\r\n'
     b'user_pref("mail.server.server2.type", "pop3");\r\n'
     b'user_pref("mail.server.server2.deferred_to_account", "account1");\r\n',
     ("2026-09-02T10:15:00", "2026-10-20T10:21:20", "2026-10-20T10:21:20"), None),
    # the Inbox and its summary as they were before the clearing: deleted at 09:54:09
    (f"{LOCAL_FOLDERS}/Inbox", mbox(OLD_INBOX_MESSAGES),
     ("2026-09-02T10:15:02", "2026-10-19T17:03:12", "2026-10-20T09:31:40"),
     "2026-10-20T09:54:09"),
    (f"{LOCAL_FOLDERS}/Inbox.msf", mork("Inbox", len(OLD_INBOX_MESSAGES), "2026-10-19T17:03:12"),
     ("2026-09-02T10:15:02", "2026-10-20T09:31:41", "2026-10-20T09:31:41"),
     "2026-10-20T09:54:09"),
    (f"{LOCAL_FOLDERS}/Trash", b"",
     ("2026-09-02T10:15:02", "2026-09-02T10:15:02", "2026-10-20T09:31:40"), None),
    (f"{LOCAL_FOLDERS}/Trash.msf", mork("Trash", 0, "2026-09-02T10:15:02"),
     ("2026-09-02T10:15:02", "2026-09-02T10:15:02", "2026-10-20T09:31:40"), None),
    # Windows Mail: message bodies; data\3 is removed at 09:52:31
    (f"{UNISTORE}/0/qc/00000A1F/00000001.dat",
     unistore_body("Welcome to Mail", "2026-09-02T10:12:00", "Your account is ready."),
     ("2026-09-02T10:12:00", "2026-09-02T10:12:00", "2026-09-02T10:12:00"), None),
    (f"{UNISTORE}/0/qc/00000A1F/00000002.dat",
     unistore_body("Lunch on Thursday?", "2026-10-14T11:05:00",
                   "Shall we try the new place on Thursday? " * 20),
     ("2026-10-14T11:05:00", "2026-10-14T11:05:00", "2026-10-14T11:05:00"), None),
    (f"{UNISTORE}/3/qc/00000A1F/00000003.dat",
     unistore_body("Q3 wire transfers - reconciliation", "2026-10-12T08:31:05",
                   "Please reconcile the three wire transfers to Baltic Trade OU before Friday. "
                   * 12),
     ("2026-10-12T08:31:05", "2026-10-12T08:31:05", "2026-10-20T09:20:00"), "2026-10-20T09:52:31"),
    (f"{UNISTORE}/3/qc/00000A1F/00000004.dat",
     unistore_body("Audit hold AH-2026-14", "2026-10-19T17:03:12",
                   "A legal hold applies to all mail about the Q3 wire transfers."),
     ("2026-10-19T17:03:12", "2026-10-19T17:03:12", "2026-10-20T09:20:05"), "2026-10-20T09:52:31"),
    (PSREADLINE, psreadline_text(),
     ("2026-09-01T08:40:00", "2026-10-20T10:03:58", "2026-10-20T10:03:58"), None),
    # written by Thunderbird at 10:21:15 into .rebuild and renamed into Local Folders
    (f"{TB}/Mail/.rebuild/Inbox", mbox(NEW_INBOX_MESSAGES),
     ("2026-10-20T10:21:15", "2026-10-20T10:21:15", "2026-10-20T10:21:15"), None),
    (f"{TB}/Mail/.rebuild/Inbox.msf", mork("Inbox", len(NEW_INBOX_MESSAGES), "2026-10-20T10:21:15"),
     ("2026-10-20T10:21:15", "2026-10-20T10:21:16", "2026-10-20T10:21:16"), None),
]
RENAMES = [  # clock, from, to
    ("2026-10-20T10:21:16", f"{TB}/Mail/.rebuild/Inbox", f"{LOCAL_FOLDERS}/Inbox"),
    ("2026-10-20T10:21:16", f"{TB}/Mail/.rebuild/Inbox.msf", f"{LOCAL_FOLDERS}/Inbox.msf"),
]
RMDIRS = [  # clock, directory removed (after its files), in order
    ("2026-10-20T09:52:31", f"{UNISTORE}/3/qc/00000A1F"),
    ("2026-10-20T09:52:31", f"{UNISTORE}/3/qc"),
    ("2026-10-20T09:52:31", f"{UNISTORE}/3"),
    ("2026-10-20T10:21:16", f"{TB}/Mail/.rebuild"),
]


def _ft(when: str | _dt.datetime) -> int:
    dt = ts(when) if isinstance(when, str) else when
    return int((dt.timestamp() + 11644473600) * 10_000_000)


class Clock:
    def __init__(self, path: str) -> None:
        self.path = path

    def set(self, when: str | _dt.datetime) -> None:
        dt = ts(when) if isinstance(when, str) else when
        with open(self.path, "w") as fh:
            fh.write(dt.strftime("%Y-%m-%d %H:%M:%S\n"))


def _set_times(host_path: str, clock: Clock, crtime, mtime, atime, ctime) -> None:
    clock.set(ctime)
    os.setxattr(host_path, "system.ntfs_times",
                struct.pack("<4Q", _ft(crtime), _ft(mtime), _ft(atime), _ft(ctime)))


def populate(mnt: str, clock_file: str, work: str, fs_image: str) -> None:
    clock = Clock(clock_file)
    host = lambda p: mnt + p  # noqa: E731
    plan: dict = {"files": [], "deleted": [], "evtx": None, "prefetch": []}
    for when, d in DIRS:
        clock.set(when)
        os.mkdir(host(d))
    # Prefetch: the volume serial in the \VOLUME{...} paths is the NTFS serial (boot sector 0x48)
    with open(fs_image, "rb") as fh:
        fh.seek(0x48)
        serial = struct.unpack("<Q", fh.read(8))[0] & 0xFFFFFFFF
    for entry in prefetch_files(serial):
        check_prefetch(entry)
        path = f"/Windows/Prefetch/{entry['name']}"
        first, last = min(entry["run_times"]), max(entry["run_times"])
        written = (ts(last) + _dt.timedelta(seconds=10)).isoformat()[:19]
        clock.set(first)
        with open(host(path), "wb") as fh:
            fh.write(entry["data"])
        _set_times(host(path), clock, ts(first), ts(written), ts(written), ts(written))
        plan["files"].append({"path": path, "size": len(entry["data"]),
                              "sha256": sha256(entry["data"]), "crtime": first,
                              "mtime": written, "kind": "prefetch"})
        plan["prefetch"].append({
            "path": path, "executable": entry["executable"], "prefetch_hash": f"{entry['hash']:08X}",
            "hashed_path": entry["hashed_path"],
            "format_version": 30, "compressed": False, "run_count": entry["run_count"],
            "last_run_times": [ts(t).isoformat() for t in entry["run_times"]],
            "volume_device_path": entry["volume"], "volume_serial": f"{serial:08X}",
            "filenames": entry["files"]})
    # EVTX: the fixture writes the six channels; copy them in with the time of their last event
    sys.path.insert(0, str(REPO))
    from tests.fixtures.evtx_scenarios import Host, write_mail_clearing_logs

    evtx_tmp = Path(work) / "evtx"
    evtx_host = Host(computer=FQDN, domain="CORP", user=USER, user_sid=USER_SID,
                     exchange_caller=f"corp.example.com/Users/{USER}")
    truth = write_mail_clearing_logs(evtx_tmp, evtx_host, EVTX_START)
    last: dict[str, int] = {}
    for ev in truth["events"]:
        last[ev["file"]] = max(last.get(ev["file"], 0), int(ev["time"]))
    evtx_files = []
    for name in sorted(os.listdir(evtx_tmp)):
        data = (evtx_tmp / name).read_bytes()
        path = f"{EVTX_DIR}/{name}"
        clock.set(INSTALL_TIME)
        with open(host(path), "wb") as fh:
            fh.write(data)
        mtime = _dt.datetime.fromtimestamp(last[name] // 1_000_000, UTC) \
            if name in last else ts(INSTALL_TIME)
        _set_times(host(path), clock, ts(INSTALL_TIME), mtime, mtime, mtime)
        plan["files"].append({"path": path, "size": len(data), "sha256": sha256(data),
                              "crtime": INSTALL_TIME, "mtime": mtime.isoformat(),
                              "kind": "evtx"})
        evtx_files.append(name)
    plan["evtx"] = {
        "fixture": "tests/fixtures/evtx_scenarios.py:write_mail_clearing_logs",
        "host": FQDN, "user": f"CORP\\{USER}", "start": EVTX_START.isoformat(),
        "files": evtx_files,
        "events": [{**{k: ev[k] for k in ("file", "channel", "record_id", "label", "technique")
                        if k in ev},
                    "time": _dt.datetime.fromtimestamp(ev["time"] / 1e6, UTC).isoformat()}
                   for ev in truth["events"]],
    }
    for path, data, (crt, mt, at), deleted in FILES:
        clock.set(crt)
        with open(host(path), "wb") as fh:
            fh.write(data)
        _set_times(host(path), clock, crt, mt, at, mt)
        entry = {"path": path, "size": len(data), "sha256": sha256(data), "crtime": crt,
                 "mtime": mt, "atime": at}
        if deleted:
            entry["deleted_time"] = deleted
            plan["deleted"].append(entry)
        else:
            plan["files"].append(entry)
    # deletions, in time order: Unistore data\3 at 09:52:31, Thunderbird Inbox* at 09:54:09
    for entry in sorted(plan["deleted"], key=lambda e: (e["deleted_time"], e["path"])):
        clock.set(entry["deleted_time"])
        os.remove(host(entry["path"]))
    for when, d in RMDIRS:
        if d.endswith(".rebuild"):
            continue
        clock.set(when)
        os.rmdir(host(d))
    for when, src, dst in RENAMES:
        clock.set(when)
        os.rename(host(src), host(dst))
        for entry in plan["files"]:
            if entry["path"] == src:
                entry["path"] = dst
    for when, d in RMDIRS:
        if d.endswith(".rebuild"):
            clock.set(when)
            os.rmdir(host(d))
    plan["deleted_dirs"] = [d for _, d in RMDIRS]
    # directory times as the story leaves them
    dir_times = {
        UNISTORE: "2026-10-20T09:52:31",
        LOCAL_FOLDERS: "2026-10-20T10:21:16",
        f"{TB}/Mail": "2026-10-20T10:21:16",
    }
    for d, when in dir_times.items():
        crt = next(w for w, p in DIRS if p == d)
        _set_times(host(d), clock, crt, when, when, when)
    clock.set("2026-10-20T10:30:00")
    plan["files"].sort(key=lambda e: e["path"])
    Path(work, "plan.json").write_text(json.dumps(plan, indent=1))


# --------------------------------------------------------------------------------------------
# Read back
# --------------------------------------------------------------------------------------------
_FLS = re.compile(r"^(?P<type>\S+) (?P<star>\* )?(?P<addr>\d+)-(?P<atype>\d+)-(?P<aid>\d+):\t(?P<path>.*)$")


def _run(*args: str) -> bytes:
    return subprocess.run(args, check=True, capture_output=True).stdout


def _istat(disk: str, off: str, entry: int) -> dict:
    text = _run("istat", "-o", off, disk, str(entry)).decode()
    out: dict = {}
    m = re.search(r"Entry: (\d+)\s+Sequence: (\d+)", text)
    out["sequence"] = int(m.group(2))
    out["allocated"] = "Not Allocated" not in text
    si = text.split("$STANDARD_INFORMATION Attribute Values:")[1].split("$FILE_NAME")[0]
    for key, label in (("crtime", "Created"), ("mtime", "File Modified"),
                       ("ctime", "MFT Modified"), ("atime", "Accessed")):
        m = re.search(label + r":\s+(\S+ \S+) \(UTC\)", si)
        out[key] = (_dt.datetime.strptime(m.group(1)[:19], "%Y-%m-%d %H:%M:%S")
                    .replace(tzinfo=UTC).isoformat()) if m else None
    m = re.search(r"Type: \$DATA \(128-\d+\)\s+Name: N/A\s+(Resident|Non-Resident)", text)
    out["resident"] = bool(m and m.group(1) == "Resident")
    return out


def finalize(work: str, disk: str, part_start: str, out_json: str) -> None:
    plan = json.loads(Path(work, "plan.json").read_text())
    listing = _run("fls", "-r", "-p", "-o", part_start, disk).decode().splitlines()
    live: dict[str, tuple[int, int]] = {}
    deleted: dict[str, list[tuple[int, int, str]]] = {}
    for line in listing:
        m = _FLS.match(line)
        if not m:
            continue
        path = "/" + m.group("path")
        if m.group("star"):
            deleted.setdefault(path, []).append((int(m.group("addr")), int(m.group("aid")),
                                                 m.group("type")))
        elif m.group("atype") == "128" and ":" not in m.group("path"):
            live[path] = (int(m.group("addr")), int(m.group("aid")))
        elif m.group("type").startswith("d/d"):
            live[path] = (int(m.group("addr")), 0)
    problems = []
    files = []
    for entry in plan["files"]:
        if entry["path"] not in live:
            problems.append(f"live file not listed by fls: {entry['path']}")
            continue
        addr = live[entry["path"]][0]
        data = _run("icat", "-o", part_start, disk, str(addr))
        if sha256(data) != entry["sha256"]:
            problems.append(f"icat {addr} ({entry['path']}) sha256 differs")
        st = _istat(disk, part_start, addr)
        want = _dt.datetime.fromisoformat(entry["mtime"]).replace(tzinfo=UTC).isoformat()
        if st["mtime"] != want:
            problems.append(f"{entry['path']}: mtime {st['mtime']} != {entry['mtime']}")
        files.append({**{k: v for k, v in entry.items() if k not in ("crtime", "mtime", "atime")},
                      "mft_entry": addr, "sequence": st["sequence"], "resident": st["resident"],
                      "crtime": st["crtime"], "mtime": st["mtime"], "atime": st["atime"],
                      "ctime": st["ctime"]})
    deleted_files = []
    for entry in plan["deleted"]:
        cands = [c for c in deleted.get(entry["path"], []) if c[2].endswith("/r")]
        if not cands:
            problems.append(f"deleted file not listed by fls -d: {entry['path']}")
            continue
        addr = cands[0][0]
        st = _istat(disk, part_start, addr)
        data = _run("icat", "-o", part_start, disk, str(addr))
        recovered = sha256(data) == entry["sha256"]
        if not recovered:
            problems.append(f"deleted {entry['path']} <{addr}> not recoverable byte for byte")
        deleted_files.append({"path": entry["path"], "mft_entry": addr,
                              "sequence": st["sequence"], "allocated": st["allocated"],
                              "size": entry["size"], "sha256": entry["sha256"],
                              "recoverable": recovered, "resident": st["resident"],
                              "deleted_time": ts(entry["deleted_time"]).isoformat(),
                              "crtime": st["crtime"], "mtime": st["mtime"],
                              "atime": st["atime"], "ctime": st["ctime"]})
    deleted_dirs = []
    for d in plan["deleted_dirs"]:
        cands = [c for c in deleted.get(d, []) if c[2].startswith("d/")
                 or c[2].startswith("-/d")]
        deleted_dirs.append({"path": d, "mft_entry": cands[0][0] if cands else None})
    if problems:
        sys.exit("finalize: " + "; ".join(problems))
    hist = psreadline_text().decode().split("\r\n")[:-1]
    scenario = {
        "host": HOST, "fqdn": FQDN, "os": "Windows (NTFS layout; no registry hives)",
        "image": "windows-suspect.raw",
        "partition_offset_bytes": int(part_start) * 512,
        "filesystem": {"type": "ntfs", "label": "Windows", "cluster_size": 4096,
                       "mft_record_size": 1024, "created": ts(INSTALL_TIME).isoformat(),
                       "writer": "mkntfs + ntfs-3g under libfaketime",
                       "usnjrnl": None,
                       "usnjrnl_note": "ntfs-3g does not write $UsnJrnl; the volume has none"},
        "users": [{"name": USER, "sid": USER_SID, "home": HOME}],
        "files": files,
        "deleted_files": deleted_files,
        "deleted_dirs": deleted_dirs,
        "histories": [{"path": PSREADLINE, "user": USER, "format": "psreadline",
                       "lines": [{"index": i, "command": c, "time": None}
                                 for i, c in enumerate(hist)]}],
        "clearing_commands": [{"history": PSREADLINE, "index": i, "command": c, "rule_hint": r}
                              for i, (c, r) in enumerate(PSREADLINE_COMMANDS) if r],
        "not_flagged": [c for c, r in PSREADLINE_COMMANDS if not r],
        "mailboxes": [
            {"path": f"{LOCAL_FOLDERS}/Inbox", "deleted": False,
             "messages": [{"subject": m[2], "date": ts(m[3]).isoformat(), "message_id": m[4]}
                          for m in NEW_INBOX_MESSAGES]},
            {"path": f"{LOCAL_FOLDERS}/Inbox", "deleted": True,
             "mft_entry": next(d["mft_entry"] for d in deleted_files
                               if d["path"] == f"{LOCAL_FOLDERS}/Inbox"),
             "messages": [{"subject": m[2], "date": ts(m[3]).isoformat(), "message_id": m[4]}
                          for m in OLD_INBOX_MESSAGES]},
        ],
        "evtx": plan["evtx"],
        "prefetch": plan["prefetch"],
        "prefetch_note": ("uncompressed SCCA version 30 written by windows_suspect.scca_v30 and "
                          "read back with pyscca at build time; real Windows 10/11 files are "
                          "MAM (Xpress Huffman) compressed"),
        "empty_files": [f"{LOCAL_FOLDERS}/Trash"],
        "empty_dirs": [f"{HOME}/Documents/Outlook Files"],
    }
    Path(out_json).write_text(json.dumps(scenario, indent=1, ensure_ascii=False) + "\n")
    print(f"finalize: {len(files)} live files, {len(deleted_files)} deleted files "
          f"(MFT entries {', '.join(str(d['mft_entry']) for d in deleted_files)}) verified")


if __name__ == "__main__":
    cmd = sys.argv[1] if len(sys.argv) > 1 else ""
    if cmd == "populate" and len(sys.argv) == 6:
        populate(*sys.argv[2:6])
    elif cmd == "finalize" and len(sys.argv) == 6:
        finalize(*sys.argv[2:6])
    else:
        sys.exit(__doc__)
