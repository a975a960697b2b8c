"""mbox parser: messages, variants and every kind of deletion evidence, on real and exact inputs."""

from __future__ import annotations

import email.utils
import io
import json
import mailbox
import mmap
import subprocess
import sys
import tracemalloc
from pathlib import Path

import pytest

from collector.timeutil import from_datetime, iso_utc, parse_iso
from parsers.base import MAX_WARNINGS, ParseContext
from parsers.mbox import (
    ENVELOPE_DESC,
    RECEIVED_DESC,
    REWRITE_DESC,
    MboxParser,
    _find,
    _parse_envelope_date_slow,
    parse_envelope_date,
    parse_rfc2822_date,
)
from parsers.record import Provenance, Record
from parsers.rules import default_engine
from tests.conftest import corpus_path

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "mail"
TIMES = json.loads((FIXTURES / "times.json").read_text())


def _parse(data: bytes | Path, source: str = "/home/alice/mbox",
           **entry: object) -> tuple[list[Record], ParseContext]:
    ctx = ParseContext(provenance=Provenance(bundle_path=None, source_path=source, sha256=None),
                       host="mailhost", user="alice", entry=dict(entry))
    engine = default_engine()
    if isinstance(data, Path):
        with data.open("rb") as handle:
            records = [engine.tag(r) for r in MboxParser().parse(handle, ctx)]
    else:
        records = [engine.tag(r) for r in MboxParser().parse(io.BytesIO(data), ctx)]
    return records, ctx


def _msg(sender: str, when: str, headers: str, body: str = "text\n") -> bytes:
    return f"From {sender} {when}\n{headers}\n{body}\n".encode()


# -- real programs ---------------------------------------------------------------------------------
def test_mailx_delete_rewrites_the_spool_and_says_so():
    mtime = iso_utc(TIMES["mailx-spool.after-delete"] * 1_000_000)
    records, ctx = _parse(FIXTURES / "mailx-spool.after-delete", source="/var/mail/alice",
                          mtime=mtime, artifact="LinuxMailSpools")
    messages = [r for r in records if r.data_type == "mail:mbox:message"]
    assert [r.attributes["subject"] for r in messages] == ["Report 1", "Report 3", "Report 4"]
    assert [r.attributes["status"] for r in messages] == ["O", "O", "O"]
    assert messages[2].timestamps[ENVELOPE_DESC] == parse_iso("2026-10-08T12:00:04+00:00")
    assert messages[2].timestamps[RECEIVED_DESC] == parse_iso("2026-10-08T12:00:04+00:00")
    assert [r.attributes["offset"] for r in messages] == [0, 381, 762]
    size = (FIXTURES / "mailx-spool.after-delete").stat().st_size
    assert sum(r.attributes["size"] for r in messages) == size
    rewrite = records[-1]
    assert rewrite.data_type == "mail:mbox:rewrite"
    assert rewrite.timestamps == {REWRITE_DESC: parse_iso(mtime)}
    assert rewrite.attributes["newest_delivery"] == "2026-10-08T12:00:04.000000+00:00"
    assert rewrite.attributes["newest_delivery_offset"] == 762
    assert "moved read messages to ~/mbox" in rewrite.message and "not a deletion" in rewrite.message
    assert "mail_store_spool_rewritten" in rewrite.tags and "T1070.008" in rewrite.tags
    assert not any(r.tags for r in messages)
    assert ctx.warnings == []


def test_mailx_read_moves_to_home_mbox_is_also_a_rewrite_with_the_caveat():
    mtime = iso_utc(TIMES["mailx-spool.after-read"] * 1_000_000)
    spool, _ = _parse(FIXTURES / "mailx-spool.after-read", source="/var/mail/alice", mtime=mtime)
    assert [r.attributes["subject"] for r in spool[:-1]] == ["Report 2", "Report 3", "Report 4"]
    assert spool[-1].data_type == "mail:mbox:rewrite"
    home, _ = _parse(FIXTURES / "mailx-home-mbox.after-read", source="/home/alice/mbox",
                     mtime=iso_utc(TIMES["mailx-home-mbox.after-read"] * 1_000_000),
                     artifact="UserMbox")
    assert [(r.data_type, r.attributes["subject"], r.attributes["status"]) for r in home] == [
        ("mail:mbox:message", "Report 1", "RO")]  # ~/mbox is appended to: no rewrite record


