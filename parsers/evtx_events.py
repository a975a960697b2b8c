"""Turn one event of the ``evtx`` package's JSON into inboxtrail fields.

The ``evtx`` package renders each record as JSON shaped like the XML (``Event/System``,
``Event/EventData`` or ``Event/UserData``). This module flattens that into named attributes and
knows, per channel and event ID, which record type it is and which fields matter for mail
clearing: script blocks, module-logging payloads, Exchange cmdlets with their parameters, process
command lines, cleared logs. It does no I/O, so it is tested with plain dictionaries.
"""

from __future__ import annotations

import datetime as _dt
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from parsers.exchange_cmdlets import cmdlet_attributes, parse_logged_parameters

MESSAGE_CHARS = 240
PS_OPERATIONAL = ("Microsoft-Windows-PowerShell/Operational", "PowerShellCore/Operational")
SYSMON = "Microsoft-Windows-Sysmon/Operational"
WMI_ACTIVITY = "Microsoft-Windows-WMI-Activity/Operational"
EXCHANGE = "MSExchange Management"
_ZERO_FILETIME = "1601-01-01T00:00:00"

#: Positional ``Data`` names of the MSExchange Management events (provider "MSExchange CmdletLogs").
#: Exchange 2013 and later fill one 27-slot array for every outcome (``CmdletIterationEventModule``
#: in Microsoft.Exchange.Configuration.ObjectModel): invocation name, user-specified parameters,
#: caller, logon and executing user SIDs, client application, "pid process", organization, managed
#: thread id, time since the previous iteration, AD server settings, then the error (exception,
#: category, inner exception, string id) and diagnostics; the corpus sample carries all 27.
#: Exchange 2010 logs the first twelve the same way and fewer after them.
EXCHANGE_FIELDS = ("cmdlet", "parameters_text", "caller", "logon_user_sid", "user_sid", "application",
                   "process", "organization", "thread_id", "duration", "ad_settings", "error",
                   "error_category", "inner_error", "error_id", "additional_data", "throttling",
                   "pii_suppressed", "proxy_info", "proxied_objects", "request_filter", "cmdlet_filter",
                   "output_objects", "activity_id", "rbac", "client_request_id", "culture")
#: Event ID -> outcome (``TaskEventLogConstants``): 1 success, 2 success of a Get- cmdlet (low level),
#: 3 success outside an RBAC runspace (medium level), 4 stopped, 5 cancelled, 6 failed.
EXCHANGE_STATUS = {1: "succeeded", 2: "succeeded", 3: "succeeded", 4: "stopped", 5: "cancelled",
                   6: "failed"}
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



@dataclass(slots=True)
class Event:
    """The fields of one event that every record type needs."""

    record_number: int
    event_id: int | None
    channel: str
    provider: str
    computer: str | None
    time: int | None
    #: The System fields worth keeping, under stable snake_case names (see :func:`read_fields`).
    head: dict[str, Any]
    data: dict[str, Any] = field(default_factory=dict)
    #: Byte offset of the record in the source, when known (carved chunks).
    offset: int | None = None


def _text(value: Any) -> Any:
    """The ``#text`` of a rendered XML element, or the value itself."""
    if type(value) is dict and "#text" in value:
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
    if type(data) is dict:
        for key, value in data.items():
            if type(value) is not dict and key != "Data":
                # The common case: <Data Name="x">scalar</Data>, rendered as "x": scalar.
                if key != "#attributes" and not (key == "Binary" and value is None):
                    out[key] = value
                continue
            if key == "#attributes":
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


_EPOCH = _dt.datetime(1970, 1, 1, tzinfo=_dt.UTC)
_ONE_US = _dt.timedelta(microseconds=1)
_FROMISO = _dt.datetime.fromisoformat


def parse_time(text: Any) -> int | None:
    """µs for a ``SystemTime`` string; ``None`` for a missing or zero (1601) FILETIME."""
    if type(text) is not str or not text or text.startswith(_ZERO_FILETIME):
        return None
    try:
        value = _FROMISO(text)  # Python 3.11 reads "Z" and 7-digit fractions
    except ValueError:
        return None
    if value.tzinfo is None:
        value = value.replace(tzinfo=_dt.UTC)
    return (value - _EPOCH) // _ONE_US


