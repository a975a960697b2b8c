#!/usr/bin/env python3
"""Single source of truth for the ``linux-suspect.raw`` test image.

Every mailbox, shell history and log file that goes into the image, and the
ground-truth JSON the end-to-end tests assert against, are generated from the
data tables in this file, so the image and the truth cannot drift apart.

Sub-commands (called by build_linux_suspect.sh, usable by hand):

  stage STAGING WORK
      Write the staged file tree into STAGING (which must not exist) and, into
      WORK: manifest.tsv (kind, path, mode, uid, gid, atime, mtime, ctime as
      epoch seconds, one line per staged object, parents before children),
      debugfs-meta.cmd (debugfs commands that set owner/group/ctime, which
      mke2fs -d cannot take from the staging tree reproducibly), delete.json
      (what to delete inside the image and when) and truth.json (ground truth
      without inode numbers).

  finalize WORK FS_IMAGE DISK_IMAGE OUT_JSON
      Read inode numbers, times and the deleted inode's content back from the
      built file system with debugfs (and with The Sleuth Kit from the disk
      image when fls/icat are installed), check them against the truth and
      write the final scenario JSON.

Only the Python standard library is used.
"""

from __future__ import annotations

import datetime as _dt
import email
import email.header
import email.utils
import hashlib
import json
import mailbox
import os
import re
import shutil
import subprocess
import sys
import tempfile

UTC = _dt.timezone.utc

HOST = "mailhost"
FQDN = "mailhost.corp.example"
MAIL_DOMAIN = "corp.example"
IMAGE_NAME = "linux-suspect.raw"
SECTOR = 512
PART_START_SECTOR = 2048
PARTITION_OFFSET = PART_START_SECTOR * SECTOR  # 1048576

# E2FSPROGS_FAKE_TIME: "installation" time of the host.  mke2fs stamps the
# superblock, the root directory, lost+found and every inode's crtime with it.
INSTALL_TIME = "2026-09-14T10:22:00"


def ts(s: str) -> _dt.datetime:
    """'2026-10-05T09:12:44' (UTC) -> aware datetime."""
    return _dt.datetime.fromisoformat(s).replace(tzinfo=UTC)


def epoch(s: str) -> int:
    return int(ts(s).timestamp())


def iso(dt: _dt.datetime | int | None) -> str | None:
    if dt is None:
        return None
    if isinstance(dt, int):
        dt = _dt.datetime.fromtimestamp(dt, UTC)
    return dt.astimezone(UTC).isoformat()


# --------------------------------------------------------------------------
# Accounts
# --------------------------------------------------------------------------
USERS = [
    # name, uid, gid, gecos, home, shell
    ("root", 0, 0, "root", "/root", "/bin/bash"),
    ("alice", 1000, 1000, "Alice Moreau,,,", "/home/alice", "/usr/bin/zsh"),
    ("bob", 1001, 1001, "Bob Keller,,,", "/home/bob", "/bin/bash"),
    ("carol", 1002, 1002, "Carol Nguyen,,,", "/home/carol", "/bin/bash"),
]
UID = {u[0]: u[1] for u in USERS}
GID_MAIL = 8

PASSWD = """\
root:x:0:0:root:/root:/bin/bash
daemon:x:1:1:daemon:/usr/sbin:/usr/sbin/nologin
bin:x:2:2:bin:/bin:/usr/sbin/nologin
sys:x:3:3:sys:/dev:/usr/sbin/nologin
sync:x:4:65534:sync:/bin:/bin/sync
games:x:5:60:games:/usr/games:/usr/sbin/nologin
man:x:6:12:man:/var/cache/man:/usr/sbin/nologin
lp:x:7:7:lp:/var/spool/lpd:/usr/sbin/nologin
mail:x:8:8:mail:/var/mail:/usr/sbin/nologin
news:x:9:9:news:/var/spool/news:/usr/sbin/nologin
www-data:x:33:33:www-data:/var/www:/usr/sbin/nologin
backup:x:34:34:backup:/var/backups:/usr/sbin/nologin
nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin
systemd-network:x:998:998:systemd Network Management:/:/usr/sbin/nologin
messagebus:x:100:107::/nonexistent:/usr/sbin/nologin
sshd:x:101:65534::/run/sshd:/usr/sbin/nologin
postfix:x:102:109::/var/spool/postfix:/usr/sbin/nologin
""" + "".join(
    f"{n}:x:{u}:{g}:{gecos}:{home}:{shell}\n"
    for (n, u, g, gecos, home, shell) in USERS if n != "root"
)

GROUP = """\
root:x:0:
daemon:x:1:
bin:x:2:
sys:x:3:
adm:x:4:
tty:x:5:
disk:x:6:
lp:x:7:
mail:x:8:bob
news:x:9:
sudo:x:27:bob
users:x:100:alice,bob,carol
nogroup:x:65534:
systemd-network:x:998:
messagebus:x:107:
postfix:x:109:
postdrop:x:110:
alice:x:1000:
bob:x:1001:
carol:x:1002:
"""

# --------------------------------------------------------------------------
# Messages.  "delivered" is the local delivery instant on mailhost (UTC); it is
# the From_ line time and the date of the topmost Received header.  "tz" is
# the sender's UTC offset in minutes, "date_lag"/"relay_lag" how many seconds
# before delivery the Date header and the first relay hop are.
# --------------------------------------------------------------------------
EXT_RELAY = ("mx2.example.org", "192.0.2.41")
INT_RELAY = ("relay1.corp.example", "10.20.0.25")

MSG = {}


def _m(key, **kw):
    kw.setdefault("tz", 0)
    kw.setdefault("date_lag", 5)
    kw.setdefault("relay_lag", 2)
    kw.setdefault("cte", None)
    MSG[key] = kw


# alice: two older messages, moved from the spool to ~/mbox by mailx
_m("alice-old-1", owner="alice", sender="priya.natarajan@example.org",
   from_="Priya Natarajan <priya.natarajan@example.org>",
   to="Alice Moreau <alice@corp.example>",
   subject="Vendor onboarding checklist", delivered="2026-09-28T15:03:27",
   tz=330, client=("198.51.100.23", "Authenticated"), status="RO",
   body=["Hi Alice,",
         "",
         "attached is the onboarding checklist we discussed; please send the",
         "signed W-9 and the bank details form back by Friday.",
         "",
         "Thanks,",
         "Priya"])
_m("alice-old-2", owner="alice", sender="servicedesk@corp.example",
   from_="IT Service Desk <servicedesk@corp.example>",
   to="all-staff@corp.example",
   subject="Scheduled maintenance: mailhost, Sat 3 Oct 22:00 UTC",
   delivered="2026-10-01T08:47:55", internal="ws-itsd01", status="RO",
   body=["Hello all,",
         "",
         "mailhost.corp.example will be patched on Saturday 3 October between",
         "22:00 and 23:00 UTC. Mail sent during the window is queued and",
         "delivered afterwards.",
         "",
         "-- IT Service Desk"])

