"""$MFT records not in use, collected from real NTFS images through the real collector.

Ground truth: images/windows-suspect.scenario.json (read back from the image with TSK), `istat`
from The Sleuth Kit where it is installed, and values read with `istat` once and written here for
the corpus image. Damaged tables are the real windows-suspect $MFT with single fields changed.
"""

from __future__ import annotations

import io
import json
import re
import shutil
import struct
import subprocess
from pathlib import Path

import pytest

from collector.collect import collect
from collector.opener import open_source
from collector.timeutil import parse_iso
from parsers.base import ParseContext
from parsers.mft import FILE_NAME_SUFFIX, MftParser, classify, spec_folder
from parsers.record import Provenance, Record
from parsers.rules import default_engine
from tests.conftest import IMAGES, corpus_path

WINDOWS = IMAGES / "windows-suspect.raw"
SCENARIO = json.loads((IMAGES / "windows-suspect.scenario.json").read_text(encoding="utf-8"))
PARTITION_SECTOR = SCENARIO["partition_offset_bytes"] // 512
VELOCIRAPTOR = "images/velociraptor/test.ntfs.dd.E01"
QCOW_VOLUME = "images/dfvfs/windows_volume.qcow2"
_SI = {"crtime": "Creation Time", "mtime": "Content Modification Time",
       "atime": "Last Access Time", "ctime": "Metadata Modification Time"}


def windows_suspect_mft() -> bytes:
    """The $MFT of images/windows-suspect.raw read with pytsk3 (a seed for tests/fuzz)."""
    import pytsk3

    fs = pytsk3.FS_Info(pytsk3.Img_Info(str(WINDOWS)), offset=SCENARIO["partition_offset_bytes"])
    handle = fs.open_meta(inode=0)
    return handle.read_random(0, handle.info.meta.size)


def _collect_mft(image: Path, bundle: Path) -> tuple[bytes, dict]:
    """The $MFT as the collector copies it into a bundle, and its manifest line."""
    source = open_source(str(image))
    try:
        collect(source, bundle, artifacts=["NtfsMasterFileTable"], quiet=True)
    finally:
        source.close()
    lines = [json.loads(line) for line in (bundle / "manifest.jsonl").read_text().splitlines()]
    line = next(x for x in lines if x["source_path"] == "/$MFT")
    assert line["outcome"] == "collected"
    return (bundle / line["bundle_path"]).read_bytes(), line