#: What :func:`read_fields` returns: event ID, channel, provider, computer, time, head, data.
Fields = tuple["int | None", str, str, "str | None", "int | None", dict[str, Any], dict[str, Any]]


def read_fields(record_number: int, parsed: dict[str, Any]) -> Fields:
    """The fields of :class:`Event` of one decoded record, without building the Event.

    This runs once per record, so the System block is read in one pass into both the event
    fields and its ``head`` (the System attributes every record carries), and the parser builds
    an :class:`Event` only for the records that need one kept (script block parts, damaged ones).
    """
    event = parsed.get("Event", parsed)
    system = event.get("System") or {}
    get = system.get
    provider = get("Provider")
    raw_id = get("EventID")
    version = get("Version")
    level = get("Level")
    task = get("Task")
    opcode = get("Opcode")
    keywords = get("Keywords")
    time_created = get("TimeCreated")
    correlation = get("Correlation")
    execution = get("Execution")
    channel = get("Channel")
    computer = get("Computer")
    security = get("Security")
    provider_attrs = provider.get("#attributes") if type(provider) is dict else None
    provider_name = str(provider_attrs.get("Name") or provider_attrs.get("EventSourceName") or "") \
        if provider_attrs else ""
    if type(raw_id) is dict:
        raw_id = raw_id.get("#text")
    if type(raw_id) is int:
        event_id: int | None = raw_id
    else:
        try:
            event_id = int(raw_id) if raw_id is not None else None
        except (TypeError, ValueError):
            event_id = None
    time_text = None
    if type(time_created) is dict:
        inner = time_created.get("#attributes")
        time_text = inner.get("SystemTime") if inner else None
    channel = channel if type(channel) is str else str(channel or "")
    computer = computer or None
    head: dict[str, Any] = {"channel": channel, "provider": provider_name, "event_id": event_id,
                            "record_number": record_number}
    if computer:
        head["computer"] = computer
    # Unrolled on purpose: this is the hottest code of the EVTX parser.
    if level is not None:
        head["level"] = level.get("#text") if type(level) is dict else level
    if task is not None:
        head["task"] = task.get("#text") if type(task) is dict else task
    if opcode is not None:
        head["opcode"] = opcode.get("#text") if type(opcode) is dict else opcode
    if keywords is not None:
        head["keywords"] = keywords.get("#text") if type(keywords) is dict else keywords
    if version is not None:
        head["version"] = version.get("#text") if type(version) is dict else version
    if type(execution) is dict:
        inner = execution.get("#attributes")
        if inner:
            item = inner.get("ProcessID")
            if item is not None and item != "":
                head["process_id"] = item
            item = inner.get("ThreadID")
            if item is not None and item != "":
                head["thread_id"] = item
    if type(security) is dict:
        inner = security.get("#attributes")
        if inner:
            item = inner.get("UserID")
            if item is not None and item != "":
                head["user_sid"] = item
    if type(correlation) is dict:
        inner = correlation.get("#attributes")
        if inner:
            item = inner.get("ActivityID")
            if item is not None and item != "":
                head["activity_id"] = item
    return event_id, channel, provider_name, computer, parse_time(time_text), head, event_data(event)


try:  # the optional C twin of read_fields (setup.py builds it)
    from parsers import _evtxread
except ImportError:
    _evtxread = None
else:
    _evtxread.configure(read_fields)  # what it hands the records it does not read itself
NATIVE_READ_FIELDS: Callable[[int, dict[str, Any]], Fields] | None = (
    _evtxread.read_fields if _evtxread is not None else None)


def fields_reader() -> Callable[[int, dict[str, Any]], Fields]:
    """:func:`read_fields`, through its C twin where it is built (same results; looked up once
    per file, so that the tests can run both)."""
    return NATIVE_READ_FIELDS or read_fields


#: ``read_json(record_number, text)``: ``read_fields(record_number, orjson.loads(text))`` read
#: straight from the library's JSON text, or None where the text is to be decoded and read in
#: full (see parsers/_evtxread.c). C only: in Python, decoding first is the fast way. The parser
#: looks it up once per file, so that the tests can run without it.
NATIVE_READ_JSON: Callable[[int, Any], Fields | None] | None = (
    _evtxread.read_json if _evtxread is not None else None)


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


