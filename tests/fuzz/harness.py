"""The fuzz harness shared by ``tests/fuzz`` and ``bench/fuzz.py``.

Evidence comes from the adversary, so every registered parser is fed mutated real files: seeds
from ``../shared/corpus`` (through :data:`tests.conftest.CORPUS`) and from ``tests/fixtures``,
changed by bit flips, truncation, zero- or 0xFF-filled blocks, duplicated chunks, splices of two
seeds, invalid UTF-8 and UTF-16 surrogates, huge single lines, many short lines, deeply nested MIME
(mail formats) and offsets pointing at themselves (EVTX template and string chains, Prefetch
section offsets, any little-endian integer).

The contract checked for every input (:func:`check`): ``parse()`` never raises; every yielded
object is a :class:`~parsers.record.Record` whose ``to_json()`` is valid UTF-8 JSON, whose
timestamps and time bounds are ints and which the rule engine can tag; every warning can be
written as UTF-8 JSON (``parse_warnings.jsonl``); no input uses more than a limit of CPU time
(``signal.setitimer``: the parser is interrupted where it next runs Python code); the Python heap
peak (``tracemalloc``) stays under a bound. Memory that C extensions (libpff, libscca, the Rust
``evtx``) allocate themselves is not seen by tracemalloc; ``bench/fuzz.py`` also reports the
process's peak RSS.
"""

from __future__ import annotations

import datetime
import functools
import io
import json
import signal
import tarfile
import tempfile
import threading
import time
import traceback
import tracemalloc
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hypothesis import strategies as st

from parsers import REGISTRY
from parsers.base import ParseContext
from parsers.record import Provenance, Record
from parsers.rules import default_engine
from tests.conftest import CORPUS

ROOT = Path(__file__).resolve().parents[2]
FIXTURES = ROOT / "tests" / "fixtures"

#: Seconds one input may take (EVTX and PST seeds parse in well under a second).
TIME_LIMIT = 10.0
#: Bound on the Python heap peak while parsing one input of up to a few MB.
MEMORY_LIMIT = 200 << 20
#: Seeds larger than this are cut (the cut itself is one more truncation).
MAX_SEED_BYTES = 4 << 20
#: Mutated inputs are cut to this size (huge inputs have their own tests, with lazy files).
MAX_INPUT_BYTES = 16 << 20

MTIME = "2026-10-12T14:40:01.123456+00:00"
Seed = tuple[str, bytes]


class FuzzTimeout(BaseException):
    """Raised by the timer inside a parser that runs too long (BaseException: parsers that catch
    ``Exception`` must not swallow it)."""


class ContractViolation(AssertionError):
    """A parser broke the contract on one input."""

    def __init__(self, target: str, kind: str, detail: str) -> None:
        super().__init__(f"[{target}] {kind}: {detail}")
        self.target = target
        self.kind = kind
        self.detail = detail


# -- seeds ----------------------------------------------------------------------------------------
def corpus_seeds(*patterns: str, limit: int = 12, max_bytes: int = MAX_SEED_BYTES) -> list[Seed]:
    """Files of the shared corpus matching ``patterns`` (none when the corpus is absent)."""
    return _glob_seeds(CORPUS, patterns, limit, max_bytes)


def fixture_seeds(*patterns: str, limit: int = 12, max_bytes: int = MAX_SEED_BYTES) -> list[Seed]:
    """Files under ``tests/fixtures`` matching ``patterns``."""
    return _glob_seeds(FIXTURES, patterns, limit, max_bytes)


def _glob_seeds(root: Path, patterns: tuple[str, ...], limit: int, max_bytes: int) -> list[Seed]:
    if not root.is_dir():
        return []
    paths: list[Path] = []
    for pattern in patterns:
        paths += sorted(p for p in root.glob(pattern) if p.is_file() and p.stat().st_size > 0)
    seeds = []
    for path in paths[:limit]:
        with path.open("rb") as handle:
            seeds.append((f"{root.name}/{path.relative_to(root)}", handle.read(max_bytes)))
    return seeds


def _dovecot_tar_seeds(member_filter: Callable[[str], bool], limit: int = 8) -> list[Seed]:
    path = FIXTURES / "mail" / "dovecot-maildir.tar"
    if not path.is_file():
        return []
    seeds = []
    with tarfile.open(path) as tar:
        for member in tar.getmembers():
            if member.isfile() and member_filter(member.name):
                handle = tar.extractfile(member)
                if handle is not None:
                    seeds.append((f"dovecot-maildir.tar/{member.name}", handle.read()))
    return seeds[:limit]


def _emlx_seeds() -> list[Seed]:
    from tests.fixtures.apple_mail.build_envelope_index import emlx_bytes

    return [(f"emlx_bytes({rowid})", emlx_bytes(rowid)) for rowid in (1, 4, 6)]


