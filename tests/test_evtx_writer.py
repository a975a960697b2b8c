"""The EVTX writer's files read the same in the ``evtx`` package, python-evtx and libevtx.

Three independent readers (Rust, pure Python, C) agreeing on every record of a file we wrote is
the evidence that the fixtures are real EVTX, not something only our own parser accepts. The
file-format checks recompute the CRC32s and walk the chunk tables the way Windows lays them out.
"""

from __future__ import annotations

import io
import json
import re
import struct
import xml.etree.ElementTree as ET
import zlib
from datetime import UTC, datetime, timedelta
from pathlib import Path

import evtx
import pytest
from Evtx import Evtx as PyEvtx

from tests.conftest import corpus_path
from tests.fixtures.evtx_scenarios import (
    CHANNEL_FILES,
    EXCHANGE,
    PS_OPERATIONAL,
    SECURITY,
    SYSMON,
    SYSTEM,
    WINDOWS_POWERSHELL,
    write_mail_clearing_logs,
)
from tests.fixtures.evtx_writer import (
    CHUNK_SIZE,
    FILE_HEADER_SIZE,
    EvtxWriter,
    UserData,
    boolean,
    filetime,
    guid,
    hex32,
    hex64,
    int32,
    name_hash,
    sid,
    size_t,
    uint8,
    uint16,
    uint64,
)

_FILETIME_EPOCH = datetime(1601, 1, 1, tzinfo=UTC)
_UNIX_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_GUID = re.compile(r"\{?([0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12})\}?")


def _libevtx():
    return pytest.importorskip(
        "pyevtx", reason="libevtx-python is not installed (pip install libevtx-python): cross-check skipped"
    )


# --------------------------------------------------------------------------------------------
# Readers, reduced to one shape: record id, µs time, event id, channel, computer, user, fields
# --------------------------------------------------------------------------------------------


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def _from_xml(text: str) -> dict:
    """Event XML (any of the three readers) -> the fields the tests compare."""
    root = ET.fromstring(text.encode("utf-8") if text.startswith("<?xml") else text)
    system = next(child for child in root if _local(child.tag) == "System")
    values = {_local(child.tag): child for child in system}
    security = values["Security"].attrib.get("UserID") or None
    out = {
        "record_id": int(values["EventRecordID"].text),
        "event_id": int(values["EventID"].text),
        "channel": values["Channel"].text,
        "computer": values["Computer"].text,
        "provider": values["Provider"].attrib["Name"],
        "user_sid": security,
        "fields": None,
    }
    for child in root:
        name = _local(child.tag)
        if name == "EventData":
            data = [item for item in child if _local(item.tag) == "Data"]
            if data and all("Name" in item.attrib for item in data):
                out["fields"] = {item.attrib["Name"]: item.text for item in data}
            else:
                out["fields"] = [item.text for item in data]
        elif name == "UserData":
            (payload,) = list(child)
            out["fields"] = {_local(item.tag): item.text for item in payload}
    return out


def _json_text(value: object) -> str | None:
    if isinstance(value, bool):
        return str(value).lower()
    return None if value is None else str(value)


def read_rust(path: Path) -> list[dict]:
    """The ``evtx`` package's JSON (its XML pretty-prints empty elements as whitespace)."""
    records = []
    for record in evtx.PyEvtxParser(str(path)).records_json():
        event = json.loads(record["data"])["Event"]
        system = event["System"]
        created = system["TimeCreated"]["#attributes"]["SystemTime"]
        when = datetime.strptime(created, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC)
        security = system["Security"]
        fields: object = None
        if "UserData" in event:
            (payload,) = event["UserData"].values()
            fields = {k: _json_text(v) for k, v in payload.items() if k != "#attributes"}
        elif "EventData" in event and "Data" in (event["EventData"] or {}):
            fields = [_json_text(v) for v in event["EventData"]["Data"]["#text"]]
        elif event.get("EventData"):
            fields = {k: _json_text(v) for k, v in event["EventData"].items()}
        records.append(
            {
                "record_id": system["EventRecordID"],
                "event_id": _event_id(event),
                "channel": system["Channel"],
                "computer": system["Computer"],
                "provider": system["Provider"]["#attributes"]["Name"],
                "user_sid": security["#attributes"]["UserID"] if security else None,
                "fields": fields,
                "time": (when - _UNIX_EPOCH) // timedelta(microseconds=1),
                "record_header_id": record["event_record_id"],
            }
        )
    return records