def one_line(text: str, limit: int = MESSAGE_CHARS) -> str:
    """Collapse whitespace and cut to ``limit`` characters (long text lives in attributes)."""
    flat = " ".join(str(text).split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


def _rename_positional(data: dict[str, Any], names: tuple[str, ...]) -> dict[str, Any]:
    out = dict(data)
    for index, name in enumerate(names, 1):
        key = f"param{index}"
        if key in out:
            out[name] = out.pop(key)
    return out


_USER_PAIRS = (("SubjectDomainName", "SubjectUserName"), ("TargetDomainName", "TargetUserName"))
_USER_KEYS = ("User", "UserId", "UserName", "caller")
_USER_FIELDS = frozenset(("SubjectUserName", "TargetUserName", *_USER_KEYS))


def _user_from(data: dict[str, Any]) -> str | None:
    if _USER_FIELDS.isdisjoint(data):
        return None
    for domain_key, name_key in _USER_PAIRS:
        name = data.get(name_key)
        if name and name != "-":
            domain = data.get(domain_key)
            return f"{domain}\\{name}" if domain and domain != "-" else str(name)
    for key in _USER_KEYS:
        if data.get(key):
            return str(data[key])
    return None


def _pairs_summary(data: dict[str, Any]) -> str:
    """``key=value`` for the first six non-empty data fields (records without a dedicated summary)."""
    if len(data) <= 6:  # most events: no need to stop early
        return " ".join([f"{key}={value}" for key, value in data.items()
                         if value is not None and value != "" and value != "-"])
    pairs = []
    for key, value in data.items():
        if value is None or value == "" or value == "-":
            continue
        pairs.append(f"{key}={value}")
        if len(pairs) == 6:
            break
    return " ".join(pairs)


#: What a channel-specific shaper returns: kind, data (possibly renamed), derived fields, summary.
#: A shaper is called with the event ID, the provider name and the data fields.
_Shape = tuple[str, dict[str, Any], dict[str, Any], str]


def _ps_operational(eid: int | None, provider: str, data: dict[str, Any]) -> _Shape | None:
    extra: dict[str, Any] = {}
    summary = ""
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
    return kind, data, extra, summary


def _windows_powershell(eid: int | None, provider: str, data: dict[str, Any]) -> _Shape | None:
    names = WINPS_FIELDS.get(eid) if eid is not None else None
    if names is None:
        return None
    extra: dict[str, Any] = {}
    data = _rename_positional(data, names)
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
    return "powershell:engine", data, extra, summary


def _exchange(eid: int | None, provider: str, data: dict[str, Any]) -> _Shape | None:
    data = _rename_positional(data, EXCHANGE_FIELDS)
    activity = data.get("activity_id")
    if isinstance(activity, str) and activity.startswith("ActivityId: "):
        data["activity_id"] = activity[len("ActivityId: "):]
    cmdlet = str(data.get("cmdlet") or "")
    logged = str(data.get("parameters_text") or "")
    # cmdlet (canonical), parameters as name/value pairs, command, and the indicators the other
    # Exchange sources compute the same way.
    extra = cmdlet_attributes(cmdlet, parse_logged_parameters(logged))
    if logged.lstrip().startswith("-") or not logged.strip():
        extra["command"] = f"{cmdlet} {logged}".strip()  # already PowerShell syntax: kept as logged
    status = EXCHANGE_STATUS.get(eid or 0, f"event {eid}")
    extra["status"] = status
    return "exchange:cmdlet", data, extra, f"Exchange cmdlet {status}: {extra['command']}"


def _security(eid: int | None, provider: str, data: dict[str, Any]) -> _Shape | None:
    extra: dict[str, Any] = {}
    if eid == 1102:
        return "security:log_cleared", data, extra, "The audit log was cleared"
    if eid == 4688:
        if data.get("CommandLine"):
            extra["command"] = data["CommandLine"]
        return ("security:process_creation", data, extra,
                f"Process created: {data.get('CommandLine') or data.get('NewProcessName', '')}")
    if eid == 4663:
        try:
            extra["access_delete"] = bool(int(str(data.get("AccessMask") or "0"), 0) & 0x10000)
        except ValueError:
            pass
        return ("security:object_access", data, extra,
                f"Object access {data.get('AccessMask', '')}: {data.get('ObjectName', '')} "
                f"by {data.get('ProcessName', '')}")
    return None


def _system(eid: int | None, provider: str, data: dict[str, Any]) -> _Shape | None:
    if eid != 104 or "eventlog" not in provider.lower():
        return None
    name = data.get("Channel") or data.get("BackupPath")
    return ("system:log_cleared", data, {},
            f"The {name} log was cleared" if name else "An event log was cleared")


def _sysmon(eid: int | None, provider: str, data: dict[str, Any]) -> _Shape | None:
    extra: dict[str, Any] = {}
    if eid == 1 and data.get("CommandLine"):
        extra["command"] = data["CommandLine"]
    summary = f"Sysmon {eid}: " + str(data.get("CommandLine") or data.get("TargetFilename")
                                       or data.get("Image") or "")
    return "sysmon:" + SYSMON_TYPES.get(eid or 0, "event"), data, extra, summary


def _wmi(eid: int | None, provider: str, data: dict[str, Any]) -> _Shape | None:
    extra: dict[str, Any] = {}
    operation = data.get("Operation")
    if operation:
        extra["command"] = str(operation)
    return "wmi:activity", data, extra, \
        f"WMI activity {eid}: {operation or data.get('Consumer') or ''}"


#: Channel -> shaper; a shaper returns None for the events of its channel it has no special form for.
_SHAPERS: dict[str, Callable[[int | None, str, dict[str, Any]], _Shape | None]] = {
    **{channel: _ps_operational for channel in PS_OPERATIONAL},
    "Windows PowerShell": _windows_powershell, EXCHANGE: _exchange, "Security": _security,
    "System": _system, SYSMON: _sysmon, WMI_ACTIVITY: _wmi}


_USER_FIELDS_DISJOINT = _USER_FIELDS.isdisjoint
#: kind -> record type (the few kinds shapers return, so that no string is built per record).
_DATA_TYPES: dict[str, str] = {}


def describe(event_id: int | None, channel: str, provider: str, head: dict[str, Any],
             data: dict[str, Any], overrides: dict[str, Any] | None = None,
             ) -> tuple[str, dict[str, Any], str, str | None]:
    """Record type, attributes, summary line and user of one event, in one pass.

    The per-record path of the parser: the attributes are the System fields (``head``), the data
    fields, the derived fields and ``overrides``, later ones winning. ``head`` becomes the
    attribute dictionary (it is not copied), so an event is described once.
    """
    attributes = head
    shaper = _SHAPERS.get(channel)
    shaped = shaper(event_id, provider, data) if shaper is not None else None
    if shaped is None:
        attributes.update(data)
        kind, summary = "record", _pairs_summary(data)
        # The System fields never name a user: only data fields can.
        named = not _USER_FIELDS_DISJOINT(data)
    else:
        kind, data, extra, summary = shaped
        attributes.update(data)
        named = not _USER_FIELDS_DISJOINT(data)
        if extra:
            attributes.update(extra)
            named = named or not _USER_FIELDS_DISJOINT(extra)
        if not summary:
            summary = _pairs_summary(data)
    user = (_user_from(attributes) if named else None) or attributes.get("context_User")
    if overrides:
        attributes.update(overrides)
    data_type = _DATA_TYPES.get(kind)
    if data_type is None:
        data_type = _DATA_TYPES.setdefault(kind, "windows:evtx:" + kind)
    return data_type, attributes, summary, user


try:  # the optional C twin of the common record (_Builder.fast with describe; setup.py builds it)
    from parsers import _evtxshape
except ImportError:
    _evtxshape = None
else:
    _evtxshape.configure(_SHAPERS, _DATA_TYPES, MESSAGE_CHARS)
#: ``shape(context, order, fields, offset)``: the record ``parsers.evtx._Builder.fast`` makes, or
#: None where the Python method has to make it (see parsers/_evtxshape.c).
NATIVE_SHAPE: Callable[..., Any] | None = _evtxshape.shape if _evtxshape is not None else None