def test_spool_written_only_by_the_mda_gives_no_rewrite_record():
    records, _ = _parse(FIXTURES / "mailx-spool.orig", source="/var/mail/alice",
                        mtime="2026-10-08T12:00:05+00:00")
    assert [r.data_type for r in records] == ["mail:mbox:message"] * 4


def test_dovecot_mbox_uid_gaps_deleted_flag_and_content_length():
    records, ctx = _parse(FIXTURES / "dovecot-inbox.mbox", source="/var/mail/alice",
                          mtime=iso_utc(TIMES["dovecot-inbox.mbox"] * 1_000_000))
    messages = [r for r in records if r.data_type == "mail:mbox:message"]
    assert [r.attributes["uid"] for r in messages] == ["1", "3", "4", "5"]
    assert [r.attributes.get("deleted_flag", False) for r in messages] == [False, True, False, False]
    assert messages[1].attributes["x_status"] == "D"
    assert "mail_store_marked_deleted" in messages[1].tags
    assert not any("content_length_mismatch" in r.attributes for r in messages)
    gap = next(r for r in records if r.data_type == "mail:mbox:uid_gap")
    assert gap.attributes["missing_uids"] == [[2, 2], [6, 6]]
    assert gap.attributes["missing_count"] == 2 and gap.attributes["present_count"] == 4
    assert gap.attributes["highest_uid"] == 5 and gap.attributes["last_uid_handed_out"] == 6
    assert gap.attributes["newest_expunged"] is True
    assert gap.timestamps == {}
    assert gap.time_bounds["Not after: mailbox file last modified"] == TIMES["dovecot-inbox.mbox"] * 1_000_000
    assert "Not before: delivery of the message before the first gap" in gap.time_bounds
    assert "mail_store_uid_gap" in gap.tags
    assert "UIDs 2, 6 are missing" in gap.message and "the newest 1 (UIDs 6) went" in gap.message
    assert ctx.warnings == []


# -- format-exact edge cases -----------------------------------------------------------------------
def test_mboxcl2_content_length_keeps_unescaped_from_lines_in_the_body():
    body = "line one\nFrom here on, an unescaped line\n"
    data = (_msg("a@x", "Mon Oct  5 09:00:00 2026",
                 f"Subject: one\nContent-Length: {len(body)}\n", body)
            + _msg("b@x", "Tue Oct  6 09:00:00 2026", "Subject: two\nContent-Length: 5\n", "text\n"))
    records, ctx = _parse(data)
    assert [r.attributes["subject"] for r in records] == ["one", "two"]
    assert records[0].attributes["content_length_spans_from_lines"] is True
    assert records[1].attributes["offset"] == records[0].attributes["size"]
    assert ctx.warnings == []


def test_content_length_that_disagrees_with_the_body_is_tagged():
    data = (_msg("a@x", "Mon Oct  5 09:00:00 2026", "Subject: cut\nContent-Length: 500\n", "short\n")
            + _msg("b@x", "Tue Oct  6 09:00:00 2026", "Subject: ok\n"))
    records, ctx = _parse(data)
    first = records[0]
    assert first.attributes["content_length_mismatch"] is True
    assert first.attributes["content_length"] == 500 and first.attributes["body_length"] == 6
    assert "mail_store_content_length_mismatch" in first.tags
    assert "tail_evidence" not in first.attributes
    assert ctx.warnings[0]["message"] == "Content-Length 500 disagrees with the body (6 bytes)"