def _split_python_evtx_array(fields: list) -> list:
    """python-evtx renders a string array as one Data text of ``<string>…</string>`` lines."""
    if len(fields) == 1 and fields[0] and fields[0].startswith("<string>"):
        return re.findall(r"<string>(.*?)</string>\n", fields[0], flags=re.S)
    return fields


def read_python_evtx(path: Path) -> list[dict]:
    records = []
    with PyEvtx.Evtx(str(path)) as log:
        for record in log.records():
            item = _from_xml(record.xml())
            if isinstance(item["fields"], list):
                item["fields"] = _split_python_evtx_array(item["fields"])
            ticks = record.root().substitutions()[6].unpack_qword(0)  # TimeCreated, raw FILETIME
            item["time"] = ticks // 10 - (_UNIX_EPOCH - _FILETIME_EPOCH) // timedelta(microseconds=1)
            item["written"] = record.timestamp()
            records.append(item)
    return records


def read_libevtx(path: Path) -> list[dict]:
    pyevtx = _libevtx()
    handle = pyevtx.file()
    handle.open(str(path))
    try:
        assert not handle.is_corrupted()
        assert handle.number_of_recovered_records == 0
        records = []
        for record in handle.records:
            item = _from_xml(record.xml_string)
            ticks = record.get_creation_time_as_integer()
            item["time"] = ticks // 10 - (_UNIX_EPOCH - _FILETIME_EPOCH) // timedelta(microseconds=1)
            assert record.identifier == item["record_id"]
            assert record.get_written_time_as_integer() == ticks
            records.append(item)
        return records
    finally:
        handle.close()


def _same(expected: object, text: str | None) -> bool:
    """Does a reader's text show the value the ground truth (``evtx`` JSON form) holds?"""
    text = "" if text is None else text.replace("\r\n", "\n")
    if expected is None:  # the evtx JSON shows an empty UserData element as null
        return text == ""
    if isinstance(expected, bool):
        return text.lower() == str(expected).lower()
    if isinstance(expected, int):
        return int(text) == expected
    expected = str(expected).replace("\r\n", "\n")
    if re.fullmatch(r"0x[0-9a-f]+", expected):
        return int(text, 16) == int(expected, 16)
    if _GUID.fullmatch(expected) and _GUID.fullmatch(text):
        return _GUID.fullmatch(expected).group(1).lower() == _GUID.fullmatch(text).group(1).lower()
    return text == expected


def readers() -> list:
    """The readers present: libevtx-python is optional (its own tests skip with the reason)."""
    try:
        import pyevtx  # noqa: F401
    except ImportError:
        return [read_rust, read_python_evtx]
    return [read_rust, read_python_evtx, read_libevtx]


def _assert_matches_truth(reader: str, records: list[dict], truth: list[dict]) -> None:
    assert [r["record_id"] for r in records] == [t["record_id"] for t in truth], reader
    for record, expected in zip(records, truth, strict=True):
        where = f"{reader} record {expected['record_id']} ({expected['label']})"
        assert record["time"] == expected["time"], where
        assert record["event_id"] == expected["event_id"], where
        assert record["channel"] == expected["channel"], where
        assert record["computer"] == expected["computer"], where
        assert record["provider"] == expected["provider"], where
        assert record["user_sid"] == expected["user_sid"], where
        fields = expected["fields"]
        if isinstance(fields, dict):
            assert isinstance(record["fields"], dict), where
            assert list(record["fields"]) == list(fields), where
            for name, value in fields.items():
                assert _same(value, record["fields"][name]), f"{where}: {name}={record['fields'][name]!r}"
        else:
            assert len(record["fields"]) == len(fields), where
            for position, (value, text) in enumerate(zip(fields, record["fields"], strict=True)):
                assert _same(value, text), f"{where}: Data[{position}]={text!r}"


# --------------------------------------------------------------------------------------------
# The scenario: six channels, written once for the module
# --------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def evtx_scenario(tmp_path_factory: pytest.TempPathFactory) -> dict:
    folder = tmp_path_factory.mktemp("evtx-scenario")
    return write_mail_clearing_logs(folder)


