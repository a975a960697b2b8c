"""EVTX parser: every readable record of the shared corpus, warnings on corrupt chunks, 4104
reassembly, per-event fields, TimeCreated over the header time, and the clearing rules on real logs."""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import evtx
import pytest

from collector.timeutil import parse_iso
from parsers import evtx as evtx_parser
from parsers.base import ParseContext
from parsers.evtx import CHUNK_SIZE, FILE_HEADER_SIZE, MAGIC, EvtxParser
from parsers.evtx_correlate import export_then_removed
from parsers.evtx_events import parse_invocations
from parsers.exchange_cmdlets import parse_logged_parameters
from parsers.record import Provenance, Record
from parsers.rules import default_engine
from tests.conftest import corpus_path

# (file, records the evtx package yields with the continue-after-error loop, iteration errors);
# numbers from ../shared/corpus/MANIFEST.md.
CORPUS = [
    ("museum_APTSimulatorVM_Server2022/Microsoft-Windows-PowerShell%4Operational.evtx", 168, 0),
    ("museum_StolenSzechuan_Win2012R2/System.evtx", 60189, 0),
    ("museum_StolenSzechuan_Win2012R2/Windows PowerShell.evtx", 114, 0),
    ("velociraptor/EID4104_PowershellScriptblock.evtx", 2, 0),
    ("velociraptor/EID4103_PowershellModule.evtx", 15, 0),
    ("evtx-attack-samples/Powershell_4104_MiniDumpWriteDump_Lsass.evtx", 4, 0),
    ("evtx-attack-samples/exec_emotet_ps_4104.evtx", 1, 0),
    ("evtx-attack-samples/exec_emotet_ps_800_new-item.evtx", 1, 0),
    ("deepbluecli/Powershell-Invoke-Obfuscation-string-menu.evtx", 4, 0),
    ("yamato/T1562.010_DowngradeAttack_PowerShell.evtx", 26, 0),
    ("evtx-to-mitre/ID800-4103-4104-Delete VSS backup (PowerShell).evtx", 7, 0),
    ("evtx-attack-samples/CA_chrome_firefox_opera_4663.evtx", 5, 0),
    ("evtx-attack-samples/Sysmon_UACME_64.evtx", 530, 0),
    ("deepbluecli/powersploit-security.evtx", 27, 0),
    ("evtx-to-mitre/ID6-Failed to install an Exchange transport agent.evtx", 4, 0),
    ("corrupt/sample_with_a_bad_chunk_magic.evtx", 270, 3),  # + 1 record with an empty System block
    ("corrupt/sample-with-zero-data-size-event.evtx", 335, 1),
    ("corrupt/Application_no_crc32.evtx", 17, 0),
    ("corrupt/E_Windows_system32_winevt_logs_Microsoft-Windows-CAPI2%4Operational.evtx", 340, 0),
    ("corrupt/Microsoft-Windows-LanguagePackSetup%4Operational.evtx", 17, 0),
    ("corrupt/dns_log_malformed.evtx", 5, 0),
    ("corrupt/2-vss_0-Microsoft-Windows-TerminalServices-RemoteConnectionManager%4Operational.evtx", 1774, 2),
]


def _ctx(path: str = "x.evtx") -> ParseContext:
    return ParseContext(provenance=Provenance(bundle_path=None, source_path=path, sha256=None))


def _parse(relative: str) -> tuple[list[Record], ParseContext]:
    path = corpus_path(f"evtx/{relative}")
    ctx = _ctx(str(path))
    with path.open("rb") as handle:
        records = list(EvtxParser().parse(handle, ctx))
    return records, ctx


def _library_record_numbers(path: Path) -> list[int]:
    """What the evtx package itself yields when iteration is resumed after each error."""
    numbers = []
    iterator = evtx.PyEvtxParser(str(path)).records_json()
    while True:
        try:
            numbers.append(next(iterator)["event_record_id"])
        except StopIteration:
            return numbers
        except RuntimeError:
            continue


def _covered(records: list[Record]) -> list[int]:
    return [n for r in records for n in r.attributes.get("record_numbers", [r.attributes["record_number"]])]


