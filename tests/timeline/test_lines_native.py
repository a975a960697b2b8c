"""The C twin in ``timeline._linefmt`` makes exactly the lines the Python formatter makes.

Two formatters over the same records, one with the C twin and one without, must give the same
lines (or raise the same exception) for every record: generated ones built to hit the edges
(quotes, commas, line breaks and NULs in every text, lone surrogates, long multi-byte messages,
MACB groups, pre-1000 and out-of-range times, integers beyond 64 bits, attribute names that shadow
fixed columns, columns missing from the CSV header), real EVTX records of the corpus and the
reference image's records; then whole timelines are built both ways. Where the extension is not
built (no C compiler at install), these tests skip, except the one that says it should be built.
"""

from __future__ import annotations

import shutil
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from parsers.base import REGISTRY, ParseContext
from parsers.record import Provenance, loads_record
from tests.conftest import corpus_path, skip_without_c_compiler
from timeline import lines as lines_module
from timeline.build import build_timeline
from timeline.lines import LineFormatter, TimelineOptions
from timeline.rows import attribute_column
from timeline.timesketch import columns_for

native = pytest.mark.skipif(lines_module.NATIVE_RECORD_LINES is None,
                            reason="timeline._linefmt is not built (no C compiler)")
FILES = ("timeline.csv", "timeline.jsonl", "timeline.l2t.csv")
BASE = 1_791_900_000_000_000  # 2026-10-13T14:00:00Z


def test_the_extension_is_built_where_a_c_compiler_is():
    """A broken build would silently cost most of the timeline's speed: fail loudly instead."""
    skip_without_c_compiler("the pure-Python line formatter")
    assert lines_module.NATIVE_RECORD_LINES is not None, \
        "setup.py did not build timeline._linefmt; run pip install -e . again"


def _columns(records: list[dict[str, Any]], drop: int = 0) -> list[str]:
    names = {attribute_column(k) for r in records if isinstance(r.get("attributes"), dict)
             for k in r["attributes"]}
    columns = columns_for(names)
    return columns[:len(columns) - drop] if drop else columns


def _pair(columns: list[str], options: TimelineOptions | None = None) -> tuple[LineFormatter, LineFormatter]:
    """A formatter with the C twin and one without."""
    with_native = LineFormatter(columns, options)
    saved = lines_module.NATIVE_RECORD_LINES
    lines_module.NATIVE_RECORD_LINES = None
    try:
        python_only = LineFormatter(columns, options)
    finally:
        lines_module.NATIVE_RECORD_LINES = saved
    return with_native, python_only


def _outcome(formatter: LineFormatter, record: dict[str, Any]) -> list[bytes] | type:
    try:
        return formatter.lines(record)
    except Exception as exc:
        return type(exc)


def _same_lines(records: list[dict[str, Any]], columns: list[str],
                options: TimelineOptions | None = None) -> int:
    """Assert both formatters agree on every record; return how many the C twin made itself."""
    with_native, python_only = _pair(columns, options)
    handled = 0
    for record in records:
        expected = _outcome(python_only, record)
        assert _outcome(with_native, record) == expected, record
        if with_native._native is not None:
            handled += lines_module.NATIVE_RECORD_LINES(with_native._native_context, record) is not None
    return handled


# -- generated records -------------------------------------------------------------------------

_CHARS = [*"ab ,\";:\n\r\t\x00\x01\x1f\x7f=+-@\\/'é日😀\u2028", "\udce9"]
_TEXT = st.text(alphabet=st.sampled_from(_CHARS), max_size=12) | st.sampled_from(
    ["", "-", "=1+1", "plain", "a,b", 'say "hi"', "x" * 79, "é" * 81, "日" * 90 + ",", "-5"])
_LONG = st.text(alphabet=st.sampled_from(_CHARS), min_size=70, max_size=120)
_NAMES = ["inode", "attr_inode", "message", "command", "a", "a b", "a_b", "zz", "é", "x\ny", "event_id",
          "user", "tag"]
_DESCS = ["Event Time", "Creation Time", "Content Modification Time", "Envelope Time", "a,b", "x\ny",
          "nul\x00", 'q"', "Last Access Time", ""]
_TIMES = (st.sampled_from([BASE, BASE, BASE + 1, -86_400_000_001, 0, -1])
          | st.integers(-62_135_596_800_000_000, 253_402_300_799_999_999)  # years 1 to 9999
          | st.integers(-2**70, 2**70))
