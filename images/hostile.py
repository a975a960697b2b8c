#!/usr/bin/env python3
"""Single source of truth for the booby-trapped ``hostile.qcow2`` test image (issue 9).

The image is an ext4 file system (no partition table) whose names and files are what an
adversary can leave on a suspect disk, placed exactly where the collector looks
(``/var/mail/*``, ``~/mbox``, ``~/Mail/*``, ``~/Maildir/**/cur/*``, ``~/.bash_history``).

Everything the image holds is listed in ``ENTRIES`` (plus the generated ``MAIL_FILES`` in one
directory and the ``HUGE`` file whose inode claims 1 TiB); the build script and the tests both read
this module, so the image and what the tests expect cannot drift apart.  Names are ``bytes``: an
ext4 name is any byte string of 1-255 bytes without NUL and ``/``.  ``location_str`` gives the form
the collector's manifest is expected to keep (UTF-8, undecodable bytes as surrogate escapes).

What ext4 cannot hold, and so this image does not either: a name longer than 255 bytes (the issue's
"4,000-byte names" are impossible in ext4; a *path* longer than 4,000 bytes is built instead, from
255-byte directory names), a ``/`` or NUL inside a name.

Sub-commands (called by build_hostile.sh; stdlib only):

  stage STAGING WORK
      Write the tree into STAGING (must not exist), and into WORK: ``mail-files.cmd`` (the debugfs
      script that adds the bulk of the 100,000 files: ``mke2fs -d`` links entries into a directory
      in O(n^2), debugfs into an htree directory is ~30x faster), ``meta.json`` (fixed times).
  slash FS_IMAGE OUT_CMD
      After "mknod" made the fifo named SLASH_NAME, write the debugfs commands that turn it
      into a regular file with the donor's content and drop the donor.
  slash-filetype FS_IMAGE
      Patch that directory entry's file type byte from fifo to regular file.
  check FS_IMAGE
      Read the built file system back with debugfs and check what the tests rely on.
"""

from __future__ import annotations

import itertools
import json
import os
import re
import subprocess
import sys
import tempfile

# fixed instants (UTC): file-system creation, every staged file's atime/mtime/ctime
FS_CREATED = 1790000000          # 2026-09-21 14:13:20 UTC (E2FSPROGS_FAKE_TIME)
FILE_TIME = 1791000000           # 2026-10-03 04:00:00 UTC
FILE_ATIME = 1791500000          # 2026-10-08 22:53:20 UTC

EVE_UID = 1000
MALLORY_UID = 1001
HUGE_SIZE = 1 << 40              # 1 TiB claimed by /var/mail/huge's inode (the file is 4 KiB)
MAIL_FILE_COUNT = 100_000        # regular files in /home/eve/Mail (plus MAIL_EXTRA below)
MAIL_STAGED = 2_000              # of which mke2fs -d stages the first ones, debugfs writes the rest
DEEP_LEVELS = 15                 # directory levels of 255-byte names under ~eve/Maildir
LABEL = "hostile-root"
FS_UUID = "686f7374-696c-4065-8b69-6d6167650001"
HASH_SEED = "0b7e1a52-3c4d-4e5f-8a6b-686f7374696c"


_MESSAGE_IDS = itertools.count(1)


def mbox(*messages: tuple[str, str, str, str]) -> bytes:
    """An mbox of (envelope sender, From_ date, subject, body) messages."""
    out = []
    for sender, date, subject, body in messages:
        out.append(f"From {sender} {date}\n"
                   f"From: {sender}\nTo: eve@hostile.example\nSubject: {subject}\n"
                   f"Date: {date}\nMessage-ID: <{next(_MESSAGE_IDS)}@hostile.example>\n"
                   f"\n{body}\n\n")
    return "".join(out).encode("utf-8")


def _msg(subject: str, n: int = 1) -> bytes:
    return mbox(*[("mallory@hostile.example", f"Mon Oct  5 0{i}:1{i}:00 2026",
                   f"{subject} #{i}", f"body {i} of {subject}") for i in range(1, n + 1)])


