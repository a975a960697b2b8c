"""Generated benchmark inputs: mbox spools, a bash history, records.jsonl files, ext4 and NTFS images.

Everything is built from a seeded :class:`random.Random`, so the same scale gives the same bytes
(and the same message, line and row counts) on every run. The mbox comes in two profiles: short
plain-text messages (:func:`make_mbox`) and the size mix of real mail (:func:`make_mbox_realistic`).
Inputs live in a temporary directory that ``run.py`` removes at the end.
"""

from __future__ import annotations

import base64
import binascii
import html
import math
import os
import random
import shutil
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

_WORDS = ("mailbox report quarterly invoice meeting agenda server backup password reset review "
          "project budget draft contract delivery schedule customer support ticket update notes "
          "attached please find regards thanks tomorrow morning urgent export archive policy").split()
_NAMES = ("Alice Martin", "Bob Keller", "Carol Nguyen", "Dan O'Brien", "Eve Schmidt", "Frank Rossi",
          "Grace Kim", "Heidi Novak", "Ivan Petrov", "Judy Alvarez")
_DAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
_EPOCH = 1_767_225_600  # 2026-01-01T00:00:00Z


def _sentence(rng: random.Random, low: int, high: int) -> str:
    return " ".join(rng.choices(_WORDS, k=rng.randint(low, high)))


def _rfc2822(epoch: int) -> str:
    import email.utils

    return email.utils.formatdate(epoch, usegmt=False)


def _asctime(epoch: int) -> str:
    import time

    t = time.gmtime(epoch)
    return f"{_DAYS[t.tm_wday]} {_MONTHS[t.tm_mon - 1]} {t.tm_mday:2d} {t.tm_hour:02d}:{t.tm_min:02d}:" \
           f"{t.tm_sec:02d} {t.tm_year}"


@dataclass
class MboxInput:
    path: Path
    size: int
    messages: int


def _message_head(rng: random.Random, epoch: int) -> tuple[str, str]:
    """A message's ``From_`` line and headers up to Subject, and the sender's domain.

    Envelope, Return-Path, X-Original-To, Delivered-To, two or three folded ``Received:``, Date,
    From with a display name, To, sometimes Cc, and a Subject (one in ten RFC 2047 encoded).
    """
    sender = rng.choice(_NAMES)
    local = sender.split()[0].lower()
    domain = rng.choice(("example.org", "partner.example", "mail.example.net"))
    subject = _sentence(rng, 2, 8)
    if rng.random() < 0.1:
        subject = "=?UTF-8?B?" + base64.b64encode(("Réunion " + subject).encode()).decode() + "?="
    hops = "".join(
        f"Received: from relay{h}.{domain} (relay{h}.{domain} [192.0.2.{rng.randint(1, 254)}])\n"
        f"\tby mx.corp.example (Postfix) with ESMTPS id {rng.getrandbits(40):010X}\n"
        f"\tfor <alice@corp.example>; {_rfc2822(epoch - h)}\n"
        for h in range(rng.randint(2, 3)))
    cc = f"Cc: {rng.choice(_NAMES)} <team@corp.example>\n" if rng.random() < 0.3 else ""
    head = (f"From {local}@{domain} {_asctime(epoch)}\n"
            f"Return-Path: <{local}@{domain}>\nX-Original-To: alice@corp.example\n"
            f"Delivered-To: alice@corp.example\n{hops}"
            f"Date: {_rfc2822(epoch - 5)}\nFrom: {sender} <{local}@{domain}>\n"
            f"To: Alice Martin <alice@corp.example>\n{cc}Subject: {subject}\n")
    return head, domain


def _body_pool(rng: random.Random) -> list[str]:
    """Body lines to draw from: plain sentences and a few ``>From ``-quoted ones (mboxrd)."""
    pool = [_sentence(rng, 4, 14) for _ in range(500)]
    return pool + [">From the archive: " + _sentence(rng, 2, 6) for _ in range(5)]