@functools.lru_cache(maxsize=1)
def _envelope_index_seed() -> tuple[Seed, ...]:
    from tests.fixtures.apple_mail.build_envelope_index import build

    with tempfile.TemporaryDirectory(prefix="fuzz-envidx-") as tmp:
        db = build(Path(tmp))
        return (("build_envelope_index(Envelope Index)", db.read_bytes()),)


@functools.lru_cache(maxsize=1)
def _windows_mail_seed() -> tuple[Seed, ...]:
    """A store.vol with Folders and Message rows, written by the ESE writer (no public store.vol
    exists): mutations then reach libesedb's table and record code, not only the header checks."""
    from tests.parsers.test_windows_mail import build_store

    with tempfile.TemporaryDirectory(prefix="fuzz-storevol-") as tmp:
        return (("test_windows_mail.build_store(store.vol)", build_store(Path(tmp)).read_bytes()),)


def _usn_seeds() -> list[Seed]:
    from tests.parsers.test_usnjrnl import usn_v2, usn_v3

    page = usn_v2("dave.pst", 1234, 567, 4096, "2026-10-12T14:40:01.123456+00:00", 0x100)
    page += usn_v2("Inbox", 1235, 567, 4096 + 88, "2026-10-12T14:41:02+00:00", 0x80000200)
    page = page.ljust(4096, b"\x00") + usn_v3("Inbox.msf", 99, 98, 8192, "2026-10-12T14:42:03+00:00", 0x1000)
    return [("usn_v2+v3", b"\x00" * 4096 + page)]


def _mft_seeds() -> list[Seed]:
    from tests.parsers.test_mft import windows_suspect_mft

    return [("windows-suspect $MFT", windows_suspect_mft())]


def _evtx_writer_seeds() -> list[Seed]:
    """A small EVTX written by our own writer (the seed when the corpus is absent)."""
    from tests.fixtures.evtx_scenarios import mail_clearing_events, write_events

    with tempfile.TemporaryDirectory(prefix="fuzz-evtx-") as tmp:
        truth = write_events(Path(tmp), mail_clearing_events()[:12])
        files = sorted(truth["files"].values())  # type: ignore[union-attr]
        return [(f"evtx_writer/{Path(f).name}", Path(f).read_bytes()) for f in files[:2]]


_HISTORY_INLINE: dict[str, bytes] = {
    "bash": b"#1791900000\nrm -rf ~/Maildir/cur/*\n#1791900001\nshred -u /var/mail/alice\nls \xff\n",
    "zsh": b": 1791900000:0;rm -rf ~/Mail\n: 1791900001:2;echo a\\\nb\n: x:y;broken\n",
    "fish": b"- cmd: rm -rf ~/.thunderbird\n  when: 1791900000\n  paths:\n    - ~/.thunderbird\n",
    "psreadline": b"Remove-Item C:\\Users\\eve\\mail.pst\nSearch-Mailbox -DeleteContent `\n -Force\n",
}

_MBOX_INLINE = (b"From alice@example.org Mon Oct 12 14:40:01 2026\nFrom: a@example.org\n"
                b"Subject: one\nDate: Mon, 12 Oct 2026 14:40:01 +0000\nContent-Length: 5\n\nbody\n\n"
                b"From bob@example.org Mon Oct 12 14:41:01 2026\nFrom: b@example.org\nStatus: RO\n"
                b"X-Mozilla-Status: 0009\n\n>From quoted\n")


# -- targets --------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Target:
    """One parser fed one kind of file (a parser may have several, e.g. Thunderbird .msf/folder)."""

    name: str
    parser: str
    source_path: str
    loaders: tuple[Callable[[], list[Seed]], ...]
    entry: dict[str, Any] = field(default_factory=dict)
    #: "binary", "text" or "mail" (adds the nested-MIME and header mutations).
    kind: str = "binary"
    #: How a mail message is wrapped into this format ("mbox", "emlx" or "raw").
    wrap: str = "raw"
    #: Absolute positions of little-endian u32 offsets/counts in the format's header.
    offset_fields: tuple[int, ...] = ()
    #: Examples in the short fixed run of the test suite (slow parsers get fewer).
    examples: int = 40

    @property
    def parser_cls(self) -> type:
        return REGISTRY[self.parser]

    def seeds(self) -> list[Seed]:
        return _load_seeds(self)

    def context(self, size: int | None = None) -> ParseContext:
        entry = {"source_path": self.source_path, "bundle_path": None, "mtime": MTIME,
                 "home": "/home/alice", "deleted": False, "kind": "file", "outcome": "collected",
                 "user": "alice", **self.entry}
        if size is not None and "size" not in self.entry:
            entry["size"] = size
        provenance = Provenance(bundle_path=None, source_path="fuzz" if self.parser == "filestat"
                                else self.source_path, sha256=None)
        return ParseContext(provenance=provenance, user="alice", entry=entry)