def _truth_for(scenario: dict, channel: str) -> list[dict]:
    return sorted((e for e in scenario["events"] if e["channel"] == channel), key=lambda e: e["record_id"])


def test_scenario_writes_one_file_per_channel_with_windows_names(evtx_scenario: dict) -> None:
    assert set(evtx_scenario["files"]) == {
        PS_OPERATIONAL,
        WINDOWS_POWERSHELL,
        EXCHANGE,
        SECURITY,
        SYSTEM,
        SYSMON,
    }
    for channel, path in evtx_scenario["files"].items():
        assert Path(path).name == CHANNEL_FILES[channel]
        assert Path(path).stat().st_size == FILE_HEADER_SIZE + CHUNK_SIZE * _header(Path(path))["chunks"]
    ids = {(e["channel"], e["event_id"]) for e in evtx_scenario["events"]}
    for wanted in [
        (PS_OPERATIONAL, 4104),
        (PS_OPERATIONAL, 4103),
        (WINDOWS_POWERSHELL, 400),
        (WINDOWS_POWERSHELL, 403),
        (WINDOWS_POWERSHELL, 600),
        (WINDOWS_POWERSHELL, 800),
        (EXCHANGE, 1),
        (SECURITY, 1102),
        (SECURITY, 4688),
        (SECURITY, 4663),
        (SYSTEM, 104),
        (SYSMON, 1),
        (SYSMON, 11),
        (SYSMON, 23),
        (SYSMON, 26),
    ]:
        assert wanted in ids
    cmdlets = {e["fields"][0] for e in evtx_scenario["events"] if e["channel"] == EXCHANGE}
    assert cmdlets == {
        "New-MailboxExportRequest",
        "Remove-MailboxExportRequest",
        "New-TransportRule",
        "Search-Mailbox",
        "Set-Mailbox",
    }


@pytest.mark.parametrize("channel", sorted(CHANNEL_FILES))
def test_evtx_package_reads_the_ground_truth(evtx_scenario: dict, channel: str) -> None:
    path = Path(evtx_scenario["files"][channel])
    _assert_matches_truth("evtx", read_rust(path), _truth_for(evtx_scenario, channel))


@pytest.mark.parametrize("channel", sorted(CHANNEL_FILES))
def test_python_evtx_reads_the_ground_truth(evtx_scenario: dict, channel: str) -> None:
    path = Path(evtx_scenario["files"][channel])
    records = read_python_evtx(path)
    _assert_matches_truth("python-evtx", records, _truth_for(evtx_scenario, channel))
    with PyEvtx.Evtx(str(path)) as log:
        header = log.get_file_header()
        assert header.chunk_count() == len(list(header.chunks())) == _header(path)["chunks"]
        assert header.verify() and all(chunk.verify() for chunk in header.chunks())


@pytest.mark.parametrize("channel", sorted(CHANNEL_FILES))
def test_libevtx_reads_the_ground_truth(evtx_scenario: dict, channel: str) -> None:
    path = Path(evtx_scenario["files"][channel])
    _assert_matches_truth("libevtx", read_libevtx(path), _truth_for(evtx_scenario, channel))


@pytest.mark.parametrize("channel", sorted(CHANNEL_FILES))
def test_three_readers_agree(evtx_scenario: dict, channel: str) -> None:
    """Beyond the ground truth: the readers' own outputs, reduced the same way, are equal."""
    path = Path(evtx_scenario["files"][channel])
    keys = ("record_id", "time", "event_id", "channel", "computer", "provider", "user_sid")
    rust, *others = [[tuple(r[k] for k in keys) for r in reader(path)] for reader in readers()]
    assert rust
    for other in others:
        assert other == rust


