"""The C twins ``parsers._evtxread.read_fields`` and ``read_json`` answer exactly what
``evtx_events.read_fields`` does (``read_json`` on the JSON text, before decoding it).

Compared on generated decoded records built to hit the edges (every System field as a scalar, a
``#text``/``#attributes`` dict, of another type or missing; times valid, invalid, zero, in other
ISO forms; EventData named, positional, nested, scalar; UserData; no ``Event`` wrapper) and on
every record of the corpus logs: the same tuple, the same key order in its dicts, or the same
exception. ``read_json`` is also given the same records as text written every way JSON allows
(escapes, spaces, repeated names, numbers, invalid documents): it answers the same fields or
declines (None), and declines whatever is not valid JSON. Where the extension is not built (no C
compiler at install), these tests skip, except the one that says it should be built.
"""

from __future__ import annotations

import json
from typing import Any

import evtx
import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from parsers import evtx_events
from parsers.base import ParseContext
from parsers.evtx import decode
from parsers.record import Provenance
from tests.conftest import corpus_path, skip_without_c_compiler

native = pytest.mark.skipif(evtx_events.NATIVE_READ_FIELDS is None,
                            reason="parsers._evtxread is not built (no C compiler)")


def test_the_extension_is_built_where_a_c_compiler_is():
    skip_without_c_compiler("the pure-Python read_fields")
    assert evtx_events.NATIVE_READ_FIELDS is not None, \
        "setup.py did not build parsers._evtxread; run pip install -e . again"
    assert evtx_events.fields_reader() is evtx_events.NATIVE_READ_FIELDS
    assert evtx_events.NATIVE_READ_JSON is not None


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


def _same_from_text(number: Any, text: str) -> bool:
    """read_json's answer is read_fields' on the decoded text, or None; True if it answered."""
    fields = evtx_events.NATIVE_READ_JSON(number, text)
    ctx = ParseContext(provenance=Provenance(bundle_path=None, source_path="x", sha256=None))
    decoded = decode(text, number, ctx)
    if decoded is None:
        assert fields is None, text  # not valid JSON: the full decoding warns about it
        return False
    if fields is None:
        return False
    expected = _answer(evtx_events.read_fields, number, decoded)
    assert _answer(lambda *_: fields, number, decoded) == expected, text
    return True


def _texts(document: Any) -> list[str]:
    """The document as JSON written several ways: compact (as the library writes), escaped, spaced."""
    texts = [json.dumps(document, ensure_ascii=True), json.dumps(document, ensure_ascii=False, indent=1),
             json.dumps(document, ensure_ascii=False, separators=(",", ":"))]
    try:
        texts.append(orjson.dumps(document).decode())
    except TypeError:
        pass  # lone surrogates, integers beyond 64 bits
    return texts