@functools.cache
def _seed_cache(name: str) -> tuple[Seed, ...]:
    target = TARGETS_BY_NAME[name]
    seeds: list[Seed] = []
    for loader in target.loaders:
        seeds += loader()
    return tuple(seeds)


def _load_seeds(target: Target) -> list[Seed]:
    return list(_seed_cache(target.name))


def _inline(label: str, data: bytes) -> Callable[[], list[Seed]]:
    return lambda: [(label, data)]


def _c(*patterns: str, limit: int = 12, max_bytes: int = MAX_SEED_BYTES) -> Callable[[], list[Seed]]:
    return lambda: corpus_seeds(*patterns, limit=limit, max_bytes=max_bytes)


def _f(*patterns: str, limit: int = 12) -> Callable[[], list[Seed]]:
    return lambda: fixture_seeds(*patterns, limit=limit)


EXCHANGE = "C:/Program Files/Microsoft/Exchange Server/V15"
#: Prefetch (formats 17/23/26): the file-information offsets and counts after the 84-byte header.
PREFETCH_FIELDS = tuple(range(0x54, 0x78, 4))
_SMALL_EVTX = ("evtx/velociraptor/*.evtx", "evtx/deepbluecli/*.evtx", "evtx/yamato/*.evtx",
               "evtx/evtx-attack-samples/exec_*.evtx", "evtx/corrupt/Application_no_crc32.evtx",
               "evtx/corrupt/dns_log_malformed.evtx")

TARGETS: tuple[Target, ...] = (
    Target("mbox", "mbox", "/var/mail/alice",
           (_c("mail/git_t5100/*", "mail/neomutt/*.mbox"),
            _f("mail/mailx-spool.*", "mail/dovecot-inbox.mbox"), _inline("inline.mbox", _MBOX_INLINE)),
           entry={"artifact": "LinuxMailSpools"}, kind="mail", wrap="mbox", examples=60),
    Target("emlx", "emlx", "/Users/alice/Library/Mail/V10/A/INBOX.mbox/U/Data/Messages/12.emlx",
           (_emlx_seeds,), entry={"artifact": "AppleMail"}, kind="mail", wrap="emlx", examples=50),
    Target("apple_mail_envelope", "apple_mail_envelope",
           "/Users/alice/Library/Mail/V10/MailData/Envelope Index",
           (lambda: list(_envelope_index_seed()),), examples=25),
    Target("bash_history", "bash_history", "/home/alice/.bash_history",
           (_c("history/plaso/bash_history"), _inline("inline.bash", _HISTORY_INLINE["bash"])),
           kind="text", examples=30),
    Target("maildir", "maildir", "/home/alice/Maildir/.Trash/cur/1791900000.M1P2.host:2,ST",
           (_c("mail/notmuch_corpus_default/cur/*", "mail/notmuch_corpus_broken/*", limit=10),
            lambda: _dovecot_tar_seeds(lambda n: "/cur/" in n or "/new/" in n, limit=4)),
           kind="mail", wrap="raw", examples=50),
    Target("dovecot_uidlist", "dovecot_uidlist", "/home/alice/Maildir/dovecot-uidlist",
           (lambda: _dovecot_tar_seeds(lambda n: n.endswith("dovecot-uidlist")),
            _inline("inline.uidlist", b"3 V1791900000 N9 G0123456789abcdef\n1 :1791900000.M1P2.host\n"
                    b"4 W1024 :1791900001.M2P3.host\n")),
           kind="text", examples=50),
    Target("evtx", "evtx", "C:/Windows/System32/winevt/Logs/Microsoft-Windows-PowerShell%4Operational.evtx",
           (_c(*_SMALL_EVTX, limit=6), _evtx_writer_seeds), examples=12),
    Target("evtx_carve", "evtx_carve", "/unallocated/blob.bin",
           (_c("evtx/velociraptor/EID4104_PowershellScriptblock.evtx", "evtx/deepbluecli/*.evtx", limit=3),
            _evtx_writer_seeds), examples=10),
    Target("exchange_message_tracking", "exchange_message_tracking",
           f"{EXCHANGE}/TransportRoles/Logs/MessageTracking/MSGTRK2023091908-1.LOG",
           (_f("exchange/MSGTRK*.LOG"), _c("mail/extra/exchange_message_tracking.log")), kind="text"),
    Target("exchange_cmdlet_log", "exchange_cmdlet_log",
           f"{EXCHANGE}/Logging/CmdletInfra/powershell_4312_Cmdlet_2023091908-1.LOG",
           (_f("exchange/powershell_*.LOG"),), kind="text"),
    Target("exchange_admin_audit", "exchange_admin_audit", "C:/export/Search-AdminAuditLog.csv",
           (_f("exchange/Search-AdminAuditLog.csv", "exchange/admin_audit_report.xml"),), kind="text"),
    Target("filestat", "filestat", "/var/mail/alice", (_inline("empty", b""),), examples=60),
    Target("fish_history", "fish_history", "/home/alice/.local/share/fish/fish_history",
           (_c("history/plaso/fish_history"), _inline("inline.fish", _HISTORY_INLINE["fish"])), kind="text"),
    Target("m365_ual", "m365_ual", "C:/export/Search-UnifiedAuditLog.json",
           (_f("m365/*"),), kind="text", examples=50),
    Target("outlook_pst", "outlook_pst", "C:/Users/eve/Documents/Outlook Files/Outlook.pst",
           (_c("mail/extra/Outlook.pst"),), examples=6),
    Target("prefetch", "prefetch", "C:/Windows/Prefetch/CMD.EXE-087B4001.pf",
           (_c("prefetch/plaso/*.pf", "prefetch/ez_Vista/*.pf", "prefetch/ez_Win2k3/*.pf",
               "prefetch/ez_Win10/*.pf", "prefetch/museum_*/*.pf", limit=10),),
           offset_fields=PREFETCH_FIELDS, examples=50),
    Target("psreadline_history", "psreadline_history",
           "C:/Users/eve/AppData/Roaming/Microsoft/Windows/PowerShell/PSReadLine/ConsoleHost_history.txt",
           (_c("history/*/ConsoleHost_history.txt"), _inline("inline.ps", _HISTORY_INLINE["psreadline"])),
           kind="text", examples=25),
    Target("thunderbird", "thunderbird", "/home/alice/.thunderbird/x.default/Mail/Local Folders/Inbox",
           (_f("mail/thunderbird/Mail/Local Folders/Inbox", "mail/thunderbird/Mail/Local Folders/Trash",
               "mail/thunderbird/ImapMail/imap.example.org/INBOX"),), kind="mail", wrap="mbox"),
    Target("thunderbird_msf", "thunderbird",
           "/home/alice/.thunderbird/x.default/Mail/Local Folders/Inbox.msf",
           (_f("mail/thunderbird/Mail/Local Folders/Inbox.msf"),), kind="text", examples=50),
    Target("usnjrnl", "usnjrnl", "/$Extend/$UsnJrnl:$J", (_usn_seeds,), examples=50),
    Target("mft", "mft", "/$MFT", (_mft_seeds,), examples=20),
    Target("windows_mail", "windows_mail", "C:/Users/eve/AppData/Local/Comms/UnistoreDB/store.vol",
           (_inline("ese-header", b"\x00\x00\x00\x00\xef\xcd\xab\x89" + b"\x00" * 8192),
            lambda: list(_windows_mail_seed())), examples=20),
    Target("zsh_history", "zsh_history", "/home/alice/.zsh_history",
           (_c("history/plaso/zsh_extended_history.txt"), _inline("inline.zsh", _HISTORY_INLINE["zsh"])),
           kind="text"),
    Target("terminal_session", "terminal_session",
           "/Users/alice/.zsh_sessions/0A1B2C3D-4E5F-6789-ABCD-EF0123456789.session",
           (_inline("inline.session", b'echo Restored session: "$(/bin/date -r 1791900000)"\n'
                    b"rm -rf ~/Library/Mail\n"),),
           kind="text", examples=30),
)
TARGETS_BY_NAME = {target.name: target for target in TARGETS}