EVE_SPOOL = mbox(
    ("dana@example.org", "Mon Oct  5 09:12:44 2026", "Q4 forecast", "Eve, the numbers."),
    ("ops@example.org", "Tue Oct  6 11:00:00 2026", "Rotation", "Your on-call week."),
    ("dana@example.org", "Wed Oct  7 15:30:10 2026", "Re: Q4 forecast", ">From the call: ok."),
)
EVE_MBOX = mbox(
    ("hr@example.org", "Thu Oct  1 08:00:00 2026", "Welcome", "Welcome aboard."),
    ("it@example.org", "Fri Oct  2 08:30:00 2026", "Your laptop", "Pick it up at desk 4."),
)
BASH_HISTORY = (
    b"#1791400000\nls -la /var/mail\n"
    b"#1791400060\nprintf '\\033[2J' > /dev/tty\n"
    b"#1791400120\nrm -f /var/mail/eve\n"
    b"#1791400180\n: > ~/mbox\n"
    b"#not-an-epoch\nfind ~/Mail -type f -delete\n"
    b"echo \xff\xfe invalid utf-8 \x1b[31m red\n"
)

# kind: f (file, data), l (symlink, target), d (directory), p (fifo)
# (path bytes, kind, payload, mode, uid, gid)
ENTRIES: list[tuple[bytes, str, bytes | None, int, int, int]] = []


def _add(path: bytes, kind: str, payload: bytes | None = None, mode: int | None = None,
         uid: int = 0, gid: int = 0) -> None:
    if mode is None:
        mode = {"f": 0o600, "d": 0o755, "l": 0o777, "p": 0o600}[kind]
    ENTRIES.append((path, kind, payload, mode, uid, gid))


for d in (b"/etc", b"/root", b"/var", b"/var/spool", b"/home"):
    _add(d, "d")
_add(b"/var/mail", "d", mode=0o2775, gid=8)
_add(b"/etc/hostname", "f", b"hostile\n", 0o644)
_add(b"/etc/passwd", "f", (
    "root:x:0:0:root:/root:/bin/bash\n"
    f"eve:x:{EVE_UID}:{EVE_UID}:Eve,,,:/home/eve:/bin/bash\n"
    f"mallory:x:{MALLORY_UID}:{MALLORY_UID}:Mallory,,,:/home/m[a]llory:/bin/bash\n").encode(), 0o644)
_add(b"/etc/shadow", "f", b"root:$6$hostile$notarealhash:20000:0:99999:7:::\n", 0o640, 0, 42)
_add(b"/var/spool/mail", "l", b"../mail")

# /var/mail: one real spool, then every kind of hostile name, each a small real mbox whose
# subject is the case name (so parsed records can be traced back)
_add(b"/var/mail/eve", "f", EVE_SPOOL, 0o660, EVE_UID, 8)
# names libfsext (dfvfs' ext back-end) decodes: they go where the spools are
SPOOL_NAMES: dict[str, bytes] = {
    "dotdot-prefix": b"..foo",
    "three-dots": b"...",
    "dotdot-backslash": b"..\\..\\Windows\\System32\\evil",
    "backslash": b"back\\slash",
    "newline": b"new\nline",
    "from-line": b"From \nmallory",
    "tab-cr": b"tab\tcr\rname",
    "escape": b"ansi\x1b[31mred\x1b[0m",
    "control": b"\x01\x02\x03\x7f",
    "rtl-override": "invoice\u202etxt.exe".encode(),
    "utf8": "caf\u00e9-\U0001d52aail".encode(),
    "name-254": b"L" * 254,
    "percent": b"%2E%2E",
    "trailing-dot": b"trailing.",
    "trailing-space": b"trailing ",
    "leading-dash": b"-rf",
    "CON": b"CON",
    "nul.txt": b"nul.txt",
    "COM1": b"COM1",
    "aux.mbox": b"aux.mbox",
    "LPT9.": b"LPT9.",
    "Inbox": b"Inbox",
    "INBOX": b"INBOX",
    "inbox": b"inbox",
}
for case, name in SPOOL_NAMES.items():
    _add(b"/var/mail/" + name, "f", _msg(f"case {case}"), 0o660, EVE_UID, 8)