def test_truncated_tails():
    in_header = (_msg("a@x", "Mon Oct  5 09:00:00 2026", "Subject: ok\n")
                 + b"From b@x Tue Oct  6 09:00:00 2026\nSubj")
    records, _ = _parse(in_header)
    assert records[1].attributes["tail_evidence"] == "truncated_in_header" and records[1].corrupted
    assert "mail_store_truncated_in_header" in records[1].tags
    short_body = (b"From a@x Mon Oct  5 09:00:00 2026\nSubject: cut\nContent-Length: 900\n\n"
                  b"only the first part\n")
    records, _ = _parse(short_body)
    assert records[0].attributes["tail_evidence"] == "content_length_short"
    assert "mail_store_truncated_body" in records[0].tags and records[0].corrupted
    no_newline = _msg("a@x", "Mon Oct  5 09:00:00 2026", "Subject: x\n")[:-2]
    records, _ = _parse(no_newline)
    assert records[0].attributes["tail_evidence"] == "no_final_newline"
    assert "mail_store_no_final_newline" in records[0].tags and not records[0].corrupted


def test_nul_hole_inside_a_message_is_garbled():
    data = (_msg("a@x", "Mon Oct  5 09:00:00 2026", "Subject: hole\n", "start\n" + "\0" * 64 + "\n")
            + _msg("b@x", "Tue Oct  6 09:00:00 2026", "Subject: fine\n"))
    records, _ = _parse(data)
    assert records[0].attributes["garbled"] is True and records[0].corrupted
    assert records[0].attributes["nul_bytes_offset"] == data.index(b"\0")
    assert "tail_evidence" not in records[0].attributes
    assert "mail_store_nul_bytes" in records[0].tags
    assert not records[1].tags


def test_mozilla_status_expunged_is_recovered_and_imap_deleted_is_flagged():
    data = (_msg("-", "Mon Oct  5 09:00:00 2026", "X-Mozilla-Status: 0009\nX-Mozilla-Status2: 00000000\n"
                 "Subject: gone\n")
            + _msg("-", "Tue Oct  6 09:00:00 2026", "X-Mozilla-Status: 0001\nX-Mozilla-Status2: 00200000\n"
                   "Subject: imap\n"))
    records, _ = _parse(data)
    gone, imap = records
    assert gone.recovered and gone.attributes["mozilla_expunged"] is True
    assert gone.attributes["mozilla_flags"] == ["Read", "Expunged"]
    assert "mail_store_mozilla_expunged" in gone.tags
    assert not imap.recovered and imap.attributes["x_mozilla_status"] == "0x00200001"
    assert "mail_store_mozilla_imap_deleted" in imap.tags


def test_uid_gap_from_first_uid_has_no_not_before_bound():
    data = (_msg("a@x", "Mon Oct  5 09:00:00 2026",
                 "X-IMAPbase: 1700000000 0000000004\nX-UID: 3\nSubject: a\n")
            + _msg("b@x", "Tue Oct  6 09:00:00 2026", "X-UID: 4\nSubject: b\n"))
    records, _ = _parse(data)
    gap = records[-1]
    assert gap.attributes["missing_uids"] == [[1, 2]] and gap.attributes["newest_expunged"] is False
    assert gap.time_bounds == {}


def test_crlf_mbox_and_header_only_tail():
    data = (b"From a@x Mon Oct  5 09:00:00 2026\r\nSubject: crlf\r\nDate: Mon, 5 Oct 2026 09:00:00 +0000\r\n"
            b"\r\nbody\r\n\r\nFrom b@x Tue Oct  6 09:00:00 2026\r\nSubject: last\r\n")
    records, _ = _parse(data)
    assert [r.attributes["subject"] for r in records] == ["crlf", "last"]
    assert records[0].attributes["size"] == data.index(b"From b@x")
    assert records[1].attributes["header_only"] is True and not records[1].corrupted


@pytest.mark.parametrize("text", [
    "Mon, 5 Oct 2026 05:12:37 -0400", "5 Oct 2026 09:00:01 +0000", "Wed, 7 Oct 2026 15:39:55 +0200 (CEST)",
    "Thu, 31 Dec 2026 23:59:59 -1130", "Mon, 5 Oct 2026 05:12:37 GMT", "Mon, 5 Oct 26 05:12:37 +0000",
    "Mon, 31 Feb 2026 05:12:37 +0000", "garbage",
    # odd spacing, one-digit hours, a leap second, hour 24
    "Mon,  5\tOct 2026 05:12:37 -0400", "Mon, 05 Oct 2026 5:12:37 +0130 (x)", "5 Oct 2026 23:59:60 +0000",
    "Mon, 5 Oct 2026 24:00:00 +0000"])