# -- mutations ------------------------------------------------------------------------------------
#: Byte sequences that break decoders: invalid UTF-8 (lone continuation, overlong, encoded
#: surrogates, above U+10FFFF), UTF-16 lone surrogates (both byte orders), BOMs, NUL, CR, escapes.
BAD_TEXT: tuple[bytes, ...] = (
    b"\xff", b"\xfe\xff", b"\xc3", b"\xc3\x28", b"\x80", b"\xc0\xaf", b"\xe0\x80\xaf",
    b"\xed\xa0\x80", b"\xed\xbf\xbf", b"\xf4\x90\x80\x80", b"\xf8\x88\x80\x80\x80",
    b"\x00\xd8", b"\xd8\x00", b"\x00\xdc\x41\x00", b"\xff\xfe\x00\xd8", b"\xef\xbb\xbf", b"\x00",
    b"\r", b"\r\r\n", b"\x1b[2J", b"\xe2\x80\xae", b"=?utf-8?b?7aCA?=", b"=?x-unknown?q?=FF?=",
    b"=?utf-16?b?ANg=?=", b"\\u{d800}", b"\\ud800", b"&#xD800;", b"%ED%A0%80",
)
HOSTILE_INTS: tuple[int, ...] = (0, 1, 0x7F, 0x80, 0xFF, 0xFFFF, 0x7FFFFFFF, 0x80000000, 0xFFFFFFFF)
CHUNK = 65536