# alice: spool, five messages
_m("alice-1", owner="alice", sender="dana.whitfield@example.org",
   from_="Dana Whitfield <dana.whitfield@example.org>",
   to="Alice Moreau <alice@corp.example>",
   subject="Q4 forecast call - agenda", delivered="2026-10-05T09:12:44",
   tz=-240, client=("198.51.100.17", "Authenticated"), status="RO",
   body=["Alice,",
         "",
         "agenda for Thursday's Q4 forecast call:",
         "  1. pipeline review",
         "  2. revised travel budget",
         "  3. open purchase orders",
         "",
         "Dana"])
_m("alice-2", owner="alice", sender="j.brandt@example.org",
   from_="=?UTF-8?Q?J=C3=B6rg_Brandt?= <j.brandt@example.org>",
   to="alice@corp.example",
   subject="=?UTF-8?Q?Angebot_f=C3=BCr_Wartungsvertrag_2027?=",
   delivered="2026-10-07T13:40:02", tz=120, cte="8bit",
   client=("203.0.113.80", "Authenticated"), status="RO",
   body=["Guten Tag Frau Moreau,",
         "",
         "anbei unser Angebot f\u00fcr den Wartungsvertrag 2027.",
         "Die Preise gelten bis zum 31.10.2026.",
         "",
         "Mit freundlichen Gr\u00fc\u00dfen",
         "J\u00f6rg Brandt"])
_m("alice-3", owner="alice", sender="carol@corp.example",
   from_="Carol Nguyen <carol@corp.example>",
   to="Alice Moreau <alice@corp.example>",
   subject="Re: Travel policy update", delivered="2026-10-09T10:05:18",
   internal="ws-carol", status="RO",
   body=["Alice,",
         "",
         "yes, the new limits apply from 1 November. Quoting the policy:",
         "",
         ">From 1 November 2026 all hotel bookings above the city rate",
         "need written pre-approval by the cost-centre owner.",
         "",
         "Carol"])
_m("alice-4", owner="alice", sender="billing@example.org",
   from_="Example Supplies Billing <billing@example.org>",
   to="alice@corp.example",
   subject="Invoice INV-20418 payment reminder",
   delivered="2026-10-11T16:22:50", tz=-240,
   client=("192.0.2.140", "app"), status="O",
   body=["Dear customer,",
         "",
         "invoice INV-20418 (USD 4,180.00) was due on 2026-10-05.",
         "Please arrange payment or contact billing@example.org.",
         "",
         "Example Supplies Accounts Receivable"])
_m("alice-5", owner="alice", sender="hr@corp.example",
   from_="HR Team <hr@corp.example>",
   to="Alice Moreau <alice@corp.example>",
   subject="Team offsite logistics (20 Oct)", delivered="2026-10-12T11:48:03",
   internal="ws-hr02", status="O",
   body=["Hi Alice,",
         "",
         "the bus to the offsite leaves at 08:15 from the main entrance.",
         "Please confirm dietary requirements by Thursday.",
         "",
         "HR Team"])

# bob: spool, four messages
_m("bob-1", owner="bob", sender="expenses@corp.example",
   from_="Expenses <expenses@corp.example>",
   to="Bob Keller <bob@corp.example>",
   subject="Expense claim EC-7731 returned: receipts missing",
   delivered="2026-10-05T11:30:16", internal="app-expenses", status="RO",
   body=["Your expense claim EC-7731 (EUR 6,412.90) was returned.",
         "Missing: hotel folio 2026-09-14..17, taxi receipts 3-7.",
         "",
         "This is an automated message."])
_m("bob-2", owner="bob", sender="marcus.lee@example.org",
   from_="Marcus Lee <marcus.lee@example.org>",
   to="bob@corp.example",
   subject="Re: shipment delay PO-55120", delivered="2026-10-08T09:02:44",
   tz=60, client=("198.51.100.61", "Authenticated"), status="RO",
   body=["Bob,",
         "",
         "the pallets left Rotterdam this morning, ETA Monday.",
         "",
         "Marcus"])
_m("bob-3", owner="bob", sender="carol@corp.example",
   from_="Carol Nguyen <carol@corp.example>",
   to="Bob Keller <bob@corp.example>",
   subject="Expense audit: receipts for EC-7731 needed by 14 Oct",
   delivered="2026-10-10T15:47:21", internal="ws-carol", status="RO",
   body=["Bob,",
         "",
         "as part of the quarterly audit I need the original receipts for",
         "EC-7731 by Wednesday 14 October, please.",
         "",
         "Carol"])
_m("bob-4", owner="bob", sender="noreply@example.org",
   from_="Parcel Service <noreply@example.org>",
   to="bob@corp.example",
   subject="Your parcel is on its way", delivered="2026-10-12T13:05:09",
   tz=0, client=("192.0.2.200", "app"), status="O",
   body=["Your parcel 00340434161094027310 will be delivered on 13 Oct.",
         "",
         "Track it at https://parcels.example.org/t/00340434161094027310"])

# carol: spool, three messages (deleted by bob on 2026-10-12 14:32:10)
_m("carol-1", owner="carol", sender="compliance@corp.example",
   from_="Compliance Office <compliance@corp.example>",
   to="Carol Nguyen <carol@corp.example>",
   subject="CONFIDENTIAL: case CO-2026-031 opened (expense claim EC-7731)",
   delivered="2026-10-06T08:15:33", internal="ws-compl01", status="RO",
   body=["Carol,",
         "",
         "we have opened case CO-2026-031 on expense claim EC-7731",
         "(claimant: B. Keller). Please keep this confidential and collect",
         "the hotel and taxi records for 14-17 September.",
         "",
         "Compliance Office"])
_m("carol-2", owner="carol", sender="ravi.menon@example.org",
   from_="Ravi Menon <ravi.menon@example.org>",
   to="carol@corp.example",
   subject="Hotel folio cross-check for EC-7731",
   delivered="2026-10-08T14:52:10", tz=-240,
   client=("203.0.113.9", "Authenticated"), status="RO",
   body=["Carol,",
         "",
         "the hotel confirms only two nights were billed. Their note reads:",
         "",
         ">From 15 to 17 September the room was cancelled and refunded.",
         "",
         "The claim lists four nights. Scans of the folio follow by courier.",
         "",
         "Ravi Menon, external audit"])
_m("carol-3", owner="carol", sender="compliance@corp.example",
   from_="Compliance Office <compliance@corp.example>",
   to="Carol Nguyen <carol@corp.example>",
   subject="Interview with B. Keller scheduled: 13 Oct 10:00",
   delivered="2026-10-10T17:26:48", internal="ws-compl01", status="O",
   body=["Carol,",
         "",
         "the interview is booked for Tuesday 13 October, 10:00, room 4.12.",
         "Please bring the folio comparison.",
         "",
         "Compliance Office"])

# messages delivered to root's spool and later cleared with cp /dev/null;
# they survive only as delivery lines in /var/log/mail.log
ROOT_LOG_ONLY = [
    ("2026-10-07T06:25:03", "root@mailhost.corp.example", "root"),
    ("2026-10-08T06:25:02", "root@mailhost.corp.example", "root"),
]

