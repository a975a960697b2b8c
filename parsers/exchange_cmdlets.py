"""What an Exchange management cmdlet did, computed the same way for every source that logs one.

The same cmdlet (``New-InboxRule -DeleteMessage``, ``New-ComplianceSearchAction -Purge``,
``Set-Mailbox -AuditEnabled $false``...) reaches an examiner through the CmdletInfra logs, the
admin audit log export and the Microsoft 365 Unified Audit Log. Each parser turns what it has into
``(name, value)`` pairs and calls :func:`cmdlet_attributes`.

``command`` is rebuilt in the form Exchange itself writes (``TaskVerboseStringHelper``:
``Cmdlet -Name "value" -List ("a","b")``), which is also what the MSExchange Management event
log records, so the command-line rules (``powershell_any`` in ``rules/exchange_mailbox.yaml``)
match every source with the same rule ids. The boolean indicators computed here
(``inbox_rule_hides_mail``, ``mailbox_purge``...) are for what a command line cannot show
(``UpdateInboxRules`` from a mail client) and for examiners filtering the timeline.
"""

from __future__ import annotations

import re
from typing import Any

#: Folders an inbox rule moves mail to in order to hide it from the mailbox owner.
HIDING_FOLDERS = ("deleted items", "junk email", "junk e-mail", "rss feeds", "rss subscriptions",
                  "conversation history", "archive", "recoverable items", "notes")
_TRUE = {"true", "$true", "1", "yes"}
_FALSE = {"false", "$false", "0", "no"}
_PARAM = re.compile(r"-(?P<name>[A-Za-z][\w-]*)(?::|\s|$)")
_NEXT = r"(?=\s+-[A-Za-z][\w-]*(?::|\s|$)|\s*$)"
_NEXT_PARAM = re.compile(r"\s+-[A-Za-z][\w-]*(?::|\s|$)")
_CLOSERS = {'"': re.compile('"' + _NEXT), "(": re.compile(r"\)" + _NEXT), "{": re.compile(r"\}" + _NEXT)}

#: Lower-case name -> canonical spelling for the cmdlets the rules look at.
CANONICAL = {name.lower(): name for name in (
    "New-InboxRule", "Set-InboxRule", "Enable-InboxRule", "Remove-InboxRule", "UpdateInboxRules",
    "New-TransportRule", "Set-TransportRule", "Enable-TransportRule", "Remove-TransportRule",
    "Set-Mailbox", "Set-MailboxAuditBypassAssociation", "Set-OrganizationConfig",
    "Set-AdminAuditLogConfig", "New-ComplianceSearchAction", "New-ComplianceSearch",
    "Start-ComplianceSearch", "Search-Mailbox", "New-MailboxExportRequest",
    "Remove-MailboxExportRequest", "New-MailboxSearch", "Add-MailboxPermission",
    "Add-MailboxFolderPermission", "Set-MailboxFolderPermission", "Remove-Mailbox")}


def canonical_cmdlet(name: str) -> str:
    """The canonical spelling of a cmdlet name (unknown names are returned as given)."""
    return CANONICAL.get(name.strip().lower(), name.strip())


def truthy(value: Any) -> bool:
    """Whether a logged parameter value means "on" (``True``, ``$true``; a bare switch is None)."""
    if value is None:
        return True
    if isinstance(value, bool):
        return value
    return str(value).strip().strip('"').lower() in _TRUE


def falsy(value: Any) -> bool:
    """Whether a logged parameter value means "off"."""
    if isinstance(value, bool):
        return not value
    return value is not None and str(value).strip().strip('"').lower() in _FALSE


def _unquote(value: str) -> str:
    value = value.strip()
    if len(value) >= 2 and value[0] == value[-1] == '"':
        return value[1:-1]
    return value


def parse_parameter_string(text: str) -> list[tuple[str, str | None]]:
    """Split ``-Name "value" -List ("a","b") -Switch -Other:$false`` into (name, value) pairs.

    Exchange does not escape quotes inside values, so a quoted value ends at the quote that is
    followed by the next ``-Name`` (or by the end of the text); a bare switch has the value None
    and ``$null`` becomes the empty string.
    """
    pairs: list[tuple[str, str | None]] = []
    text = text.strip()
    position, size = 0, len(text)
    while position < size:
        match = _PARAM.match(text, position)
        if match is None:
            # Not in the expected shape: keep the rest as one unnamed value rather than lose it.
            pairs.append(("", text[position:].strip()))
            break
        name = match.group("name")
        position = match.end()
        while position < size and text[position] == " ":
            position += 1
        if position >= size or (text[position] == "-" and _PARAM.match(text, position)):
            pairs.append((name, None))
            continue
        opener = text[position]
        if opener == "@" and text.startswith("@{", position):  # a hashtable: @{Add="x";Remove="y"}
            closer = _CLOSERS["{"].search(text, position + 2)
            end = closer.start() if closer else size - 1
            pairs.append((name, text[position:end + 1]))
            position = end + 1
            while position < size and text[position] == " ":
                position += 1
            continue
        if opener in "\"({":
            closer = _CLOSERS[opener].search(text, position + 1)
            end = closer.start() if closer else size - 1
            value = text[position + 1:end] if opener == '"' else text[position:end + 1]
            position = end + 1
        else:
            following = _NEXT_PARAM.search(text, position)
            end = following.start() if following else size
            value = text[position:end].strip()
            position = end
            if value == "$null":
                value = ""
        pairs.append((name, value))
        while position < size and text[position] == " ":
            position += 1
    return pairs


_LEGACY_NAME = re.compile(r"(?:^|, )([A-Za-z][\w-]*)=")