def nested_mime(depth: int, leaf: bytes = b"leaf\n", boundary_reuse: bool = False) -> bytes:
    """A message whose multipart bodies nest ``depth`` deep (built in linear time)."""
    head = [b"From: Mallory <m@example.org>\nTo: alice@example.org\nSubject: nest\n"
            b"Date: Mon, 12 Oct 2026 14:40:01 +0000\nMessage-ID: <nest@example.org>\nMIME-Version: 1.0\n"]
    tail = []
    for level in range(depth):
        boundary = b"b" if boundary_reuse else b"b%d" % level
        head.append(b'Content-Type: multipart/mixed; boundary="%s"\n\n--%s\n' % (boundary, boundary))
        tail.append(b"\n--%s--\n" % boundary)
    head.append(b"Content-Type: text/plain\n\n" + leaf)
    return b"".join(head) + b"".join(reversed(tail))


def wrap_message(message: bytes, wrap: str) -> bytes:
    """``message`` as a file of a mail format: an mbox, an emlx, or the raw message."""
    if wrap == "mbox":
        return b"From mallory@example.org Mon Oct 12 14:40:01 2026\n" + message + b"\n"
    if wrap == "emlx":
        plist = (b'<?xml version="1.0" encoding="UTF-8"?>\n<plist version="1.0">\n<dict>\n'
                 b"\t<key>flags</key>\n\t<integer>2</integer>\n</dict>\n</plist>\n")
        return b"%-10d\n" % len(message) + message + plist
    return message


def evtx_chunks(data: bytes) -> list[int]:
    """Offsets of the 512-byte aligned ``ElfChnk`` magics (where the evtx and carve parsers look)."""
    found = []
    index = data.find(b"ElfChnk\x00")
    while index != -1:
        if index % 512 == 0 and index + 0x200 <= len(data):
            found.append(index)
        index = data.find(b"ElfChnk\x00", index + 1)
    return found


def evtx_chain_heads(data: bytes) -> list[tuple[int, int]]:
    """(chunk offset, chunk-relative offset of an entry) for every non-empty slot of the chunk
    header's common-string (64 slots at 0x80) and template (32 slots at 0x180) hash tables.

    Each entry starts with the u32 chunk-relative offset of the next entry of its hash chain.
    """
    heads = []
    for chunk in evtx_chunks(data):
        for table, count in ((0x80, 64), (0x180, 32)):
            for slot in range(count):
                position = chunk + table + 4 * slot
                offset = int.from_bytes(data[position:position + 4], "little")
                if 0x200 <= offset <= CHUNK - 4 and chunk + offset + 4 <= len(data):
                    heads.append((chunk, offset))
    return heads


def evtx_chain_cycle(data: bytes) -> tuple[int, list[int]] | None:
    """The first chunk whose string or template hash chain loops through two or more entries.

    The ``evtx`` package (0.14) follows such a loop forever inside Rust, where no Python signal can
    stop it (tests/fuzz/test_regressions.py::test_evtx_string_chain_loop_does_not_hang).
    """
    for chunk, head in evtx_chain_heads(data):
        seen: list[int] = []
        offset = head
        while 0 < offset <= CHUNK - 4 and chunk + offset + 4 <= len(data):
            if offset in seen:
                if len(seen) - seen.index(offset) >= 2:
                    return chunk, seen[seen.index(offset):]
                break
            seen.append(offset)
            offset = int.from_bytes(data[chunk + offset:chunk + offset + 4], "little")
    return None


def loop_evtx(data: bytes, choice: int, mode: int) -> bytes:
    """Make one EVTX hash-chain entry loop: to itself (mode 0), with the next head (1, a two-entry
    cycle), to its own table slot (2) or far away (3, 0xFFFFFFFF)."""
    heads = evtx_chain_heads(data)
    if not heads:
        return data
    chunk, offset = heads[choice % len(heads)]
    out = bytearray(data)

    def put(relative: int, value: int) -> None:
        out[chunk + relative:chunk + relative + 4] = value.to_bytes(4, "little")

    mode %= 4
    if mode == 0:
        put(offset, offset)
    elif mode == 1:
        partner = next((o for c, o in heads[choice % len(heads) + 1:] if c == chunk and o != offset), None)
        if partner is None:
            put(offset, offset)
        else:
            put(offset, partner)
            put(partner, offset)
    elif mode == 2:
        put(offset, 0x180)
    else:
        put(offset, 0xFFFFFFFF)
    return bytes(out)


def _write_int(data: bytes, position: int, width: int, value: int) -> bytes:
    """``data`` with a little-endian ``width``-byte ``value`` at ``position`` (same length)."""
    if len(data) < width:
        return data
    position = min(position, len(data) - width)
    return data[:position] + (value % (1 << (8 * width))).to_bytes(width, "little") + data[position + width:]