@pytest.mark.parametrize(("relative", "expected", "errors"), CORPUS)
def test_every_readable_record_of_the_corpus(relative: str, expected: int, errors: int) -> None:
    records, ctx = _parse(relative)
    covered = _covered(records)
    assert len(covered) == expected
    assert sorted(covered) == sorted(_library_record_numbers(corpus_path(f"evtx/{relative}")))
    assert len(ctx.warnings) == errors
    assert all(r.parser == "evtx" and r.data_type.startswith("windows:evtx:") for r in records)
    assert all(r.timestamps for r in records)  # every corpus record has a TimeCreated


def test_python_evtx_misses_records_of_a_dirty_log() -> None:
    """python-evtx trusts the stale header chunk count: 1,675 of 60,189 records, with no error."""
    from Evtx.Evtx import Evtx

    path = corpus_path("evtx/museum_StolenSzechuan_Win2012R2/System.evtx")
    with Evtx(str(path)) as log:
        assert log.get_file_header().chunk_count() == 10
        assert sum(1 for _ in log.records()) == 1675
    records, ctx = _parse("museum_StolenSzechuan_Win2012R2/System.evtx")
    assert len(records) == 60189 and ctx.warnings == []


def test_bad_chunk_warnings_carry_the_chunk_offset() -> None:
    _, ctx = _parse("corrupt/sample_with_a_bad_chunk_magic.evtx")
    chunk_warnings = [w for w in ctx.warnings if "ElfChnk" in w["message"]]
    assert [w["offset"] for w in chunk_warnings] == [FILE_HEADER_SIZE + 6 * CHUNK_SIZE,
                                                    FILE_HEADER_SIZE + 10 * CHUNK_SIZE]


def test_damaged_system_block_keeps_the_written_time() -> None:
    """One record has an all-null System block: emitted, flagged, timed by its record header."""
    records, _ = _parse("corrupt/sample_with_a_bad_chunk_magic.evtx")
    damaged = [r for r in records if r.corrupted]
    assert [r.attributes["record_number"] for r in damaged] == [46741]
    assert damaged[0].timestamps == {"Record Written Time": parse_iso("2018-08-08T03:47:41.475147+00:00")}
    assert damaged[0].host == "DESKTOP-1N4R894"


def test_time_created_not_record_header_time() -> None:
    """Record 4 has a 1601 (zero FILETIME) header time; TimeCreated is 2021-06-04."""
    records, _ = _parse("evtx-to-mitre/ID6-Failed to install an Exchange transport agent.evtx")
    record = next(r for r in records if r.attributes["record_number"] == 4)
    assert record.timestamps == {"Event Time": parse_iso("2021-06-04T08:43:08.546589+00:00")}


def test_exchange_management_cmdlet_fields() -> None:
    """The 27 CmdletLogs slots of the real (Exchange 2016) event 6 under their names."""
    records, _ = _parse("evtx-to-mitre/ID6-Failed to install an Exchange transport agent.evtx")
    first = records[0]
    attributes = first.attributes
    assert first.data_type == "windows:evtx:exchange:cmdlet"
    assert attributes["cmdlet"] == "Install-TransportAgent"
    assert attributes["parameters"] == [
        {"name": "Name", "value": "Evil"}, {"name": "AssemblyPath", "value": ".\\NetshHelperBeacon.dll"},
        {"name": "TransportAgentFactory", "value": "hack"}]
    assert attributes["parameters_text"] == \
        '-Name "Evil" -AssemblyPath ".\\NetshHelperBeacon.dll" -TransportAgentFactory "hack"'
    assert attributes["command"] == "Install-TransportAgent " + attributes["parameters_text"]
    assert attributes["status"] == "failed"
    assert attributes["caller"] == "offsec.lan/OFFSEC-COMPANY/Administrators/admmig"
    assert attributes["logon_user_sid"] == attributes["user_sid"] == \
        "S-1-5-21-4230534742-2542757381-3142984815-1111"
    assert attributes["application"] == "Remote-ManagementShell-Unknown"
    assert attributes["process"] == "8372 w3wp#MSExchangePowerShellAppPool"
    assert (attributes["organization"], attributes["thread_id"], attributes["duration"]) == \
        ("", "54", "00:00:00.0080007")
    assert attributes["ad_settings"].startswith("View Entire Forest: 'False', Default Scope: 'offsec.lan'")
    assert attributes["error"].startswith(
        "System.ArgumentException: The Transport Agent assembly file "
        '".\\NetshHelperBeacon.dll" doesn\'t exist.')
    assert (attributes["error_category"], attributes["error_id"]) == ("5", "NonLocalizedException")
    assert attributes["pii_suppressed"] == "False"
    assert attributes["proxied_objects"] == "0 objects execution has been proxied to remote server."
    assert attributes["output_objects"] == "0"
    assert attributes["activity_id"] == "82cc33be-98c2-4050-bd7f-53aaed825502"
    assert (attributes["rbac"], attributes["culture"]) == ("ServicePlan:;IsAdmin:True;", "en-US")
    assert not any(key.startswith("param") and key[5:].isdigit() for key in attributes)  # all 27 named
    assert first.host == "exchange01.offsec.lan"
    assert first.user == "offsec.lan/OFFSEC-COMPANY/Administrators/admmig"
    assert first.message.startswith(
        "[6] MSExchange Management: Exchange cmdlet failed: Install-TransportAgent")
    enable = records[2]
    assert enable.attributes["parameters"] == [{"name": "Identity", "value": "hack"}]