def test_evtx_json_fields_equal_the_ground_truth(evtx_scenario: dict) -> None:
    """The JSON the parser consumes: named Data as keys, classic Data as ``#text`` list, UserData."""
    for channel, path in evtx_scenario["files"].items():
        truth = {t["record_id"]: t for t in _truth_for(evtx_scenario, channel)}
        for record in evtx.PyEvtxParser(path).records_json():
            event = json.loads(record["data"])["Event"]
            expected = truth.pop(event["System"]["EventRecordID"])
            if "UserData" in event:
                (payload,) = [v for k, v in event["UserData"].items()]
                payload = {k: v for k, v in payload.items() if k != "#attributes"}
                assert payload == expected["fields"]
            elif isinstance(expected["fields"], list):
                assert event["EventData"] == {"Data": {"#text": expected["fields"]}, "Binary": None}
            else:
                assert event["EventData"] == expected["fields"]
        assert not truth


def test_split_script_block_spans_chunks_and_reassembles(evtx_scenario: dict) -> None:
    path = Path(evtx_scenario["files"][PS_OPERATIONAL])
    assert _header(path)["chunks"] >= 3
    (block_id, block), *_ = [(k, v) for k, v in evtx_scenario["script_blocks"].items() if v["parts"] == 3]
    parts = [
        r["fields"]
        for r in read_rust(path)
        if r["event_id"] == 4104 and r["fields"]["ScriptBlockId"] == block_id
    ]
    assert [int(p["MessageNumber"]) for p in parts] == [1, 2, 3]
    assert {int(p["MessageTotal"]) for p in parts} == {3}
    assert {p["Path"] for p in parts} == {"C:\\Users\\mallory\\Documents\\cleanup.ps1"}
    assert "".join(p["ScriptBlockText"] for p in parts) == block["text"]
    command = 'Remove-Item -Path "$env:LOCALAPPDATA\\Comms\\Unistore\\data\\*"'
    assert command in block["text"]
    assert not any(command in p["ScriptBlockText"] for p in parts)  # only whole once reassembled


def test_files_match_the_structure_of_real_channels(evtx_scenario: dict) -> None:
    """System and EventData keys in the ``evtx`` JSON match real events of the same ids."""
    samples = {
        (PS_OPERATIONAL, 4104): ("evtx/deepbluecli/Powershell-Invoke-Obfuscation-string-menu.evtx", "exact"),
        (PS_OPERATIONAL, 4103): (
            "evtx/evtx-to-mitre/ID800-4103-4104-Delete VSS backup (PowerShell).evtx",
            "exact",
        ),
        (WINDOWS_POWERSHELL, 400): ("evtx/museum_StolenSzechuan_Win2012R2/Windows PowerShell.evtx", "exact"),
        (WINDOWS_POWERSHELL, 403): ("evtx/museum_StolenSzechuan_Win2012R2/Windows PowerShell.evtx", "exact"),
        (WINDOWS_POWERSHELL, 600): ("evtx/museum_StolenSzechuan_Win2012R2/Windows PowerShell.evtx", "exact"),
        (WINDOWS_POWERSHELL, 800): ("evtx/evtx-attack-samples/exec_emotet_ps_800_new-item.evtx", "exact"),
        (SECURITY, 1102): ("evtx/deepbluecli/powersploit-security.evtx", "exact"),
        (SECURITY, 4688): ("evtx/deepbluecli/powersploit-security.evtx", "prefix"),  # ours: version 2
        (SECURITY, 4663): (
            "evtx/evtx-attack-samples/CA_chrome_firefox_opera_4663.evtx",
            "prefix",
        ),  # version 1
        (SYSMON, 1): ("evtx/evtx-attack-samples/Sysmon_UACME_64.evtx", "exact"),
        (SYSMON, 11): ("evtx/evtx-attack-samples/Sysmon_UACME_64.evtx", "exact"),
        (SYSMON, 23): ("evtx/evtx-attack-samples/Sysmon_UACME_64.evtx", "exact"),
    }
    ours = {}
    for path in evtx_scenario["files"].values():
        for record in evtx.PyEvtxParser(path).records_json():
            event = json.loads(record["data"])["Event"]
            ours.setdefault((event["System"]["Channel"], _event_id(event)), event)
    for (channel, event_id), (relative, mode) in samples.items():
        real = _first_real_event(corpus_path(relative), event_id)
        mine = ours[(channel, event_id)]
        where = f"{channel} {event_id}"
        assert list(mine["System"]) == list(real["System"]), where
        assert mine["System"]["EventID"].__class__ is real["System"]["EventID"].__class__, where
        assert list(mine) == list(real), where  # EventData vs UserData
        body = "UserData" if "UserData" in real else "EventData"
        if body == "UserData" or "Data" in real[body]:
            assert _shape(mine[body]) == _shape(real[body]), where
        elif mode == "exact":
            assert list(mine[body]) == list(real[body]), where
        else:
            assert list(mine[body])[: len(real[body])] == list(real[body]), where
    real_exchange = _first_real_event(
        corpus_path("evtx/evtx-to-mitre/ID6-Failed to install an Exchange transport agent.evtx"), 6
    )
    mine = ours[(EXCHANGE, 1)]
    assert list(mine["System"]) == list(real_exchange["System"])
    assert _shape(mine["EventData"]) == _shape(real_exchange["EventData"])  # 27 <Data>, then <Binary>
    assert mine["System"]["EventID"]["#attributes"] == {"Qualifiers": 16384}  # 0x40000001
    assert real_exchange["System"]["EventID"]["#attributes"] == {"Qualifiers": 49152}  # 0xC0000006
    slots, real_slots = mine["EventData"]["Data"]["#text"], real_exchange["EventData"]["Data"]["#text"]
    assert len(slots) == len(real_slots) == 27
    # Same slots filled as on the real server; a success leaves the error slots 11-14 empty.
    assert [bool(s) for i, s in enumerate(slots) if i not in range(11, 15)] == [
        bool(s) for i, s in enumerate(real_slots) if i not in range(11, 15)]
    assert not any(slots[11:15]) and all(real_slots[i] for i in (11, 12, 14))
    for index in (5, 6, 17, 24, 26):  # application, process, PII flag, RBAC summary, culture
        assert slots[index] == real_slots[index]
    assert slots[19] == real_slots[19] == "0 objects execution has been proxied to remote server."
    assert slots[23].startswith("ActivityId: ") and real_slots[23].startswith("ActivityId: ")
    assert slots[1].startswith("-") and real_slots[1].startswith("-")  # -Name "value" ...


