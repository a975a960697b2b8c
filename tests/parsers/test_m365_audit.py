"""Microsoft 365 Unified Audit Log exports, and one merged timeline from a folder of exports."""

from __future__ import annotations

import csv
import io
import json
import shutil
import tracemalloc
from pathlib import Path

import pytest

from inboxtrail.cli import main
from parsers import m365_audit
from parsers.base import ParseContext
from parsers.m365_audit import M365AuditParser, iter_json_objects, parse_ual_time
from parsers.record import Provenance
from parsers.rules import default_engine
from tests.conftest import corpus_path
from tests.fuzz.streams import lazy_reader

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"
M365 = FIXTURES / "m365"


def _ctx(path: str = "export") -> ParseContext:
    return ParseContext(provenance=Provenance(bundle_path=None, source_path=path, sha256=None))


def _parse_bytes(data: bytes) -> tuple[list, ParseContext]:
    ctx = _ctx()
    return list(M365AuditParser().parse(io.BytesIO(data), ctx)), ctx


def _parse(path: Path) -> tuple[list, ParseContext]:
    ctx = _ctx(str(path))
    with path.open("rb") as handle:
        return list(M365AuditParser().parse(handle, ctx)), ctx


def test_purview_csv_export() -> None:
    path = M365 / "Audit_Log_Search_2023-09-20.csv"
    assert M365AuditParser.sniff(path.read_bytes()[:4096], path.name)
    records, ctx = _parse(path)
    assert ctx.warnings == []
    assert [r.attributes["operation"] for r in records] == [
        "New-InboxRule", "UpdateInboxRules", "MoveToDeletedItems", "SoftDelete", "HardDelete"]
    assert {r.data_type for r in records} == {"m365:ual:exchange"}
    hard = records[4]
    assert hard.timestamps == {"Creation Time": 1695111341000000}  # 2023-09-19T08:15:41 UTC
    assert hard.user == "megan.bowen@contoso.onmicrosoft.com"
    attrs = hard.attributes
    assert attrs["client_ip"] == "203.0.113.45:50744"
    assert attrs["mailbox"] == "megan.bowen@contoso.onmicrosoft.com"
    assert attrs["mailbox_guid"] == "7e1f0f5c-3b0a-4c55-9d59-1b6c5e0a2f11"
    assert attrs["folder"] == "\\Recoverable Items\\Deletions"
    assert attrs["item_count"] == 2
    assert attrs["item_subjects"] == ["Wire transfer - updated bank details", "RE: Invoice 4471 payment"]
    assert attrs["item_message_ids"][1] == "<DM6PR11MB4107B2@DM6PR11MB4107.namprd11.prod.outlook.com>"
    assert attrs["logon_type"] == 0
    assert attrs["client_info"].startswith("Client=OWA;")
    assert attrs["record_type"] == 3
    assert "RE: Invoice 4471 payment" in hard.message
    move = records[2].attributes
    assert (move["folder"], move["destination_folder"]) == ("\\Inbox", "\\Deleted Items")


def test_mailbox_operations_are_tagged() -> None:
    records, _ = _parse(M365 / "Audit_Log_Search_2023-09-20.csv")
    engine = default_engine()
    tags = {r.attributes["operation"]: engine.tag(r) for r in records}
    assert {"m365_mail_hard_delete", "T1070.008"} <= set(tags["HardDelete"].tags)
    assert tags["HardDelete"].attributes["severity"] == "high"
    assert "m365_mail_soft_delete" in tags["SoftDelete"].tags
    assert "m365_mail_move_to_deleted_items" in tags["MoveToDeletedItems"].tags
    assert {"m365_client_inbox_rule_hides_mail", "exchange_inbox_rule_changed", "T1564.008"} <= set(
        tags["UpdateInboxRules"].tags)
    inbox = tags["New-InboxRule"]
    assert inbox.attributes["command"].startswith('New-InboxRule -AlwaysDeleteOutlookRulesBlob "False"')
    assert {"name": "MoveToFolder", "value": "RSS Subscriptions"} in inbox.attributes["parameters"]
    assert inbox.attributes["inbox_rule_hides_mail"] is True
    assert "exchange_inbox_rule_changed" in inbox.tags


def test_classic_csv_export() -> None:
    records, ctx = _parse(M365 / "AuditLog_classic_export.csv")
    assert ctx.warnings == []
    (record,) = records
    assert record.attributes["operation"] == "SoftDelete"
    assert record.attributes["folder"] == "\\Deleted Items"
    assert record.timestamps == {"Creation Time": 1695111243000000}