def test_scriptblocks_reassembled_on_a_real_log() -> None:
    """APTSimulator: 140 4104 events are 5 script blocks (one of 125 parts, one of 12)."""
    records, ctx = _parse("museum_APTSimulatorVM_Server2022/Microsoft-Windows-PowerShell%4Operational.evtx")
    blocks = [r for r in records if r.data_type == "windows:evtx:powershell:scriptblock"]
    assert sorted(r.attributes["parts"] for r in blocks) == [1, 1, 1, 12, 125]
    assert sum(len(r.attributes["record_numbers"]) for r in blocks) == 140
    big = next(r for r in blocks if r.attributes["parts"] == 125)
    assert big.attributes["record_numbers"] == list(range(18, 143))
    assert big.attributes["script_block"].startswith("function Invoke-Mimikatz")
    assert len(big.attributes["script_block"]) > 2_000_000
    assert len(big.message) <= 240 and not big.corrupted and "missing_parts" not in big.attributes
    assert "ScriptBlockText" not in big.attributes
    assert ctx.warnings == []


def test_4103_module_logging_invocations() -> None:
    records, _ = _parse("evtx-to-mitre/ID800-4103-4104-Delete VSS backup (PowerShell).evtx")
    module = next(r for r in records if r.data_type == "windows:evtx:powershell:module")
    assert module.attributes["invocations"] == [
        {"cmdlet": "Get-WmiObject", "parameters": [["Class", "Win32_Shadowcopy"]]},
        {"cmdlet": "ForEach-Object", "parameters": [["Process", "$_.Delete();"]]}]
    assert module.attributes["context_User"] == "OFFSEC\\admmig"
    assert module.user == "OFFSEC\\admmig"
    pipeline = next(r for r in records if r.attributes["event_id"] == 800)
    assert pipeline.attributes["command"].startswith("Get-WmiObject Win32_Shadowcopy | ForEach-Object")
    assert pipeline.attributes["UserId"] == "OFFSEC\\admmig"


def test_windows_powershell_engine_events() -> None:
    records, _ = _parse("yamato/T1562.010_DowngradeAttack_PowerShell.evtx")
    engine = next(r for r in records if r.attributes["event_id"] == 400)
    assert engine.data_type == "windows:evtx:powershell:engine"
    assert engine.attributes["HostApplication"] == engine.attributes["command"]
    assert engine.attributes["NewEngineState"] == "Available"


def test_log_cleared_1102_is_tagged() -> None:
    for relative in ("evtx-attack-samples/CA_chrome_firefox_opera_4663.evtx",
                     "deepbluecli/powersploit-security.evtx"):
        records, _ = _parse(relative)
        tagged = [default_engine().tag(r) for r in records]
        cleared = [r for r in tagged if r.attributes["event_id"] == 1102]
        assert len(cleared) == 1
        assert cleared[0].data_type == "windows:evtx:security:log_cleared"
        assert {"T1070.001", "windows_security_log_cleared"} <= set(cleared[0].tags)
        assert cleared[0].user and cleared[0].user.endswith("\\IEUser")
        assert not any(r.tags for r in tagged if r.attributes["event_id"] != 1102)