# --------------------------------------------------------------------------
# Shell histories.  (time, command, extra); time None = no #epoch line.
# zsh entries: (time, elapsed, command-as-stored-in-the-file).
# --------------------------------------------------------------------------
ALICE_ZSH = [
    ("2026-10-11T17:52:08", 0, "cd ~/projects/q4-budget"),
    ("2026-10-11T17:52:15", 0, "ls -l ~/mbox"),
    ("2026-10-11T18:04:12", 97, "mail"),
    ("2026-10-11T18:06:01", 0, "grep d /var/mail/alice"),
    ("2026-10-11T18:07:30", 0, "rm /tmp/mail.log"),
    # backslash continuation: zsh writes "\\" + newline for the typed "\"+Enter
    ("2026-10-11T18:09:44", 3,
     "tar czf ~/q4-budget-2026-10-11.tgz \\\\\n    ~/projects/q4-budget ~/notes"),
    ("2026-10-11T18:10:20", 0, "ls -lh ~/*.tgz"),
    ("2026-10-12T08:31:05", 1, "git -C ~/projects/q4-budget pull"),
    ("2026-10-12T08:33:40", 212, "vim ~/notes/todo.txt"),
    ("2026-10-12T08:38:02", 0, "df -h /home"),
    ("2026-10-12T08:40:17", 0, "exit"),
]

BOB_BASH = [
    ("2026-10-12T14:15:00", "ls -la /var/mail"),
    ("2026-10-12T14:15:42", "id"),
    ("2026-10-12T14:16:20", "cd /tmp"),
    ("2026-10-12T14:17:05", "df -h /var"),
    ("2026-10-12T14:18:33", "ls -l /home/carol"),
    ("2026-10-12T14:19:10", "sudo -l"),
    ("2026-10-12T14:20:11", "uptime"),
    (None, "whoami"),
    ("2026-10-12T14:22:48", "w"),
    ("2026-10-12T14:25:31", "mail -f /var/mail/carol"),
    ("2026-10-12T14:30:15", "ls -la /var/mail"),
    ("2026-10-12T14:32:10", "sudo rm /var/mail/carol"),
    ("2026-10-12T14:33:40", "sudo truncate -s 0 /home/carol/mbox"),
    ("2026-10-12T14:35:02", "ls -la /var/mail /home/carol"),
    ("2026-10-12T14:37:19", "cat /etc/hostname"),
    ("2026-10-12T14:40:00", "exit"),
]

CAROL_BASH = [
    ("2026-10-10T16:01:58", "mail"),
    ("2026-10-10T16:06:40", "ls -l ~/mbox"),
    ("2026-10-10T16:06:52", "exit"),
]

ROOT_BASH = [
    (None, "apt-get update"),
    (None, "apt-get -y upgrade"),
    (None, "systemctl status postfix"),
    (None, "tail -n 50 /var/log/mail.log"),
    (None, "mailq"),
    (None, "cp /dev/null /var/mail/root"),
    (None, "ls -l /var/mail"),
    (None, "exit"),
]

# (history path, command) -> rule.  Everything else in the histories is benign.
CLEARING = {
    ("/home/bob/.bash_history", "mail -f /var/mail/carol"): "shell_mail_client_spool",
    ("/home/bob/.bash_history", "sudo rm /var/mail/carol"): "shell_mail_file_removed",
    ("/home/bob/.bash_history", "sudo truncate -s 0 /home/carol/mbox"): "shell_mail_file_removed",
    ("/root/.bash_history", "cp /dev/null /var/mail/root"): "shell_mail_file_removed",
    # carol read her spool with `mail`; the spool is now deleted (bob removed it), so her plain
    # `mail` is evidence too, while alice's `mail` (spool present) stays a look-alike.
    ("/home/carol/.bash_history", "mail"): "shell_mail_reader_spool_gone",
}

# benign look-alikes (mention mail, spools, mbox or logs) a detector must not flag, except on the
# lines CLEARING names (path and command)
NOT_FLAGGED = [
    "rm /tmp/mail.log",
    "grep d /var/mail/alice",
    "mail",
    "ls -l ~/mbox",
    "ls -la /var/mail",
    "ls -la /var/mail /home/carol",
    "ls -l /home/carol",
    "tail -n 50 /var/log/mail.log",
    "mailq",
    "systemctl status postfix",
    "ls -l /var/mail",
]

# --------------------------------------------------------------------------
# The deletion done inside the image after mke2fs (debugfs -w rm)
# --------------------------------------------------------------------------
# Superblock: last mount = reboot in the 3 Oct maintenance window; last write =
# clean shutdown of the host for imaging the morning after the incident.
FS_LAST_MOUNT = "2026-10-03T22:41:18"
FS_LAST_WRITE = "2026-10-13T07:15:00"

DELETED_PATH = "/var/mail/carol"
DELETE_TIME = "2026-10-12T14:32:10"
TRUNCATE_TIME = "2026-10-12T14:33:40"

# --------------------------------------------------------------------------
# Rendering helpers
# --------------------------------------------------------------------------
_QID_ALPHABET = "0123456789BCDFGHJKLMNPQRSTVWXYZbcdfghjkmnpqrstvwxy"


def _h(*parts) -> bytes:
    return hashlib.sha256("|".join(map(str, parts)).encode()).digest()


def queue_id(key: str, hop: str) -> str:
    d = _h("qid", key, hop)
    s = "".join(_QID_ALPHABET[b % len(_QID_ALPHABET)] for b in d[:14])
    return "4" + s[:9] + "z" + s[9:13]


def asctime(dt: _dt.datetime) -> str:
    # "Mon Oct  5 09:12:44 2026" (C asctime, day padded with a space)
    return dt.strftime("%a %b ") + f"{dt.day:2d}" + dt.strftime(" %H:%M:%S %Y")


def rfc2822(dt: _dt.datetime, tz_minutes: int, postfix_style: bool) -> str:
    local = dt.astimezone(_dt.timezone(_dt.timedelta(minutes=tz_minutes)))
    sign = "+" if tz_minutes >= 0 else "-"
    off = f"{sign}{abs(tz_minutes) // 60:02d}{abs(tz_minutes) % 60:02d}"
    if postfix_style:  # Postfix mail_date(): "%a, %e %b %Y %H:%M:%S +hhmm (ZONE)"
        day = f"{local.day:2d}"
    else:
        day = str(local.day)
    s = local.strftime("%a, ") + day + local.strftime(" %b %Y %H:%M:%S ") + off
    if postfix_style:
        s += " (" + TZ_NAMES.get(tz_minutes, "UTC") + ")"
    return s


TZ_NAMES = {0: "UTC", -240: "EDT", 60: "BST", 120: "CEST", 330: "IST"}


def decode_header(raw: str) -> str:
    return str(email.header.make_header(email.header.decode_header(raw)))