def test_fast_rfc2822_path_equals_the_email_module(text):
    try:
        parsed = email.utils.parsedate_to_datetime(text)
        expected = from_datetime(parsed) if parsed is not None else None
    except (TypeError, ValueError):
        expected = None
    assert parse_rfc2822_date(text) == expected


@pytest.mark.parametrize("text", ["Mon Oct  5 09:12:44 2026", "Sat Aug 27 23:07:49 2005",
                                  "Mon Sep 17 00:00:00 2001", "Tue Oct 13 10:00 2026",
                                  "Mon Oct  5 09:12:44 +0200 2026", "Mon Oct  5 09:12:44 2026 -0500"])
def test_fast_envelope_path_equals_the_general_reader(text):
    assert parse_envelope_date(text) == _parse_envelope_date_slow(text)


# -- the real corpus: no message lost --------------------------------------------------------------
@pytest.mark.parametrize("name", ["git_t5100/sample.mbox", "git_t5100/sample.mboxrd",
                                  "git_t5100/rfc2047-samples.mbox", "git_t5100/quoted-cr.mbox",
                                  "neomutt/banana.mbox", "neomutt/apple.mbox"])
def test_counts_and_offsets_equal_pythons_mailbox(name):
    path = corpus_path(f"mail/{name}")
    records, _ = _parse(path)
    box = mailbox.mbox(str(path), create=False)
    data = path.read_bytes()
    try:
        expected = [(key, box.get_bytes(key, from_=True)) for key in box.keys()]
        assert len(records) == len(expected)
        for record, (key, raw) in zip(records, expected, strict=True):
            assert box._toc[key][0] == record.attributes["offset"]
            message_id = box.get_message(key).get("Message-ID")
            assert record.attributes["message_id"] == (" ".join(message_id.split()) if message_id else None)
            start = record.attributes["offset"]
            assert data[start:start + record.attributes["size"]].startswith(raw)
    finally:
        box.close()


@pytest.mark.parametrize("name", ["neomutt/cherry.mbox", "neomutt/endive.mbox", "neomutt/fig.mbox"])
def test_broken_corpus_files_warn_and_do_not_crash(name):
    records, ctx = _parse(corpus_path(f"mail/{name}"))
    assert records == []
    assert ctx.warnings[0]["message"].startswith("no From_ line found")


def test_sample_mbox_fields():
    records, ctx = _parse(corpus_path("mail/git_t5100/sample.mbox"))
    first = records[0]
    assert first.attributes["envelope_sender"] == "nobody"
    assert first.timestamps[ENVELOPE_DESC] == parse_iso("2001-09-17T00:00:00+00:00")
    assert first.attributes["from"] == "A (zzz) U Thor <a.u.thor@example.com> (Comment)"
    assert ctx.warnings[0] == {"path": "/home/alice/mbox", "bundle_path": None, "offset": 0,
                               "message": "12 bytes before the first From_ line are not a message"}


def test_out_of_order_uids_are_not_reported_missing():
    data = b"".join(_msg("a@x", "Mon Oct  5 09:00:00 2026", f"X-UID: {uid}\nSubject: {uid}\n")
                    for uid in (1, 5, 3, 6))
    records, ctx = _parse(data)
    assert records[-1].attributes["missing_uids"] == [[2, 2], [4, 4]]
    assert ctx.warnings[0]["message"] == "1 X-UID values are not above the previous one"


def test_a_stream_without_a_file_descriptor_is_spooled_not_read_into_memory():
    class Stream:
        def __init__(self, data: bytes) -> None:
            self._inner = io.BytesIO(data)

        def read(self, size: int = -1) -> bytes:
            return self._inner.read(size)

    data = (FIXTURES / "mailx-spool.orig").read_bytes()
    ctx = ParseContext(provenance=Provenance(bundle_path=None, source_path="/x", sha256=None))
    records = list(MboxParser().parse(Stream(data), ctx))
    assert [r.attributes["subject"] for r in records] == [f"Report {n}" for n in range(1, 5)]


