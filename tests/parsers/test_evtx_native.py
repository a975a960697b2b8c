"""The C twin ``parsers._evtxread.read_fields`` answers exactly what ``evtx_events.read_fields`` does.

Compared on generated decoded records built to hit the edges (every System field as a scalar, a
``#text``/``#attributes`` dict, of another type or missing; times valid, invalid, zero, in other
ISO forms; EventData named, positional, nested, scalar; UserData; no ``Event`` wrapper) and on
every record of the corpus logs: the same tuple, the same key order in its dicts, or the same
exception. Where the extension is not built (no C compiler at install), these tests skip, except
the one that says it should be built.
"""

from __future__ import annotations

from typing import Any

import evtx
import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from parsers import evtx_events
from tests.conftest import corpus_path, skip_without_c_compiler

native = pytest.mark.skipif(evtx_events.NATIVE_READ_FIELDS is None,
                            reason="parsers._evtxread is not built (no C compiler)")


def test_the_extension_is_built_where_a_c_compiler_is():
    skip_without_c_compiler("the pure-Python read_fields")
    assert evtx_events.NATIVE_READ_FIELDS is not None, \
        "setup.py did not build parsers._evtxread; run pip install -e . again"
    assert evtx_events.fields_reader() is evtx_events.NATIVE_READ_FIELDS


def _answer(function: Any, number: Any, parsed: Any) -> Any:
    try:
        fields = function(number, parsed)
    except Exception as exc:
        return type(exc)
    # dicts compare without their order: compare their items as lists too
    return fields, [list(part.items()) if isinstance(part, dict) else part for part in fields]


def _same(number: Any, parsed: Any) -> None:
    assert _answer(evtx_events.NATIVE_READ_FIELDS, number, parsed) == _answer(
        evtx_events.read_fields, number, parsed), parsed


_SCALARS = (st.none() | st.integers(-3, 70000) | st.integers(-2**70, 2**70) | st.booleans()
            | st.floats(allow_nan=False)
            | st.sampled_from(["", "-", "x", "4104", "Microsoft-Windows-PowerShell", "é日", "\udce9"]))
_TIMES = st.sampled_from([
    "2014-03-21T19:14:09.401780Z", "1601-01-01T00:00:00.000000Z", "2024-02-29T23:59:59.999999Z",
    "2023-02-29T00:00:00.000000Z", "2023-13-01T00:00:00.000000Z", "2023-04-31T00:00:00.000000Z",
    "2023-01-01T24:00:00.000000Z", "2023-01-01T00:60:00.000000Z", "2023-01-01T00:00:60.000000Z",
    "0000-01-01T00:00:00.000000Z", "0001-01-01T00:00:00.000000Z", "9999-12-31T23:59:59.999999Z",
    "2014-03-21T19:14:09Z", "2014-03-21T19:14:09.4017801Z", "2014-03-21T19:14:09.401780+02:00",
    "2014-03-21 19:14:09.401780Z", "2014-03-21T19:14:09.40178aZ", "２０１４-03-21T19:14:09.401780Z",
    "", "garbage"]) | _SCALARS


def _wrapped(inner: st.SearchStrategy, key: str) -> st.SearchStrategy:
    """A value as the library renders it: scalar, {key: value}, {"#attributes": ...} or odd."""
    return (inner | st.fixed_dictionaries({key: inner}) | st.fixed_dictionaries({}, optional={key: inner})
            | st.just({}) | st.lists(inner, max_size=2))


_ATTRIBUTES = st.dictionaries(st.sampled_from(["Name", "EventSourceName", "ProcessID", "ThreadID", "UserID",
                                               "ActivityID", "SystemTime", "Guid"]), _SCALARS | _TIMES,
                              max_size=4)
_ATTRIBUTED = (st.fixed_dictionaries({"#attributes": _ATTRIBUTES | _SCALARS | st.just([1])})
               | st.fixed_dictionaries({"#attributes": st.fixed_dictionaries(
                   {"SystemTime": _TIMES, "Name": _SCALARS, "ProcessID": _SCALARS, "ThreadID": _SCALARS,
                    "UserID": _SCALARS, "ActivityID": _SCALARS})})
               | _SCALARS)
_SYSTEM = st.fixed_dictionaries({}, optional={
    "Provider": _ATTRIBUTED, "EventID": _wrapped(_SCALARS, "#text"), "Version": _wrapped(_SCALARS, "#text"),
    "Level": _wrapped(_SCALARS, "#text"), "Task": _wrapped(_SCALARS, "#text"),
    "Opcode": _wrapped(_SCALARS, "#text"), "Keywords": _wrapped(_SCALARS, "#text"),
    "TimeCreated": _ATTRIBUTED, "Correlation": _ATTRIBUTED, "Execution": _ATTRIBUTED,
    "Channel": _SCALARS, "Computer": _SCALARS, "Security": _ATTRIBUTED})
_DATA_KEYS = st.sampled_from(["param1", "Binary", "#attributes", "Data", "ScriptBlockText", "x", "é"])
_EVENT_DATA = (st.dictionaries(_DATA_KEYS, _SCALARS | st.dictionaries(_DATA_KEYS, _SCALARS, max_size=2)
                               | st.lists(_SCALARS, max_size=2), max_size=5) | _SCALARS)
_EVENT = st.fixed_dictionaries({}, optional={
    "System": _SYSTEM | _SCALARS, "EventData": _EVENT_DATA,
    "UserData": st.dictionaries(st.sampled_from(["LogFileCleared", "#attributes"]),
                                st.dictionaries(_DATA_KEYS, _SCALARS, max_size=2) | _SCALARS, max_size=2)
    | _SCALARS})


@native
@settings(max_examples=1500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(event=_EVENT, wrap=st.booleans(), number=st.integers(0, 2**40) | st.none())
def test_generated_records_read_the_same(event, wrap, number):
    _same(number, {"Event": event} if wrap else event)


@native
@pytest.mark.parametrize("parsed", [None, [], "x", {"Event": None}, {"Event": []}, {"Event": {"System": []}}])
def test_odd_documents_read_the_same(parsed):
    _same(7, parsed)


@native
@pytest.mark.parametrize("relative", [
    "evtx/museum_StolenSzechuan_Win2012R2/System.evtx",
    "evtx/deepbluecli",
    "evtx/evtx-attack-samples",
])
def test_corpus_records_read_the_same(relative):
    path = corpus_path(relative)
    files = sorted(path.rglob("*.evtx")) if path.is_dir() else [path]
    compared = 0
    for file in files:
        try:
            records = evtx.PyEvtxParser(str(file)).records_json()
        except (RuntimeError, OSError, ValueError):
            continue
        while True:
            try:
                raw = next(records)
            except StopIteration:
                break
            except RuntimeError:
                continue
            try:
                parsed = orjson.loads(raw["data"])
            except orjson.JSONDecodeError:
                continue
            _same(raw.get("event_record_id") or 0, parsed)
            compared += 1
    assert compared