@st.composite
def mutated(draw: st.DrawFn, target: Target, seeds: list[Seed], huge: int = 1 << 18) -> bytes:
    """One mutated input for ``target``: a seed and 1-4 mutations, all chosen by Hypothesis.

    ``huge`` bounds the length of generated long lines (the bench raises it).
    """
    _, data = seeds[draw(st.integers(0, len(seeds) - 1))]
    operations = ["flip", "truncate", "fill", "duplicate", "splice", "insert", "bad_text",
                  "huge_line", "int"]
    if target.kind in ("text", "mail"):
        operations += ["many_lines", "bad_text", "line_dup"]
    if target.kind == "mail":
        operations += ["mime", "mime"]
    if target.offset_fields:
        operations += ["offset_field", "offset_field"]
    if target.parser in ("evtx", "evtx_carve") and evtx_chain_heads(data):
        operations += ["evtx_loop", "evtx_loop"]
    for _ in range(draw(st.integers(1, 4))):
        op = draw(st.sampled_from(operations))
        size = len(data)
        at = draw(st.integers(0, size))
        if op == "flip":
            out = bytearray(data)
            for _ in range(draw(st.integers(1, 16))):
                if out:
                    position = draw(st.integers(0, size - 1))
                    out[position] ^= 1 << draw(st.integers(0, 7))
            data = bytes(out)
        elif op == "truncate":
            data = data[:at]
        elif op == "fill":
            length = draw(st.sampled_from((1, 16, 512, 4096, 65536)))
            byte = draw(st.sampled_from((b"\x00", b"\xff", b"\n", b" ")))
            data = data[:at] + byte * min(length, size - at) + data[at + length:]
        elif op == "duplicate":
            length = draw(st.integers(1, 8192))
            chunk = data[at:at + length]
            where = draw(st.integers(0, size))
            data = data[:where] + chunk * draw(st.integers(1, 3)) + data[where:]
        elif op == "splice":
            _, other = seeds[draw(st.integers(0, len(seeds) - 1))]
            cut = draw(st.integers(0, len(other)))
            data = data[:at] + other[cut:]
        elif op == "insert":
            data = data[:at] + draw(st.binary(min_size=1, max_size=64)) + data[at:]
        elif op == "bad_text":
            data = data[:at] + draw(st.sampled_from(BAD_TEXT)) * draw(st.integers(1, 3)) + data[at:]
        elif op == "huge_line":
            length = draw(st.sampled_from((4096, 65537, huge)))
            byte = draw(st.sampled_from((b"A", b"\x00", b"=", b"\\", b"\xff", b" ", b"\t", b"\r")))
            data = data[:at] + byte * length + data[at:]
        elif op == "many_lines":
            line = draw(st.sampled_from((b"\n", b"X-H: v\n", b" folded\n", b"#1791900000\n", b"\\\n",
                                         b"From \n", b"--b0\n", b": 1:0;\n")))
            data = data[:at] + line * draw(st.sampled_from((100, 5000, 50000))) + data[at:]
        elif op == "line_dup":
            start = data.rfind(b"\n", 0, at) + 1
            end = data.find(b"\n", at)
            line = data[start:(end + 1 if end >= 0 else size)]
            data = data[:start] + line * draw(st.integers(2, 200)) + data[start:]
        elif op == "mime":
            depth = draw(st.sampled_from((2, 50, 1000, 5000)))
            message = nested_mime(depth, boundary_reuse=draw(st.booleans()))
            if draw(st.booleans()):
                message = message[:draw(st.integers(0, len(message)))]
            prefix = data[:at] if draw(st.booleans()) else b""  # after some real messages, or alone
            data = prefix + wrap_message(message, target.wrap)
        elif op == "int":
            width = draw(st.sampled_from((1, 2, 4, 8)))
            value = draw(st.sampled_from((*HOSTILE_INTS, at, at % CHUNK, size, size * 2)))
            data = _write_int(data, at, width, value)
        elif op == "offset_field":
            position = draw(st.sampled_from(target.offset_fields))
            value = draw(st.sampled_from((*HOSTILE_INTS, position, position - 4, size, size - 1,
                                          0x54, 0x98)))
            data = _write_int(data, position, 4, value)
        elif op == "evtx_loop":
            data = loop_evtx(data, draw(st.integers(0, 10_000)), draw(st.integers(0, 3)))
        data = data[:MAX_INPUT_BYTES]  # repeated duplications must not grow without end
    return data


#: Manifest entries for the ``filestat`` parser, shaped like the collector's (valid ISO times) but
#: with hostile names, sizes and reasons.
_HOSTILE_TEXT = st.one_of(
    st.text(max_size=40),
    st.sampled_from(["", "\n", "a\x00b", "../../etc/passwd", "C:\\CON", "x" * 4000, "\udcff\udcfe",
                     "\ud800", "=cmd|' /C calc'!A0", "caf\udce9", "\u202eevil"]),
)
_ISO = st.one_of(
    st.datetimes(min_value=datetime.datetime(1, 1, 2), max_value=datetime.datetime(9999, 12, 30))
    .map(lambda d: d.isoformat() + "+00:00"),
    st.sampled_from(["0001-01-01T00:00:00+00:00", "9999-12-31T23:59:59.999999+00:00",
                     "1970-01-01T00:00:00+00:00", "2026-10-12T14:40:01.123456+14:00",
                     "1601-01-01T00:00:00-12:00"]),
)
_INT = st.one_of(st.none(), st.integers(-(1 << 63), 1 << 64), st.sampled_from([0, -1, 1 << 70]))