# -- long scans of a mapped file -------------------------------------------------------------------
def test_windowed_find_matches_find_across_window_boundaries(tmp_path):
    """Every needle straddling a window boundary, at every shift, is found where ``find`` finds it."""
    page = mmap.PAGESIZE
    for needle in (b"\nFrom ", b"\n", b"\0" * 16):
        for shift in range(-len(needle), 2):
            data = bytearray(b"x" * (5 * page))
            at = 3 * page + shift
            data[at:at + len(needle)] = needle
            path = tmp_path / "f"
            path.write_bytes(bytes(data))
            with path.open("rb") as handle, mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ) as buf:
                for start in (0, 1, page - 1, 3 * page - 7):
                    for end in (len(data), at + len(needle), at + len(needle) - 1):
                        assert _find(buf, needle, start, end, window=page) == buf.find(needle, start, end)


_PEAK_RSS = """
import resource, sys
sys.path.insert(0, sys.argv[2])
from parsers.base import ParseContext
from parsers.mbox import MboxParser
from parsers.record import Provenance
ctx = ParseContext(provenance=Provenance(bundle_path=None, source_path="/var/mail/alice", sha256=None))
with open(sys.argv[1], "rb") as handle:
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    records = list(MboxParser().parse(handle, ctx))
print(len(records), (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) >> 10)
"""


@pytest.mark.skipif(not sys.platform.startswith("linux") or not hasattr(mmap, "MADV_DONTNEED"),
                    reason="releasing mapped pages (MADV_DONTNEED) is tested on Linux")
def test_huge_sparse_message_keeps_resident_memory_flat(tmp_path):
    """A 1 GiB message (a sparse hole) is scanned window by window: the peak RSS of the process
    grows by far less than the file (its pages used to stay mapped, ~1 GiB)."""
    path = tmp_path / "alice"
    tail = b"\nFrom carol@example.org Mon Oct 12 14:41:01 2026\nSubject: after\n\nbody\n"
    with path.open("wb") as out:
        out.write(b"From bob@example.org Mon Oct 12 14:40:01 2026\nSubject: hi\n\nbody\n")
        out.seek((1 << 30) - len(tail))
        out.write(tail)
    if path.stat().st_blocks * 512 > 64 << 20:
        pytest.skip("the temporary file system does not keep sparse files sparse")
    root = str(Path(__file__).resolve().parents[2])
    done = subprocess.run([sys.executable, "-c", _PEAK_RSS, str(path), root], capture_output=True,
                          text=True, check=True)
    records, grown_mib = map(int, done.stdout.split())
    assert records == 2
    assert grown_mib < 256, f"peak RSS grew by {grown_mib} MiB for a 1 GiB file"


# -- one warning per message: the first MAX_WARNINGS are kept, the rest counted ---------------------
def test_a_warning_per_message_keeps_the_first_thousand_and_counts_the_rest():
    messages = [b"From nobody\nSubject: %d\n\nbody\n" % n for n in range(MAX_WARNINGS + 1500)]
    records, ctx = _parse(b"".join(messages))
    offsets = [sum(map(len, messages[:n])) for n in range(len(messages))]
    assert len(records) == len(messages)
    warnings = ctx.warnings
    assert len(warnings) == MAX_WARNINGS + 1
    assert [w["offset"] for w in warnings[:-1]] == offsets[:MAX_WARNINGS]
    assert {w["message"] for w in warnings[:-1]} == {"From_ line without a readable date"}
    assert warnings[-1] == {
        "path": "/home/alice/mbox", "bundle_path": None, "offset": offsets[MAX_WARNINGS],
        "message": f"1500 more warnings like these were not kept (only the first {MAX_WARNINGS} of a "
                   f"file are); the last one at offset {offsets[-1]}: From_ line without a readable date"}
    assert ctx.warnings == warnings  # reading them again gives the same list, one summary


