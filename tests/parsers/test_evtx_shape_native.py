"""The C twin ``parsers._evtxshape.shape`` makes exactly the record ``_Builder.fast`` makes.

Compared on generated fields built to hit the edges (every channel with a shaper and one
without, event IDs each shaper treats apart, user fields named, empty, "-" or of other types,
text with every kind of whitespace, messages past the length limit) and on every record of the
corpus logs: the same record, its attributes in the same order. Where the extension is not
built (no C compiler at install), these tests skip, except the one that says it should be built.
"""

from __future__ import annotations

import copy
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from parsers import evtx_events
from parsers.base import REGISTRY, ParseContext
from parsers.evtx import _Builder
from parsers.record import Provenance
from tests.conftest import corpus_path, skip_without_c_compiler

native = pytest.mark.skipif(evtx_events.NATIVE_SHAPE is None,
                            reason="parsers._evtxshape is not built (no C compiler)")


def test_the_extension_is_built_where_a_c_compiler_is():
    skip_without_c_compiler("the pure-Python _Builder.fast")
    assert evtx_events.NATIVE_SHAPE is not None, \
        "setup.py did not build parsers._evtxshape; run pip install -e . again"


def _context(host: str | None = "FILEHOST", user: str | None = "fileuser") -> ParseContext:
    provenance = Provenance(bundle_path="files/x.evtx", source_path="C:/x.evtx", sha256="ab")
    return ParseContext(provenance=provenance, host=host, user=user)


def _state(record: Any) -> Any:
    """A record as comparable state: its fields, and its dicts' items in order."""
    fields = dict(record.__dict__)
    return fields, {name: list(value.items()) for name, value in fields.items() if isinstance(value, dict)}


def _both(fields: tuple, ctx: ParseContext, recovered: bool = False, order: int = 3) -> tuple[Any, Any]:
    """(C record, Python record) of the same fields; each gets its own copy (the head is changed)."""
    build = _Builder(ctx, "evtx", recovered)
    common = build.common()
    assert common != build.fast
    try:
        made = common(order, copy.deepcopy(fields), None)
    except Exception as exc:
        made = type(exc)
    try:
        expected = build.fast(order, copy.deepcopy(fields), None)
    except Exception as exc:
        expected = type(exc)
    return made, expected


def _same(fields: tuple, ctx: ParseContext, recovered: bool = False) -> None:
    made, expected = _both(fields, ctx, recovered)
    if isinstance(expected, type):
        assert made is expected or made is None
        return
    assert made is not None, fields
    assert _state(made) == _state(expected), fields


_TEXT = st.sampled_from([
    "", "-", "x", "Administrator", "CORP", "a b", "  lead and trail  ", "tab\there", "line\r\nbreak",
    "\x1c\x1d\x1e\x1fsep", "nbsp\xa0em\u2003space\u3000", "next\x85line", "é日本", "\udce9", "0x10000",
    "0x0", "zz", "x" * 300, "word " * 80])
_VALUES = (st.none() | st.booleans() | st.integers(-2**70, 2**70) | st.floats(allow_nan=False) | _TEXT
           | st.lists(_TEXT, max_size=2) | st.dictionaries(_TEXT, _TEXT, max_size=1))
_USER_KEYS = ["SubjectUserName", "SubjectDomainName", "TargetUserName", "TargetDomainName", "User", "UserId",
              "UserName", "caller"]
_DATA_KEYS = st.sampled_from([*_USER_KEYS, "CommandLine", "NewProcessName", "AccessMask", "ObjectName",
                              "ProcessName", "Channel", "BackupPath", "TargetFilename", "Image", "Operation",
                              "Consumer", "ScriptBlockId", "ContextInfo", "Payload", "param1", "param2",
                              "param3", "param4", "param5", "param6", "param7", "param8", "a", "b", "c"])
_CHANNELS = st.sampled_from([
    "System", "Security", "Application", "", "Windows PowerShell", "MSExchange Management",
    *evtx_events.PS_OPERATIONAL, evtx_events.SYSMON, evtx_events.WMI_ACTIVITY, "Chännel  with   spaces"])
_EVENT_IDS = st.none() | st.booleans() | st.sampled_from([
    1, 2, 4, 6, 11, 23, 26, 104, 400, 403, 600, 800, 1102, 4103, 4104, 4105, 4106, 4663, 4688, 5858,
    -1, 2**40])
