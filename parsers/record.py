"""The Record: one parsed thing (a message, a command, an event, a deleted inode).

Records are what parsers produce and the timeline consumes. A record may hold several named
timestamps (an mbox message has an envelope time, a Date header and Received times) or none at all
(an undated history line): a time is never invented. Records are frozen so that rule tagging
returns a new record instead of mutating one another stage already saw.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from typing import Any

import orjson

#: orjson as ``json.dumps(sort_keys=True, default=str)`` would write it: datetimes and dataclasses
#: go through ``default`` (as with json) instead of orjson's own renderings.
_ORJSON_OPTIONS = orjson.OPT_SORT_KEYS | orjson.OPT_PASSTHROUGH_DATETIME | orjson.OPT_PASSTHROUGH_DATACLASS
#: How every line written by orjson starts (keys are sorted, ``attributes`` comes first).
_COMPACT_START = b'{"attributes":{'


@dataclass(frozen=True)
class Provenance:
    """Where a record came from: the bundle file, the original path and its hash."""

    bundle_path: str | None
    source_path: str
    sha256: str | None
    filesystem: str = ""
    offset: int | None = None
    #: The collector's provenance string (``image:x.raw|RAW|TSK_PARTITION/p1|EXT/``).
    evidence: str = ""


@dataclass(frozen=True)
class Record:
    """One parsed item.

    Attributes:
        data_type: colon-separated, general to specific (``shell:bash:command``).
        timestamps: description -> µs since the epoch, e.g. ``{"Envelope Time": ...}``.
        time_bounds: bounds for an undated record (never presented as its own time).
        message: one human-readable line (long text goes to ``attributes``).
        attributes: parser-specific fields (JSON-serialisable scalars, lists or dicts).
        provenance: bundle path, source path, sha256, byte offset.
        parser: the parser name.
        host / user: who and where, when known.
        order: position of the record inside its source file (stable tie-breaker).
        recovered: reconstructed from deleted or unallocated data.
        corrupted: only part of the record could be read.
        tags: rule ids and ATT&CK technique ids set by the rule engine.
    """

    data_type: str
    message: str
    provenance: Provenance
    parser: str
    order: int
    timestamps: dict[str, int] = field(default_factory=dict)
    #: For records without a time of their own: known bounds, keyed by a description that starts
    #: with "Not before" or "Not after" (e.g. "Not after: history file last modified").
    time_bounds: dict[str, int] = field(default_factory=dict)
    attributes: dict[str, Any] = field(default_factory=dict)
    host: str | None = None
    user: str | None = None
    recovered: bool = False
    corrupted: bool = False
    tags: tuple[str, ...] = ()

    @classmethod
    def quick(cls, data_type: str, message: str, provenance: Provenance, parser: str, order: int,
              timestamps: dict[str, int], attributes: dict[str, Any], host: str | None,
              user: str | None, recovered: bool, corrupted: bool) -> Record:
        """``Record(...)`` without the frozen dataclass ``__init__``, for a parser's hot loop.

        The frozen ``__init__`` pays one ``object.__setattr__`` per field, about a sixth of the
        per-record cost of a large event log; filling the instance dictionary at once gives an
        equal, still frozen record. Falls back to the constructor if Record ever stops being a
        plain dataclass.
        """
        if not PLAIN_DATACLASS:
            return cls(data_type=data_type, message=message, provenance=provenance, parser=parser,
                       order=order, timestamps=timestamps, attributes=attributes, host=host,
                       user=user, recovered=recovered, corrupted=corrupted)
        record = object.__new__(cls)
        object.__setattr__(record, "__dict__", {
            "data_type": data_type, "message": message, "provenance": provenance, "parser": parser,
            "order": order, "timestamps": timestamps, "time_bounds": {}, "attributes": attributes,
            "host": host, "user": user, "recovered": recovered, "corrupted": corrupted, "tags": ()})
        return record

    def with_tags(self, tags: list[str]) -> Record:
        """A copy carrying ``tags`` added (sorted, de-duplicated)."""
        return dataclasses.replace(self, tags=tuple(sorted(set(self.tags) | set(tags))))

    def to_dict(self) -> dict[str, Any]:
        """Plain-JSON form used in ``records.jsonl`` (shallow: no deep copy of the attributes)."""
        return {
            "data_type": self.data_type, "message": self.message,
            "provenance": _provenance_dict(self.provenance),
            "parser": self.parser, "order": self.order, "timestamps": self.timestamps,
            "time_bounds": self.time_bounds, "attributes": self.attributes, "host": self.host,
            "user": self.user, "recovered": self.recovered, "corrupted": self.corrupted,
            "tags": list(self.tags)}

    def to_json_bytes(self) -> bytes:
        """One ``records.jsonl`` line as UTF-8 (stable key order, no trailing newline).

        orjson writes it compactly, about ten times faster than ``json``. What orjson cannot
        represent exactly (integers beyond 64 bits, undecodable bytes that parsers keep as lone
        surrogates) falls back to ``json.dumps`` with its spaced separators and ``\\uXXXX``
        escapes, which keep such values losslessly; :func:`loads_record` tells the two apart.
        """
        fragment = _provenance_fragment(self.provenance)
        if fragment is not None and PLAIN_DATACLASS:
            # The instance dictionary holds exactly the fields of to_dict(): a copy with the
            # provenance already serialised (the same for every record of a file) and tags as a
            # list is the same JSON for less work.
            data = self.__dict__.copy()
            if len(data) == _FIELD_COUNT:
                data["provenance"] = fragment
                data["tags"] = list(self.tags)
                try:
                    return orjson.dumps(data, default=str, option=_ORJSON_OPTIONS)
                except TypeError:
                    pass
        data = self.to_dict()
        try:
            return orjson.dumps(data, default=str, option=_ORJSON_OPTIONS)
        except TypeError:
            return json.dumps(data, ensure_ascii=True, sort_keys=True, default=str).encode("ascii")

    def to_json(self) -> str:
        """:meth:`to_json_bytes` as text."""
        return self.to_json_bytes().decode("utf-8")

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Record:
        """Inverse of :meth:`to_dict`."""
        data = dict(data)
        data["provenance"] = Provenance(**data["provenance"])
        data["tags"] = tuple(data.get("tags", ()))
        return cls(**data)


#: Whether Record is the plain frozen dataclass whose instance dictionary ``Record.quick`` fills
#: (the EVTX parser's C twin, parsers/_evtxshape.c, fills it the same way only where this holds).
PLAIN_DATACLASS = (tuple(f.name for f in dataclasses.fields(Record)) == (
    "data_type", "message", "provenance", "parser", "order", "timestamps", "time_bounds", "attributes",
    "host", "user", "recovered", "corrupted", "tags")
    and not hasattr(Record, "__slots__") and not hasattr(Record, "__post_init__"))
_FIELD_COUNT = len(dataclasses.fields(Record))


def _provenance_dict(provenance: Provenance) -> dict[str, Any]:
    """The ``provenance`` object of a ``records.jsonl`` line."""
    return {"bundle_path": provenance.bundle_path, "source_path": provenance.source_path,
            "sha256": provenance.sha256, "filesystem": provenance.filesystem,
            "offset": provenance.offset, "evidence": provenance.evidence}


#: The last provenance seen by ``to_json_bytes`` and its JSON (None until it is seen twice, or if
#: orjson refuses it). The records of a file share one Provenance object, so one slot suffices;
#: carved records (one object each, with its offset) never pay for a fragment. The slot holds a
#: reference, so ``is`` cannot match a recycled id.
_last_provenance: tuple[Provenance | None, orjson.Fragment | None] = (None, None)


def _provenance_fragment(provenance: Provenance) -> orjson.Fragment | None:
    """``provenance`` pre-serialised as ``to_dict`` renders it, once it is seen a second time."""
    global _last_provenance
    last, fragment = _last_provenance
    if last is not provenance:
        _last_provenance = (provenance, None)
        return None
    if fragment is None and type(provenance) is Provenance:
        try:
            fragment = orjson.Fragment(orjson.dumps(_provenance_dict(provenance), default=str,
                                                    option=_ORJSON_OPTIONS))
        except TypeError:
            return None  # such lines take the exact json path, as before
        _last_provenance = (provenance, fragment)
    return fragment


def _clean_strings(value: Any) -> Any:
    """Undecodable bytes (kept as lone surrogates by the parsers) become ``\\xNN`` text."""
    if isinstance(value, str):
        return value.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
    if isinstance(value, list):
        return [_clean_strings(v) for v in value]
    if isinstance(value, dict):
        return {_clean_strings(k): _clean_strings(v) for k, v in value.items()}
    return value


def loads_record(line: bytes | str) -> dict[str, Any]:
    """One ``records.jsonl`` line as a dict whose strings are all valid UTF-8.

    Lines :meth:`Record.to_json_bytes` wrote with orjson (compact, ``{"attributes":{`` first) are
    read with orjson, exactly and fast. Any other line (the ``json`` fallback for values orjson
    cannot hold, files of older versions, hand-made records) is read with ``json``, because orjson
    silently turns integers beyond 64 bits into floats. Lone surrogates (undecodable evidence
    bytes) become ``\\xNN`` text, so that every writer can encode the result.

    Raises:
        ValueError: the line is not JSON (``json.JSONDecodeError`` or ``orjson.JSONDecodeError``).
    """
    raw = line.encode("utf-8", "surrogatepass") if isinstance(line, str) else line
    if raw.startswith(_COMPACT_START):
        return orjson.loads(raw)
    record = json.loads(raw)
    if b"\\ud" in raw or b"\\uD" in raw:
        record = _clean_strings(record)
    return record