def render_message(key: str) -> tuple[bytes, dict]:
    m = MSG[key]
    owner = m["owner"]
    rcpt = f"{owner}@{MAIL_DOMAIN}"
    delivered = ts(m["delivered"])
    relay_t = delivered - _dt.timedelta(seconds=m["relay_lag"])
    date_t = delivered - _dt.timedelta(seconds=m["relay_lag"] + m["date_lag"])
    sender_domain = m["sender"].split("@", 1)[1]
    internal = "internal" in m
    tz = 0 if internal else m["tz"]
    if internal:
        relay_host, relay_ip = INT_RELAY
        client_host = f"{m['internal']}.corp.example"
        client_ip = "10.20.4." + str(20 + _h(m["internal"])[0] % 200)
        hop2 = (f"from {client_host} ({client_host} [{client_ip}])\n"
                f"\tby {relay_host} (Postfix) with ESMTP id {queue_id(key, 'relay')}\n"
                f"\tfor <{rcpt}>; {rfc2822(relay_t, 0, True)}")
        msgid = (f"<{_h('mid', key).hex()[:8]}-{_h('mid2', key).hex()[:4]}-"
                 f"{_h('mid3', key).hex()[:12]}@corp.example>")
    else:
        relay_host, relay_ip = EXT_RELAY
        cip, kind = m["client"]
        if kind == "Authenticated":
            hop2 = (f"from [{cip}] (unknown [{cip}])\n"
                    f"\t(Authenticated sender: {m['sender']})\n"
                    f"\tby {relay_host} (Postfix) with ESMTPSA id {queue_id(key, 'relay')};\n"
                    f"\t{rfc2822(relay_t, tz, True)}")
        else:
            hop2 = (f"from app01.{sender_domain} (app01.{sender_domain} [{cip}])\n"
                    f"\tby {relay_host} (Postfix) with ESMTP id {queue_id(key, 'relay')}\n"
                    f"\tfor <{rcpt}>; {rfc2822(relay_t, tz, True)}")
        msgid = f"<{date_t.strftime('%Y%m%d%H%M%S')}.{_h('mid', key).hex()[:10]}@{sender_domain}>"
    hop1 = (f"from {relay_host} ({relay_host} [{relay_ip}])\n"
            f"\tby {FQDN} (Postfix) with ESMTPS id {queue_id(key, 'local')}\n"
            f"\tfor <{rcpt}>; {rfc2822(delivered, 0, True)}")
    headers = [
        ("Return-Path", f"<{m['sender']}>"),
        ("X-Original-To", rcpt),
        ("Delivered-To", rcpt),
        ("Received", hop1),
        ("Received", hop2),
        ("Date", rfc2822(date_t, tz, False)),
        ("From", m["from_"]),
        ("To", m["to"]),
        ("Subject", m["subject"]),
        ("Message-ID", msgid),
        ("MIME-Version", "1.0"),
        ("Content-Type", "text/plain; charset=utf-8"),
    ]
    if m["cte"]:
        headers.append(("Content-Transfer-Encoding", m["cte"]))
    headers.append(("Status", m["status"]))
    text = f"From {m['sender']} {asctime(delivered)}\n"
    text += "".join(f"{k}: {v}\n" for k, v in headers)
    text += "\n" + "\n".join(m["body"]) + "\n\n"  # trailing blank line before next From_
    meta = {
        "envelope_sender": m["sender"],
        "envelope_time": iso(delivered),
        "date": iso(date_t),
        "date_raw": rfc2822(date_t, tz, False),
        "first_received": iso(delivered),
        "received": [iso(delivered), iso(relay_t)],
        "from": m["from_"],
        "to": m["to"],
        "subject": decode_header(m["subject"]),
        "subject_raw": m["subject"],
        "message_id": msgid,
        "status": m["status"],
        "queue_id": queue_id(key, "local"),
    }
    return text.encode("utf-8"), meta


def render_mbox(keys: list[str]) -> tuple[bytes, list[dict]]:
    out = b""
    metas = []
    for k in keys:
        data, meta = render_message(k)
        meta["offset"] = len(out)
        meta["size"] = len(data)
        out += data
        metas.append(meta)
    return out, metas


def render_bash(entries) -> tuple[bytes, list[dict]]:
    out, lines = "", []
    for i, (t, cmd) in enumerate(entries):
        if t is not None:
            out += f"#{epoch(t)}\n"
        out += cmd + "\n"
        lines.append({"index": i, "command": cmd, "time": iso(ts(t)) if t else None})
    return out.encode(), lines


def render_zsh(entries) -> tuple[bytes, list[dict]]:
    out, lines = "", []
    for i, (t, elapsed, cmd) in enumerate(entries):
        out += f": {epoch(t)}:{elapsed};{cmd}\n"
        lines.append({"index": i, "command": cmd, "time": iso(ts(t)), "elapsed": elapsed})
    return out.encode(), lines


def syslog_lines(events) -> bytes:
    """events: sorted [(time, text)].  Debian 12 rsyslog default format:
    RFC 3339 with microseconds (deterministic, increasing within a second)."""
    out, seq, prev = [], 0, None
    for t, text in events:
        seq = seq + 1 if t == prev else 0
        prev = t
        us = 40000 + seq * 110000 + int.from_bytes(_h("us", t, text)[:4], "big") % 90000
        out.append(ts(t).strftime("%Y-%m-%dT%H:%M:%S.") + f"{us:06d}+00:00 {HOST} {text}\n")
    return "".join(out).encode()


def render_mail_log() -> bytes:
    events = []
    for key, m in MSG.items():
        d = m["delivered"]
        qid = queue_id(key, "local")
        rcpt = f"{m['owner']}@{MAIL_DOMAIN}"
        relay_host, relay_ip = INT_RELAY if "internal" in m else EXT_RELAY
        pid = 2000 + _h("pid", key)[0] * 3
        _, meta = render_message(key)
        events += [
            (d, 0, f"postfix/smtpd[{pid}]: {qid}: client={relay_host}[{relay_ip}]"),
            (d, 1, f"postfix/cleanup[{pid + 1}]: {qid}: message-id={meta['message_id']}"),
            (d, 2, f"postfix/qmgr[812]: {qid}: from=<{m['sender']}>, size={1200 + _h('sz', key)[0] * 7}, nrcpt=1 (queue active)"),
            (d, 3, f"postfix/local[{pid + 2}]: {qid}: to=<{rcpt}>, relay=local, delay=0.08, "
                   "delays=0.03/0.01/0/0.04, dsn=2.0.0, status=sent (delivered to mailbox)"),
            (d, 4, f"postfix/qmgr[812]: {qid}: removed"),
        ]
    for d, sender, user in ROOT_LOG_ONLY:
        qid = queue_id(d, "root")
        events += [
            (d, 0, f"postfix/pickup[640]: {qid}: uid=0 from=<root>"),
            (d, 1, f"postfix/cleanup[{3000 + _h(d)[0]}]: {qid}: message-id=<{ts(d).strftime('%Y%m%d%H%M%S')}.{qid}@{FQDN}>"),
            (d, 2, f"postfix/qmgr[812]: {qid}: from=<{sender}>, size=1843, nrcpt=1 (queue active)"),
            (d, 3, f"postfix/local[{3001 + _h(d)[0]}]: {qid}: to=<{user}@{FQDN}>, orig_to=<{user}>, relay=local, "
                   "delay=0.02, delays=0.01/0/0/0.01, dsn=2.0.0, status=sent (delivered to mailbox)"),
            (d, 4, f"postfix/qmgr[812]: {qid}: removed"),
        ]
    events.sort()
    return syslog_lines([(d, msg) for d, _, msg in events])