_SCALARS = (_TEXT | st.integers(-2**70, 2**70) | st.integers(-5, 5) | st.booleans() | st.none()
            | st.floats(allow_nan=False))
_VALUES = _SCALARS | st.lists(_SCALARS, max_size=3) | st.dictionaries(_TEXT, _SCALARS, max_size=2)


@st.composite
def _records(draw: st.DrawFn) -> dict[str, Any]:
    provenance = {"source_path": draw(st.sampled_from(["/var/mail/a", "/System.evtx", "/x,y\n", "/s\udce9"])),
                  "bundle_path": draw(st.none() | st.just("files/p1/a")),
                  "filesystem": draw(st.sampled_from(["", "p1", "a,b"])),
                  "evidence": draw(st.sampled_from(["", "image:x.raw|RAW"])),
                  "sha256": draw(st.none() | st.just("ab" * 32)),
                  "offset": draw(st.none() | st.integers(-3, 2**66) | st.just("12") | st.just(True))}
    record: dict[str, Any] = {
        "data_type": draw(st.sampled_from(["windows:evtx:record", "mail:mbox:message", "shell:bash:command",
                                           "x\ny"])),
        "message": draw(_TEXT | _LONG | st.none() | st.just(5)),
        "provenance": provenance,
        "parser": draw(st.sampled_from(["evtx", "mbox", "a,b"])),
        "order": draw(st.integers(-3, 10) | st.integers(10**11, 10**13) | st.just(None)),
        "timestamps": draw(st.dictionaries(st.sampled_from(_DESCS), _TIMES, max_size=4)),
        "time_bounds": draw(st.dictionaries(st.sampled_from(["Not before: x", "Not after: y", "other"]),
                                            _TIMES, max_size=2)),
        "attributes": draw(st.dictionaries(st.sampled_from(_NAMES), _VALUES, max_size=6)),
        "host": draw(st.none() | _TEXT),
        "user": draw(st.none() | _TEXT),
        "recovered": draw(st.booleans() | st.just(1)),
        "corrupted": draw(st.booleans()),
        "tags": draw(st.lists(st.sampled_from(["T1070.008", "rule,1", "x\ny"]), max_size=2)),
    }
    for key in draw(st.lists(st.sampled_from(["order", "tags", "attributes", "timestamps", "host"]),
                             max_size=2)):
        record.pop(key, None)
    return record


@native
@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(records=st.lists(_records(), min_size=1, max_size=8), drop=st.integers(0, 2))
def test_generated_records_give_the_same_lines(records, drop):
    _same_lines(records, _columns(records, drop))


#: Zones with DST (northern and southern), a half-hour offset with DST, a 30-minute DST shift,
#: one ahead of UTC by 14 hours, and one that changed its offset in 2011 (a skipped day).
_ZONES = ["Europe/Berlin", "America/St_Johns", "Australia/Lord_Howe", "Pacific/Kiritimati",
          "Pacific/Apia", "America/New_York"]
#: 2026-03-29 01:00 UTC (Berlin springs forward), 2026-10-25 01:00 UTC (Berlin falls back),
#: 2011-12-30 (Apia skips the day), 2026-11-01 06:00 UTC (New York falls back).
_TRANSITIONS = [1_774_746_000_000_000, 1_792_890_000_000_000, 1_325_152_800_000_000, 1_793_512_800_000_000]
_NEAR_TRANSITIONS = st.sampled_from(_TRANSITIONS).flatmap(
    lambda t: st.integers(t - 7_200_000_000, t + 7_200_000_000))


@native
@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(records=st.lists(_records(), min_size=1, max_size=6), zone=st.sampled_from(_ZONES),
       moments=st.lists(_NEAR_TRANSITIONS, min_size=1, max_size=4))
def test_generated_records_give_the_same_lines_in_another_zone(records, zone, moments):
    for record, moment in zip(records, moments * len(records), strict=False):
        record.setdefault("timestamps", {})["Event Time"] = moment
    assert _same_lines(records, _columns(records), TimelineOptions(tz=zone)) >= 0


@native
def test_the_twin_is_used_only_where_it_applies():
    """The filters are the Python formatter's alone; --tz is the twin's too."""
    assert LineFormatter(["datetime"])._native is not None
    assert LineFormatter(["datetime"], TimelineOptions(tz="Europe/Berlin"))._native is not None
    assert LineFormatter(["datetime"], TimelineOptions(since=0))._native is None
    assert LineFormatter(["datetime"], TimelineOptions(evidence_only=True))._native is None