# names that are not UTF-8 or are 255 bytes long (ext4's maximum): kept apart in ~eve/mail/
# (%%users.homedir%%/mail/*) because libfsext 20260821 cannot name them (see images/README.md)
ENCODING_DIR = b"/home/eve/mail"
ENCODING_NAMES: dict[str, bytes] = {
    "nul-adjacent": b"\x01nul\x01adjacent\xff",
    "invalid-utf8": b"bad\xff\xfeutf8",
    "latin1": b"caf\xe9",
    "overlong-utf8": b"\xc0\xafslash",
    "surrogate-utf8": b"\xed\xa0\x80half",
    "name-255-ascii": b"L" * 255,
    "name-255-utf8": "\u00e9".encode() * 127 + b"x",
}
_add(ENCODING_DIR, "d", mode=0o700, uid=EVE_UID, gid=EVE_UID)
for case, name in ENCODING_NAMES.items():
    _add(ENCODING_DIR + b"/" + name, "f", _msg(f"case {case}"), 0o600, EVE_UID, EVE_UID)
HOSTILE_NAMES = {**{k: b"/var/mail/" + v for k, v in SPOOL_NAMES.items()},
                 **{k: ENCODING_DIR + b"/" + v for k, v in ENCODING_NAMES.items()}}
CASE_COLLIDING = [b"/var/mail/Inbox", b"/var/mail/INBOX", b"/var/mail/inbox"]

SYMLINKS = {
    b"/var/mail/shadow": b"/etc/shadow",              # out of the tree, to a secret
    b"/var/mail/up": b"../../..",                     # out of the tree, relative
    b"/var/mail/loop_a": b"loop_b",                   # a -> b -> a
    b"/var/mail/loop_b": b"loop_a",
    b"/var/mail/self": b"self",                       # a -> a
    b"/var/mail/dangling": b"/nonexistent/mbox",
    b"/home/eve/Mail/parent": b"..",                  # a directory link to its parent
    b"/home/eve/Maildir/loop": b".",                  # ** must not spin through it
}
FIFO = b"/var/mail/fifo"

_add(b"/home/eve", "d", mode=0o750, uid=EVE_UID, gid=EVE_UID)
_add(b"/home/eve/mbox", "f", EVE_MBOX, 0o600, EVE_UID, EVE_UID)
_add(b"/home/eve/.bash_history", "f", BASH_HISTORY, 0o600, EVE_UID, EVE_UID)
_add(b"/home/eve/Mail", "d", mode=0o700, uid=EVE_UID, gid=EVE_UID)
_add(b"/home/eve/Mail/Sent", "f", _msg("sent folder", 2), 0o600, EVE_UID, EVE_UID)
_add(b"/home/eve/Maildir", "d", mode=0o700, uid=EVE_UID, gid=EVE_UID)
_add(b"/home/eve/Maildir/cur", "d", mode=0o700, uid=EVE_UID, gid=EVE_UID)
_MAILDIR_MSG = _msg("maildir")
_add(b"/home/eve/Maildir/cur/1791000000.M1P1.hostile:2,S", "f",
     _MAILDIR_MSG[_MAILDIR_MSG.index(b"\n") + 1:], 0o600, EVE_UID, EVE_UID)
# a path longer than 4,000 bytes: 15 directories with 254-byte names, then cur/<254 bytes>
DEEP_DIRS = [b"/home/eve/Maildir"]
for level in range(DEEP_LEVELS):
    DEEP_DIRS.append(DEEP_DIRS[-1] + b"/" + (b"%02d" % level) + b"d" * 252)
    _add(DEEP_DIRS[-1], "d", mode=0o700, uid=EVE_UID, gid=EVE_UID)
_add(DEEP_DIRS[-1] + b"/cur", "d", mode=0o700, uid=EVE_UID, gid=EVE_UID)
DEEP_FILE = DEEP_DIRS[-1] + b"/cur/" + b"m" * 254
_DEEP_MSG = _msg("deep")
_add(DEEP_FILE, "f", _DEEP_MSG[_DEEP_MSG.index(b"\n") + 1:], 0o600, EVE_UID, EVE_UID)
# a user whose home directory name is a glob pattern (it must be taken literally)
_add(b"/home/m[a]llory", "d", mode=0o750, uid=MALLORY_UID, gid=MALLORY_UID)
_add(b"/home/m[a]llory/mbox", "f", _msg("glob-named home"), 0o600, MALLORY_UID, MALLORY_UID)
_add(b"/home/m[a]llory/.bash_history", "f", b"#1791400300\nrm -f /var/mail/mallory\n", 0o600,
     MALLORY_UID, MALLORY_UID)