AUTH_EVENTS = [
    ("2026-10-12T14:14:41", "sshd[4410]: Accepted publickey for bob from 10.20.4.88 port 51822 ssh2: ED25519 SHA256:Jx8mV1bq3nS0yWcLr4dQp2uTzZk6eHf9aG7iN5oXvYw"),
    ("2026-10-12T14:14:41", "sshd[4410]: pam_unix(sshd:session): session opened for user bob(uid=1001) by (uid=0)"),
    ("2026-10-12T14:14:41", "systemd-logind[402]: New session 57 of user bob."),
    ("2026-10-12T14:19:10", "sudo:      bob : TTY=pts/1 ; PWD=/tmp ; USER=root ; COMMAND=list"),
    ("2026-10-12T14:32:10", "sudo:      bob : TTY=pts/1 ; PWD=/tmp ; USER=root ; COMMAND=/usr/bin/rm /var/mail/carol"),
    ("2026-10-12T14:32:10", "sudo: pam_unix(sudo:session): session opened for user root(uid=0) by bob(uid=1001)"),
    ("2026-10-12T14:32:10", "sudo: pam_unix(sudo:session): session closed for user root"),
    ("2026-10-12T14:33:40", "sudo:      bob : TTY=pts/1 ; PWD=/tmp ; USER=root ; COMMAND=/usr/bin/truncate -s 0 /home/carol/mbox"),
    ("2026-10-12T14:33:40", "sudo: pam_unix(sudo:session): session opened for user root(uid=0) by bob(uid=1001)"),
    ("2026-10-12T14:33:40", "sudo: pam_unix(sudo:session): session closed for user root"),
    ("2026-10-12T14:40:00", "sshd[4410]: pam_unix(sshd:session): session closed for user bob"),
    ("2026-10-12T14:40:00", "systemd-logind[402]: Session 57 logged out. Waiting for processes to exit."),
]


def render_auth_log() -> bytes:
    return syslog_lines(AUTH_EVENTS)


