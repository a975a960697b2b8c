"""Timeline rows as ready-to-write lines: a sort key, then the row as Timesketch CSV, JSONL, l2tcsv.

A record fans out into one row per timestamp (:mod:`timeline.rows`), and every row becomes one
line of bytes::

    key \\0 l2tcsv line \\0 CSV row \\0 JSONL row \\n

The key (fixed-width hex timestamp, data type, source, bundle file, order, description) makes a
plain byte comparison of two lines the timeline order, so sorting and the k-way merge handle
opaque lines and the final stage only splits them into the three files. The l2tcsv part is empty
on all but the first row of a MACB group (rows of one record sharing a timestamp); the JSONL part
comes last, so that it keeps the line's ``\\n`` and is written as it is.

Formatting is where the timeline spends its time, so what does not change between the rows of a
record is formatted once per record, what does not change between the records of one source file
once per file (cached), and a row only adds its own time and description. The text is the same
as the per-value helpers of :mod:`timeline.timesketch` and :mod:`timeline.l2tcsv` produce.
"""

from __future__ import annotations

import bisect
import datetime as _dt
import json
import re
from dataclasses import dataclass
from typing import Any
from zoneinfo import ZoneInfo

import orjson

from collector.timeutil import to_datetime
from timeline.l2tcsv import field, macb, source_of
from timeline.rows import FIXED_COLUMNS, attribute_column, placements
from timeline.timesketch import cell, jsonable

try:  # the optional C twin of LineFormatter.lines (setup.py builds it)
    from timeline._linefmt import record_lines as NATIVE_RECORD_LINES
except ImportError:
    NATIVE_RECORD_LINES = None

SEP = b"\0"
#: First byte of a CSV or l2tcsv part whose ``\\n``, ``\\0`` and ``\\`` were escaped; an unescaped
#: part never starts with it (both start with a date).
ESCAPED = b"\x02"
_UNESCAPE = re.compile(rb"\\(.)", re.S)
_UNESCAPES = {b"\\": b"\\", b"n": b"\n", b"0": b"\0"}
#: Added to timestamps so that negative ones keep their order in 16 hex digits.
KEY_OFFSET = 1 << 63
_DAY_US = 86_400_000_000
_HOUR_US = 3_600_000_000
#: NUL and LF as byte values, for the ``in`` tests of :meth:`LineFormatter.lines`.
_NUL, _LF = 0, 10
#: The two flags' CSV cells and l2tcsv ``extra`` items.
_CSV_FLAGS = {False: "false", True: "true"}
_RECOVERED = {False: "recovered: False", True: "recovered: True"}
_CORRUPTED = {False: "corrupted: False", True: "corrupted: True"}
#: Cached per-file texts are dropped beyond this many files (bounded memory on huge cases).
_CACHE_LIMIT = 20_000
_NUMBER_OF_FIXED = len(FIXED_COLUMNS)


@dataclass
class TimelineOptions:
    """Filters and presentation choices of the timeline stage."""

    tz: str = "UTC"
    since: int | None = None
    until: int | None = None
    evidence_only: bool = False
    context_seconds: int = 600

    @property
    def default_content(self) -> bool:
        """Whether rows are formatted as the parse stage prepares them (UTC, every row)."""
        return self.tz == "UTC" and not self.evidence_only


def escape(part: bytes) -> bytes:
    """A CSV or l2tcsv part made safe inside a line (no raw ``\\n`` or ``\\0``)."""
    return ESCAPED + part.replace(b"\\", b"\\\\").replace(b"\n", b"\\n").replace(b"\0", b"\\0")


def unescape(part: bytes) -> bytes:
    """Inverse of :func:`escape`."""
    return _UNESCAPE.sub(lambda m: _UNESCAPES.get(m.group(1), m.group(1)), part[1:])


def key_prefix(timestamp: int) -> bytes:
    """The first 16 bytes of the key of every row at ``timestamp``."""
    return b"%016x" % (timestamp + KEY_OFFSET)