_add(b"/home/mallory", "d", mode=0o750, uid=MALLORY_UID, gid=MALLORY_UID)  # what [a] would match
for link, target in SYMLINKS.items():
    _add(link, "l", target)
_add(FIFO, "p", None, 0o600, EVE_UID, 8)

# A name holding "/" cannot be made by a staging tree nor by debugfs' usual commands, but
# debugfs "mknod" links its argument verbatim: the build turns that fifo into a regular file
# with the donor's data (and drops the donor), so only the name is illegal (e2fsck: "illegal
# characters in its name").  It lives in ~eve/mail/ (collected as %%users.homedir%%/mail/*).
SLASH_DONOR = b"/home/eve/mail/slash-donor"
SLASH_NAME = b"../../../etc/cron.d/evil"
SLASH_DIR = ENCODING_DIR
SLASH_PATH = SLASH_DIR + b"/" + SLASH_NAME
_add(SLASH_DONOR, "f", _msg("slash in a name"), 0o600, EVE_UID, EVE_UID)

HUGE = b"/var/mail/huge"
HUGE_DATA = _msg("huge sparse spool")
MAIL_DIR = b"/home/eve/Mail"
MAIL_FILES = [b"%s/m%06d" % (MAIL_DIR, i) for i in range(MAIL_FILE_COUNT)]
MAIL_EXTRA = [b"/home/eve/Mail/Sent", b"/home/eve/Mail/parent"]


def location_str(path: bytes) -> str:
    """The path as inboxtrail keeps it: UTF-8, undecodable bytes as surrogate escapes."""
    return path.decode("utf-8", "surrogateescape")


def data_of(path: bytes) -> bytes | None:
    for p, kind, payload, *_ in ENTRIES:
        if p == path:
            return payload if kind == "f" else None
    if path == HUGE:
        return HUGE_DATA
    if path == SLASH_PATH:
        return data_of(SLASH_DONOR)
    return b"" if path in MAIL_FILES else None


# --------------------------------------------------------------------------
# stage
# --------------------------------------------------------------------------
def _walk_create(root: bytes, path: bytes, kind: str, payload: bytes | None, mode: int,
                 uid: int, gid: int) -> None:
    """Create one object below root with *at() calls (the deep path exceeds PATH_MAX)."""
    parts = [p for p in path.split(b"/") if p]
    fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY)
    try:
        for part in parts[:-1]:
            nfd = os.open(part, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW, dir_fd=fd)
            os.close(fd)
            fd = nfd
        name = parts[-1]
        if kind == "d":
            os.mkdir(name, 0o700, dir_fd=fd)
        elif kind == "f":
            wfd = os.open(name, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600, dir_fd=fd)
            with os.fdopen(wfd, "wb") as fh:
                fh.write(payload or b"")
        elif kind == "l":
            os.symlink(payload, name, dir_fd=fd)
        elif kind == "p":
            os.mkfifo(name, 0o600, dir_fd=fd)
        if kind != "l":
            os.chmod(name, mode, dir_fd=fd)
        os.chown(name, uid, gid, dir_fd=fd, follow_symlinks=False)
        os.utime(name, ns=(FILE_ATIME * 10**9, FILE_TIME * 10**9), dir_fd=fd, follow_symlinks=False)
    finally:
        os.close(fd)


def _set_times(root: bytes, path: bytes) -> None:
    parts = [p for p in path.split(b"/") if p]
    fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY)
    try:
        for part in parts[:-1]:
            nfd = os.open(part, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW, dir_fd=fd)
            os.close(fd)
            fd = nfd
        target = parts[-1] if parts else b"."
        os.utime(target, ns=(FILE_ATIME * 10**9, FILE_TIME * 10**9), dir_fd=fd, follow_symlinks=False)
    finally:
        os.close(fd)


