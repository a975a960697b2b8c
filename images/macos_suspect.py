#!/usr/bin/env python3
"""Single source of truth for the ``macos-suspect`` test image (macOS layout on FAT32).

HFS+ cannot be written here (no hfsprogs package in Debian 12, no hfsplus kernel module), so the
macOS home directory layout is put on a FAT32 volume in a GPT disk; the README says so.

Sub-commands (called by build_macos_suspect.sh):

  stage STAGING WORK
      Write the file tree into STAGING: the Apple Mail V10 tree made by
      tests/fixtures/apple_mail/build_envelope_index.py (Envelope Index with its -wal, .emlx
      files) under Users/erin/Library/Mail, and erin's .zsh_history. WORK receives plan.json:
      every directory and file with its time, what to delete and when.

  finalize WORK DISK_IMAGE PART_START_SECTOR OUT_JSON
      Read the listing back with The Sleuth Kit (fls -r -p, fls -d, icat), check every live
      file and the deleted .emlx byte for byte and write the scenario JSON.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

UTC = _dt.timezone.utc
REPO = Path(__file__).resolve().parent.parent
HOST = "erins-mbp"
USER = "erin"
HOME = f"/Users/{USER}"
MAIL = f"{HOME}/Library/Mail"
ACCOUNT = "4C1B2D7E-2F1A-4B8E-9C3D-1A2B3C4D5E6F"
MBOX_UUID = "9E8D7C6B-5A49-4837-A625-14F3E2D1C0B9"
TRASH_MSGS = f"{MAIL}/V10/{ACCOUNT}/Deleted Messages.mbox/{MBOX_UUID}/Data/Messages"
INBOX_MSGS = f"{MAIL}/V10/{ACCOUNT}/INBOX.mbox/{MBOX_UUID}/Data/Messages"
INSTALL_TIME = "2026-09-05T12:00:00"
MAIL_TIME = "2026-10-18T16:40:00"      # last time Mail wrote the store
DELETE_TIME = "2026-10-20T21:07:44"    # erin removes 4.emlx by hand
DELETED = [f"{TRASH_MSGS}/4.emlx"]

ZSH_HISTORY = [
    # (epoch time, elapsed, command, clearing rule or None)
    ("2026-10-20T21:02:10", 0, "ls ~/Library/Mail/V10", None),
    ("2026-10-20T21:03:31", 0, 'sqlite3 ~/Library/Mail/V10/MailData/Envelope\\ Index '
                              '"select ROWID, subject, deleted from messages"', None),
    ("2026-10-20T21:05:02", 1, "osascript -e 'tell application \"Mail\" to delete (every message "
                              "of mailbox \"INBOX\" of account \"Work\" whose subject contains "
                              "\"wire\")'", "shell_mail_osascript_delete"),
    ("2026-10-20T21:07:44", 0, f"rm ~/Library/Mail/V10/{ACCOUNT}/Deleted\\ Messages.mbox/"
                              f"{MBOX_UUID}/Data/Messages/4.emlx", "shell_mail_file_removed"),
    ("2026-10-20T21:08:15", 0, "grep -rl wire ~/Library/Mail/V10 | head", None),
    ("2026-10-20T21:09:02", 0, "exit", None),
]


def ts(s: str) -> _dt.datetime:
    return _dt.datetime.fromisoformat(s).replace(tzinfo=UTC)


def epoch(s: str) -> int:
    return int(ts(s).timestamp())


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def zsh_history() -> bytes:
    return "".join(f": {epoch(t)}:{e};{c}\n" for t, e, c, _ in ZSH_HISTORY).encode()


def stage(staging: str, work: str) -> None:
    root = Path(staging)
    root.mkdir()
    fixture = Path(work) / "apple"
    subprocess.run([sys.executable, str(REPO / "tests/fixtures/apple_mail/build_envelope_index.py"),
                    str(fixture)], check=True, capture_output=True)
    mail = root / MAIL.lstrip("/")
    mail.parent.mkdir(parents=True)
    shutil.copytree(fixture, mail)
    home = root / HOME.lstrip("/")
    (home / ".zsh_history").write_bytes(zsh_history())
    (home / "Documents").mkdir()
    files, dirs = [], []
    for path in sorted(root.rglob("*")):
        rel = "/" + path.relative_to(root).as_posix()
        if path.is_dir():
            dirs.append({"path": rel, "time": INSTALL_TIME if "/Library/Mail" not in rel
                         else MAIL_TIME})
            continue
        data = path.read_bytes()
        when = ZSH_HISTORY[-1][0] if rel.endswith(".zsh_history") else MAIL_TIME
        files.append({"path": rel, "size": len(data), "sha256": sha256(data), "mtime": when,
                      "artifact": "/Library/Mail/V" in rel or rel.endswith(".zsh_history"),
                      "deleted": rel in DELETED})
    plan = {"dirs": dirs, "files": files,
            "delete": [{"path": p, "time": DELETE_TIME} for p in DELETED]}
    Path(work, "plan.json").write_text(json.dumps(plan, indent=1))


_FLS = re.compile(r"^(?P<type>\S+) (?P<star>\* )?(?P<addr>\d+)(?:-\d+-\d+)?:\t(?P<path>.*)$")


def _run(*args: str) -> bytes:
    return subprocess.run(args, check=True, capture_output=True).stdout


def finalize(work: str, disk: str, part_start: str, out_json: str) -> None:
    plan = json.loads(Path(work, "plan.json").read_text())
    live: dict[str, int] = {}
    deleted: dict[str, int] = {}
    for line in _run("fls", "-r", "-p", "-o", part_start, disk).decode().splitlines():
        m = _FLS.match(line)
        if not m:
            continue
        target = deleted if m.group("star") else live
        target.setdefault("/" + m.group("path"), int(m.group("addr")))
    problems, files, deleted_files = [], [], []
    for item in plan["files"]:
        if item["deleted"]:
            addr = deleted.get(item["path"])
            if addr is None:
                problems.append(f"deleted file not listed by fls: {item['path']}")
                continue
            data = _run("icat", "-o", part_start, disk, str(addr))[: item["size"]]
            deleted_files.append({"path": item["path"], "inode": addr, "size": item["size"],
                                  "sha256": item["sha256"],
                                  "recoverable": sha256(data) == item["sha256"],
                                  "deleted_time": ts(DELETE_TIME).isoformat(),
                                  "mtime": ts(item["mtime"]).isoformat()})
            continue
        addr = live.get(item["path"])
        if addr is None:
            problems.append(f"live file not listed by fls: {item['path']}")
            continue
        if sha256(_run("icat", "-o", part_start, disk, str(addr))) != item["sha256"]:
            problems.append(f"icat {addr} ({item['path']}) sha256 differs")
        files.append({**item, "inode": addr, "mtime": ts(item["mtime"]).isoformat()})
    if problems:
        sys.exit("finalize: " + "; ".join(problems))
    scenario = {
        "host": HOST, "os": "macOS layout (FAT32 stand-in for HFS+)",
        "image": "macos-suspect.E01",
        "partition_offset_bytes": int(part_start) * 512,
        "filesystem": {"type": "fat32", "label": "MACINTOSH HD"[:11], "stand_in_for": "hfs+",
                       "why": "no mkfs.hfsplus (hfsprogs is not in Debian 12) and no hfsplus "
                              "kernel module here"},
        "users": [{"name": USER, "home": HOME, "shell": "/bin/zsh"}],
        "files": files,
        "deleted_files": deleted_files,
        "apple_mail": {"fixture": "tests/fixtures/apple_mail/build_envelope_index.py",
                       "account": ACCOUNT, "mailbox_uuid": MBOX_UUID,
                       "envelope_index": f"{MAIL}/V10/MailData/Envelope Index"},
        "histories": [{"path": f"{HOME}/.zsh_history", "user": USER, "format": "zsh-extended",
                       "lines": [{"index": i, "time": ts(t).isoformat(), "elapsed": e,
                                  "command": c} for i, (t, e, c, _) in enumerate(ZSH_HISTORY)]}],
        "clearing_commands": [{"history": f"{HOME}/.zsh_history", "index": i,
                               "time": ts(t).isoformat(), "command": c, "rule_hint": r}
                              for i, (t, _e, c, r) in enumerate(ZSH_HISTORY) if r],
        "not_flagged": [c for _t, _e, c, r in ZSH_HISTORY if not r],
    }
    Path(out_json).write_text(json.dumps(scenario, indent=1, ensure_ascii=False) + "\n")
    print(f"finalize: {len(files)} live files, {len(deleted_files)} deleted "
          f"({', '.join(str(d['inode']) for d in deleted_files)}) verified")


if __name__ == "__main__":
    cmd = sys.argv[1] if len(sys.argv) > 1 else ""
    if cmd == "stage" and len(sys.argv) == 4:
        stage(*sys.argv[2:4])
    elif cmd == "finalize" and len(sys.argv) == 6:
        finalize(*sys.argv[2:6])
    else:
        sys.exit(__doc__)