def parse_legacy_parameters(text: str) -> list[tuple[str, str | None]]:
    """Exchange 2010's form of the same list: ``{Identity=DAG1, MailboxServer=SCEX02}``.

    Values are not quoted there, so a value that itself contains ``, Name=`` cannot be told apart
    from the next parameter; it is split there.
    """
    body = text.strip()
    if body.startswith("{") and body.endswith("}"):
        body = body[1:-1]
    names = list(_LEGACY_NAME.finditer(body))
    if not names or names[0].start() != 0:
        return [("", body)] if body else []
    pairs: list[tuple[str, str | None]] = []
    for index, match in enumerate(names):
        end = names[index + 1].start() if index + 1 < len(names) else len(body)
        pairs.append((match.group(1), body[match.end():end]))
    return pairs


def parse_logged_parameters(text: str) -> list[tuple[str, str | None]]:
    """The parameter text of an MSExchange CmdletLogs event, in either form Exchange writes.

    Exchange 2013 and later write ``TaskVerboseStringHelper.FormatUserSpecifiedParameters``
    (``-Name "value" -List ("a","b") -Table @{k="v"}``, ``$null`` for null, every switch with a value
    such as ``-Confirm "False"``); Exchange 2010 wrote ``{Name=value, Name2=value}``.
    """
    stripped = text.strip()
    if not stripped:
        return []
    if stripped.startswith("{") and stripped.endswith("}") and "=" in stripped:
        return parse_legacy_parameters(stripped)
    return parse_parameter_string(stripped)


def _quote(value: str | None) -> str:
    if value is None:
        return ""
    if value.startswith(("(", "{", "@{")) and value.endswith((")", "}")):
        return value
    return f'"{value}"'


def build_command(cmdlet: str, parameters: list[tuple[str, str | None]]) -> str:
    """``Cmdlet -Name "value" ...`` as Exchange writes it (a bare switch has no value)."""
    parts = [cmdlet]
    for name, value in parameters:
        if not name:
            parts.append(value or "")
            continue
        parts.append(f"-{name}" if value is None else f"-{name} {_quote(value)}")
    return " ".join(p for p in parts if p)


def _param(parameters: list[tuple[str, str | None]], name: str) -> tuple[bool, str | None]:
    lowered = name.lower()
    for key, value in parameters:
        if key.lower() == lowered:
            return True, value
    return False, None


def _hides(folder: str | None) -> bool:
    if not folder:
        return False
    # "user@contoso.com:\Deleted Items", "\RSS Subscriptions", "Deleted Items"
    leaf = folder.replace("/", "\\").rstrip("\\").rsplit("\\", 1)[-1].strip().strip('"').lower()
    return leaf in HIDING_FOLDERS


def cmdlet_attributes(cmdlet: str, parameters: list[tuple[str, str | None]]) -> dict[str, Any]:
    """Attributes the rules match on, for one cmdlet invocation.

    Returns ``cmdlet`` (canonical), ``parameters`` (list of ``{"name", "value"}``), ``command``
    and, when they apply, the boolean indicators ``inbox_rule_change``, ``inbox_rule_hides_mail``,
    ``transport_rule_change``, ``transport_rule_deletes_mail``, ``mailbox_audit_disabled``,
    ``mailbox_purge``, ``mailbox_export`` and ``export_request_removed``.
    """
    name = canonical_cmdlet(cmdlet)
    lowered = name.lower()
    attrs: dict[str, Any] = {
        "cmdlet": name,
        "parameters": [{"name": k, "value": v} for k, v in parameters],
        "command": build_command(name, parameters),
    }

    def has(param: str) -> bool:
        present, _ = _param(parameters, param)
        return present

    def on(param: str) -> bool:
        present, value = _param(parameters, param)
        return present and truthy(value)

    def off(param: str) -> bool:
        present, value = _param(parameters, param)
        return present and falsy(value)

    if lowered in ("new-inboxrule", "set-inboxrule", "enable-inboxrule"):
        attrs["inbox_rule_change"] = True
        moved = _param(parameters, "MoveToFolder")[1]
        if on("DeleteMessage") or on("SoftDeleteMessage") or _hides(moved):
            attrs["inbox_rule_hides_mail"] = True
    elif lowered in ("new-transportrule", "set-transportrule", "enable-transportrule"):
        attrs["transport_rule_change"] = True
        if on("DeleteMessage") or on("Quarantine"):
            attrs["transport_rule_deletes_mail"] = True
    elif lowered == "set-mailbox":
        if off("AuditEnabled"):
            attrs["mailbox_audit_disabled"] = True
    elif lowered == "set-mailboxauditbypassassociation":
        if on("AuditBypassEnabled"):
            attrs["mailbox_audit_disabled"] = True
    elif lowered == "set-organizationconfig":
        if on("AuditDisabled"):
            attrs["mailbox_audit_disabled"] = True
    elif lowered == "set-adminauditlogconfig":
        if off("AdminAuditLogEnabled") or off("UnifiedAuditLogIngestionEnabled"):
            attrs["mailbox_audit_disabled"] = True
    elif lowered == "new-compliancesearchaction":
        if on("Purge") or has("PurgeType"):
            attrs["mailbox_purge"] = True
        if on("Export"):
            attrs["mailbox_export"] = True
    elif lowered == "search-mailbox":
        if on("DeleteContent"):
            attrs["mailbox_purge"] = True
    elif lowered == "new-mailboxexportrequest":
        attrs["mailbox_export"] = True
    elif lowered == "remove-mailboxexportrequest":
        attrs["export_request_removed"] = True
    return attrs