def _write_spool(path: Path, target_bytes: int, seed: int,
                 body_of: Callable[[random.Random, list[str]], tuple[str, bytes]]) -> MboxInput:
    """Messages until ``target_bytes``: headers of :func:`_message_head`, Message-ID, MIME
    headers, X-UID and Status, then the body ``body_of(rng, lines)`` makes of 3-120 text lines
    (its Content-Type value and bytes). One loop for both profiles, so that their headers and
    their use of the seeded RNG stay the same."""
    rng = random.Random(seed)
    body_pool = _body_pool(rng)
    size = messages = 0
    epoch = _EPOCH
    with path.open("wb", buffering=1 << 20) as out:
        while size < target_bytes:
            epoch += rng.randint(1, 600)
            head, domain = _message_head(rng, epoch)
            content_type, body = body_of(rng, rng.choices(body_pool, k=rng.randint(3, 120)))
            encoding = "" if content_type.startswith("multipart/") else "Content-Transfer-Encoding: 8bit\n"
            message = (f"{head}Message-ID: <{rng.getrandbits(64):016x}.{messages}@{domain}>\n"
                       f"MIME-Version: 1.0\nContent-Type: {content_type}\n{encoding}"
                       f"X-UID: {messages + 1}\nStatus: RO\n\n").encode() + body + b"\n"
            out.write(message)
            size += len(message)
            messages += 1
    return MboxInput(path, size, messages)


def _plain_body(rng: random.Random, lines: list[str]) -> tuple[str, bytes]:
    """(Content-Type value, body) of a text/plain message of ``lines``."""
    return "text/plain; charset=utf-8", "\n".join(lines).encode() + b"\n"


def make_mbox(path: Path, target_bytes: int, seed: int = 1) -> MboxInput:
    """An mbox spool of short plain-text messages (~5 KB on average) until ``target_bytes``.

    Each message has the headers of :func:`_message_head`, Message-ID, MIME headers, X-UID and
    Status, and a text/plain body of 3-120 lines; body lines that start with ``From `` are quoted
    as ``>From `` (mboxrd), so every reader sees the same messages.
    """
    return _write_spool(path, target_bytes, seed, _plain_body)


#: Shares of the realistic profile's multipart kinds (the rest is plain text).
REALISTIC_ATTACHMENT = 0.13
REALISTIC_ALTERNATIVE = 0.36
#: Raw size of one attachment, log-uniform between these bounds (before base64).
ATTACHMENT_BYTES = (4 << 10, 400 << 10)
_ATTACHMENT_TYPES = (("application/pdf", "pdf"), ("image/jpeg", "jpg"), ("image/png", "png"),
                     ("application/vnd.openxmlformats-officedocument.wordprocessingml.document", "docx"),
                     ("application/vnd.openxmlformats-officedocument.spreadsheetml.sheet", "xlsx"),
                     ("application/zip", "zip"))
_HTML_HEAD = (
    '<html xmlns:o="urn:schemas-microsoft-com:office:office"><head>\n'
    '<meta http-equiv="Content-Type" content="text/html; charset=utf-8">\n'
    '<meta name="Generator" content="Microsoft Word 15 (filtered medium)">\n<style><!--\n'
    + "".join(f"{selector}\n\t{{margin:0cm;\n\tfont-size:11.0pt;\n\tfont-family:\"Calibri\",sans-serif;\n"
              f"\tmso-fareast-language:EN-US;}}\n"
              for selector in ("p.MsoNormal, li.MsoNormal, div.MsoNormal", "a:link, span.MsoHyperlink",
                               "span.EmailStyle17", ".MsoChpDefault", "div.WordSection1"))
    + "@page WordSection1\n\t{size:612.0pt 792.0pt;\n\tmargin:70.85pt 70.85pt 2.0cm 70.85pt;}\n"
    '--></style></head>\n<body lang="EN-US" link="#0563C1" vlink="#954F72">\n<div class="WordSection1">\n')
_HTML_TAIL = ('<p class="MsoNormal"><span style="color:#1F497D">Kind regards,</span></p>\n'
              '<table border="0" cellspacing="0" cellpadding="0"><tr><td style="padding:0cm 5.4pt">\n'
              '<p class="MsoNormal"><b><span style="font-size:9.0pt;color:#1F497D">Corp Example Ltd.'
              '</span></b><br><span style="font-size:8.0pt;color:gray">This e-mail and any '
              'attachments are confidential and intended solely for the addressee.</span></p>\n'
              '</td></tr></table></div></body></html>\n')


def _html(lines: list[str]) -> bytes:
    """A text body's HTML part as an Outlook-like client writes it, quoted-printable.

    A ``From `` that a soft line break puts at the start of a line is written ``=46rom `` (as
    quoted-printable encoders do for mbox), so no body line starts with ``From ``.
    """
    paragraphs = "".join(f'<p class="MsoNormal"><span style="color:#1F497D">{html.escape(line)}'
                         f'<o:p></o:p></span></p>\n' for line in lines)
    encoded = binascii.b2a_qp((_HTML_HEAD + paragraphs + _HTML_TAIL).encode())
    return encoded.replace(b"\nFrom ", b"\n=46rom ")


