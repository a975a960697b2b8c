"""Prefetch parser: real files of every format (corpus), libscca quirks, tagging rules."""

from __future__ import annotations

import io
from pathlib import Path
from typing import ClassVar

import pytest

from collector.timeutil import from_filetime
from parsers import prefetch
from parsers.base import ParseContext
from parsers.prefetch import PrefetchParser, executable_category, is_mail_store_path
from parsers.record import Provenance
from parsers.rules import default_engine
from tests.conftest import corpus_path


def _ctx(path: str = "/Windows/Prefetch/X.pf") -> ParseContext:
    return ParseContext(provenance=Provenance(bundle_path=None, source_path=path, sha256=None))


def _parse(path: Path) -> tuple[list, ParseContext]:
    ctx = _ctx(str(path))
    with path.open("rb") as handle:
        records = list(PrefetchParser().parse(handle, ctx))
    return records, ctx


def test_format_17_single_run_slot() -> None:
    # Formats 17/23 hold one run time; libscca raises for slot 1 and the parser must stop there.
    records, ctx = _parse(corpus_path("prefetch/plaso/CMD.EXE-087B4001.pf"))
    assert ctx.warnings == []
    (record,) = records
    assert record.data_type == "windows:prefetch:execution"
    assert record.timestamps == {"Last Run Time": 1362910309281250}  # 2013-03-10 10:11:49.28125
    attrs = record.attributes
    assert attrs["executable"] == "CMD.EXE"
    assert attrs["prefetch_hash"] == "087B4001"
    assert attrs["format_version"] == 17
    assert attrs["run_count"] == 2
    assert attrs["executable_path"] == "\\DEVICE\\HARDDISKVOLUME1\\WINDOWS\\SYSTEM32\\CMD.EXE"
    assert attrs["referenced_files_count"] == 33
    assert attrs["volumes"] == [{"device_path": "\\DEVICE\\HARDDISKVOLUME1", "serial_number": "24CB074B",
                                 "creation_time": "2013-03-10T10:19:46.234375+00:00"}]
    assert attrs["executable_category"] == "other"
    assert attrs["references_mail_store"] is False


def test_format_23_vista() -> None:
    records, ctx = _parse(corpus_path("prefetch/ez_Vista/CMD.EXE-89305D47.pf"))
    assert ctx.warnings == []
    assert records[0].attributes["format_version"] == 23
    assert list(records[0].timestamps) == ["Last Run Time"]
    assert records[0].attributes["run_count"] == 3


def test_format_26_eight_run_times() -> None:
    records, _ = _parse(corpus_path("prefetch/ez_Win2012/MSCORSVW.EXE-57D17DAF.pf"))
    (record,) = records
    assert record.attributes["format_version"] == 26
    assert list(record.timestamps) == ["Last Run Time"] + [f"Previous Run Time {i}" for i in range(1, 8)]
    assert record.timestamps["Last Run Time"] == from_filetime(130974537698593231)
    assert record.timestamps["Previous Run Time 7"] == from_filetime(130974537279061982)


def test_format_30_mam_compressed_skips_unused_slots() -> None:
    records, ctx = _parse(corpus_path("prefetch/museum_Win11_RathbunVM_v30/POWERSHELL.EXE-CA1AE517.pf"))
    assert ctx.warnings == []
    (record,) = records
    assert record.attributes["format_version"] == 30
    assert record.timestamps == {"Last Run Time": 1644088368527777}  # 2022-02-05 19:12:48.527777
    assert record.attributes["executable_category"] == "powershell"
    assert record.attributes["volume_serial_numbers"] == ["180B1E67"]


def test_format_31() -> None:
    records, _ = _parse(corpus_path("prefetch/museum_Win11_SutharPC_v31/CMD.EXE-8E75B5BB.pf"))
    (record,) = records
    assert record.attributes["format_version"] == 31
    assert record.attributes["run_count"] == 40
    assert len(record.timestamps) == 8
    assert record.timestamps["Last Run Time"] == from_filetime(133964067826298829)


def test_not_a_prefetch_file_is_a_warning() -> None:
    records, ctx = _parse(corpus_path("prefetch/ez_Bad/notAPrefetch.pf"))
    assert records == []
    assert len(ctx.warnings) == 1
    assert "not a prefetch file" in ctx.warnings[0]["message"]
    assert ctx.warnings[0]["offset"] == 0


def test_zero_filled_and_empty_files() -> None:
    ctx = _ctx()
    assert list(PrefetchParser().parse(io.BytesIO(b"\x00" * 8192), ctx)) == []
    assert "zero-filled" in ctx.warnings[0]["message"]
    ctx = _ctx()
    assert list(PrefetchParser().parse(io.BytesIO(b""), ctx)) == []
    assert "empty" in ctx.warnings[0]["message"]