def _event_id(event: dict) -> int:
    value = event["System"]["EventID"]
    return value["#text"] if isinstance(value, dict) else value


def _first_real_event(path: Path, event_id: int) -> dict:
    for record in evtx.PyEvtxParser(str(path)).records_json():
        event = json.loads(record["data"])["Event"]
        if _event_id(event) == event_id:
            return event
    raise AssertionError(f"no event {event_id} in {path}")


def _shape(value: object) -> object:
    if isinstance(value, dict):
        return {k: _shape(v) for k, v in value.items() if k != "#text"} | (
            {"#text": type(value["#text"]).__name__} if "#text" in value else {}
        )
    return type(value).__name__ if value is not None else None


# --------------------------------------------------------------------------------------------
# File format: header, chunk CRC32s, tables, record framing
# --------------------------------------------------------------------------------------------


def _header(path: Path) -> dict:
    data = path.read_bytes()[:FILE_HEADER_SIZE]
    magic, first, last, next_id, size, minor, major, block, chunks = struct.unpack_from("<8sQQQIHHHH", data)
    (flags, crc) = struct.unpack_from("<II", data, 120)
    return {
        "magic": magic,
        "first": first,
        "last": last,
        "next_id": next_id,
        "size": size,
        "minor": minor,
        "major": major,
        "block": block,
        "chunks": chunks,
        "flags": flags,
        "crc": crc,
        "crc_ok": crc == zlib.crc32(data[:120]),
        "rest_zero": not any(data[128:]),
    }