def _safe(text: str) -> str:
    """Key text: strings holding control characters are JSON-escaped (no separator inside)."""
    return text if text.isprintable() else json.dumps(text)


def _members(obj: dict[str, Any]) -> bytes | None:
    """``obj`` as orjson writes it, without its braces (None where orjson cannot write it)."""
    try:
        return orjson.dumps(obj)[1:-1]
    except TypeError:
        return None


def _dumps(obj: dict[str, Any]) -> bytes:
    try:
        return orjson.dumps(obj)
    except TypeError:  # integers beyond 64 bits: json writes them exactly
        return json.dumps(obj, ensure_ascii=False, separators=(",", ":")).encode("utf-8", "backslashreplace")


def _near(times: list[int], timestamp: int, window_us: int) -> bool:
    index = bisect.bisect_left(times, timestamp - window_us)
    return index < len(times) and times[index] <= timestamp + window_us


class LineFormatter:
    """Turns records (dicts as in ``records.jsonl``) into sortable timeline lines."""

    def __init__(self, columns: list[str], options: TimelineOptions | None = None,
                 tagged: dict[str, list[int]] | None = None) -> None:
        options = options or TimelineOptions()
        self._options = options
        self._tagged = tagged or {}
        self._window = options.context_seconds * 1_000_000
        self._filtered = options.since is not None or options.until is not None or options.evidence_only
        self._attribute_index = {c: i for i, c in enumerate(columns[_NUMBER_OF_FIXED:])}
        self._attribute_count = len(columns) - _NUMBER_OF_FIXED
        self._utc = options.tz == "UTC"
        self._zone = _dt.UTC if self._utc else ZoneInfo(options.tz)
        self._tz_field = field(options.tz).encode()
        self._shapes: dict[tuple[str, ...], tuple] = {}
        self._sources: dict[tuple, tuple] = {}
        self._descs: dict[str, tuple[bytes, bytes, bytes, bool]] = {}
        self._groups: dict[tuple[str, ...], tuple[bytes, bytes, bool]] = {}
        self._tags: dict[tuple[str, ...], tuple[str, str]] = {}
        self._days: dict[int, tuple[bytes, bytes]] = {}
        self._seconds: dict[int, bytes] = {}
        self._offsets: dict[int, int | bool] = {}
        # The C twin of lines() (no filters), and the caches and methods it shares with it; with
        # --tz it takes l2tcsv's date and time from _local, as the Python method does.
        self._native = NATIVE_RECORD_LINES if not self._filtered else None
        self._native_context = (self._sources, self._source, self._shapes, self._shape, self._tags,
                                self._tag, self._descs, self._desc, self._groups, self._group,
                                self._tz_field, placements, None if self._utc else self._local)

    # -- cached pieces ---------------------------------------------------------------------

    def _shape(self, keys: tuple[str, ...]) -> tuple:
        """How a record with these attribute names fills the attribute columns.

        One entry per column, in column-name order (the order of the CSV's attribute columns, of
        the JSON object's and, after sorting, of l2tcsv's ``extra``): the commas that lead its CSV
        cell (None when the column is not in the CSV header), the column, the attribute name and
        the ``extra`` prefix; then the commas that end the CSV row.
        """
        colmap: dict[str, str] = {}
        for key in keys:  # as in rows.base_row: a later attribute mapping to the same column wins
            colmap[attribute_column(key)] = key
        plan, previous = [], -1
        for column, key in sorted(colmap.items()):
            index = self._attribute_index.get(column)
            commas = None
            if index is not None:
                commas, previous = "," * (index - previous), index
            plan.append((commas, column, key, f"{column}: "))
        shape = (tuple(plan), "," * (self._attribute_count - 1 - previous))
        if len(self._shapes) >= _CACHE_LIMIT:
            self._shapes.clear()
        self._shapes[keys] = shape
        return shape

    def _source(self, record: dict[str, Any], provenance: dict[str, Any]) -> tuple:
        """Texts shared by every record of one source file (and data type); the last two, the
        source's and place's JSON members, are for the C twin."""
        source, bundle = provenance["source_path"], provenance.get("bundle_path")
        filesystem, evidence = provenance.get("filesystem"), provenance.get("evidence")
        sha256, host, user = provenance.get("sha256"), record.get("host"), record.get("user")
        parser, data_type = record["parser"], record["data_type"]
        cache_key = (source, bundle, filesystem, evidence, sha256, host, user, parser, data_type)
        entry = self._sources.get(cache_key)
        if entry is not None:
            return entry
        if len(self._sources) >= _CACHE_LIMIT:  # bounded memory on cases with very many files
            self._sources.clear()
        display_name = f"{filesystem or 'file'}:{source}"
        csv_source = ",".join(cell(v) for v in (source, host, user, parser, display_name, bundle, sha256))
        csv_place = cell(filesystem) + "," + cell(evidence)
        json_source = {"source": source, "host": host, "user": user, "parser": parser,
                       "display_name": display_name, "bundle_path": bundle, "sha256": sha256}
        json_source = {k: jsonable(v) for k, v in json_source.items() if v is not None}
        json_place = {k: jsonable(v) for k, v in (("filesystem", filesystem), ("evidence", evidence))
                      if v is not None}
        extra = [f"{k}: {v}" for k, v in (("bundle_path", bundle), ("sha256", sha256),
                                          ("filesystem", filesystem), ("evidence", evidence))
                 if v is not None and v != ""]
        short, long = source_of(data_type)
        l2t_source = f"{field(short)},{field(long)}".encode("utf-8", "backslashreplace")
        l2t_who = f"{field(user)},{field(host)}"
        l2t_file = field(display_name)
        key = f"{_safe(data_type)}\x01{_safe(source)}\x01{_safe(bundle or '')}".encode()
        entry = (cell(data_type), csv_source, csv_place, json_source, json_place, extra, l2t_source,
                 l2t_who, l2t_file, field(parser), key, _members(json_source), _members(json_place))
        self._sources[cache_key] = entry
        return entry

    def _desc(self, desc: str) -> tuple[bytes, bytes, bytes, bool]:
        """(key part, CSV cell, JSON string, needs escaping) of a timestamp description."""
        entry = self._descs.get(desc)
        if entry is None:
            csv_cell = cell(desc).encode("utf-8", "backslashreplace")
            entry = (_safe(desc).encode("utf-8", "backslashreplace"), csv_cell, orjson.dumps(desc),
                     b"\n" in csv_cell or b"\0" in csv_cell)
            self._descs[desc] = entry
        return entry

    def _group(self, descriptions: tuple[str, ...]) -> tuple[bytes, bytes, bool]:
        """MACB letters and ``type`` column of a MACB group, and whether ``type`` needs escaping."""
        entry = self._groups.get(descriptions)
        if entry is None:
            kind = field("; ".join(descriptions)).encode("utf-8", "backslashreplace")
            entry = (macb(list(descriptions)).encode(), kind, b"\0" in kind)
            self._groups[descriptions] = entry
        return entry

    def _tag(self, tags: tuple[str, ...]) -> tuple[str, str]:
        """(CSV cell, l2tcsv notes) of a tag list."""
        entry = self._tags.get(tags)
        if entry is None:
            entry = (cell(list(tags)) if tags else "[]", field(" ".join(tags) or "-"))
            self._tags[tags] = entry
        return entry

    def _day(self, day: int) -> tuple[bytes, bytes]:
        """(ISO date, l2tcsv date) of a day since 1970-01-01."""
        entry = self._days.get(day)
        if entry is None:
            moment = to_datetime(day * _DAY_US)  # OverflowError outside datetime's years, as before
            entry = (moment.date().isoformat().encode(), moment.strftime("%m/%d/%Y").encode())
            self._days[day] = entry
        return entry

    def _second(self, second: int) -> bytes:
        text = self._seconds.get(second)
        if text is None:
            hours, rest = divmod(second, 3600)
            text = self._seconds[second] = b"%02d:%02d:%02d" % (hours, rest // 60, rest % 60)
        return text

    def _local(self, timestamp: int) -> tuple[bytes, bytes]:
        """l2tcsv date and time in the ``--tz`` zone.

        The zone's offset is looked up once per hour of UTC time (an hour whose start and end
        differ, a transition, is converted row by row), then the UTC caches do the rest.
        """
        hour = timestamp // _HOUR_US
        offset = self._offsets.get(hour)
        if offset is None:
            if len(self._offsets) >= _CACHE_LIMIT:
                self._offsets.clear()
            first = to_datetime(hour * _HOUR_US).astimezone(self._zone).utcoffset()
            last = to_datetime(hour * _HOUR_US + _HOUR_US - 1).astimezone(self._zone).utcoffset()
            offset = first // _dt.timedelta(microseconds=1) if first == last else False
            self._offsets[hour] = offset
        if offset is False:
            moment = to_datetime(timestamp).astimezone(self._zone)
            return moment.strftime("%m/%d/%Y").encode(), moment.strftime("%H:%M:%S").encode()
        day, rest = divmod(timestamp + offset, _DAY_US)
        second = rest // 1_000_000
        return (self._days.get(day) or self._day(day))[1], self._seconds.get(second) or self._second(second)

    # -- rows ------------------------------------------------------------------------------

    def _placements(self, record: dict[str, Any]) -> list[tuple[int, str]]:
        places = placements(record)
        if not self._filtered:
            return places
        options = self._options
        if options.since is not None or options.until is not None:
            places = [p for p in places if (options.since is None or p[0] >= options.since)
                      and (options.until is None or p[0] <= options.until)]
        if options.evidence_only and not record.get("tags"):
            times = self._tagged.get(record.get("host") or "", [])
            places = [p for p in places if _near(times, p[0], self._window)]
        return places

    def lines(self, record: dict[str, Any]) -> list[bytes]:
        """The lines of one record's rows (after the time window and evidence filters)."""
        if self._native is not None:
            out = self._native(self._native_context, record)
            if out is not None:
                return out
        places = self._placements(record) if self._filtered else placements(record)
        if not places:
            return []
        provenance = record["provenance"]
        attributes = record.get("attributes") or {}
        (csv_type, csv_source, csv_place, json_source, json_place, extra_source, l2t_source, l2t_who,
         l2t_file, l2t_parser, key_source, _, _) = self._source(record, provenance)
        plan, csv_trailing = self._shapes.get(tuple(attributes)) or self._shape(tuple(attributes))
        message = record["message"]
        data_type = record["data_type"]
        tags = tuple(record.get("tags") or ())
        tag_cell, notes = self._tags.get(tags) or self._tag(tags)
        offset = provenance.get("offset")
        inode = attributes.get("inode")
        recovered, corrupted = bool(record.get("recovered")), bool(record.get("corrupted"))

        # The fixed columns after datetime, timestamp and timestamp_desc (CSV, JSON, l2t extra).
        # The common cases (a text message, no offset, an integer inode or none) are inlined.
        if message.__class__ is str:
            csv_message = (message if not ("," in message or '"' in message or "\n" in message
                                           or "\r" in message)
                           else '"' + message.replace('"', '""') + '"')
        else:
            csv_message = cell(message)
        csv_inode = "" if inode is None else str(inode) if inode.__class__ is int else cell(inode)
        csv_parts = [",".join((csv_message, csv_type, tag_cell, csv_source,
                               "" if offset is None else cell(offset), csv_place, csv_inode,
                               _CSV_FLAGS[recovered], _CSV_FLAGS[corrupted]))]
        obj: dict[str, Any] = {"message": message, "data_type": data_type, "tag": list(tags)}
        if message is None:
            del obj["message"]
        obj.update(json_source)
        if offset is not None:
            obj["offset"] = jsonable(offset)
        obj.update(json_place)
        if inode is not None:
            obj["inode"] = inode if inode.__class__ is int else jsonable(inode)
        obj["recovered"] = recovered
        obj["corrupted"] = corrupted
        extra = [*extra_source, _RECOVERED[recovered], _CORRUPTED[corrupted]]
        if offset is not None and offset != "":
            extra.append(f"offset: {offset}")

        # The attribute columns: one pass, with the common types (str, int) inlined.
        add_csv, add_extra = csv_parts.append, extra.append
        for commas, column, key, prefix in plan:
            value = attributes[key]
            kind = type(value)
            if kind is str:
                if commas is not None:
                    add_csv(commas)
                    if "," in value or '"' in value or "\n" in value or "\r" in value:
                        add_csv('"' + value.replace('"', '""') + '"')
                    else:
                        add_csv(value)
                obj[column] = value
                if value:
                    add_extra(prefix + value)
            elif value is None:
                if commas is not None:
                    add_csv(commas)
            elif kind is int:
                text = str(value)
                if commas is not None:
                    add_csv(commas)
                    add_csv(text)
                obj[column] = value
                add_extra(prefix + text)
            else:
                if commas is not None:
                    add_csv(commas)
                    add_csv(cell(value))
                obj[column] = jsonable(value)
                if value not in ("", [], {}):
                    add_extra(f"{prefix}{value}")
        add_csv(csv_trailing)
        csv_tail = "".join(csv_parts).encode("utf-8", "backslashreplace")
        json_tail = _dumps(obj)[1:]
        extra.sort()
        message = message or ""
        desc_field = field(message)
        short_field = desc_field if len(message) <= 80 else field(message[:77] + "...")
        l2t_tail = ",".join((l2t_who, short_field, desc_field, "2", l2t_file, field(inode), notes, l2t_parser,
                             field("; ".join(extra)))).encode("utf-8", "backslashreplace")
        # Byte values, not one-byte strings: ``b"\0" in data`` first tries the needle as an
        # integer and pays for the TypeError it raises (~10x slower on these ~1 KB parts).
        escape_l2t = _NUL in l2t_tail
        escape_csv = _LF in csv_tail or _NUL in csv_tail
        key_record = b"%s\x01%012d\x01" % (key_source, record.get("order", 0))
        descs, groups, days, seconds = self._descs, self._groups, self._days, self._seconds
        tz_field, utc = self._tz_field, self._utc
        out = []
        count = len(places)
        index = 0
        # Lines are joined from their parts: b"".join costs less than bytes % formatting here.
        while index < count:  # rows of one record sharing a timestamp form one l2t line
            timestamp, desc = places[index]
            end = index + 1
            while end < count and places[end][0] == timestamp:
                end += 1
            day, rest = divmod(timestamp, _DAY_US)
            second, micros = divmod(rest, 1_000_000)
            iso_date, l2t_date = days.get(day) or self._day(day)
            clock = seconds.get(second) or self._second(second)
            stamp = b"%sT%s.%06d+00:00" % (iso_date, clock, micros)
            number = b"%d" % timestamp
            head = b"%016x\x01%s" % (timestamp + KEY_OFFSET, key_record)
            l2t_clock = clock
            if not utc:
                l2t_date, l2t_clock = self._local(timestamp)
            group = (desc,) if end == index + 1 else tuple(p[1] for p in places[index:end])
            letters, type_field, type_escape = groups.get(group) or self._group(group)
            l2t = b",".join((l2t_date, l2t_clock, tz_field, letters, l2t_source, type_field, l2t_tail))
            if escape_l2t or type_escape:
                l2t = escape(l2t)
            for position in range(index, end):
                desc = places[position][1]
                desc_key, desc_cell, desc_json, desc_escape = descs.get(desc) or self._desc(desc)
                csv_row = b",".join((stamp, number, desc_cell, csv_tail))
                if escape_csv or desc_escape:
                    csv_row = escape(csv_row)
                out.append(b"".join((head, desc_key, b"\0", l2t, b"\0", csv_row, b'\0{"datetime":"', stamp,
                                     b'","timestamp":', number, b',"timestamp_desc":', desc_json, b",",
                                     json_tail, b"\n")))
                l2t = b""
            index = end
        return out