_HEAD_EXTRA = st.dictionaries(st.sampled_from(["level", "task", "user_sid", "process_id", "user_name"]),
                              _VALUES, max_size=3)


@st.composite
def _fields(draw: Any) -> tuple:
    channel = draw(_CHANNELS)
    provider = draw(st.sampled_from(["Microsoft-Windows-Eventlog", "Service Control Manager", "", "x"]))
    event_id = draw(_EVENT_IDS)
    head = {"channel": channel, "provider": provider, "event_id": event_id, "record_number": 5}
    computer = draw(st.none() | st.sampled_from(["WKS01.corp.local", "é"]))
    if computer:
        head["computer"] = computer
    head.update(draw(_HEAD_EXTRA))
    data = draw(st.dictionaries(_DATA_KEYS, _VALUES, max_size=9))
    time = draw(st.none() | st.integers(-2**62, 2**62))
    return event_id, channel, provider, computer, time, head, data


@native
@settings(max_examples=600, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(fields=_fields(), host=st.none() | st.just("FILEHOST"), user=st.none() | st.just("fileuser"),
       recovered=st.booleans())
def test_generated_fields_make_the_same_record(fields, host, user, recovered):
    _same(fields, _context(host, user), recovered)


@native
def test_a_long_message_is_cut_the_same_way():
    data = {f"k{i}": "word\t" * 30 for i in range(8)}
    fields = (7036, "System", "Service Control Manager", "H", 1, {"channel": "System"}, data)
    made, expected = _both(fields, _context())
    assert made.message == expected.message and len(made.message) == evtx_events.MESSAGE_CHARS
    assert made.message.endswith("…")


@native
def test_a_carved_record_and_odd_fields_are_left_to_python():
    build = _Builder(_context(), "evtx", False)
    common = build.common()
    fields = (1, "System", "p", None, 1, {}, {})
    assert common(0, fields, 4096) is None  # a byte offset: provenance_at is Python's
    assert common(0, fields[:6], None) is None
    assert common(0, (1, 5, "p", None, 1, {}, {}), None) is None  # a channel that is not a str
    assert common(0, (1, "System", "p", None, 1, [], {}), None) is None


@native
def test_a_shaper_answer_of_another_form_is_left_to_python(monkeypatch):
    answers = [["kind", {}, {}, "list, not tuple"], ("kind", {}, {}, 5), ("kind", [], {}, "s")]
    for answer in answers:
        monkeypatch.setitem(evtx_events._SHAPERS, "Odd", lambda *_, answer=answer: answer)
        fields = (1, "Odd", "p", None, 1, {"channel": "Odd"}, {"a": 1})
        assert _Builder(_context(), "evtx", False).common()(0, fields, None) is None


@native
def test_a_shaper_error_is_raised_as_it_is(monkeypatch):
    def broken(*_: Any) -> None:
        raise ValueError("broken shaper")

    monkeypatch.setitem(evtx_events._SHAPERS, "Odd", broken)
    with pytest.raises(ValueError, match="broken shaper"):
        _Builder(_context(), "evtx", False).common()(0, (1, "Odd", "p", None, 1, {}, {}), None)


def _parse_all(file: Any, use_native: bool, monkeypatch: pytest.MonkeyPatch) -> tuple[list[bytes], list]:
    monkeypatch.setattr(evtx_events, "NATIVE_SHAPE", evtx_events.NATIVE_SHAPE if use_native else None)
    ctx = ParseContext(provenance=Provenance(bundle_path=None, source_path=str(file), sha256=None), host="H")
    with open(file, "rb") as handle:
        lines = [record.to_json_bytes() for record in REGISTRY["evtx"]().parse(handle, ctx)]
    return lines, ctx.warnings


@native
@pytest.mark.parametrize("relative", [
    "evtx/museum_StolenSzechuan_Win2012R2/System.evtx",
    "evtx/deepbluecli",
    "evtx/evtx-attack-samples",
])
def test_corpus_records_are_the_same(relative, monkeypatch):
    path = corpus_path(relative)
    files = sorted(path.rglob("*.evtx")) if path.is_dir() else [path]
    compared = 0
    for file in files:
        made = _parse_all(file, True, monkeypatch)
        expected = _parse_all(file, False, monkeypatch)
        assert made == expected, file
        compared += len(made[0])
    assert compared