def _alternative(rng: random.Random, text: str, lines: list[str]) -> tuple[str, bytes]:
    """(Content-Type value, body) of a multipart/alternative part: the text and its HTML."""
    boundary = f"----=_NextPart_{rng.getrandbits(64):016X}"
    return f'multipart/alternative;\n\tboundary="{boundary}"', (
        f"--{boundary}\nContent-Type: text/plain; charset=utf-8\nContent-Transfer-Encoding: 8bit\n\n"
        f"{text}\n\n--{boundary}\nContent-Type: text/html; charset=utf-8\n"
        f"Content-Transfer-Encoding: quoted-printable\n\n").encode() + _html(lines) \
        + f"\n--{boundary}--\n".encode()


def _attachment(rng: random.Random, boundary: str, index: int) -> bytes:
    """One base64 attachment part of random bytes (real attachments are compressed formats)."""
    low, high = ATTACHMENT_BYTES
    size = int(math.exp(rng.uniform(math.log(low), math.log(high))))
    mime, extension = rng.choice(_ATTACHMENT_TYPES)
    name = f"{'_'.join(rng.choices(_WORDS, k=rng.randint(1, 3)))}_{index}.{extension}"
    return (f"--{boundary}\nContent-Type: {mime};\n\tname=\"{name}\"\n"
            f"Content-Disposition: attachment;\n\tfilename=\"{name}\"\n"
            f"Content-Transfer-Encoding: base64\n\n").encode() + base64.encodebytes(rng.randbytes(size))


def _realistic_body(rng: random.Random, lines: list[str]) -> tuple[str, bytes]:
    """(Content-Type value, body) of one message of the realistic mix (see make_mbox_realistic)."""
    roll = rng.random()
    if roll >= REALISTIC_ATTACHMENT + REALISTIC_ALTERNATIVE:
        return _plain_body(rng, lines)
    text = "\n".join(lines)
    preamble = b"This is a multi-part message in MIME format.\n\n"
    inner_type, inner = _alternative(rng, text, lines)
    if roll >= REALISTIC_ATTACHMENT:
        return inner_type, preamble + inner
    boundary = f"----=_MixedPart_{rng.getrandbits(64):016X}"
    parts = b"".join(_attachment(rng, boundary, i) for i in range(rng.choice((1, 1, 1, 2, 3))))
    return f'multipart/mixed;\n\tboundary="{boundary}"', (
        preamble + f"--{boundary}\nContent-Type: {inner_type}\n\n".encode() + inner + b"\n" + parts
        + f"--{boundary}--\n".encode())


def make_mbox_realistic(path: Path, target_bytes: int, seed: int = 6) -> MboxInput:
    """An mbox spool with the size mix of real mail (~36 KB per message on average).

    Headers as in :func:`make_mbox`, then one of three bodies: plain text (51 %, 3-120 lines,
    ~5 KB a message), multipart/alternative (36 %: that text and an Outlook-style
    quoted-printable HTML part, ~16 KB) or multipart/mixed (13 %: such an alternative part and
    one to three base64 attachments of 4-400 KiB each, log-uniform; ~210 KB). Most messages
    stay small (median ~8 KB) and a few attachments carry most of the bytes (~77 %), as in real
    mailboxes; the mean is what the issue's ``mailbox`` measurement implies (71 MB/s at ~2 k
    messages/s, ~35 KB a message).
    """
    return _write_spool(path, target_bytes, seed, _realistic_body)


_COMMANDS = (
    "ls -la /var/mail", "cd ~/projects/inbox", "git status", "git pull --rebase", "vim notes.txt",
    "grep -c '^From ' /var/mail/alice", "tail -f /var/log/mail.log", "sudo systemctl restart postfix",
    "python3 -m http.server 8000", "ssh backup@10.0.0.5", "scp report.pdf bob@fileserver:/srv/share/",
    "mail -f ~/mbox", "du -sh ~/Maildir", "find /home -name '*.mbox' -size +10M",
    "docker ps -a", "tar czf backup.tgz ~/Documents", "history | tail", "make -j2 && make test",
    "curl -s https://example.org/api/v1/status | jq .", "export MAIL=/var/mail/alice",
)