def _check_file(path: Path) -> list[int]:
    """Verify a written file the way a strict reader would; return every record id in order."""
    raw = path.read_bytes()
    header = _header(path)
    assert header["magic"] == b"ElfFile\x00"
    assert (header["size"], header["major"], header["minor"], header["block"]) == (128, 3, 1, 4096)
    assert header["crc_ok"] and header["rest_zero"] and header["flags"] == 0
    assert len(raw) == FILE_HEADER_SIZE + header["chunks"] * CHUNK_SIZE
    assert (header["first"], header["last"]) == (0, header["chunks"] - 1)
    ids: list[int] = []
    for index in range(header["chunks"]):
        chunk = raw[FILE_HEADER_SIZE + index * CHUNK_SIZE :][:CHUNK_SIZE]
        magic, first_num, last_num, first_id, last_id, size, last_off, free, data_crc = struct.unpack_from(
            "<8sQQQQIIII", chunk
        )
        (flags, header_crc) = struct.unpack_from("<II", chunk, 120)
        assert magic == b"ElfChnk\x00" and size == 128 and flags == 1
        assert header_crc == zlib.crc32(chunk[:120] + chunk[128:512]), f"chunk {index} header CRC"
        assert data_crc == zlib.crc32(chunk[512:free]), f"chunk {index} records CRC"
        assert not any(chunk[free:]), "free space is zero-filled"
        offset, chunk_ids, last_seen = 512, [], 0
        while offset < free:
            signature, rsize, rid = struct.unpack_from("<4sIQ", chunk, offset)
            assert signature == b"**\x00\x00" and rsize % 8 == 0
            assert struct.unpack_from("<I", chunk, offset + rsize - 4)[0] == rsize
            chunk_ids.append(rid)
            last_seen = offset
            offset += rsize
        assert offset == free and last_seen == last_off
        assert (first_num, last_num, first_id, last_id) == (
            chunk_ids[0],
            chunk_ids[-1],
            chunk_ids[0],
            chunk_ids[-1],
        )
        _check_tables(chunk)
        ids += chunk_ids
    assert ids == list(range(ids[0], ids[0] + len(ids))) if ids else True
    if ids:
        assert header["next_id"] == ids[-1] + 1
    return ids


def _check_tables(chunk: bytes) -> None:
    """Names hang in bucket hash % 64 with the right hash; templates follow their instance token."""
    for bucket, head in enumerate(struct.unpack_from("<64I", chunk, 128)):
        offset = head
        while offset:
            next_offset, digest, length = struct.unpack_from("<IHH", chunk, offset)
            name = chunk[offset + 8 : offset + 8 + 2 * length].decode("utf-16-le")
            assert digest == name_hash(name) and digest % 64 == bucket, name
            offset = next_offset
    for head in struct.unpack_from("<32I", chunk, 384):
        offset = head
        while offset:
            assert chunk[offset - 10] == 0x0C and struct.unpack_from("<I", chunk, offset - 4)[0] == offset
            offset = struct.unpack_from("<I", chunk, offset)[0]


@pytest.mark.parametrize("channel", sorted(CHANNEL_FILES))
def test_file_header_chunks_and_crcs_verify(evtx_scenario: dict, channel: str) -> None:
    path = Path(evtx_scenario["files"][channel])
    assert _check_file(path) == [t["record_id"] for t in _truth_for(evtx_scenario, channel)]


def test_known_name_hashes_from_a_real_chunk() -> None:
    # Values stored by Windows in the string table of deepbluecli/powersploit-security.evtx.
    assert name_hash("Event") == 3258
    assert name_hash("SubjectUserName") == 39874
    assert name_hash("Channel") == 24963


# --------------------------------------------------------------------------------------------
# Writer behaviour
# --------------------------------------------------------------------------------------------

_T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


def _add_4104(writer: EvtxWriter, number: int, text: str, when: datetime | int = _T0) -> int:
    return writer.add(
        channel=PS_OPERATIONAL,
        provider="Microsoft-Windows-PowerShell",
        provider_guid="A0C1853B-5C40-4B15-8766-3CF1C58F985A",
        event_id=4104,
        version=1,
        level=5,
        task=2,
        opcode=15,
        time=when,
        user_sid="S-1-5-21-1-2-3-1105",
        data={
            "MessageNumber": int32(number),
            "MessageTotal": int32(1),
            "ScriptBlockText": text,
            "ScriptBlockId": f"00000000-0000-4000-8000-{number:012d}",
            "Path": "",
        },
    )