# -- real records ------------------------------------------------------------------------------

def _evtx_records(relative: str, limit: int) -> list[dict[str, Any]]:
    path = corpus_path(relative)
    ctx = ParseContext(provenance=Provenance(bundle_path="files/loose/x.evtx", source_path="/x.evtx",
                                             sha256="cd" * 32, filesystem="loose"))
    out = []
    with path.open("rb") as handle:
        for record in REGISTRY["evtx"]().parse(handle, ctx):
            out.append(loads_record(record.to_json_bytes()))
            if len(out) >= limit:
                break
    return out


@native
@pytest.mark.parametrize("relative", [
    "evtx/museum_StolenSzechuan_Win2012R2/System.evtx",
    "evtx/evtx-attack-samples/Sysmon_UACME_64.evtx",
])
def test_corpus_evtx_records_give_the_same_lines_and_take_the_c_path(relative):
    records = _evtx_records(relative, 4000)
    for options in (None, TimelineOptions(tz="America/St_Johns")):
        handled = _same_lines(records, _columns(records), options)
        assert handled >= 0.99 * len(records)  # the twin must not quietly hand EVTX back to Python


@native
def test_reference_image_records_give_the_same_lines(linux_run):
    with (linux_run / "records.jsonl").open("rb") as handle:
        records = [loads_record(line) for line in handle]
    handled = _same_lines(records, _columns(records))
    assert handled >= 0.9 * len(records)


@native
def test_whole_timeline_is_the_same_with_and_without_the_twin(linux_run, tmp_path, monkeypatch):
    records_file = linux_run / "records.jsonl"
    build_timeline([records_file], tmp_path / "c", quiet=True, options=TimelineOptions(tz="UTC"))
    monkeypatch.setattr(lines_module, "NATIVE_RECORD_LINES", None)
    (tmp_path / "copy").mkdir()
    copied = tmp_path / "copy" / "records.jsonl"
    shutil.copyfile(records_file, copied)  # no prepared runs beside it: formatted again, in Python
    build_timeline([copied], tmp_path / "py", quiet=True)
    for name in FILES:
        assert (tmp_path / "c" / name).read_bytes() == (tmp_path / "py" / name).read_bytes(), name


@native
def test_whole_timeline_in_another_zone_is_the_same_with_and_without_the_twin(linux_run, tmp_path,
                                                                              monkeypatch):
    options = TimelineOptions(tz="Australia/Lord_Howe")
    build_timeline([linux_run / "records.jsonl"], tmp_path / "c", quiet=True, options=options)
    monkeypatch.setattr(lines_module, "NATIVE_RECORD_LINES", None)
    build_timeline([linux_run / "records.jsonl"], tmp_path / "py", quiet=True, options=options)
    for name in FILES:
        assert (tmp_path / "c" / name).read_bytes() == (tmp_path / "py" / name).read_bytes(), name
    assert b"Australia/Lord_Howe" in (tmp_path / "c" / "timeline.l2t.csv").read_bytes()


@native
def test_a_record_with_many_attributes_sorts_its_extra_like_python():
    names = [f"k{i:04d}" if i % 3 else f"k{i:04d} x" for i in range(400)][::-1]  # beyond the insertion sort
    record = {"data_type": "x", "message": "m", "parser": "p", "order": 1, "tags": [],
              "provenance": {"source_path": "/s", "offset": 3}, "timestamps": {"Event Time": BASE},
              "attributes": {name: i if i % 2 else f"v{i}" for i, name in enumerate(names)}}
    assert _same_lines([record], _columns([record])) == 1


def test_the_python_formatter_alone_still_formats(monkeypatch, tmp_path):
    """Without the extension (no C compiler), the Python formatter makes every line."""
    monkeypatch.setattr(lines_module, "NATIVE_RECORD_LINES", None)
    record = {"data_type": "x", "message": "a,b", "parser": "p", "order": 1, "tags": [],
              "provenance": {"source_path": "/s"}, "timestamps": {"Event Time": BASE}, "attributes": {"k": 1}}
    formatter = LineFormatter(_columns([record]))
    assert formatter._native is None
    (line,) = formatter.lines(record)
    assert b',"a,b",' in line and line.endswith(b',"k":1}\n')