@dataclass
class HistoryInput:
    path: Path
    size: int
    lines: int
    entries: int


def make_history(path: Path, target_bytes: int, seed: int = 2) -> HistoryInput:
    """A bash history with ``#epoch`` lines (HISTTIMEFORMAT) until ``target_bytes``.

    Most commands carry a ``#epoch`` line; one in twenty has none (an undated line the parser
    must keep), one in fifty spans two physical lines inside an open quote.
    """
    rng = random.Random(seed)
    commands = [c + (f" {rng.randint(1, 9999)}" if i % 3 == 0 else "")
                for i in range(400) for c in (rng.choice(_COMMANDS),)]
    size = lines = entries = 0
    epoch = _EPOCH
    with path.open("w", encoding="utf-8", buffering=1 << 20) as out:
        while size < target_bytes:
            block: list[str] = []
            for _ in range(10_000):
                epoch += rng.randint(1, 90)
                roll = rng.random()
                if roll >= 0.05:
                    block.append(f"#{epoch}")
                if roll < 0.02:
                    block.append(f'echo "first line of {entries}')
                    block.append('second line"')
                else:
                    block.append(rng.choice(commands))
                entries += 1
            text = "\n".join(block) + "\n"
            out.write(text)
            size += len(text.encode())
            lines += len(block)
    return HistoryInput(path, size, lines, entries)


#: Every attribute name :func:`make_records` uses (what the parse stage reports to the timeline).
RECORD_ATTRIBUTES = ("command", "from", "message_id", "offset", "shell", "size", "subject", "to")