@st.composite
def manifest_entries(draw: st.DrawFn) -> dict[str, Any]:
    """One manifest line as the collector writes it, with hostile values."""
    entry: dict[str, Any] = {"source_path": draw(_HOSTILE_TEXT),
                             "outcome": draw(st.sampled_from(["collected", "missing", "failed", "empty",
                                                              "recovered", ""]))}
    optional = {
        "kind": st.one_of(st.none(), st.sampled_from(["file", "directory", "symlink", "", "fifo"])),
        "size": _INT, "inode": _INT, "deleted": st.one_of(st.booleans(), st.none()),
        "reason": st.one_of(st.none(), _HOSTILE_TEXT), "artifact": st.one_of(st.none(), _HOSTILE_TEXT),
        "category": st.one_of(st.none(), _HOSTILE_TEXT), "link_target": st.one_of(st.none(), _HOSTILE_TEXT),
        "mtime": st.one_of(st.none(), _ISO), "atime": st.one_of(st.none(), _ISO),
        "ctime": st.one_of(st.none(), _ISO), "crtime": st.one_of(st.none(), _ISO),
        "dtime": st.one_of(st.none(), _ISO),
    }
    for key, strategy in optional.items():
        if draw(st.booleans()):
            entry[key] = draw(strategy)
    if "kind" not in entry and draw(st.booleans()):
        entry["kind"] = "file"
    return entry


# -- the contract ---------------------------------------------------------------------------------
@dataclass
class Outcome:
    """What one input gave (when the contract held)."""

    records: int
    warnings: int
    seconds: float
    peak_bytes: int | None


@contextmanager
def time_limit(seconds: float | None) -> Iterator[None]:
    """Raise :class:`FuzzTimeout` once the block has used ``seconds`` of CPU time (main thread only).

    CPU time (``ITIMER_PROF``), not wall time: an endless loop burns CPU, and a machine busy with
    other work must not turn a slow-but-finite parse into a false "hang".
    """
    if not seconds or threading.current_thread() is not threading.main_thread():
        yield
        return

    def _expired(signum: int, frame: Any) -> None:
        raise FuzzTimeout(f"still running after {seconds} s of CPU time")

    previous = signal.signal(signal.SIGPROF, _expired)
    signal.setitimer(signal.ITIMER_PROF, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_PROF, 0)
        signal.signal(signal.SIGPROF, previous)


@contextmanager
def heap_peak() -> Iterator[list[int]]:
    """Measure the tracemalloc peak of the block (bytes, above what was allocated before)."""
    result = [0]
    started = not tracemalloc.is_tracing()
    if started:
        tracemalloc.start()
    tracemalloc.reset_peak()
    base = tracemalloc.get_traced_memory()[0]
    try:
        yield result
    finally:
        result[0] = max(0, tracemalloc.get_traced_memory()[1] - base)
        if started:
            tracemalloc.stop()


def check_record(target: str, record: Any, tag: bool = True) -> None:
    """Raise :class:`ContractViolation` unless ``record`` is a well-formed, writable Record
    (and, with ``tag``, one the rule engine can tag)."""
    if not isinstance(record, Record):
        raise ContractViolation(target, "not a Record", repr(record)[:200])
    try:
        text = record.to_json()
        text.encode("utf-8")
        json.loads(text)
    except Exception as exc:
        raise ContractViolation(target, "to_json failed", f"{type(exc).__name__}: {exc}") from exc
    for name in ("timestamps", "time_bounds"):
        mapping = getattr(record, name)
        if not isinstance(mapping, dict):
            raise ContractViolation(target, f"{name} not a dict", repr(mapping)[:200])
        for key, value in mapping.items():
            if not isinstance(key, str) or type(value) is not int:
                raise ContractViolation(target, f"{name} value not an int", f"{key!r}: {value!r}")
    if not isinstance(record.data_type, str) or not record.data_type or not isinstance(record.message, str):
        raise ContractViolation(target, "bad data_type/message", repr(record)[:200])
    if type(record.order) is not int:
        raise ContractViolation(target, "order not an int", repr(record.order))
    if not tag:
        return
    try:
        default_engine().tag(record).to_json()
    except Exception as exc:
        raise ContractViolation(target, "rule engine failed on the record",
                                f"{type(exc).__name__}: {exc}") from exc