@native
@settings(max_examples=1500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(event=_EVENT, wrap=st.booleans(), number=st.integers(0, 2**40) | st.none())
def test_generated_records_read_the_same(event, wrap, number):
    _same(number, {"Event": event} if wrap else event)


@native
@settings(max_examples=1500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(event=_EVENT, wrap=st.booleans(), number=st.integers(0, 2**40))
def test_generated_records_read_the_same_from_their_text(event, wrap, number):
    for text in _texts({"Event": event} if wrap else event):
        _same_from_text(number, text)


_SYSTEM_TEXT = ('"System":{"Provider":{"#attributes":{"Name":"Service Control Manager","Guid":"{5559}"}},'
                '"EventID":{"#attributes":{"Qualifiers":16384},"#text":7036},"Level":4,"Task":0,'
                '"Keywords":"0x8080000000000000","TimeCreated":{"#attributes":{"SystemTime":'
                '"2014-03-21T19:14:09.401780Z"}},"EventRecordID":5,"Correlation":null,'
                '"Execution":{"#attributes":{"ProcessID":560,"ThreadID":1356}},"Channel":"System",'
                '"Computer":"WIN-1.corp.local","Security":{"#attributes":{"UserID":"S-1-5-18"}}}')


def _record(event_data: str = '{"param1":"Windows Modules Installer","param2":"running"}',
            system: str = _SYSTEM_TEXT) -> str:
    return '{"Event":{"#attributes":{"xmlns":"http://schemas.microsoft.com/win/2004/08/events/event"},' \
           f'{system},"EventData":{event_data}}}}}'


@native
def test_a_plain_record_is_read_from_its_text():
    assert _same_from_text(9, _record())
    odd = '{"Binary":null,"x":"é日本","y":"\\u00e9\\t\\"q\\"","z":"' + "w" * 500 + '"}'
    assert _same_from_text(9, _record(odd))
    spaced = json.dumps(json.loads(_record()), indent="\r\n\t", separators=(" ,", " : "))
    assert _same_from_text(9, " \n" + spaced + " ")


@native
@pytest.mark.parametrize("text", [
    _record('{"a":1,"a":2}'), _record('{"a":1,"b":2,"a":null}'), _record('{"Binary":"x","Binary":null}'),
    _record('{"a":1}', _SYSTEM_TEXT.replace('"Channel":"System"', '"Channel":"System","Channel":"Security"')),
    _record('{"a":1}', _SYSTEM_TEXT.replace('"Level":4', '"Level":4,"Level":{"#text":2}')),
    _record('{"\\u0061":1}'), _record('{"a":"\\ud83d\\ude00"}'), _record('{"a":"\\udce9"}'),
    _record('{"a":"\\u0000"}'), _record('{"a":1.5}'), _record('{"a":1e3}'), _record('{"a":-0}'),
    _record('{"a":123456789012345678}'), _record('{"a":1234567890123456789}'),
    _record('{"a":18446744073709551616}'), _record('{"a":[1,2]}'), _record('{"a":{"b":1}}'),
    _record('{"Data":["x","y"]}'), _record('"scalar"'), _record("null"), _record("[]"), _record("{}"),
    _record('{"a":true,"b":false,"c":null}'), _record('{"#attributes":{"Name":"x"},"a":"b"}'),
    _record('{"a":1}', '"System":{}'), _record('{"a":1}', '"System":null'), _record('{"a":1}', '"System":5'),
    _record('{"a":"x"}').replace('"EventData"', '"UserData":{"LogFileCleared":{"a":1}},"EventData"'),
    _record('{"a":"x"}').replace('"EventData"', '"UserData":"text","EventData"'),
    _record('{"a":"x"}', _SYSTEM_TEXT.replace('"2014-03-21T19:14:09.401780Z"', '"2014-03-21T19:14:09Z"')),
    _record('{"a":"x"}', _SYSTEM_TEXT.replace('"2014-03-21T19:14:09.401780Z"',
                                              '"1601-01-01T00:00:00.000000Z"')),
    _record('{"a":"x"}', _SYSTEM_TEXT.replace('"S-1-5-18"', '""')),
    _record('{"a":"x"}', _SYSTEM_TEXT.replace('"S-1-5-18"', 'true')),
    _record('{"a":"x"}', _SYSTEM_TEXT.replace('"Computer":"WIN-1.corp.local"', '"Computer":""')),
    _record('{"a":"x"}', _SYSTEM_TEXT.replace('"#text":7036', '"#text":"7036"')),
    _record('{"a":"x"}', _SYSTEM_TEXT.replace('"Name":"Service Control Manager",', '"Name":"",'
                                              '"EventSourceName":"SCM",')),
    '{"System":{"Channel":"x"},"EventData":{"a":1}}', '{"Event":null}', '[1]', '"x"', '',
    # not valid JSON: declined, and the full decoding warns
    _record('{"a":1,}'), _record('{"a":01}'), _record('{"a":"\\x"}'), _record('{"a":"tab\there"}'),
    _record('{"a":NaN}'), _record('{"a":1}') + "x", _record('{"a":1}')[:-1], '{"a"1}', '{,}', "[1,]",
    '{"a":' * 60 + "1" + "}" * 60, _record("{" + ",".join(f'"k{i}":{i}' for i in range(1500)) + "}"),
])
def test_odd_texts_read_the_same_or_are_declined(text):
    _same_from_text(3, text)


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
    compared = from_text = 0
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
            from_text += _same_from_text(raw.get("event_record_id") or 0, raw["data"])
            compared += 1
    assert compared
    assert from_text >= 0.9 * compared  # the library's JSON is read from the text, nearly always