def make_records(path: Path, rows: int, seed: int = 3, files: int = 40) -> int:
    """A records.jsonl that fans out into ``rows`` timeline rows; returns the record count.

    Records come as the parse stage writes them (``Record.to_json_bytes``: orjson, sorted keys):
    one source file after another, each file's records in file order (history commands with one
    time, mbox messages with three), so the timeline has to merge many interleaved sorted runs.
    """
    import orjson

    rng = random.Random(seed)
    made = records = 0
    per_file = max(1, rows // files)
    with path.open("wb", buffering=1 << 20) as out:
        file_index = 0
        while made < rows:
            mail = file_index % 2 == 1
            source = (f"/var/mail/user{file_index}" if mail else f"/home/user{file_index}/.bash_history")
            epoch_us = (_EPOCH + rng.randint(0, 86_400 * 30)) * 1_000_000
            order = 0
            target = min(rows, made + per_file)
            lines = []
            while made < target:
                epoch_us += rng.randint(1, 600) * 1_000_000
                if mail:
                    stamps = {"Envelope Time": epoch_us, "Content Modification Time": epoch_us - 5_000_000,
                              "Received Time": epoch_us - 1_000_000}
                    record = {"data_type": "mail:mbox:message",
                              "message": f"Mail from sender{order}@example.org: {_sentence(rng, 2, 6)}",
                              "attributes": {"from": f"sender{order}@example.org",
                                             "to": "alice@corp.example", "subject": _sentence(rng, 2, 6),
                                             "message_id": f"<{order}.{file_index}@example.org>",
                                             "offset": order * 2048, "size": 2048},
                              "parser": "mbox"}
                else:
                    stamps = {"Command Run Time": epoch_us}
                    command = rng.choice(_COMMANDS)
                    record = {"data_type": "shell:bash:command", "message": command,
                              "attributes": {"command": command, "shell": "bash"}, "parser": "bash_history"}
                record.update(
                    provenance={"bundle_path": f"files/p1{source}", "source_path": source,
                                "sha256": f"{file_index:064x}", "filesystem": "p1",
                                "offset": order * 64,
                                "evidence": "image:bench.raw|RAW|TSK_PARTITION/p1|EXT/"},
                    order=order, timestamps=stamps, time_bounds={}, host="bench-host",
                    user=f"user{file_index}", recovered=False, corrupted=False,
                    tags=["T1070.008"] if rng.random() < 0.001 else [])
                lines.append(orjson.dumps(record, option=orjson.OPT_SORT_KEYS))
                if len(lines) == 1000:  # written as it goes: the bench's own memory stays flat
                    out.write(b"\n".join(lines) + b"\n")
                    lines = []
                made += len(stamps)
                order += 1
                records += 1
            if lines:
                out.write(b"\n".join(lines) + b"\n")
            file_index += 1
    return records


@dataclass
class ImageInput:
    path: Path
    size: int
    files: int
    file_bytes: int


def _populate(staging: Path, image_bytes: int, seed: int) -> tuple[list[Path], int]:
    """Random files for an image of ``image_bytes``: about 60 % of it is file data.

    Four large files (40 % of the data) and many small ones (1-256 KiB) in nested directories,
    like a home directory with a few big mail stores. Returns the files and their total size.
    """
    rng = random.Random(seed)
    budget = int(image_bytes * 0.6)
    staging.mkdir(parents=True)
    paths: list[Path] = []
    file_bytes = 0
    big = int(budget * 0.4) // 4
    for index in range(4):
        target = staging / "home" / f"user{index}" / "Mail" / f"archive{index}.mbox"
        target.parent.mkdir(parents=True, exist_ok=True)
        content = random.Random(seed * 1000 + index)  # its own stream: small-file sizes stay put
        with target.open("wb") as out:
            left = big
            while left:
                chunk = content.randbytes(min(left, 8 << 20))
                out.write(chunk)
                left -= len(chunk)
        paths.append(target)
        file_bytes += big
    while file_bytes < budget:
        size = rng.randint(1 << 10, 256 << 10)
        folder = staging / "home" / f"user{rng.randrange(8)}" / f"dir{rng.randrange(40)}"
        folder.mkdir(parents=True, exist_ok=True)
        target = folder / f"file{len(paths)}.dat"
        target.write_bytes(rng.randbytes(size))
        paths.append(target)
        file_bytes += size
    return paths, file_bytes


def make_ext4_image(path: Path, staging: Path, image_bytes: int, seed: int = 4,
                    keep_staging: bool = False) -> ImageInput:
    """A raw ext4 image (no partition table) built with ``mke2fs -d`` from random files.

    ``keep_staging`` leaves the source files for the caller to remove later: deleting
    thousands of files just before a measurement that creates thousands (the bundle) makes the
    kernel's inode allocator skip the recently freed inodes one by one on a journal-less ext4.
    """
    paths, file_bytes = _populate(staging, image_bytes, seed)
    mke2fs = shutil.which("mke2fs") or "/usr/sbin/mke2fs"
    subprocess.run([mke2fs, "-q", "-F", "-t", "ext4", "-L", "benchfs", "-d", str(staging), str(path),
                    f"{image_bytes // 1024}k"], check=True, capture_output=True)
    if not keep_staging:
        shutil.rmtree(staging)
    return ImageInput(path, path.stat().st_size, len(paths), file_bytes)


def ntfs_tools() -> tuple[str, str] | None:
    """``mkntfs`` and ``ntfscp`` (package ntfs-3g), or None when they are not installed."""
    tools = [shutil.which(t) or next((f"{d}/{t}" for d in ("/usr/sbin", "/sbin")
                                      if os.path.exists(f"{d}/{t}")), None)
             for t in ("mkntfs", "ntfscp")]
    return (tools[0], tools[1]) if all(tools) else None


def make_ntfs_image(path: Path, staging: Path, image_bytes: int, seed: int = 4,
                    keep_staging: bool = False) -> ImageInput:
    """A raw NTFS image (no partition table) made with ``mkntfs`` and filled with ``ntfscp``.

    The same files as :func:`make_ext4_image` (same seed, same sizes), copied without mounting
    anything. ``ntfscp`` cannot create directories, so they all sit in the root directory under
    names that keep their staging path (``home_user3_dir7_file42.dat``).
    """
    tools = ntfs_tools()
    if tools is None:
        raise FileNotFoundError("mkntfs/ntfscp not found (apt-get install -y ntfs-3g)")
    mkntfs, ntfscp = tools
    paths, file_bytes = _populate(staging, image_bytes, seed)
    with path.open("wb") as out:
        out.truncate(image_bytes)
    subprocess.run([mkntfs, "-F", "-q", "-Q", "-s", "512", "-c", "4096", "-L", "benchntfs", str(path)],
                   check=True, capture_output=True)
    for source in paths:
        name = "_".join(source.relative_to(staging).parts)
        subprocess.run([ntfscp, "-q", str(path), str(source), f"/{name}"], check=True, capture_output=True)
    if not keep_staging:
        shutil.rmtree(staging)
    return ImageInput(path, path.stat().st_size, len(paths), file_bytes)