def cmd_stage(staging: str, work: str) -> None:
    root = os.fsencode(staging)
    os.mkdir(root, 0o755)
    for path, kind, payload, mode, uid, gid in sorted(ENTRIES, key=lambda e: e[0].count(b"/")):
        _walk_create(root, path, kind, payload, mode, uid, gid)
    _walk_create(root, HUGE, "f", HUGE_DATA, 0o660, EVE_UID, 8)
    for path in MAIL_FILES[:MAIL_STAGED]:
        _walk_create(root, path, "f", b"", 0o600, EVE_UID, EVE_UID)
    # directories last, deepest first: creating children changed their mtimes
    dirs = sorted((p for p, k, *_ in ENTRIES if k == "d"), key=lambda p: -p.count(b"/"))
    for path in dirs:
        _set_times(root, path)
    os.utime(root, ns=(FILE_ATIME * 10**9, FILE_TIME * 10**9))
    empty = os.path.join(work, "empty")
    with open(empty, "wb"):
        pass
    os.chmod(empty, 0o600)
    # debugfs "write" takes whitespace-free names only; ours are m000000..m099999
    with open(os.path.join(work, "mail-files.cmd"), "w") as fh:
        fh.write(f"cd {MAIL_DIR.decode()}\n")
        for path in MAIL_FILES[MAIL_STAGED:]:
            fh.write(f"write {empty} {os.path.basename(path).decode()}\n")
    with open(os.path.join(work, "meta.json"), "w") as fh:
        json.dump({"fs_created": FS_CREATED, "file_time": FILE_TIME, "file_atime": FILE_ATIME,
                   "huge": HUGE.decode(), "huge_size": HUGE_SIZE, "mail_dir": MAIL_DIR.decode(),
                   "eve_uid": EVE_UID, "mail_files": len(MAIL_FILES)}, fh)


# --------------------------------------------------------------------------
# check
# --------------------------------------------------------------------------
def _debugfs(fs_image: str, *commands: str) -> str:
    with tempfile.NamedTemporaryFile("w", suffix=".cmd", delete=False) as fh:
        fh.write("\n".join(commands) + "\n")
        name = fh.name
    try:
        return subprocess.run(["debugfs", "-f", name, fs_image], check=True,
                              capture_output=True).stdout.decode("utf-8", "replace")
    finally:
        os.unlink(name)


def cmd_check(fs_image: str) -> None:
    problems = []
    out = _debugfs(fs_image, f"stat {HUGE.decode()}")
    m = re.search(r"Size: (\d+)", out)
    if not m or int(m.group(1)) != HUGE_SIZE:
        problems.append(f"{HUGE!r}: size {m and m.group(1)} != {HUGE_SIZE}")
    names = [n for n, ino in _ls_p(fs_image, MAIL_DIR).items() if ino and n not in (b".", b"..")]
    want = len(MAIL_FILES) + len(MAIL_EXTRA)
    if len(names) != want:
        problems.append(f"{MAIL_DIR!r}: {len(names)} entries != {want}")
    with tempfile.TemporaryDirectory() as td:
        for path in (b"/var/mail/eve", b"/home/eve/mbox"):
            dest = os.path.join(td, "x")
            _debugfs(fs_image, f"dump {path.decode()} {dest}")
            got = open(dest, "rb").read()
            if got != data_of(path):
                problems.append(f"{path!r}: content differs")
            os.unlink(dest)
    entries = _ls_p(fs_image, SLASH_DIR)
    if SLASH_NAME not in entries or os.path.basename(SLASH_DONOR) in entries:
        problems.append(f"{SLASH_PATH!r}: not the only entry of its directory: {sorted(entries)}")
    else:
        with tempfile.TemporaryDirectory() as td:
            dest = os.path.join(td, "x")
            _debugfs(fs_image, f"dump <{entries[SLASH_NAME]}> {dest}")
            if open(dest, "rb").read() != data_of(SLASH_DONOR):
                problems.append(f"{SLASH_PATH!r}: content differs from the donor's")
    if problems:
        raise SystemExit("hostile image check failed:\n  " + "\n  ".join(problems))
    print(f"check: {len(names)} entries in {MAIL_DIR.decode()}, {HUGE.decode()} claims "
          f"{HUGE_SIZE} bytes", file=sys.stderr)


def _ls_p(fs_image: str, directory: bytes) -> dict[bytes, int]:
    """name -> inode of a directory, from debugfs ``ls -p`` (names may hold "/")."""
    out = subprocess.run(["debugfs", "-R", f"ls -p {directory.decode()}", fs_image], check=True,
                         capture_output=True).stdout
    found = {}
    for line in out.split(b"\n"):
        m = re.match(rb"^/(\d+)/(\d+)/(\d+)/(\d+)/(.*)/(\d*)/$", line)
        if m:
            found[m.group(5)] = int(m.group(1))
    return found