def test_search_unifiedauditlog_json() -> None:
    path = M365 / "Search-UnifiedAuditLog.json"
    assert M365AuditParser.sniff(path.read_bytes()[:4096], path.name)
    records, ctx = _parse(path)
    assert ctx.warnings == []
    by_op = {r.attributes["operation"]: r for r in records}
    assert list(by_op) == ["Set-Mailbox", "Set-MailboxAuditBypassAssociation", "New-TransportRule",
                           "New-MailboxExportRequest", "New-ComplianceSearchAction"]
    purge = by_op["New-ComplianceSearchAction"]
    assert purge.data_type == "m365:ual:securitycompliancecenter"
    assert purge.attributes["parameters"] == [
        {"name": "SearchName", "value": "wire-cleanup"}, {"name": "Purge", "value": None},
        {"name": "PurgeType", "value": "HardDelete"}, {"name": "Confirm", "value": "False"}]
    assert purge.attributes["mailbox_purge"] is True
    assert purge.timestamps == {"Creation Time": 1695111611000000}
    assert by_op["Set-Mailbox"].attributes["command"] == (
        'Set-Mailbox -Identity "megan.bowen" -AuditEnabled "False"')
    assert by_op["Set-Mailbox"].attributes["mailbox_audit_disabled"] is True
    assert by_op["New-TransportRule"].attributes["transport_rule_deletes_mail"] is True
    assert "exchange_transport_rule_changed" in default_engine().tag(by_op["New-TransportRule"]).tags
    # Offsets point at each element of the array.
    raw = path.read_bytes()
    assert raw[records[1].provenance.offset:records[1].provenance.offset + 1] == b"{"


def test_json_lines_utf16_and_dotnet_dates() -> None:
    audit = {"CreationTime": "2023-09-19T08:15:41", "Operation": "HardDelete", "Workload": "Exchange",
             "RecordType": 3, "UserId": "a@b.c"}
    lines = (json.dumps(audit) + "\n" + json.dumps({**audit, "Operation": "SoftDelete"}) + "\n").encode()
    records, ctx = _parse_bytes(lines)
    assert [r.attributes["operation"] for r in records] == ["HardDelete", "SoftDelete"]
    wrapped = json.dumps({"CreationDate": "/Date(1695111341000)/", "Operations": "HardDelete",
                          "AuditData": json.dumps({k: v for k, v in audit.items() if k != "CreationTime"})})
    records, ctx = _parse_bytes(b"\xff\xfe" + wrapped.encode("utf-16-le"))
    assert ctx.warnings == []
    assert records[0].timestamps == {"Creation Time": 1695111341000000}
    assert parse_ual_time("9/19/2023 8:15:41 AM") is None


def test_broken_rows_are_warnings_not_crashes() -> None:
    good = json.dumps({"CreationTime": "2023-09-19T08:15:41", "Operation": "HardDelete",
                       "Workload": "Exchange"})
    data = ("[" + good + ", {\"CreationTime\": \"2023-09-19T08:16:00\", \"Operation\": " + "]").encode()
    records, ctx = _parse_bytes(data)
    assert len(records) == 1
    assert "broken JSON" in ctx.warnings[0]["message"]
    text = ("CreationDate,UserIds,Operations,AuditData\r\n"
            '2023-09-19T08:14:03.0000000Z,a@b.c,SoftDelete,"{not json"\r\n'
            "garbage time,a@b.c,HardDelete,\r\n")
    records, ctx = _parse_bytes(text.encode())
    assert [r.attributes["operation"] for r in records] == ["SoftDelete", "HardDelete"]
    assert records[0].corrupted and records[0].timestamps == {"Creation Time": 1695111243000000}
    assert records[1].timestamps == {} and records[1].attributes["creation_date_text"] == "garbage time"
    assert len(ctx.warnings) == 2


def test_large_auditdata_field_and_bounded_json_reader() -> None:
    audit = {"CreationTime": "2023-09-19T08:15:41", "Operation": "HardDelete", "Workload": "Exchange",
             "AffectedItems": [{"Subject": "x" * 300, "Id": str(i)} for i in range(1000)]}
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(["RecordId", "CreationDate", "RecordType", "Operation", "UserId", "AuditData"])
    writer.writerow(["1", "2023-09-19T08:15:41Z", "ExchangeItemGroup", "HardDelete", "a@b.c",
                     json.dumps(audit)])
    records, ctx = _parse_bytes(buffer.getvalue().encode())
    assert ctx.warnings == []
    assert records[0].attributes["item_count"] == 1000
    assert len(records[0].attributes["item_subjects"]) == 200
    many = ("[" + ",".join(json.dumps({"Operation": "Send", "Id": i}) for i in range(5000)) + "]").encode()
    values = [v for _, v in iter_json_objects(io.BytesIO(many), _ctx())]
    assert [v["Id"] for v in values] == list(range(5000))