def test_security_and_sysmon_fields() -> None:
    records, _ = _parse("deepbluecli/powersploit-security.evtx")
    process = next(r for r in records if r.attributes["event_id"] == 4688)
    assert process.data_type == "windows:evtx:security:process_creation"
    assert process.attributes["command"] == process.attributes["CommandLine"]
    records, _ = _parse("evtx-attack-samples/CA_chrome_firefox_opera_4663.evtx")
    access = next(r for r in records if r.attributes["event_id"] == 4663)
    assert access.data_type == "windows:evtx:security:object_access"
    assert access.attributes["ObjectName"].endswith("Login Data")
    records, _ = _parse("evtx-attack-samples/Sysmon_UACME_64.evtx")
    deleted = [r for r in records if r.data_type == "windows:evtx:sysmon:file_delete"]
    assert [r.attributes["record_number"] for r in deleted] == [149, 249, 461]
    assert all(r.attributes.get("TargetFilename") for r in deleted)


# -- in-memory edge cases -------------------------------------------------------------------------
def test_sniff() -> None:
    assert EvtxParser.sniff(b"ElfFile\x00" + b"\x00" * 100, "x.evtx")
    assert not EvtxParser.sniff(b"From bob@example.com", "x.evtx")


def test_garbage_is_a_warning_not_an_exception() -> None:
    ctx = _ctx()
    assert list(EvtxParser().parse(io.BytesIO(b"not an event log at all" * 10), ctx)) == []
    assert ctx.warnings and ctx.warnings[0]["offset"] == 0
    ctx = _ctx()
    assert list(EvtxParser().parse(io.BytesIO(b"ElfFile\x00" + b"\xff" * 5000), ctx)) == []
    assert ctx.warnings


def test_headerless_log_is_carved() -> None:
    """A deleted log whose first sectors were reused: the chunks are carved, records flagged."""
    data = bytearray(corpus_path("evtx/deepbluecli/powersploit-security.evtx").read_bytes())
    data[:FILE_HEADER_SIZE] = b"\x00" * FILE_HEADER_SIZE
    ctx = _ctx()
    records = list(EvtxParser().parse(io.BytesIO(bytes(data)), ctx))
    assert len(records) == 27 and all(r.recovered for r in records)
    assert records[0].provenance.offset == FILE_HEADER_SIZE + 0x200
    assert "carving" in ctx.warnings[0]["message"]


def _event(number: int, event_id: int, data: dict[str, Any], time: str = "2024-05-01T10:00:00.000001Z",
           channel: str = "Microsoft-Windows-PowerShell/Operational") -> tuple[int, dict[str, Any]]:
    return number, {"Event": {"System": {
        "Provider": {"#attributes": {"Name": "Microsoft-Windows-PowerShell"}}, "EventID": event_id,
        "TimeCreated": {"#attributes": {"SystemTime": time}}, "EventRecordID": number, "Channel": channel,
        "Computer": "WS1", "Security": {"#attributes": {"UserID": "S-1-5-21-1-2-3-1001"}}},
        "EventData": data}}


def _part(number: int, block: str, part: int, total: int, text: str) -> tuple[int, dict[str, Any]]:
    return _event(number, 4104, {"MessageNumber": part, "MessageTotal": total, "ScriptBlockText": text,
                                 "ScriptBlockId": block, "Path": "C:\\x.ps1"})


def _run(monkeypatch: pytest.MonkeyPatch, events: list[tuple[int, dict[str, Any]]],
         ) -> tuple[list[Record], ParseContext]:
    def fake(fh: Any, ctx: ParseContext, **_: Any,
             ) -> Iterator[tuple[int, dict[str, Any], str | None, int | None]]:
        for number, decoded in events:
            yield number, decoded, "1601-01-01T00:00:00Z UTC", None
    monkeypatch.setattr(evtx_parser, "iter_events", fake)
    ctx = _ctx()
    return list(EvtxParser().parse(io.BytesIO(MAGIC), ctx)), ctx