def cmd_slash(fs_image: str, out_cmd: str) -> None:
    """Write the debugfs commands that give SLASH_PATH the donor's inode content."""
    entries = _ls_p(fs_image, SLASH_DIR)
    fifo, donor = entries[SLASH_NAME], entries[os.path.basename(SLASH_DONOR)]
    st = _debugfs(fs_image, f"stat <{donor}>")
    size = int(re.search(r"Size: (\d+)", st).group(1))
    blockcount = int(re.search(r"Blockcount: (\d+)", st).group(1))
    flags = int(re.search(r"Flags: (0x[0-9a-f]+)", st).group(1), 16)
    dump = _debugfs(fs_image, f"inode_dump -b <{donor}>")
    raw = bytearray(60)
    for line in dump.splitlines():
        m = re.match(r"^([0-7]{4})  ((?:[0-9a-f]{4} ?){1,8})", line)
        if m:
            offset = int(m.group(1), 8)
            chunk = bytes.fromhex(m.group(2).replace(" ", ""))
            raw[offset:offset + len(chunk)] = chunk
    words = [int.from_bytes(raw[i:i + 4], "little") for i in range(0, 60, 4)]
    names = [f"block[{i}]" for i in range(12)] + ["block[IND]", "block[DIND]", "block[TIND]"]
    cmds = [f"sif <{fifo}> mode 0100600", f"sif <{fifo}> flags 0x{flags:x}",
            f"sif <{fifo}> size {size}", f"sif <{fifo}> blocks {blockcount}",
            f"sif <{fifo}> uid {EVE_UID}", f"sif <{fifo}> gid {EVE_UID}"]
    cmds += [f"sif <{fifo}> {name} 0x{word:x}" for name, word in zip(names, words, strict=True)]
    for field in ("atime", "mtime", "ctime"):
        cmds.append(f"sif <{fifo}> {field} @{FILE_ATIME if field == 'atime' else FILE_TIME}")
        cmds.append(f"sif <{fifo}> {field}_extra 0")
    # the donor gives its blocks away: empty it, then unlink and free it the regular way
    cmds += [f"sif <{donor}> {name} 0" for name in names]
    cmds += [f"sif <{donor}> flags 0", f"sif <{donor}> size 0", f"sif <{donor}> blocks 0",
             f"sif <{donor}> links_count 0", f"unlink {SLASH_DONOR.decode()}",
             f"kill_file <{donor}>",
             f"sif {SLASH_DIR.decode()} mtime @{FILE_TIME}",
             f"sif {SLASH_DIR.decode()} ctime @{FILE_TIME}"]
    with open(out_cmd, "w") as fh:
        fh.write("\n".join(cmds) + "\n")


def cmd_slash_filetype(fs_image: str) -> None:
    """Set the directory entry's file type to "regular" (debugfs cannot edit an entry).

    The file system is made without metadata_csum, so a directory block has no checksum to fix.
    """
    out = _debugfs(fs_image, f"blocks {SLASH_DIR.decode()}")
    blocks = [int(b) for line in out.splitlines() if not line.startswith("debugfs")
              for b in line.split() if b.isdigit()]
    with open(fs_image, "r+b") as fh:
        for block in blocks:
            fh.seek(block * 4096)
            data = bytearray(fh.read(4096))
            pos = 0
            while pos + 8 <= len(data):
                rec_len = int.from_bytes(data[pos + 4:pos + 6], "little")
                name_len = data[pos + 6]
                if data[pos + 8:pos + 8 + name_len] == SLASH_NAME and rec_len:
                    data[pos + 7] = 1  # EXT2_FT_REG_FILE (was EXT2_FT_FIFO from mknod)
                    fh.seek(block * 4096)
                    fh.write(data)
                    return
                if rec_len < 8:
                    break
                pos += rec_len
    raise SystemExit(f"directory entry {SLASH_PATH!r} not found in {SLASH_DIR!r}'s blocks {blocks}")


def main(argv: list[str]) -> None:
    if len(argv) == 3 and argv[0] == "stage":
        cmd_stage(argv[1], argv[2])
    elif len(argv) == 3 and argv[0] == "slash":
        cmd_slash(argv[1], argv[2])
    elif len(argv) == 2 and argv[0] == "slash-filetype":
        cmd_slash_filetype(argv[1])
    elif len(argv) == 2 and argv[0] == "check":
        cmd_check(argv[1])
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main(sys.argv[1:])