def test_many_records_fill_many_chunks(tmp_path: Path) -> None:
    """Small and large records mixed: chunk boundaries, per-chunk templates and names, all readers."""
    path = tmp_path / "many.evtx"
    texts = [("x" * (97 * (i % 7)) + f' Get-Item C:\\mail\\{i} & <ok> "q"') for i in range(400)]
    texts[150] = "y" * 30000  # one record of ~60 KiB fills a chunk by itself
    with EvtxWriter(path, computer="WKS01", first_record_id=900) as writer:
        for i, text in enumerate(texts):
            _add_4104(writer, i + 1, text, _T0 + timedelta(seconds=i))
        assert writer.record_count == 400
    ids = _check_file(path)
    assert ids == list(range(900, 1300))
    assert _header(path)["chunks"] >= 4
    for reader in readers():
        records = reader(path)
        assert [r["record_id"] for r in records] == ids
        assert [r["fields"]["ScriptBlockText"] for r in records] == texts
        assert records[-1]["time"] == (_T0 + timedelta(seconds=399) - _UNIX_EPOCH) // timedelta(
            microseconds=1
        )


def test_value_types_render_alike(tmp_path: Path) -> None:
    path = tmp_path / "types.evtx"
    data = {
        "Sid": sid("S-1-5-21-3463664321-2923530833-3546627382-1000"),
        "LogonId": hex64(0x6793C),
        "Mask": hex32(0x10000),
        "Pid": size_t(0xF50),
        "Pid64": size_t(0x1F50, bits=64),
        "Guid": guid("{23F38D93-CF1F-5F8E-CA08-000000000C00}"),
        "Flag": boolean(True),
        "Off": False,
        "Small": uint8(7),
        "Word": uint16(443),
        "Count": 70000,
        "Big": uint64(2**40 + 3),
        "Signed": int32(12),
        "When": filetime(datetime(2026, 1, 2, 3, 4, 5, 678901, tzinfo=UTC)),
        "Text": "a < b & c > \"d\" 'e' ü €",
        "Empty": "",
        "Missing": None,
    }
    expected = {
        "Sid": "S-1-5-21-3463664321-2923530833-3546627382-1000",
        "LogonId": "0x6793c",
        "Mask": "0x10000",
        "Pid": "0xf50",
        "Pid64": "0x1f50",
        "Guid": "23F38D93-CF1F-5F8E-CA08-000000000C00",
        "Flag": True,
        "Off": False,
        "Small": 7,
        "Word": 443,
        "Count": 70000,
        "Big": 2**40 + 3,
        "Signed": 12,
        "Text": "a < b & c > \"d\" 'e' ü €",
        "Empty": "",
        "Missing": "",
    }
    with EvtxWriter(path, computer="WKS01") as writer:
        writer.add(
            channel="Application",
            provider="Test",
            provider_guid="11111111-2222-3333-4444-555555555555",
            event_id=7,
            time=_T0,
            data=data,
        )
    rust_json = json.loads(next(evtx.PyEvtxParser(str(path)).records_json())["data"])["Event"]["EventData"]
    assert rust_json.pop("When") == "2026-01-02T03:04:05.678901Z"
    assert rust_json == expected
    for reader in readers():
        (record,) = reader(path)
        for name, value in expected.items():
            assert _same(value, record["fields"][name]), (reader.__name__, name, record["fields"][name])


def test_user_data_and_classic_layouts(tmp_path: Path) -> None:
    path = tmp_path / "layouts.evtx"
    with EvtxWriter(path, computer="EXCH01") as writer:
        writer.add(
            channel="Security",
            provider="Microsoft-Windows-Eventlog",
            provider_guid="{fc65ddd8-d6ef-4962-83d5-6e5cfe9ce148}",
            event_id=1102,
            task=104,
            keywords=0x4020000000000000,
            time=_T0,
            user_data=UserData(
                "LogFileCleared",
                {"SubjectUserName": "mallory", "SubjectLogonId": hex64(5)},
                {"xmlns": "http://manifests.microsoft.com/win/2004/08/windows/eventlog"},
            ),
        )
        writer.add(
            channel="Windows PowerShell",
            provider="PowerShell",
            event_id=400,
            qualifiers=0,
            task=4,
            keywords=0x80000000000000,
            time=_T0 + timedelta(seconds=1),
            data=["Available", "None", ""],
        )
    events = [json.loads(r["data"])["Event"] for r in evtx.PyEvtxParser(str(path)).records_json()]
    assert events[0]["System"]["Provider"]["#attributes"]["Guid"] == "{fc65ddd8-d6ef-4962-83d5-6e5cfe9ce148}"
    assert events[0]["UserData"]["LogFileCleared"]["SubjectUserName"] == "mallory"
    assert events[1]["System"]["EventID"] == {"#attributes": {"Qualifiers": 0}, "#text": 400}
    assert "Version" not in events[1]["System"] and "Execution" not in events[1]["System"]
    assert events[1]["EventData"] == {"Data": {"#text": ["Available", "None", ""]}, "Binary": None}
    for reader in readers()[1:]:
        records = reader(path)
        assert records[0]["fields"] == {
            "SubjectUserName": "mallory",
            "SubjectLogonId": records[0]["fields"]["SubjectLogonId"],
        }
        assert [text or "" for text in records[1]["fields"]] == ["Available", "None", ""]


