"""Turn one event of the ``evtx`` package's JSON into inboxtrail fields.

The ``evtx`` package renders each record as JSON shaped like the XML (``Event/System``,
``Event/EventData`` or ``Event/UserData``). This module flattens that into named attributes and
knows, per channel and event ID, which record type it is and which fields matter for mail
clearing: script blocks, module-logging payloads, Exchange cmdlets with their parameters, process
command lines, cleared logs. It does no I/O, so it is tested with plain dictionaries.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from collector.timeutil import parse_iso

MESSAGE_CHARS = 240
PS_OPERATIONAL = ("Microsoft-Windows-PowerShell/Operational", "PowerShellCore/Operational")
SYSMON = "Microsoft-Windows-Sysmon/Operational"
WMI_ACTIVITY = "Microsoft-Windows-WMI-Activity/Operational"
EXCHANGE = "MSExchange Management"
_ZERO_FILETIME = "1601-01-01T00:00:00"

#: Positional ``Data`` names of the MSExchange Management (CmdletLogs) events.
EXCHANGE_FIELDS = ("cmdlet", "parameters", "caller", "caller_sid", "user_sid", "application",
                   "process", "param8", "param9", "duration", "scope")
#: Positional ``Data`` names of the classic "Windows PowerShell" channel.
WINPS_FIELDS = {
    400: ("NewEngineState", "PreviousEngineState", "Details"),
    403: ("NewEngineState", "PreviousEngineState", "Details"),
    600: ("ProviderName", "NewProviderState", "Details"),
    800: ("CommandLine", "Details", "Payload"),
}
SYSMON_TYPES = {1: "process_creation", 2: "file_time_changed", 3: "network_connection",
                5: "process_terminated", 11: "file_create", 13: "registry_value_set",
                23: "file_delete", 26: "file_delete_detected"}
_KV_TAB = re.compile(r"^\s*([A-Za-z][A-Za-z ]*?)\s*=(.*)$")
_INVOCATION = re.compile(r'^CommandInvocation\((?P<cmd>[^)]*)\):\s*"?(?P<name>[^"\r\n]*)"?\s*$')
_BINDING = re.compile(
    r'^ParameterBinding\((?P<cmd>[^)]*)\):\s*name="(?P<name>[^"]*)";\s*value="(?P<value>.*)"\s*$', re.DOTALL)
_EXCHANGE_PARAM = re.compile(
    r"""-(?P<name>[A-Za-z][\w-]*)(?::|\s+)?(?P<value>"(?:[^"]|"")*"|'(?:[^']|'')*'|(?!-[A-Za-z])[^\s"']+)?""")


@dataclass
class Event:
    """The fields of one event that every record type needs."""

    record_number: int
    event_id: int | None
    channel: str
    provider: str
    computer: str | None
    time: int | None
    system: dict[str, Any]
    data: dict[str, Any] = field(default_factory=dict)
    #: Byte offset of the record in the source, when known (carved chunks).
    offset: int | None = None


def _text(value: Any) -> Any:
    """The ``#text`` of a rendered XML element, or the value itself."""
    if isinstance(value, dict) and "#text" in value:
        return value["#text"]
    return value


def _flatten(value: Any, prefix: str, out: dict[str, Any]) -> None:
    """Flatten nested EventData/UserData elements into ``Parent.Child`` names (attributes dropped)."""
    if isinstance(value, dict):
        if "#text" in value and len(value) <= 2:
            out[prefix] = value["#text"]
            return
        for key, inner in value.items():
            if key == "#attributes":
                continue
            _flatten(inner, f"{prefix}.{key}" if prefix else key, out)
    else:
        out[prefix] = value