# --------------------------------------------------------------------------
# The staged tree
# --------------------------------------------------------------------------
def build_tree():
    """Return (entries, truth).  entries: list of dicts with kind ('d','f','l'),
    path, mode, uid, gid, atime, mtime, ctime (epoch ints), data/target."""
    I = epoch(INSTALL_TIME)
    E = []

    def d(path, mode=0o755, uid=0, gid=0, mtime=None, atime=None, ctime=None):
        mt = epoch(mtime) if mtime else I
        E.append(dict(kind="d", path=path, mode=mode, uid=uid, gid=gid, mtime=mt,
                      atime=epoch(atime) if atime else mt,
                      ctime=epoch(ctime) if ctime else mt))

    def f(path, data, mode=0o644, uid=0, gid=0, mtime=None, atime=None, ctime=None):
        if isinstance(data, str):
            data = data.encode()
        mt = epoch(mtime) if mtime else I
        E.append(dict(kind="f", path=path, mode=mode, uid=uid, gid=gid, mtime=mt,
                      atime=epoch(atime) if atime else mt,
                      ctime=epoch(ctime) if ctime else mt, data=data))

    def l(path, target, mtime=None):
        mt = epoch(mtime) if mtime else I
        E.append(dict(kind="l", path=path, mode=0o777, uid=0, gid=0, mtime=mt,
                      atime=mt, ctime=mt, target=target))

    truth = {"mailboxes": [], "histories": []}

    # / and the merged-/usr skeleton of a Debian 12 host
    d("/", mtime=INSTALL_TIME)
    for p in ("/usr", "/usr/bin", "/usr/lib", "/usr/sbin", "/usr/share",
              "/boot", "/dev", "/proc", "/run", "/srv", "/opt", "/mnt", "/media", "/sys"):
        d(p)
    l("/bin", "usr/bin")
    l("/lib", "usr/lib")
    l("/sbin", "usr/sbin")
    d("/etc")
    f("/etc/hostname", f"{HOST}\n")
    f("/etc/mailname", f"{MAIL_DOMAIN}\n")
    f("/etc/hosts", f"127.0.0.1\tlocalhost\n10.20.0.30\t{FQDN}\t{HOST}\n\n"
      "::1\t\tlocalhost ip6-localhost ip6-loopback\n")
    f("/etc/timezone", "Etc/UTC\n")
    l("/etc/localtime", "/usr/share/zoneinfo/Etc/UTC")
    f("/etc/debian_version", "12.7\n")
    f("/etc/os-release", 'PRETTY_NAME="Debian GNU/Linux 12 (bookworm)"\n'
      'NAME="Debian GNU/Linux"\nVERSION_ID="12"\nVERSION="12 (bookworm)"\n'
      'VERSION_CODENAME=bookworm\nID=debian\nHOME_URL="https://www.debian.org/"\n'
      'SUPPORT_URL="https://www.debian.org/support"\n'
      'BUG_REPORT_URL="https://bugs.debian.org/"\n')
    f("/etc/passwd", PASSWD)
    f("/etc/group", GROUP)
    f("/etc/shells", "# /etc/shells: valid login shells\n/bin/sh\n/usr/bin/sh\n"
      "/bin/bash\n/usr/bin/bash\n/bin/zsh\n/usr/bin/zsh\n")
    f("/etc/fstab", "# <file system> <mount point> <type> <options> <dump> <pass>\n"
      "LABEL=mailhost-root /               ext4    errors=remount-ro 0       1\n")
    d("/etc/postfix")
    f("/etc/postfix/main.cf",
      f"myhostname = {FQDN}\nmydomain = {MAIL_DOMAIN}\nmyorigin = /etc/mailname\n"
      "mydestination = $myhostname, $mydomain, localhost\n"
      "relayhost =\nmynetworks = 127.0.0.0/8 10.20.0.0/16\n"
      "home_mailbox =\nmail_spool_directory = /var/mail\n"
      "mailbox_size_limit = 0\nrecipient_delimiter = +\ninet_interfaces = all\n"
      "compatibility_level = 3.6\n")
    f("/etc/aliases", "postmaster: root\n")
    d("/etc/sudoers.d")
    f("/etc/sudoers.d/ops", "bob ALL=(ALL:ALL) ALL\n", mode=0o440)

    # /root
    root_hist, root_lines = render_bash(ROOT_BASH)
    d("/root", mode=0o700, mtime="2026-10-09T08:00:00")
    f("/root/.bashrc", "# ~/.bashrc: executed by bash(1) for non-login shells.\n"
      "export LS_OPTIONS='--color=auto'\nalias ls='ls $LS_OPTIONS'\n")
    f("/root/.profile", "if [ \"$BASH\" ]; then\n  if [ -f ~/.bashrc ]; then\n"
      "    . ~/.bashrc\n  fi\nfi\nmesg n 2> /dev/null || true\n")
    f("/root/.bash_history", root_hist, mode=0o600, mtime="2026-10-09T08:00:00")
    truth["histories"].append(dict(path="/root/.bash_history", user="root", shell="bash",
                                   _data=root_hist, lines=root_lines))

    # /home
    d("/home")
    # alice
    A, B, C = UID["alice"], UID["bob"], UID["carol"]
    d("/home/alice", mode=0o750, uid=A, gid=A, mtime="2026-10-11T18:09:47")
    f("/home/alice/.zshrc", "HISTFILE=~/.zsh_history\nHISTSIZE=10000\nSAVEHIST=10000\n"
      "setopt EXTENDED_HISTORY INC_APPEND_HISTORY\nbindkey -e\n", uid=A, gid=A,
      mtime="2026-09-15T09:02:11")
    f("/home/alice/.mailrc", "set hold\nset ask\n", uid=A, gid=A, mtime="2026-09-15T09:04:30")
    zh, zlines = render_zsh(ALICE_ZSH)
    f("/home/alice/.zsh_history", zh, mode=0o600, uid=A, gid=A,
      mtime=ALICE_ZSH[-1][0], atime="2026-10-12T08:30:59")
    truth["histories"].append(dict(path="/home/alice/.zsh_history", user="alice",
                                   shell="zsh", _data=zh, lines=zlines))
    old, old_meta = render_mbox(["alice-old-1", "alice-old-2"])
    f("/home/alice/mbox", old, mode=0o600, uid=A, gid=A, mtime="2026-10-02T17:31:09")
    truth["mailboxes"].append(dict(path="/home/alice/mbox", user="alice", kind="mbox",
                                   deleted=False, _data=old, messages=old_meta))
    d("/home/alice/notes", uid=A, gid=A, mtime="2026-10-12T08:37:20")
    f("/home/alice/notes/todo.txt", "- send Q4 forecast to Dana\n- pay INV-20418\n"
      "- offsite: confirm vegetarian meal\n", uid=A, gid=A, mtime="2026-10-12T08:37:20")
    f("/home/alice/q4-budget-2026-10-11.tgz",
      hashlib.sha256(b"q4-budget").digest() * 64, uid=A, gid=A,
      mtime="2026-10-11T18:09:47")
    # bob
    d("/home/bob", mode=0o750, uid=B, gid=B, mtime="2026-09-15T09:10:00")
    f("/home/bob/.bashrc", "# ~/.bashrc\nHISTCONTROL=ignoreboth\nshopt -s histappend\n"
      "HISTSIZE=1000\nHISTFILESIZE=2000\nexport HISTTIMEFORMAT='%F %T '\n",
      uid=B, gid=B, mtime="2026-09-15T09:10:00")
    f("/home/bob/.profile", "if [ -n \"$BASH_VERSION\" ] && [ -f \"$HOME/.bashrc\" ]; then\n"
      "    . \"$HOME/.bashrc\"\nfi\n", uid=B, gid=B, mtime="2026-09-15T09:10:00")
    bh, blines = render_bash(BOB_BASH)
    f("/home/bob/.bash_history", bh, mode=0o600, uid=B, gid=B, mtime=BOB_BASH[-1][0],
      atime="2026-10-12T14:14:41")
    truth["histories"].append(dict(path="/home/bob/.bash_history", user="bob",
                                   shell="bash", _data=bh, lines=blines))
    # carol
    d("/home/carol", mode=0o750, uid=C, gid=C, mtime="2026-09-15T09:12:00")
    f("/home/carol/.bashrc", "# ~/.bashrc\nHISTCONTROL=ignoreboth\nshopt -s histappend\n"
      "export HISTTIMEFORMAT='%F %T '\n", uid=C, gid=C, mtime="2026-09-15T09:12:00")
    ch, clines = render_bash(CAROL_BASH)
    f("/home/carol/.bash_history", ch, mode=0o600, uid=C, gid=C, mtime=CAROL_BASH[-1][0])
    truth["histories"].append(dict(path="/home/carol/.bash_history", user="carol",
                                   shell="bash", _data=ch, lines=clines))
    # emptied by bob's "sudo truncate -s 0" (its blocks are freed; no content survives)
    f("/home/carol/mbox", b"", mode=0o600, uid=C, gid=C, mtime=TRUNCATE_TIME,
      atime="2026-10-07T09:14:22")
    truth["mailboxes"].append(dict(path="/home/carol/mbox", user="carol", kind="mbox",
                                   deleted=False, _data=b"", messages=[]))

    # /tmp
    d("/tmp", mode=0o1777, mtime="2026-10-11T18:07:30")  # alice: rm /tmp/mail.log

    # /var
    d("/var")
    d("/var/log", mtime="2026-09-14T10:22:00")
    ml = render_mail_log()
    last_mail = max(m["delivered"] for m in MSG.values())
    f("/var/log/mail.log", ml, mode=0o640, gid=4, mtime=last_mail)
    f("/var/log/auth.log", render_auth_log(), mode=0o640, gid=4, mtime=AUTH_EVENTS[-1][0])
    d("/var/spool")
    d("/var/spool/postfix", mode=0o755)
    l("/var/spool/mail", "../mail")
    # /var/mail: its mtime/ctime are set to the deletion time after the rm
    d("/var/mail", mode=0o2775, gid=GID_MAIL, mtime="2026-10-09T07:58:12")
    spools = {
        "alice": dict(keys=["alice-1", "alice-2", "alice-3", "alice-4", "alice-5"],
                      atime="2026-10-11T18:04:12"),
        "bob": dict(keys=["bob-1", "bob-2", "bob-3", "bob-4"], atime="2026-10-12T13:11:30"),
        "carol": dict(keys=["carol-1", "carol-2", "carol-3"], atime="2026-10-12T14:25:31"),
    }
    for user in ("alice", "bob", "carol"):
        s = spools[user]
        data, metas = render_mbox(s["keys"])
        newest = max(MSG[k]["delivered"] for k in s["keys"])
        f(f"/var/mail/{user}", data, mode=0o660, uid=UID[user], gid=GID_MAIL,
          mtime=newest, atime=s["atime"])
        truth["mailboxes"].append(dict(path=f"/var/mail/{user}", user=user, kind="spool",
                                       deleted=(f"/var/mail/{user}" == DELETED_PATH),
                                       _data=data, messages=metas))
    # cleared by root with "cp /dev/null /var/mail/root"
    f("/var/mail/root", b"", mode=0o600, uid=0, gid=GID_MAIL, mtime="2026-10-09T07:58:12",
      atime="2026-10-09T07:57:40")
    truth["mailboxes"].append(dict(path="/var/mail/root", user="root", kind="spool",
                                   deleted=False, _data=b"", messages=[]))

    # sanity: parents precede children, unique paths
    seen = set()
    for e in E:
        parent = os.path.dirname(e["path"]) if e["path"] != "/" else None
        assert e["path"] not in seen, e["path"]
        assert parent is None or parent in seen, e["path"]
        seen.add(e["path"])
    return E, truth


def entry_by_path(E):
    return {e["path"]: e for e in E}