def test_scriptblock_parts_interleaved_and_out_of_order(monkeypatch: pytest.MonkeyPatch) -> None:
    records, ctx = _run(monkeypatch, [
        _part(1, "A", 2, 3, "Mailbox"), _part(2, "B", 1, 1, "Get-Date"), _part(3, "A", 1, 3, "Search-"),
        _part(4, "A", 3, 3, " bob -DeleteContent")])
    assert [r.attributes["script_block"] for r in records] == ["Get-Date",
                                                               "Search-Mailbox bob -DeleteContent"]
    assert records[1].attributes["record_numbers"] == [1, 3, 4]
    assert records[1].order == 0 and records[0].order == 1
    assert records[1].user == "S-1-5-21-1-2-3-1001" and records[1].host == "WS1"
    assert "exchange_search_mailbox_delete" in default_engine().tag(records[1]).tags
    assert ctx.warnings == []


def test_missing_scriptblock_part_is_reported_not_invented(monkeypatch: pytest.MonkeyPatch) -> None:
    records, ctx = _run(monkeypatch, [_part(7, "C", 1, 3, "Remove-Mailbox"),
                                      _part(9, "C", 3, 3, " -Confirm:$false")])
    assert len(records) == 1
    record = records[0]
    assert record.corrupted and record.attributes["missing_parts"] == [2]
    assert record.attributes["script_block"] == "Remove-Mailbox -Confirm:$false"
    assert record.attributes["record_numbers"] == [7, 9]
    assert len(ctx.warnings) == 1 and "[2]" in ctx.warnings[0]["message"]


def test_a_forged_part_count_is_counted_not_enumerated(monkeypatch: pytest.MonkeyPatch) -> None:
    # A damaged or forged 4104 claiming 10**12 parts (the fuzzer's hang): the first 1,000 missing
    # part numbers are listed, the count says how many there are.
    records, ctx = _run(monkeypatch, [_part(3, "D", 2, 10**12, "Clear-History"),
                                      _part(4, "D", 4, 10**12, "; Remove-Item x")])
    assert len(records) == 1
    attributes = records[0].attributes
    assert records[0].corrupted and attributes["script_block"] == "Clear-History; Remove-Item x"
    assert attributes["missing_parts"][:3] == [1, 3, 5] and len(attributes["missing_parts"]) == 1000
    assert attributes["missing_parts_count"] == 10**12 - 2
    assert "999,999,999,998 ([1, 3, 5," in ctx.warnings[0]["message"]
    assert len(records[0].message) <= 240


def test_pending_blocks_are_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(evtx_parser, "MAX_PENDING_BLOCKS", 2)
    records, ctx = _run(monkeypatch, [_part(i, f"id{i}", 1, 2, f"part{i}") for i in range(1, 6)])
    assert len(records) == 5 and all(r.corrupted for r in records)
    assert len(ctx.warnings) == 5


def test_zero_filetime_is_no_time(monkeypatch: pytest.MonkeyPatch) -> None:
    records, _ = _run(monkeypatch, [_event(1, 4100, {"Payload": "x"}, time="1601-01-01T00:00:00.000000Z")])
    assert records[0].timestamps == {}
    assert records[0].attributes["event_id"] == 4100


def _exchange_event(number: int, event_id: int, cmdlet: str, parameters: str) -> tuple[int, dict[str, Any]]:
    """An MSExchange Management event as the evtx package renders it: 27 unnamed Data strings."""
    slots = [cmdlet, parameters, "corp/Users/admin", "S-1-5-21-9", "S-1-5-21-9",
             "Remote-ManagementShell-Unknown", "1 w3wp", "", "5", "00:00:00.1"] + [""] * 17
    return _event(number, event_id, {"Data": {"#text": slots}, "Binary": None},
                  channel="MSExchange Management")


def test_exchange_set_mailbox_event_is_tagged(monkeypatch: pytest.MonkeyPatch) -> None:
    event = _exchange_event(3, 1, "Set-Mailbox", '-Identity "bob" -AuditEnabled "False"')
    records, _ = _run(monkeypatch, [event])
    record = default_engine().tag(records[0])
    assert record.attributes["parameters"] == [{"name": "Identity", "value": "bob"},
                                               {"name": "AuditEnabled", "value": "False"}]
    assert record.attributes["mailbox_audit_disabled"] is True
    assert record.attributes["status"] == "succeeded"
    assert "exchange_mailbox_audit_disabled" in record.tags and record.user == "corp/Users/admin"
    assert "Binary" not in record.attributes


@pytest.mark.parametrize(("event_id", "status"), [(1, "succeeded"), (2, "succeeded"), (3, "succeeded"),
                                                  (4, "stopped"), (5, "cancelled"), (6, "failed")])