def test_time_as_unix_microseconds_equals_datetime(tmp_path: Path) -> None:
    micros = (_T0 - _UNIX_EPOCH) // timedelta(microseconds=1) + 123
    with EvtxWriter(tmp_path / "a.evtx") as writer:
        _add_4104(writer, 1, "a", micros)
    with EvtxWriter(tmp_path / "b.evtx") as writer:
        _add_4104(writer, 1, "a", _T0 + timedelta(microseconds=123))
    assert (tmp_path / "a.evtx").read_bytes() == (tmp_path / "b.evtx").read_bytes()
    assert read_rust(tmp_path / "a.evtx")[0]["time"] == micros


def test_output_is_deterministic(tmp_path: Path) -> None:
    first = write_mail_clearing_logs(tmp_path / "one")
    second = write_mail_clearing_logs(tmp_path / "two")
    for channel in CHANNEL_FILES:
        assert Path(first["files"][channel]).read_bytes() == Path(second["files"][channel]).read_bytes()


def test_writes_into_a_file_object_at_its_position() -> None:
    buffer = io.BytesIO()
    buffer.write(b"prefix")
    with EvtxWriter(buffer, computer="WKS01") as writer:
        _add_4104(writer, 1, "Get-Date")
    raw = buffer.getvalue()
    assert raw[:6] == b"prefix" and raw[6:14] == b"ElfFile\x00"
    assert len(raw) == 6 + FILE_HEADER_SIZE + CHUNK_SIZE
    assert not buffer.closed


def test_failure_leaves_no_file(tmp_path: Path) -> None:
    path = tmp_path / "broken.evtx"
    with pytest.raises(RuntimeError), EvtxWriter(path) as writer:
        _add_4104(writer, 1, "Get-Date")
        raise RuntimeError("stop")
    assert list(tmp_path.iterdir()) == []


def test_rejects_what_evtx_cannot_hold(tmp_path: Path) -> None:
    with EvtxWriter(tmp_path / "x.evtx") as writer:
        with pytest.raises(ValueError, match="naive"):
            _add_4104(writer, 1, "a", datetime(2026, 1, 1))
        with pytest.raises(ValueError, match="65535"):
            _add_4104(writer, 1, "z" * 40000)  # one value is limited to 65535 bytes
        assert writer.record_count == 0
        _add_4104(writer, 1, "still fine")
    assert [r["record_id"] for r in read_rust(tmp_path / "x.evtx")] == [1]


def test_empty_log(tmp_path: Path) -> None:
    path = tmp_path / "empty.evtx"
    EvtxWriter(path).close()
    assert _header(path)["chunks"] == 0 and _header(path)["crc_ok"]
    assert list(evtx.PyEvtxParser(str(path)).records()) == []


def test_events_without_data_get_an_empty_event_data(tmp_path: Path) -> None:
    """As Windows writes e.g. PowerShell 40961; libevtx refuses a record with no payload at all."""
    path = tmp_path / "nodata.evtx"
    with EvtxWriter(path) as writer:
        for number, data in enumerate([None, {}, ["only"]], start=1):
            writer.add(
                channel="Application",
                provider="Test",
                provider_guid="11111111-2222-3333-4444-555555555555",
                event_id=number,
                time=_T0,
                data=data,
            )
    event = json.loads(next(evtx.PyEvtxParser(str(path)).records_json())["data"])["Event"]
    assert "EventData" in event
    for reader in readers():
        assert [r["event_id"] for r in reader(path)] == [1, 2, 3]