@pytest.fixture(scope="module")
def windows_mft(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    data, line = _collect_mft(WINDOWS, tmp_path_factory.mktemp("mft") / "b")
    assert line["parsers"] == ["mft"] and len(data) == line["size"] == 121 * 1024
    assert data == windows_suspect_mft()  # the collector's copy is TSK's bytes
    return data


def _ctx() -> ParseContext:
    return ParseContext(provenance=Provenance(bundle_path="files/p1/$MFT", source_path="/$MFT",
                                              sha256=None, filesystem="p1"), host="WS-DAVE01")


def _parse(data: bytes, parser: MftParser | None = None) -> tuple[list[Record], list[dict]]:
    ctx = _ctx()
    records = list((parser or MftParser()).parse(io.BytesIO(data), ctx))
    return records, ctx.warnings


def _every_path(path: str) -> tuple[None, str]:
    return None, "other"


def _micros(text: str) -> int:
    """µs of an istat time (``2026-09-02 10:15:02.766471900 (UTC)``: nanoseconds, truncated)."""
    day, clock = text.split()[:2]
    seconds, _, fraction = clock.partition(".")
    return parse_iso(f"{day}T{seconds}+00:00") + int((fraction + "000000")[:6])


def _istat(image: Path, entry: int, *options: str) -> dict:
    """SI and FN times, name, parent, sequence and $DATA size as TSK's istat prints them."""
    text = subprocess.run(["istat", *options, str(image), str(entry)], check=True,
                          capture_output=True, text=True).stdout
    si, fn = text.split("$STANDARD_INFORMATION Attribute Values:")[1].split("$FILE_NAME Attribute Values:")
    fn = fn.split("Attributes:")[0]
    labels = {"Created": "Creation Time", "File Modified": "Content Modification Time",
              "Accessed": "Last Access Time", "MFT Modified": "Metadata Modification Time"}
    times = {}
    for block, suffix in ((si, ""), (fn, FILE_NAME_SUFFIX)):
        for label, desc in labels.items():
            times[desc + suffix] = _micros(re.search(rf"^{label}:\s+(.+)$", block, re.M).group(1))
    parent = re.search(r"Parent MFT Entry: (\d+)\s+Sequence: (\d+)", fn)
    size = re.search(r"Type: \$DATA \(128-\d+\)\s+Name: N/A\s+\S+\s+size: (\d+)", text)
    return {"times": times, "name": re.search(r"^Name: (.+)$", fn, re.M).group(1),
            "sequence": int(re.search(r"Sequence: (\d+)", text).group(1)),
            "parent": (int(parent.group(1)), int(parent.group(2))),
            "size": int(size.group(1)) if size else None}


# -- the Windows reference image ------------------------------------------------------------------
def test_deleted_mail_files_and_folders_of_windows_suspect(windows_mft: bytes) -> None:
    records, warnings = _parse(windows_mft)
    assert warnings == []
    by_entry = {r.attributes["mft_entry"]: r for r in records}
    deleted_dirs = {d["mft_entry"]: d for d in SCENARIO["deleted_dirs"]}
    deleted_files = {f["mft_entry"]: f for f in SCENARIO["deleted_files"]}
    # Only records not in use: the live Inbox (115) and Inbox.msf (116) share the deleted names.
    assert sorted(by_entry) == sorted([*deleted_dirs, *deleted_files]) == [86, 87, 88, 94, 106, 107,
                                                                          112, 113]
    for entry, item in deleted_files.items():
        record = by_entry[entry]
        attributes = record.attributes
        assert record.data_type == "fs:stat:ntfs" and record.parser == "mft"
        assert attributes["path"] == item["path"]
        assert attributes["file_name"] == item["path"].rsplit("/", 1)[1]
        assert (attributes["mft_sequence"], attributes["size"], attributes["kind"]) == \
            (item["sequence"], item["size"], "file")
        assert (attributes["deleted"], attributes["in_use"], attributes["orphan"]) == (True, False, False)
        for key, desc in _SI.items():
            assert record.timestamps[desc] == parse_iso(item[key]), (entry, desc)
        assert record.provenance.offset == entry * 1024 and record.provenance.source_path == "/$MFT"
        assert record.recovered and not record.corrupted and record.host == "WS-DAVE01"
        expected = "ThunderbirdMail" if "/Thunderbird/" in item["path"] else "WindowsMailUnistore"
        assert (attributes["artifact"], attributes["category"]) == (expected, "mail")
        tags = default_engine().tag(record).tags
        assert "fs_mail_file_deleted" in tags and "T1070.008" in tags
    for entry, item in deleted_dirs.items():
        record = by_entry[entry]
        assert record.attributes["path"] == item["path"] and record.attributes["kind"] == "dir"
        assert "size" not in record.attributes and record.attributes["mft_sequence"] == 2
        assert "fs_mail_file_deleted" in default_engine().tag(record).tags
    inbox = by_entry[106]  # istat 106: $FILE_NAME times equal to $STANDARD_INFORMATION's here
    assert inbox.attributes["parent_mft_entry"] == 93 and inbox.attributes["parent_mft_sequence"] == 1
    assert inbox.attributes["file_attributes"] == "0x00000020"
    assert inbox.timestamps["Creation Time ($FILE_NAME)"] == parse_iso("2026-09-02T10:15:02+00:00")
    assert inbox.timestamps["Last Access Time ($FILE_NAME)"] == parse_iso("2026-10-20T09:31:40+00:00")
    assert inbox.message == (f"{inbox.attributes['path']} (deleted file, 2023 bytes, MFT entry 106-2)")
    assert "Deletion" not in " ".join(inbox.timestamps)  # an MFT record holds no deletion time


@pytest.mark.skipif(shutil.which("istat") is None, reason="istat (Debian package sleuthkit) not installed")
def test_windows_suspect_records_agree_with_istat(windows_mft: bytes) -> None:
    records, _ = _parse(windows_mft)
    for record in records:
        truth = _istat(WINDOWS, record.attributes["mft_entry"], "-o", str(PARTITION_SECTOR))
        assert record.timestamps == truth["times"]
        assert record.attributes["file_name"] == truth["name"]
        assert record.attributes["mft_sequence"] == truth["sequence"]
        parent = (record.attributes["parent_mft_entry"], record.attributes["parent_mft_sequence"])
        assert parent == truth["parent"]
        assert record.attributes.get("size") == truth["size"]


def test_same_bytes_same_records(windows_mft: bytes) -> None:
    first, _ = _parse(windows_mft)
    again, _ = _parse(windows_mft)
    assert [r.to_dict() for r in first] == [r.to_dict() for r in again]


# -- corpus images --------------------------------------------------------------------------------
@pytest.mark.parametrize("relative", [VELOCIRAPTOR, QCOW_VOLUME])
def test_corpus_mft_without_deleted_artifacts(relative: str, tmp_path: Path) -> None:
    data, _ = _collect_mft(corpus_path(relative), tmp_path / "b")
    assert _parse(data) == ([], [])
    everything, warnings = _parse(data, MftParser(relevant=_every_path))
    assert everything == [] and warnings == []  # neither volume has a record that is not in use


def _free(data: bytes, entry: int, size: int = 1024) -> bytes:
    """``data`` with one record freed the way NTFS frees it: in-use flag off, sequence + 1."""
    out = bytearray(data)
    header = entry * size
    sequence = struct.unpack_from("<H", out, header + 0x10)[0]
    flags = struct.unpack_from("<H", out, header + 0x16)[0]
    struct.pack_into("<H", out, header + 0x10, sequence + 1)
    struct.pack_into("<H", out, header + 0x16, flags & ~1)
    return bytes(out)


def test_freed_record_of_corpus_image_has_istat_values(tmp_path: Path) -> None:
    image = corpus_path(VELOCIRAPTOR)
    data, _ = _collect_mft(image, tmp_path / "b")
    freed = _free(data, 46)  # Folder A/Folder B/Hello world text document.txt (+ stream goodbye.txt)
    assert _parse(freed) == ([], [])  # not under an artifact folder
    [record], warnings = _parse(freed, MftParser(relevant=_every_path))
    assert warnings == []
    # Read with `istat -i ewf test.ntfs.dd.E01 46` (sleuthkit 4.11.1).
    created, written = "2018-09-24T07:55:29.766471+00:00", "2018-09-24T07:56:35.313556+00:00"
    assert record.timestamps == {
        "Creation Time": parse_iso(created), "Content Modification Time": parse_iso(written),
        "Last Access Time": parse_iso(written), "Metadata Modification Time": parse_iso(written),
        **{desc + FILE_NAME_SUFFIX: parse_iso(created) for desc in _SI.values()}}
    assert record.attributes == {
        "path": "/Folder A/Folder B/Hello world text document.txt",
        "file_name": "Hello world text document.txt", "deleted": True, "in_use": False,
        "kind": "file", "size": 12, "mft_entry": 46, "mft_sequence": 2, "parent_mft_entry": 45,
        "parent_mft_sequence": 1, "orphan": False, "category": "other",
        "file_attributes": "0x00000820", "usn": 0}
    if shutil.which("istat"):
        truth = _istat(image, 46, "-i", "ewf")
        assert record.timestamps == truth["times"] and record.attributes["size"] == truth["size"]


# -- damaged tables -------------------------------------------------------------------------------
def _file_name_parent(data: bytearray, entry: int) -> int:
    """Offset of the parent reference in the first $FILE_NAME of a record."""
    base = entry * 1024
    offset = struct.unpack_from("<H", data, base + 0x14)[0]
    while struct.unpack_from("<I", data, base + offset)[0] != 0x30:
        offset += struct.unpack_from("<I", data, base + offset + 4)[0]
    return base + offset + struct.unpack_from("<H", data, base + offset + 0x14)[0]


def test_parent_loop_is_a_warning_not_a_crash(windows_mft: bytes) -> None:
    data = bytearray(windows_mft)
    struct.pack_into("<Q", data, _file_name_parent(data, 86), (1 << 48) | 88)  # data/3 inside itself
    records, warnings = _parse(bytes(data))
    assert sorted(r.attributes["mft_entry"] for r in records) == [94, 106, 107]  # outside the loop
    looped = [w for w in warnings if "loop" in w["message"]]
    assert [w["offset"] for w in looped] == [86 * 1024, 87 * 1024, 88 * 1024, 112 * 1024, 113 * 1024]
    everything, _ = _parse(bytes(data), MftParser(relevant=_every_path))
    orphan = next(r for r in everything if r.attributes["mft_entry"] == 112)
    assert orphan.attributes["path"] == "/$Orphan/00000003.dat" and orphan.corrupted


def test_reused_parent_record_gives_an_orphan_not_a_wrong_path(windows_mft: bytes) -> None:
    data = bytearray(windows_mft)
    # 113's folder reference now names entry 85 with sequence 9: that record holds another folder.
    struct.pack_into("<Q", data, _file_name_parent(data, 113), (9 << 48) | 85)
    records, warnings = _parse(bytes(data))
    assert warnings == [] and 113 not in {r.attributes["mft_entry"] for r in records}
    everything, _ = _parse(bytes(data), MftParser(relevant=_every_path))
    orphan = next(r for r in everything if r.attributes["mft_entry"] == 113)
    assert orphan.attributes["path"] == "/$Orphan/00000004.dat" and orphan.attributes["orphan"] is True
    assert orphan.attributes["parent_mft_entry"] == 85 and orphan.attributes["parent_mft_sequence"] == 9


def test_unreadable_record_and_partial_tail_are_warnings(windows_mft: bytes) -> None:
    data = bytearray(windows_mft)
    struct.pack_into("<H", data, 107 * 1024 + 0x14, 0x3FF)  # first attribute beyond the record
    cut = bytes(data[:112 * 1024 + 700])  # ends inside record 112
    records, warnings = _parse(cut)
    assert sorted(r.attributes["mft_entry"] for r in records) == [86, 87, 88, 94, 106]
    assert [(w["offset"], w["message"].split(":")[0]) for w in warnings] == [
        (112 * 1024, "$MFT ends with a partial 700-byte record"), (107 * 1024, "MFT entry 107")]
    assert all(w["path"] == "/$MFT" for w in warnings)


def test_many_damaged_records_give_a_bounded_number_of_warnings(windows_mft: bytes) -> None:
    data = bytearray(windows_mft)
    for entry in range(30, 60):  # free records (sequence 1, not in use): make their headers lie
        struct.pack_into("<H", data, entry * 1024 + 0x14, 0x3FF)
    records, warnings = _parse(bytes(data))
    assert len(records) == 8 and len(warnings) == 11
    assert warnings[-1]["message"] == "30 damaged MFT entries in all (the first 10 are listed)"


@pytest.mark.parametrize("data", [b"", b"FILE", b"\x00" * 4096, b"not an mft at all" * 100])
def test_not_an_mft(data: bytes) -> None:
    records, warnings = _parse(data)
    assert records == [] and len(warnings) == 1
    assert warnings[0]["offset"] == 0 and warnings[0]["message"].startswith("not a readable $MFT")


def test_sniff(windows_mft: bytes) -> None:
    assert MftParser.sniff(windows_mft[:4096], "mft.bin")
    assert MftParser.sniff(b"", "$MFT")
    assert not MftParser.sniff(b"From a@b Mon Oct  5 09:12:44 2026\n", "spool")


# -- where a deleted record is evidence -----------------------------------------------------------
@pytest.mark.parametrize(("path", "expected"), [
    ("/Users/bob/AppData/Local/Comms/Unistore/data/3", ("WindowsMailUnistore", "mail")),
    ("/users/BOB/appdata/local/comms/unistore", ("WindowsMailUnistore", "mail")),
    ("/D/Profiles/bob/AppData/Local/Comms/UnistoreDB/store.vol", ("WindowsMailUnistore", "mail")),
    ("/Users/bob/Documents/Outlook Files/archive.pst", ("OutlookDataFiles", "mail")),
    ("/Users/bob/AppData/Roaming/Thunderbird/Profiles/x.default/ImapMail/imap.example.org/INBOX",
     ("ThunderbirdMail", "mail")),
    ("/Windows/System32/winevt/Logs/Security.evtx", ("WindowsEventLogExchangeManagement", "eventlog")),
    ("/Windows/ServiceProfiles/NetworkService/AppData/Roaming/Microsoft/Windows/PowerShell/PSReadLine/"
     "ConsoleHost_history.txt", ("PowerShellPSReadLineHistory", "shell")),
    ("/Windows/Prefetch/CMD.EXE-4A81B364.pf", ("WindowsPrefetch", "execution")),
    ("/Users/bob/Desktop/old.pst", (None, "mail")),  # the rules' mail_store path class
    ("/Users/bob/AppData/Roaming/Thunderbird/Profiles/x.default", (None, "mail")),
    ("/Users/bob/Desktop/notes.txt", None),
    ("/Users/bob/AppData/Local/Comms", None),
    ("/Windows/System32/winevt", None),
    ("/$Extend/$UsnJrnl", None),  # file-system metadata specs are not artifact folders
])
def test_classify(path: str, expected: tuple[str | None, str] | None) -> None:
    result = classify(path)
    if expected is None or expected[0] is None or expected[1] != "eventlog":
        assert result == expected
    else:  # the EVTX folder is shared by several specs: any of them, category eventlog
        assert result is not None and result[1] == "eventlog"


def test_spec_folder() -> None:
    assert spec_folder("%%users.homedir%%/AppData/Local/Comms/Unistore/**") == \
        "%%users.homedir%%/AppData/Local/Comms/Unistore"
    exchange = "/Program Files/Microsoft/Exchange Server/V15/Logging/CmdletInfra"
    assert spec_folder(f"{exchange}/**/Cmdlet/*.LOG") == exchange
    assert spec_folder("%%users.homedir%%/mbox") is None and spec_folder("/$MFT") is None


@pytest.mark.parametrize(("category", "rule", "technique"), [
    ("eventlog", "mft_event_log_deleted", "T1070.001"),
    ("shell", "mft_shell_history_deleted", "T1070.003"),
    ("execution", "mft_prefetch_deleted", "T1070.004"),
    ("mail", "fs_mail_file_deleted", "T1070.008"),
])
def test_rules_by_category(windows_mft: bytes, category: str, rule: str, technique: str) -> None:
    records, _ = _parse(windows_mft, MftParser(relevant=lambda path: ("Spec", category)))
    tagged = default_engine().tag(records[0])
    assert rule in tagged.tags and technique in tagged.tags