def test_exchange_event_ids(monkeypatch: pytest.MonkeyPatch, event_id: int, status: str) -> None:
    records, _ = _run(monkeypatch, [_exchange_event(1, event_id, "Remove-MailboxExportRequest",
                                                    '-Identity "ceo\\MailboxExport" -Confirm "False"')])
    record = default_engine().tag(records[0])
    assert record.attributes["status"] == status
    assert record.message == (f"[{event_id}] MSExchange Management: Exchange cmdlet {status}: "
                              'Remove-MailboxExportRequest -Identity "ceo\\MailboxExport" -Confirm "False"')
    assert "exchange_export_request_removed" in record.tags


def test_exchange_2010_parameter_form(monkeypatch: pytest.MonkeyPatch) -> None:
    """Exchange 2010 logged ``{Name=value, ...}``: parsed, and rebuilt as a command the rules read."""
    event = _exchange_event(1, 1, "Set-Mailbox", "{Identity=bob, AuditEnabled=False}")
    records, _ = _run(monkeypatch, [event])
    record = default_engine().tag(records[0])
    assert record.attributes["parameters"] == [{"name": "Identity", "value": "bob"},
                                               {"name": "AuditEnabled", "value": "False"}]
    assert record.attributes["command"] == 'Set-Mailbox -Identity "bob" -AuditEnabled "False"'
    assert "exchange_mailbox_audit_disabled" in record.tags


def test_iteration_errors_do_not_loop_forever(monkeypatch: pytest.MonkeyPatch) -> None:
    class Broken:
        def __init__(self, *args: Any) -> None:
            pass

        def records_json(self) -> Iterator[dict[str, Any]]:
            return self

        def __iter__(self) -> Broken:
            return self

        def __next__(self) -> dict[str, Any]:
            raise RuntimeError("Failed to parse chunk number 3: broken")

    monkeypatch.setattr(evtx_parser.evtx, "PyEvtxParser", Broken)
    ctx = _ctx()
    assert list(EvtxParser().parse(io.BytesIO(MAGIC), ctx)) == []
    assert len(ctx.warnings) == evtx_parser.MAX_CONSECUTIVE_ERRORS + 1
    assert ctx.warnings[0]["offset"] == FILE_HEADER_SIZE + 3 * CHUNK_SIZE


def test_payload_and_parameter_parsing() -> None:
    payload = ('CommandInvocation(Search-Mailbox): "Search-Mailbox"\r\n'
               'ParameterBinding(Search-Mailbox): name="Identity"; value="bob"\r\n'
               'ParameterBinding(Search-Mailbox): name="DeleteContent"; value="True"\r\n')
    assert parse_invocations(payload) == [
        {"cmdlet": "Search-Mailbox", "parameters": [["Identity", "bob"], ["DeleteContent", "True"]]}]
    # Exchange quotes every value (switches too), escapes nothing, and writes lists, hashtables, nulls.
    assert parse_logged_parameters(
        '-Identity "ceo" -SearchQuery "Subject:"wire transfer"" -DeleteContent "True" -SetSCL "-1" '
        '-SubjectContainsWords ("invoice","wire") -EmailAddresses @{Add="a@x";Remove="b@x"} '
        "-Notify $null") == [
        ("Identity", "ceo"), ("SearchQuery", 'Subject:"wire transfer"'), ("DeleteContent", "True"),
        ("SetSCL", "-1"), ("SubjectContainsWords", '("invoice","wire")'),
        ("EmailAddresses", '@{Add="a@x";Remove="b@x"}'), ("Notify", "")]
    assert parse_logged_parameters("{MailboxServer=SCEX02, Identity=DAG1}") == [
        ("MailboxServer", "SCEX02"), ("Identity", "DAG1")]
    assert parse_logged_parameters("") == []