def check_warnings(target: str, ctx: ParseContext) -> None:
    for warning in ctx.warnings:
        try:
            json.dumps(warning, ensure_ascii=False, sort_keys=True).encode("utf-8")
        except Exception as exc:
            raise ContractViolation(target, "warning not writable as UTF-8 JSON",
                                    f"{type(exc).__name__}: {exc}: {warning!r:.200}") from exc
        offset = warning.get("offset")
        if offset is not None and type(offset) is not int:
            raise ContractViolation(target, "warning offset not an int", repr(warning)[:200])


#: tracemalloc slows Python code down several times: the measuring pass gets a longer limit.
TRACED_SLOWDOWN = 6.0


def check(target: Target, data: bytes, *, entry: dict[str, Any] | None = None,
          seconds: float | None = TIME_LIMIT, memory: int | None = MEMORY_LIMIT,
          open_input: Callable[[], Any] | None = None) -> Outcome:
    """Run ``target``'s parser on ``data`` (or on what ``open_input()`` returns) and enforce the contract.

    Two passes: the first checks every record, the warnings and the time; the second (when
    ``memory`` is set) only consumes the records under tracemalloc, so that the cost of the checks
    and of tracing does not count as the parser's.

    Raises:
        ContractViolation: the parser raised, hung, used too much memory or yielded a bad record.
    """
    def run(validate: bool) -> tuple[int, ParseContext]:
        ctx = target.context(len(data))
        if entry is not None:
            ctx.entry = entry
        handle = None if target.parser == "filestat" else (open_input() if open_input else io.BytesIO(data))
        count = 0
        try:
            for record in target.parser_cls().parse(handle, ctx):
                if validate:  # the rule engine costs ~60 µs a record: sampled past the first 2000
                    check_record(target.name, record, tag=count < 2000 or count % 64 == 0)
                count += 1
        except ContractViolation:
            raise
        except FuzzTimeout as exc:
            raise ContractViolation(target.name, "hang", f"{exc} after {count} records\n"
                                    + "".join(traceback.format_exception(exc)[-6:])) from exc
        except Exception as exc:
            raise ContractViolation(target.name, f"raised {type(exc).__name__}", _short_tb(exc)) from exc
        return count, ctx

    started = time.monotonic()
    with time_limit(seconds):
        count, ctx = run(validate=True)
    elapsed = time.monotonic() - started
    check_warnings(target.name, ctx)
    peak: int | None = None
    if memory is not None:
        with heap_peak() as measured, time_limit(seconds and seconds * TRACED_SLOWDOWN):
            run(validate=False)
        peak = measured[0]
        if peak > memory:
            raise ContractViolation(target.name, "memory", f"heap peak {peak >> 20} MB for {len(data)} "
                                    f"bytes (limit {memory >> 20} MB)")
    return Outcome(records=count, warnings=len(ctx.warnings), seconds=elapsed, peak_bytes=peak)


def _short_tb(exc: BaseException) -> str:
    lines = traceback.format_exception(exc)
    return f"{type(exc).__name__}: {str(exc)[:300]}\n" + "".join(lines[-8:])


def write_reproducer(folder: Path, target: Target, data: bytes, violation: ContractViolation | str,
                     entry: dict[str, Any] | None = None) -> Path:
    """Save a crashing input as ``<target>-<sha8>.bin`` with a ``.txt`` saying what broke."""
    import hashlib

    folder.mkdir(parents=True, exist_ok=True)
    digest = hashlib.sha256(data + json.dumps(entry, sort_keys=True, default=str).encode()).hexdigest()[:12]
    path = folder / f"{target.name}-{digest}.bin"
    path.write_bytes(data)
    note = [f"target: {target.name} (parser {target.parser}, source_path {target.source_path})",
            f"problem: {violation}", "reproduce: .venv/bin/python bench/fuzz.py --replay " + str(path)]
    if entry is not None:
        note.insert(1, f"entry: {json.dumps(entry, ensure_ascii=True, default=str)}")
    path.with_suffix(".txt").write_text("\n".join(note) + "\n", encoding="utf-8")
    return path


def known_hang(target: Target, data: bytes) -> str | None:
    """Why ``data`` would hang ``target`` where no timer can stop it (a known, reported bug), or None."""
    # None left: looping EVTX hash chains (the evtx package would follow them forever in Rust)
    # are now found and skipped by parsers/evtx_guard.py, and fuzzed like everything else.
    return None


#: Crashes found by the fuzzer in modules this harness's authors could not edit, each with its
#: xfail regression test in test_regressions.py: (parsers, violation kind, text in the detail).
#: The fixed-time run rejects these inputs so that it stays green; remove an entry once fixed.
KNOWN_BUGS: tuple[tuple[frozenset[str], str, str], ...] = (
)


def known_bug(target: Target, violation: ContractViolation) -> bool:
    """Whether ``violation`` is one of :data:`KNOWN_BUGS`."""
    return any(target.parser in parsers and violation.kind == kind and text in violation.detail
               for parsers, kind, text in KNOWN_BUGS)