def test_json_reader_offsets_across_small_reads(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(m365_audit, "_CHUNK", 7)
    items = [{"Subject": "Überweisung €", "Id": i} for i in range(20)]
    data = ("[\n" + ",\n".join(json.dumps(i, ensure_ascii=False) for i in items) + "\n]\n").encode()
    found = list(iter_json_objects(io.BytesIO(data), _ctx()))
    assert [v for _, v in found] == items
    for offset, value in found:
        assert data[offset:].startswith(json.dumps(value, ensure_ascii=False).encode())
    ctx = _ctx()
    broken = b'{"Id": 1}\n{"Id": 2, oops}\n{"Id": 3}\n'
    assert [v["Id"] for _, v in iter_json_objects(io.BytesIO(broken), ctx)] == [1, 3]
    assert ctx.warnings[0]["offset"] == broken.index(b"oops")


def test_sniff_rejects_other_csv_and_json() -> None:
    assert not M365AuditParser.sniff(b"a,b,c\r\n1,2,3\r\n", "x.csv")
    assert not M365AuditParser.sniff(b'{"name": "package", "version": "1"}', "package.json")
    assert M365AuditParser.sniff(b'#TYPE Deserialized.x\r\n"RunspaceId","RecordType","CreationDate",'
                                 b'"UserIds","Operations","AuditData"\r\n', "ual.csv")


def test_run_on_a_folder_of_mixed_exports_gives_one_timeline(tmp_path: Path) -> None:
    folder = tmp_path / "evidence"
    folder.mkdir()
    for path in list(M365.iterdir()) + list((FIXTURES / "exchange").iterdir()):
        shutil.copy2(path, folder / path.name)
    shutil.copy2(corpus_path("mail/extra/exchange_message_tracking.log"), folder)
    shutil.copy2(corpus_path("prefetch/museum_Win11_RathbunVM_v30/POWERSHELL.EXE-CA1AE517.pf"), folder)
    shutil.copy2(corpus_path("prefetch/plaso/CMD.EXE-087B4001.pf"), folder)
    shutil.copy2(corpus_path("prefetch/ez_Bad/notAPrefetch.pf"), folder)
    out = tmp_path / "out"
    assert main(["--quiet", "run", str(folder), "-o", str(out)]) == 0
    with (out / "timeline.csv").open(encoding="utf-8", newline="") as handle:
        rows = list(csv.DictReader(handle))
    types = {r["data_type"] for r in rows}
    assert {"m365:ual:exchange", "m365:ual:securitycompliancecenter", "windows:exchange:message_tracking",
            "windows:exchange:cmdlet", "windows:exchange:admin_audit", "windows:prefetch:execution"} <= types
    events = [r for r in rows if r["data_type"] != "fs:stat"]
    assert [int(r["timestamp"]) for r in events] == sorted(int(r["timestamp"]) for r in events)
    hard = next(r for r in rows if r["data_type"] == "m365:ual:exchange" and r["operation"] == "HardDelete")
    assert hard["datetime"] == "2023-09-19T08:15:41.000000+00:00"
    assert "m365_mail_hard_delete" in hard["tag"]
    real = [r["datetime"] for r in events if r["source"] == "/exchange_message_tracking.log"]
    assert real == ["2021-11-03T08:00:32.100000+00:00", "2021-11-03T08:00:32.147000+00:00"]
    runs = [r for r in rows if r["data_type"] == "windows:prefetch:execution"]
    ps = next(r for r in runs if r["executable"] == "POWERSHELL.EXE")
    assert ps["timestamp_desc"] == "Last Run Time"
    assert ps["datetime"] == "2022-02-05T19:12:48.527777+00:00"
    cmd17 = [r for r in runs if r["executable"] == "CMD.EXE"]
    assert [r["timestamp_desc"] for r in cmd17] == ["Last Run Time"]
    warnings = (out / "parse_warnings.jsonl").read_text(encoding="utf-8")
    assert "notAPrefetch.pf" in warnings and "not a prefetch file" in warnings
    l2t = (out / "timeline.l2t.csv").read_text(encoding="utf-8")
    assert "M365 Unified Audit Log" in l2t and "WinPrefetch" in l2t and "Exchange Message Tracking Log" in l2t


# -- bounded memory: a huge single line or element is cut, its readable fields kept ------------------
_CSV_HEAD = (b'CreationDate,UserIds,Operations,AuditData\n2023-09-19T08:00:00,a@b.c,HardDelete,'
             b'"{""CreationTime"":""2023-09-19T08:15:41"",""Operation"":""HardDelete"",""Workload"":""Exchange"",""UserId"":'
             b'""a@b.c"",""AffectedItems"":[{""Subject"":""')
_CSV_TAIL = (b'""}]}"\n2023-09-19T08:01:00,b@b.c,SoftDelete,"{""CreationTime"":""2023-09-19T08:16:00"",'
             b'""Operation"":""SoftDelete"",""Workload"":""Exchange""}"\n')
_JSON_HEAD = (b'[{"CreationTime":"2023-09-19T08:15:41","Operation":"HardDelete","Workload":"Exchange",'
              b'"UserId":"a@b.c","AffectedItems":[{"Subject":"')
_JSON_TAIL = (b'"}]},\n{"CreationTime":"2023-09-19T08:16:00","Operation":"SoftDelete",'
              b'"Workload":"Exchange"}]\n')
HUGE = 64 << 20


def _traced(handle) -> tuple[list, ParseContext, int]:
    ctx = _ctx("ual")
    tracemalloc.start()
    try:
        records = list(M365AuditParser().parse(handle, ctx))
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    return records, ctx, peak


@pytest.mark.parametrize(("head", "tail"), [(_CSV_HEAD, _CSV_TAIL), (_JSON_HEAD, _JSON_TAIL)],
                         ids=["csv", "json"])
def test_a_64_mb_single_line_is_cut_in_flat_memory(head: bytes, tail: bytes) -> None:
    """The same bound holds at 1 GB (``bench/fuzz.py --full-size``): nothing grows with the line."""
    records, ctx, peak = _traced(lazy_reader(head, HUGE, tail, fill=b"x"))
    assert peak < 16 << 20, f"heap peak {peak >> 20} MiB"
    cut, after = records
    assert cut.corrupted and cut.attributes["cut"] is True
    assert (cut.attributes["operation"], cut.attributes["user_id"]) == ("HardDelete", "a@b.c")
    assert cut.timestamps == {"Creation Time": 1695111341000000}
    assert cut.data_type == "m365:ual:exchange"
    assert not after.corrupted and after.attributes["operation"] == "SoftDelete"
    assert after.provenance.offset == len(head) + HUGE + tail.index(b"\n") + 1
    (warning,) = ctx.warnings
    assert warning["path"] == "ual" and warning["offset"] == cut.provenance.offset
    assert warning["offset"] == (head.index(b"\n") + 1 if head is _CSV_HEAD else 1)
    # (the CSV line counts its newline; the JSON element ends before ",\n")
    length = after.provenance.offset - warning["offset"] - (2 if head is _JSON_HEAD else 0)
    assert warning["message"].startswith(("CSV line of", "JSON element of"))
    assert f" of {length} characters cut to its first {m365_audit.MAX_OBJECT_CHARS}" in warning["message"]


def test_json_lines_with_a_huge_string_and_a_garbage_run() -> None:
    """A top-level string of 8 MB is skipped as one element; 8 MB of garbage is one warning."""
    good = b'{"CreationTime":"2023-09-19T08:16:00","Operation":"SoftDelete","Workload":"Exchange"}\n'
    data = good + b'"' + b"y" * (8 << 20) + b'"\n' + good + b"z" * (8 << 20) + b"\n" + good
    records, ctx, peak = _traced(io.BytesIO(data))
    assert [r.attributes["operation"] for r in records] == ["SoftDelete"] * 3
    assert [w["offset"] for w in ctx.warnings] == [len(good), data.index(b"zzz")]
    assert "cut to its first" in ctx.warnings[0]["message"] and "broken JSON" in ctx.warnings[1]["message"]
    assert peak < len(data) + (16 << 20)  # the BytesIO itself holds the input


def test_csv_quote_never_closed_is_stopped_and_reading_goes_on() -> None:
    head = b'CreationDate,UserIds,Operations,AuditData\n2023-09-19T08:00:00,a@b.c,HardDelete,"{oops\n'
    filler = b"line without a closing quote\n" * ((2 << 20) // 29)
    row = (b'2023-09-19T08:01:00,b@b.c,SoftDelete,"{""CreationTime"":""2023-09-19T08:16:00"",'
           b'""Operation"":""SoftDelete"",""Workload"":""Exchange""}"\n')
    records, ctx, _ = _traced(io.BytesIO(head + filler + row))
    assert records[-1].attributes["operation"] == "SoftDelete" and not records[-1].corrupted
    assert ctx.warnings[0]["offset"] == head.index(b"\n") + 1
    assert "unclosed quote" in ctx.warnings[0]["message"] and len(ctx.warnings) == 1  # no flood


def test_salvage_reads_the_scalars_of_a_cut_object() -> None:
    prefix = '{"CreationTime": "2023-09-19T08:15:41", "Operation":"Hard\\"Delete", "RecordType": 2, ' \
             '"ResultStatus": true, "AffectedItems": [{"Subject": "s'
    assert m365_audit.salvage_scalars(prefix) == {"CreationTime": "2023-09-19T08:15:41",
                                                  "Operation": 'Hard"Delete', "RecordType": 2,
                                                  "ResultStatus": True}