def test_sniff_by_content_and_name() -> None:
    assert PrefetchParser.sniff(b"\x11\x00\x00\x00SCCA\x0f\x00\x00\x00", "whatever.bin")
    assert PrefetchParser.sniff(b"MAM\x04\x00\x00", "x")
    assert PrefetchParser.sniff(b"garbage", "X.PF")
    assert not PrefetchParser.sniff(b"garbage", "notes.txt")
    head = corpus_path("prefetch/velociraptor/VELOCIRAPTOR.EXE-DB95245D.pf").read_bytes()[:4096]
    assert PrefetchParser.sniff(head, "renamed.bin")


def test_classification_helpers() -> None:
    assert executable_category("wevtutil.exe") == "log_clearing"
    assert executable_category("SDELETE64.EXE") == "secure_delete"
    assert executable_category("HxOutlook.exe") == "mail_client"
    assert executable_category("NOTEPAD.EXE") == "other"
    assert is_mail_store_path("\\VOLUME{01}\\USERS\\BOB\\APPDATA\\LOCAL\\COMMS\\UNISTORE\\DATA\\3\\X.DAT")
    assert is_mail_store_path("\\VOLUME{01}\\USERS\\BOB\\DOCUMENTS\\OUTLOOK FILES\\ARCHIVE.PST")
    assert is_mail_store_path("\\VOLUME{01}\\USERS\\BOB\\APPDATA\\ROAMING\\THUNDERBIRD\\PROFILES\\A\\X")
    assert not is_mail_store_path("\\VOLUME{01}\\WINDOWS\\SYSTEM32\\NTDLL.DLL")


class _FakeVolume:
    device_path = "\\VOLUME{01d5f51ea48267ca-96a49c74}"
    serial_number = 0x96A49C74

    def get_creation_time_as_integer(self) -> int:
        return 132281276035131338


class _FakeScca:
    """Stands in for pyscca.file: a format-23 SDELETE64 run that touched an OST."""

    format_version = 23
    executable_filename = "SDELETE64.EXE"
    number_of_volumes = 1
    names: ClassVar[list[str]] = [
        "\\VOLUME{01d5f51ea48267ca-96a49c74}\\WINDOWS\\SYSTEM32\\NTDLL.DLL",
        "\\VOLUME{01d5f51ea48267ca-96a49c74}\\TOOLS\\SDELETE64.EXE",
        "\\VOLUME{01d5f51ea48267ca-96a49c74}\\USERS\\BOB\\APPDATA\\LOCAL\\MICROSOFT\\OUTLOOK\\BOB.OST"]
    number_of_filenames = len(names)

    def open_file_object(self, fh) -> None:
        pass

    def close(self) -> None:
        pass

    def get_format_version(self) -> int:
        return 23

    def get_prefetch_hash(self) -> int:
        return 0x1A2B3C4D

    def get_run_count(self) -> int:
        return 1

    def get_last_run_time_as_integer(self, index: int) -> int:
        if index >= 1:
            raise OSError("pyscca_file_get_last_run_time_as_integer: invalid index")
        return 133964067826298829

    def get_volume_information(self, index: int) -> _FakeVolume:
        return _FakeVolume()

    def get_filename(self, index: int) -> str:
        return self.names[index]


def test_secure_delete_touching_mail_store_is_tagged(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(prefetch.pyscca, "file", _FakeScca)
    ctx = _ctx("/Windows/Prefetch/SDELETE64.EXE-1A2B3C4D.pf")
    (record,) = PrefetchParser().parse(io.BytesIO(b"\x17\x00\x00\x00SCCA" + b"\x01" * 100), ctx)
    assert ctx.warnings == []
    assert record.attributes["mail_store_references"] == [_FakeScca.names[2]]
    assert record.attributes["executable_path"] == _FakeScca.names[1]
    tagged = default_engine().tag(record)
    assert {"prefetch_secure_delete_executed", "prefetch_secure_delete_mail_store", "T1070.004",
            "T1070.008"} <= set(tagged.tags)
    assert tagged.attributes["severity"] == "high"


def test_powershell_execution_is_informational() -> None:
    records, _ = _parse(corpus_path("prefetch/museum_Win11_RathbunVM_v30/POWERSHELL.EXE-CA1AE517.pf"))
    tagged = default_engine().tag(records[0])
    assert "prefetch_powershell_executed" in tagged.tags
    assert "prefetch_powershell_mail_store" not in tagged.tags


def test_referenced_file_list_is_capped(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(prefetch, "MAX_REFERENCED_CHARS", 200)
    records, _ = _parse(corpus_path("prefetch/plaso/BYTECODEGENERATOR.EXE-C1E9BCE6.pf"))
    attrs = records[0].attributes
    assert attrs["referenced_files_count"] == 1085
    assert attrs["referenced_files_truncated"] is True
    assert sum(len(n) + 1 for n in attrs["referenced_files"]) <= 200