def event_data(event: dict[str, Any]) -> dict[str, Any]:
    """Named data fields of an event (EventData or the single child of UserData)."""
    out: dict[str, Any] = {}
    data = event.get("EventData")
    if isinstance(data, dict):
        for key, value in data.items():
            if key == "#attributes" or (key == "Binary" and value is None):
                continue
            if key == "Data":
                items = _text(value)
                if not isinstance(items, list):
                    items = [items]
                for index, item in enumerate(items, 1):
                    out[f"param{index}"] = _text(item)
            else:
                _flatten(value, key, out)
    elif data is not None:
        out["param1"] = data
    user_data = event.get("UserData")
    if isinstance(user_data, dict):
        for key, value in user_data.items():
            if key == "#attributes":
                continue
            # <UserData><LogFileCleared>...</LogFileCleared></UserData>: the child names the event.
            out["UserDataType"] = key
            if isinstance(value, dict):
                for inner_key, inner in value.items():
                    if inner_key != "#attributes":
                        _flatten(inner, inner_key, out)
            else:
                out[key] = value
    return out


def parse_time(text: Any) -> int | None:
    """µs for a ``SystemTime`` string; ``None`` for a missing or zero (1601) FILETIME."""
    if not isinstance(text, str) or not text or text.startswith(_ZERO_FILETIME):
        return None
    try:
        return parse_iso(text)  # Python 3.11 reads "Z" and 7-digit fractions
    except ValueError:
        return None


def read_event(record_number: int, parsed: dict[str, Any]) -> Event:
    """Pull System fields and data out of one decoded record."""
    event = parsed.get("Event", parsed)
    system = event.get("System") or {}
    provider = system.get("Provider") or {}
    provider_attrs = provider.get("#attributes", {}) if isinstance(provider, dict) else {}
    raw_id = _text(system.get("EventID"))
    try:
        event_id = int(raw_id) if raw_id is not None else None
    except (TypeError, ValueError):
        event_id = None
    time_created = system.get("TimeCreated") or {}
    time_text = (time_created.get("#attributes", {}).get("SystemTime")
                 if isinstance(time_created, dict) else None)
    return Event(record_number=record_number, event_id=event_id,
                 channel=str(system.get("Channel") or ""),
                 provider=str(provider_attrs.get("Name") or provider_attrs.get("EventSourceName") or ""),
                 computer=system.get("Computer") or None, time=parse_time(time_text),
                 system=system, data=event_data(event))


_SYSTEM_SCALARS = (("Level", "level"), ("Task", "task"), ("Opcode", "opcode"), ("Keywords", "keywords"),
                   ("Version", "version"))
#: (System element, its attribute, our name) for the elements whose value is an XML attribute.
_SYSTEM_ATTRIBUTES = (("Execution", "ProcessID", "process_id"), ("Execution", "ThreadID", "thread_id"),
                      ("Security", "UserID", "user_sid"), ("Correlation", "ActivityID", "activity_id"))


def system_attributes(event: Event) -> dict[str, Any]:
    """The System block fields worth keeping, under stable snake_case names."""
    system = event.system
    attrs: dict[str, Any] = {"channel": event.channel, "provider": event.provider,
                             "event_id": event.event_id, "record_number": event.record_number}
    if event.computer:
        attrs["computer"] = event.computer
    for key, name in _SYSTEM_SCALARS:
        value = system.get(key)
        if value is not None:
            attrs[name] = value.get("#text") if type(value) is dict else value
    for element, key, name in _SYSTEM_ATTRIBUTES:
        value = system.get(element)
        if type(value) is dict:
            inner = value.get("#attributes")
            if inner and inner.get(key) not in (None, ""):
                attrs[name] = inner[key]
    return attrs


def key_values(text: str) -> dict[str, str]:
    """``Key = Value`` lines (4103 ContextInfo, 400/800 Details) as a dict (spaces dropped from keys)."""
    out: dict[str, str] = {}
    for line in text.splitlines():
        match = _KV_TAB.match(line)
        if match:
            out[match.group(1).replace(" ", "")] = match.group(2).strip()
    return out