def test_export_then_removed_correlation() -> None:
    def rec(text: str, minute: int, host: str = "EX1") -> Record:
        record = Record(data_type="windows:evtx:exchange:cmdlet", message=text, order=minute, parser="evtx",
                        provenance=Provenance(bundle_path=None, source_path="x.evtx", sha256=None),
                        timestamps={"Event Time": minute * 60_000_000}, attributes={"command": text},
                        host=host)
        return default_engine().tag(record)
    records = [rec('New-MailboxExportRequest -Mailbox "bob" -FilePath "\\\\s\\c$\\b.pst"', 0),
               rec('Remove-MailboxExportRequest -Identity "bob\\MailboxExport" -Confirm "False"', 20,
                   host="EX2"),
               rec('Remove-MailboxExportRequest -Identity "carol\\MailboxExport"', 90)]
    findings = export_then_removed(records)
    assert len(findings) == 1
    assert findings[0]["matched_on"] == "mailbox" and findings[0]["seconds_between"] == 1200
    assert findings[0]["created"]["mailbox"] == findings[0]["removed"]["mailbox"] == "bob"
    assert export_then_removed([r.to_dict() for r in records]) == findings


def test_wmi_clear_event_log_and_system_104(monkeypatch: pytest.MonkeyPatch) -> None:
    wmi = _event(5, 5858, None, channel="Microsoft-Windows-WMI-Activity/Operational")
    wmi[1]["Event"]["UserData"] = {"Operation_ClientFailure": {
        "#attributes": {"xmlns": "http://manifests.microsoft.com/win/2006/windows/WMI"},
        "Id": "{00000000-0000-0000-0000-000000000000}", "ClientMachine": "WS1", "User": "CORP\\bob",
        "ClientProcessId": 4242, "Component": "Unknown",
        "Operation": "Start IWbemServices::ExecMethod - root\\cimv2 : "
                     "Win32_NTEventlogFile.Name=\"C:\\Windows\\System32\\Config\\SecEvent.Evt\"::ClearEventLog",
        "ResultCode": "0x80041003", "PossibleCause": "Unknown"}}
    cleared = _event(6, 104, None, channel="System")
    cleared[1]["Event"]["System"]["Provider"] = {"#attributes": {"Name": "Microsoft-Windows-Eventlog"}}
    cleared[1]["Event"]["UserData"] = {"LogFileCleared": {
        "SubjectUserName": "bob", "SubjectDomainName": "CORP", "Channel": "Application", "BackupPath": ""}}
    records, _ = _run(monkeypatch, [wmi, cleared])
    wmi_record, system_record = (default_engine().tag(r) for r in records)
    assert wmi_record.data_type == "windows:evtx:wmi:activity"
    assert wmi_record.attributes["UserDataType"] == "Operation_ClientFailure"
    assert wmi_record.user == "CORP\\bob"
    assert {"windows_wmi_clear_event_log", "T1070.001"} <= set(wmi_record.tags)
    assert system_record.data_type == "windows:evtx:system:log_cleared"
    assert system_record.message == "[104] System: The Application log was cleared"
    assert system_record.user == "CORP\\bob"
    assert {"windows_system_log_cleared", "T1070.001"} <= set(system_record.tags)


def test_scriptblock_invocation_events(monkeypatch: pytest.MonkeyPatch) -> None:
    records, _ = _run(monkeypatch, [_event(1, 4105, {"ScriptBlockId": "abc", "RunspaceId": "r1"})])
    assert records[0].data_type == "windows:evtx:powershell:scriptblock_invocation"
    assert records[0].message == "[4105] Microsoft-Windows-PowerShell/Operational: Started invocation of " \
                                 "script block abc"


def test_records_built_without_the_dataclass_constructor_are_the_same_records() -> None:
    """The parser fills Record's instance dictionary directly (speed); the result must be what the
    constructor makes, and must still behave as a frozen dataclass."""
    import dataclasses

    from parsers.record import PLAIN_DATACLASS

    provenance = Provenance(bundle_path="files/a.evtx", source_path="/a.evtx", sha256="00", offset=4608)
    args = ("windows:evtx:record", "[1] System: x", provenance, "evtx", 3, {"Event Time": 1},
            {"event_id": 1}, "WS1", "S-1-5-18", True, False)
    made = Record.quick(*args)
    names = ("data_type", "message", "provenance", "parser", "order", "timestamps", "attributes", "host",
             "user", "recovered", "corrupted")
    assert PLAIN_DATACLASS and made == Record(**dict(zip(names, args, strict=True)))
    assert made.time_bounds == {} and made.tags == ()
    with pytest.raises(dataclasses.FrozenInstanceError):
        made.order = 4  # type: ignore[misc]
    assert dataclasses.replace(made, order=4).order == 4 and made.with_tags(["x"]).tags == ("x",)