def test_warnings_past_the_limit_do_not_grow_the_heap():
    ctx = ParseContext(provenance=Provenance(bundle_path="files/x", source_path="/x", sha256=None))
    for n in range(MAX_WARNINGS):
        ctx.warn(f"line {n} unreadable", n)
    tracemalloc.start()
    try:
        for n in range(MAX_WARNINGS, 200_000):
            ctx.warn(f"line {n} unreadable", n)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 64 << 10, f"heap peak {peak} bytes for 199,000 warnings not kept"
    assert len(ctx.warnings) == MAX_WARNINGS + 1
    assert ctx.warnings[-1]["message"].startswith("199000 more warnings like these were not kept")
    assert ctx.warnings[-1]["message"].endswith("the last one at offset 199999: line 199999 unreadable")


# -- fast paths give what the general code gives ----------------------------------------------------
_HEADER_BLOCKS = [
    b"Date: Mon, 5 Oct 2026 05:12:37 -0400\nSUBJECT: upper\nsubject: second\nX-IMAPbase: 17 42\n"
    b"x-imap: 1 2\nX-Mozilla-Status2: 00200000\nx-MOZILLA-status: 0009\nReceived-SPF: pass\n"
    b"Received: from a\n\tby b; Mon, 5 Oct 2026 05:12:39 -0400\n"
    b"received : from c; 5 Oct 2026 05:12:38 +0000\n"
    b"RECEIVED:\tfrom d\n  by e; Mon, 5 Oct 2026 05:12:36 -0400\nDate-Foo: not a date\nXDate: no\n"
    b"Message-Id:  <a@b>  \nTo:\n\tfolded only\nStatus : RO\n\n",
    b"From: caf\xe9 <x@y>\nSubject: latin-1\nReceived: one\nReceived: two\n\n",
    b"Subject: crlf\r\nTo: a\r\n\tb\r\nReceived: x\r\nReceived: y; Mon, 5 Oct 2026 05:12:37 -0400\r\n\r\n",
    b"no header at all\n", b"",
]


@pytest.mark.parametrize("block", _HEADER_BLOCKS)
def test_header_reading_equals_a_case_insensitive_alternation(block):
    """The trie pattern and the C-level table give what the plain IGNORECASE alternation gives."""
    import re

    from parsers.mbox import WANTED_HEADERS, _header_fields, parse_headers

    plain = re.compile(rb"\n(" + b"|".join(re.escape(h.encode()) for h in WANTED_HEADERS)
                       + rb")[ \t]*:[ \t]*([^\r\n]*(?:\r?\n[ \t][^\r\n]*)*)", re.IGNORECASE)
    expected: dict[str, list[str]] = {}
    for name, value in plain.findall(b"\n" + block):
        try:
            text = value.decode("utf-8")
        except UnicodeDecodeError:
            text = value.decode("latin-1")
        expected.setdefault(name.decode().lower(), []).append(text)
    assert parse_headers(block) == expected
    first, received, last = _header_fields(block)
    assert first == {name: values[0] for name, values in expected.items()}
    assert received == len(expected.get("received", ()))
    assert last == (expected["received"][-1] if "received" in expected else None)


@pytest.mark.parametrize("value", ["plain", "", " a  b ", "a\tb", "a\n b", "a\xa0b", "a\u2003b", "a\x1cb",
                                   "a\x85b", "tab\t", "ok value", "é à"])
def test_squeeze_equals_split_and_join(value):
    from parsers.mbox import _squeeze

    assert _squeeze(value) == " ".join(value.split())


@pytest.mark.parametrize("value", [
    "=?UTF-8?B?UsOpdW5pb24gbm90ZXM=?=", "=?utf-8?b?w6k=?=", "=?Utf-8?b?YWJj?=", "=?utf-8?B?/w==?=",
    "=?utf-8?b?w6k?=", "=?utf-8?b??=", "=?iso-8859-1?b?6Q==?=", "=?utf-8?q?caf=C3=A9?=",
    "Re: =?utf-8?b?w6k=?=", "=?utf-8?b?w6k=?= =?utf-8?b?w6k=?="])
def test_single_utf8_word_fast_path_equals_the_email_module(value):
    import email.header

    from parsers.mbox import decode_header_value

    try:
        expected = str(email.header.make_header(email.header.decode_header(value)))
    except (UnicodeError, ValueError, LookupError):
        expected = value
    assert decode_header_value(value) == expected