def parse_invocations(payload: str) -> list[dict[str, Any]]:
    """Cmdlets and bound parameters of a 4103/800 payload, in order.

    Lines look like ``CommandInvocation(Set-Mailbox): "Set-Mailbox"`` followed by
    ``ParameterBinding(Set-Mailbox): name="AuditEnabled"; value="False"``.
    """
    invocations: list[dict[str, Any]] = []
    for line in re.split(r"\r?\n(?=[A-Za-z]+\()", payload):
        line = line.rstrip("\r\n")
        match = _INVOCATION.match(line)
        if match:
            invocations.append({"cmdlet": match.group("name") or match.group("cmd"), "parameters": []})
            continue
        match = _BINDING.match(line)
        if match:
            if not invocations or invocations[-1]["cmdlet"].lower() != match.group("cmd").lower():
                invocations.append({"cmdlet": match.group("cmd"), "parameters": []})
            invocations[-1]["parameters"].append([match.group("name"), match.group("value")])
    return invocations


def _quote(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def invocations_command(invocations: list[dict[str, Any]]) -> str:
    """A PowerShell line equivalent to parsed invocations (what the rule matcher reads)."""
    lines = []
    for inv in invocations:
        parts = [inv["cmdlet"]]
        for name, value in inv["parameters"]:
            parts.append(f"-{name}" if not name.isdigit() else "")
            parts.append(_quote(value))
        lines.append(" ".join(p for p in parts if p))
    return "\n".join(lines)


def exchange_parameters(text: str) -> dict[str, str]:
    """``-Identity "x" -AuditEnabled "False"`` → ``{"Identity": "x", "AuditEnabled": "False"}``."""
    params: dict[str, str] = {}
    for match in _EXCHANGE_PARAM.finditer(text or ""):
        value = match.group("value")
        if value is None:
            params[match.group("name")] = ""
            continue
        if value[:1] in "\"'" and value[-1:] == value[:1] and len(value) >= 2:
            value = value[1:-1].replace(value[0] * 2, value[0])
        params[match.group("name")] = value
    return params


def one_line(text: str, limit: int = MESSAGE_CHARS) -> str:
    """Collapse whitespace and cut to ``limit`` characters (long text lives in attributes)."""
    flat = " ".join(str(text).split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


@dataclass
class Shaped:
    """What one event becomes: record type, attributes, summary and user."""

    data_type: str
    attributes: dict[str, Any]
    summary: str
    user: str | None = None


def _rename_positional(data: dict[str, Any], names: tuple[str, ...]) -> dict[str, Any]:
    out = dict(data)
    for index, name in enumerate(names, 1):
        key = f"param{index}"
        if key in out:
            out[name] = out.pop(key)
    return out


def _user_from(data: dict[str, Any]) -> str | None:
    for domain_key, name_key in (("SubjectDomainName", "SubjectUserName"),
                                 ("TargetDomainName", "TargetUserName")):
        name = data.get(name_key)
        if name and name != "-":
            domain = data.get(domain_key)
            return f"{domain}\\{name}" if domain and domain != "-" else str(name)
    for key in ("User", "UserId", "UserName", "caller"):
        if data.get(key):
            return str(data[key])
    return None


def shape(event: Event) -> Shaped:
    """Classify an event and pick its attributes, summary line and user."""
    data = dict(event.data)
    eid, channel = event.event_id, event.channel
    kind = "record"
    summary = ""
    extra: dict[str, Any] = {}
    if channel in PS_OPERATIONAL:
        if eid == 4104:
            kind = "powershell:scriptblock"
        elif eid == 4103:
            kind = "powershell:module"
            context = key_values(str(data.get("ContextInfo") or ""))
            invocations = parse_invocations(str(data.get("Payload") or ""))
            extra.update({f"context_{k}": v for k, v in context.items() if v})
            if invocations:
                extra["invocations"] = invocations
                extra["command"] = invocations_command(invocations)
            summary = "Module logging: " + ("; ".join(i["cmdlet"] for i in invocations)
                                            or context.get("CommandName", ""))
        elif eid in (4105, 4106):
            kind = "powershell:scriptblock_invocation"
            summary = ("Started" if eid == 4105 else "Completed") + \
                f" invocation of script block {data.get('ScriptBlockId', '')}"
        else:
            kind = "powershell:operational"
    elif channel == "Windows PowerShell" and eid in WINPS_FIELDS:
        kind = "powershell:engine"
        data = _rename_positional(data, WINPS_FIELDS[eid])
        details = key_values(str(data.pop("Details", "") or ""))
        extra.update({k: v for k, v in details.items() if v})
        if eid == 800:
            invocations = parse_invocations(str(data.get("Payload") or ""))
            command = str(data.get("CommandLine") or details.get("CommandLine") or "")
            if invocations:
                extra["invocations"] = invocations
                command = "\n".join(c for c in (command, invocations_command(invocations)) if c)
            if command:
                extra["command"] = command
            summary = "Pipeline execution: " + (command or "")
        else:
            if details.get("HostApplication"):
                extra["command"] = details["HostApplication"]
            state = data.get("NewEngineState") or data.get("NewProviderState") or ""
            summary = f"{'Provider ' + str(data.get('ProviderName')) + ' ' if eid == 600 else 'Engine '}" \
                      f"{state}: {details.get('HostApplication', '')}"
    elif channel == EXCHANGE:
        kind = "exchange:cmdlet"
        data = _rename_positional(data, EXCHANGE_FIELDS)
        if eid == 6 and "param12" in data:
            data["error"] = data.pop("param12")
        cmdlet = str(data.get("cmdlet") or "")
        raw_params = str(data.get("parameters") or "")
        extra["parameters_parsed"] = exchange_parameters(raw_params)
        extra["command"] = f"{cmdlet} {raw_params}".strip()
        extra["status"] = "failed" if eid == 6 else "succeeded" if eid == 1 else f"event {eid}"
        summary = f"Exchange cmdlet {extra['status']}: {extra['command']}"
    elif channel == "Security" and eid == 1102:
        kind = "security:log_cleared"
        summary = "The audit log was cleared"
    elif channel == "Security" and eid == 4688:
        kind = "security:process_creation"
        if data.get("CommandLine"):
            extra["command"] = data["CommandLine"]
        summary = f"Process created: {data.get('CommandLine') or data.get('NewProcessName', '')}"
    elif channel == "Security" and eid == 4663:
        kind = "security:object_access"
        try:
            extra["access_delete"] = bool(int(str(data.get("AccessMask") or "0"), 0) & 0x10000)
        except ValueError:
            pass
        summary = f"Object access {data.get('AccessMask', '')}: {data.get('ObjectName', '')} " \
                  f"by {data.get('ProcessName', '')}"
    elif channel == "System" and eid == 104 and "eventlog" in event.provider.lower():
        kind = "system:log_cleared"
        name = data.get("Channel") or data.get("BackupPath")
        summary = f"The {name} log was cleared" if name else "An event log was cleared"
    elif channel == SYSMON:
        kind = "sysmon:" + SYSMON_TYPES.get(eid or 0, "event")
        if eid == 1 and data.get("CommandLine"):
            extra["command"] = data["CommandLine"]
        summary = f"Sysmon {eid}: " + str(data.get("CommandLine") or data.get("TargetFilename")
                                           or data.get("Image") or "")
    elif channel == WMI_ACTIVITY:
        kind = "wmi:activity"
        operation = data.get("Operation")
        if operation:
            extra["command"] = str(operation)
        summary = f"WMI activity {eid}: {operation or data.get('Consumer') or ''}"
    attributes = {**data, **extra}
    if not summary:
        pairs = [f"{k}={v}" for k, v in data.items() if v not in (None, "", "-")][:6]
        summary = " ".join(pairs)
    user = _user_from({**data, **extra}) or extra.get("context_User") or extra.get("UserId")
    return Shaped(data_type=f"windows:evtx:{kind}", attributes=attributes, summary=summary, user=user)