# --------------------------------------------------------------------------
# stage
# --------------------------------------------------------------------------
def cmd_stage(staging: str, work: str) -> None:
    E, truth = build_tree()
    os.makedirs(staging)
    os.makedirs(work, exist_ok=True)
    for e in E:
        p = staging + e["path"] if e["path"] != "/" else staging
        if e["kind"] == "d":
            os.makedirs(p, exist_ok=True)
        elif e["kind"] == "f":
            with open(p, "wb") as fh:
                fh.write(e["data"])
        else:
            os.symlink(e["target"], p)
    # manifest: applied by the shell script with chmod + touch -d
    with open(os.path.join(work, "manifest.tsv"), "w") as fh:
        for e in E:
            fh.write("\t".join([e["kind"], e["path"], f"{e['mode']:04o}", str(e["uid"]),
                                str(e["gid"]), str(e["atime"]), str(e["mtime"]),
                                str(e["ctime"])]) + "\n")
    # debugfs: owner, group and ctime (mke2fs -d copies st_ctime = "now" and the
    # builder's uid/gid); crtime stays at E2FSPROGS_FAKE_TIME (install time)
    with open(os.path.join(work, "debugfs-meta.cmd"), "w") as fh:
        for e in E:
            p = e["path"]
            fh.write(f"sif {p} uid {e['uid']}\n")
            fh.write(f"sif {p} gid {e['gid']}\n")
            fh.write(f"sif {p} mtime @{e['mtime']}\n")
            fh.write(f"sif {p} atime @{e['atime']}\n")
            fh.write(f"sif {p} ctime @{e['ctime']}\n")
            for fld in ("ctime_extra", "mtime_extra", "atime_extra"):
                fh.write(f"sif {p} {fld} 0\n")
    dele = {"path": DELETED_PATH, "dtime": epoch(DELETE_TIME),
            "parent": os.path.dirname(DELETED_PATH),
            "sb_mtime": epoch(FS_LAST_MOUNT), "sb_wtime": epoch(FS_LAST_WRITE)}
    with open(os.path.join(work, "delete.json"), "w") as fh:
        json.dump(dele, fh)
    # truth without inode numbers; the data itself is referenced by path
    with open(os.path.join(work, "truth.json"), "w") as fh:
        json.dump(make_truth(E, truth, inodes=None), fh, indent=2, ensure_ascii=False)
        fh.write("\n")


def make_truth(E, truth, inodes):
    by = entry_by_path(E)
    ino = (lambda p: inodes.get(p)) if inodes else (lambda p: None)

    def times(p):
        e = by[p]
        return dict(mtime=iso(e["mtime"]), atime=iso(e["atime"]), ctime=iso(e["ctime"]))

    out = {
        "host": HOST,
        "fqdn": FQDN,
        "image": IMAGE_NAME,
        "partition_offset_bytes": PARTITION_OFFSET,
        "partition_start_sector": PART_START_SECTOR,
        "filesystem": "ext4",
        "filesystem_label": "mailhost-root",
        "filesystem_created": iso(epoch(INSTALL_TIME)),
        "filesystem_last_mount": iso(epoch(FS_LAST_MOUNT)),
        "filesystem_last_write": iso(epoch(FS_LAST_WRITE)),
        "timezone": "UTC",
        "users": [dict(name=n, uid=u, gid=g, home=h, shell=s) for (n, u, g, _, h, s) in USERS],
        "mailboxes": [],
        "histories": [],
        "clearing_commands": [],
        "not_flagged": NOT_FLAGGED,
        "deleted_files": [],
        "empty_files": [],
    }
    truth["mailboxes"].sort(key=lambda x: (x["kind"] != "spool", x["path"]))
    truth["histories"].sort(key=lambda x: x["path"])
    for mb in truth["mailboxes"]:
        data = mb["_data"]
        e = by[mb["path"]]
        item = dict(path=mb["path"], user=mb["user"], kind=mb["kind"], deleted=mb["deleted"],
                    inode=ino(mb["path"]), size=len(data),
                    sha256=hashlib.sha256(data).hexdigest(), **times(mb["path"]),
                    uid=e["uid"], gid=e["gid"], mode=f"{e['mode']:04o}",
                    message_count=len(mb["messages"]), messages=mb["messages"])
        if mb["deleted"]:
            item["ctime"] = iso(epoch(DELETE_TIME))
            item["dtime"] = iso(epoch(DELETE_TIME))
        out["mailboxes"].append(item)
        if len(data) == 0:
            out["empty_files"].append(mb["path"])
    for h in truth["histories"]:
        data = h["_data"]
        e = by[h["path"]]
        out["histories"].append(dict(
            path=h["path"], user=h["user"], shell=h["shell"], inode=ino(h["path"]),
            size=len(data), sha256=hashlib.sha256(data).hexdigest(), **times(h["path"]),
            timestamped=any(x["time"] for x in h["lines"]),
            lines=h["lines"]))
        for x in h["lines"]:
            rule = CLEARING.get((h["path"], x["command"]))
            if rule:
                out["clearing_commands"].append(dict(
                    path=h["path"], user=h["user"], index=x["index"],
                    command=x["command"], time=x["time"], rule=rule))
    assert len(out["clearing_commands"]) == len(CLEARING), "CLEARING entry not found"
    all_cmds = {x["command"] for h in truth["histories"] for x in h["lines"]}
    for c in NOT_FLAGGED:
        assert c in all_cmds, c
    for mb in out["mailboxes"]:
        if mb["deleted"]:
            out["deleted_files"].append(dict(
                path=mb["path"], inode=mb["inode"], size=mb["size"], sha256=mb["sha256"],
                mtime=mb["mtime"], atime=mb["atime"], ctime=mb["ctime"], dtime=mb["dtime"],
                uid=mb["uid"], gid=mb["gid"], messages=mb["message_count"],
                parent=os.path.dirname(mb["path"]),
                parent_inode=ino(os.path.dirname(mb["path"])),
                parent_mtime=iso(epoch(DELETE_TIME))))
    out["symlinks"] = [dict(path=e["path"], target=e["target"], inode=ino(e["path"]))
                       for e in E if e["kind"] == "l"]
    out["notes"] = [
        "All times are UTC, ISO 8601 with +00:00.",
        "messages[].offset/size: byte offset of the From_ line and length up to the next From_ "
        "line (the blank separator line belongs to the preceding message); sizes sum to the file size.",
        "messages[].first_received is the date of the topmost Received header (local delivery "
        "on mailhost.corp.example, equal to envelope_time); received lists all Received dates top-down.",
        "history command text is exactly as stored in the file after the #epoch / ': epoch:elapsed;' "
        "prefix; a zsh multi-line entry keeps zsh's on-disk form (each embedded newline preceded by "
        "the extra backslash zsh writes), entries joined with '\\n'.",
        "crtime of every file is the file-system creation time (E2FSPROGS_FAKE_TIME).",
    ]
    return out


# --------------------------------------------------------------------------
# finalize
# --------------------------------------------------------------------------
def run(cmd, **kw) -> str:
    return subprocess.run(cmd, check=True, capture_output=True, **kw).stdout.decode("utf-8", "replace")


def debugfs_stat_all(fs_image: str, paths: list[str]) -> dict:
    with tempfile.NamedTemporaryFile("w", suffix=".cmd", delete=False) as fh:
        for p in paths:
            fh.write(f"stat {p}\n")
        name = fh.name
    try:
        out = run(["debugfs", "-f", name, fs_image])
    finally:
        os.unlink(name)
    res = {}
    blocks = re.split(r"^debugfs: stat ", out, flags=re.M)[1:]
    for blk in blocks:
        path = blk.split("\n", 1)[0].strip()
        st = {}
        m = re.search(r"^Inode: (\d+)\s+Type: (\S+)\s+Mode:\s+(\d+)", blk, re.M)
        st["inode"], st["type"], st["mode"] = int(m.group(1)), m.group(2), m.group(3)
        m = re.search(r"User:\s+(\d+)\s+Group:\s+(\d+).*?Size: (\d+)", blk)
        st["uid"], st["gid"], st["size"] = int(m.group(1)), int(m.group(2)), int(m.group(3))
        for fld in ("ctime", "atime", "mtime", "crtime", "dtime"):
            m = re.search(rf"^\s*{fld}: 0x([0-9a-f]+):\(?([0-9a-f]+)", blk, re.M)
            if m:
                st[fld] = int(m.group(1), 16)
                st[fld + "_extra"] = int(m.group(2), 16)
        m = re.search(r"Links: (\d+)", blk)
        st["links"] = int(m.group(1))
        res[path] = st
    return res


def cmd_finalize(work: str, fs_image: str, disk_image: str, out_json: str) -> None:
    E, truth = build_tree()
    by = entry_by_path(E)
    dele = json.load(open(os.path.join(work, "delete.json")))
    live = [e["path"] for e in E if e["path"] != dele["path"]]
    st = debugfs_stat_all(fs_image, live)
    problems = []
    inodes = {}
    for p in live:
        e, s = by[p], st.get(p)
        if s is None:
            problems.append(f"{p}: not found by debugfs")
            continue
        inodes[p] = s["inode"]
        exp = dict(uid=e["uid"], gid=e["gid"], mtime=e["mtime"], atime=e["atime"])
        exp["ctime"] = dele["dtime"] if p == dele["parent"] else e["ctime"]
        if p == dele["parent"]:
            exp["mtime"] = dele["dtime"]
        for k, v in exp.items():
            if s[k] != v:
                problems.append(f"{p}: {k} {s[k]} != {v}")
        if int(s["mode"], 8) & 0o7777 != e["mode"]:
            problems.append(f"{p}: mode {s['mode']} != {e['mode']:o}")
        if e["kind"] == "f" and s["size"] != len(e["data"]):
            problems.append(f"{p}: size {s['size']} != {len(e['data'])}")
    # the deleted inode: name in the parent's slack, content intact
    # (the short listing: "ls -d -l" prints 0 instead of a deleted entry's inode)
    ls = run(["debugfs", "-R", f"ls -d {dele['parent']}", fs_image])
    name = os.path.basename(dele["path"])
    m = re.search(rf"<(\d+)>\s+\(\d+\)\s+{re.escape(name)}(?:\s|$)", ls)
    if not m:
        raise SystemExit(f"deleted entry {dele['path']} not visible in debugfs ls -d:\n{ls}")
    dino = int(m.group(1))
    inodes[dele["path"]] = dino
    dst = debugfs_stat_all(fs_image, [f"<{dino}>"])[f"<{dino}>"]
    orig = by[dele["path"]]
    for k, v in dict(dtime=dele["dtime"], ctime=dele["dtime"], mtime=orig["mtime"],
                     atime=orig["atime"], links=0, size=len(orig["data"])).items():
        if dst.get(k) != v:
            problems.append(f"deleted <{dino}>: {k} {dst.get(k)} != {v}")
    with tempfile.TemporaryDirectory() as td:
        rec = os.path.join(td, "rec")
        run(["debugfs", "-R", f"dump <{dino}> {rec}", fs_image])
        recovered = open(rec, "rb").read()
    if recovered != orig["data"]:
        problems.append(f"debugfs dump <{dino}> differs from the original spool")
    # mailbox.mbox message counts
    for mb in truth["mailboxes"]:
        with tempfile.TemporaryDirectory() as td:
            p = os.path.join(td, "mbox")
            with open(p, "wb") as fh:
                fh.write(recovered if mb["path"] == dele["path"] else mb["_data"])
            box = mailbox.mbox(p, create=False)
            n = len(box)
            subjects = [decode_header(str(msg["Subject"])) for msg in box]
            box.close()
        if n != len(mb["messages"]):
            problems.append(f"{mb['path']}: mailbox.mbox counts {n} != {len(mb['messages'])}")
        if subjects != [x["subject"] for x in mb["messages"]]:
            problems.append(f"{mb['path']}: subjects differ")
        if sum(x["size"] for x in mb["messages"]) != len(mb["_data"]):
            problems.append(f"{mb['path']}: message sizes do not sum to file size")
    # The Sleuth Kit, if installed
    tsk = {}
    if shutil.which("fls") and shutil.which("icat"):
        off = str(PART_START_SECTOR)
        fls = run(["fls", "-o", off, "-r", "-p", disk_image])
        for line in fls.splitlines():
            mm = re.match(r"^(\S+) (\* )?(\d+)(?:\(realloc\))?:\t(.*)$", line)
            if mm:
                tsk["/" + mm.group(4)] = (int(mm.group(3)), bool(mm.group(2)))
        for p in live:
            if p == "/":
                continue
            if p not in tsk:
                problems.append(f"TSK fls: {p} not listed")
            elif tsk[p] != (inodes[p], False):
                problems.append(f"TSK fls: {p} -> {tsk[p]} expected ({inodes[p]}, live)")
        if tsk.get(dele["path"]) != (dino, True):
            problems.append(f"TSK fls: deleted {dele['path']} -> {tsk.get(dele['path'])}")
        icat = subprocess.run(["icat", "-o", off, disk_image, str(dino)], check=True,
                              capture_output=True).stdout
        if icat != orig["data"]:
            problems.append("TSK icat of the deleted inode differs from the original spool")
        print(f"TSK: fls listed {len(tsk)} names; icat <{dino}> "
              f"{'matches' if icat == orig['data'] else 'DIFFERS'}", file=sys.stderr)
    else:
        print("TSK (fls/icat) not installed: skipped the TSK cross-check", file=sys.stderr)
    if problems:
        raise SystemExit("verification failed:\n  " + "\n  ".join(problems))
    result = make_truth(E, truth, inodes)
    with open(out_json, "w") as fh:
        json.dump(result, fh, indent=2, ensure_ascii=False)
        fh.write("\n")
    print(f"deleted {dele['path']} = inode {dino}; wrote {out_json}", file=sys.stderr)


def main(argv):
    if len(argv) == 3 and argv[0] == "stage":
        cmd_stage(argv[1], argv[2])
    elif len(argv) == 5 and argv[0] == "finalize":
        cmd_finalize(*argv[1:])
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main(sys.argv[1:])
