"""Windows XML event logs (``.evtx``): every readable record, with 4104 script blocks reassembled.

Reading is done by the ``evtx`` package (Rust): it scans every chunk, so logs copied while open
(stale header chunk count) are read completely, which python-evtx does not do. Its iterator raises
``RuntimeError`` on a zeroed chunk header or a broken record and can be resumed by calling
``next()`` again; each such error is a warning and iteration goes on. Times come from
``System/TimeCreated`` (the record header time can be a zero FILETIME).

A 4104 script block longer than ~32 KB is logged in several events sharing a ``ScriptBlockId``;
they are joined into one record. Only incomplete blocks are held in memory, and a part that never
arrives is listed in ``missing_parts`` of a record flagged ``corrupted`` (never invented).

Deleted logs the collector recovered, logs without a file header and logs whose chunks the library
cannot find are read chunk by chunk by :mod:`parsers.evtx_carve` (records with byte offsets).

Speed: a large log is tens of thousands of small records, so the per-record path is kept short:
the System block and the event data are read in one pass (``read_fields`` on the record orjson
decoded), one shaper per channel picks the fields (``describe``), and the Record is built
directly. Where a compiler built them, C twins give the same results faster: the fields read
from the JSON text without decoding all of it (``read_json``, ``parsers/_evtxread.c``) and the
common record built (``parsers/_evtxshape.c``).
"""

from __future__ import annotations

import dataclasses
import functools
import json
import re
from collections import OrderedDict
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any, BinaryIO

import evtx
import orjson

from parsers import evtx_events
from parsers.base import ParseContext, Parser
from parsers.evtx_events import Event, Fields, describe, fields_reader, one_line, parse_time
from parsers.evtx_guard import looping_chunks, without_chunks
from parsers.record import PLAIN_DATACLASS, Record

MAGIC = b"ElfFile\x00"
TIME_DESC = "Event Time"
WRITTEN_DESC = "Record Written Time"
FILE_HEADER_SIZE = 4096
CHUNK_SIZE = 65536
#: Stop reading a file after this many errors in a row (the iterator made no progress).
MAX_CONSECUTIVE_ERRORS = 1000
#: Bounds on pending (incomplete) multi-part script blocks.
MAX_PENDING_BLOCKS = 256
MAX_PENDING_CHARS = 64 << 20
#: Missing script block parts listed in a record (the count says how many there are in all).
MAX_MISSING_LISTED = 1000
_CHUNK_NUMBER = re.compile(r"chunk number (\d+)", re.IGNORECASE)


#: One event as read: record number, the library's JSON text (or the decoded record), record-header
#: time text, byte offset if known. The text is decoded by the parser: most records' fields are
#: read from it directly (``read_json``), without the whole document as Python objects.
RawEvent = tuple[int, "str | dict[str, Any]", "str | None", "int | None"]


def iter_events(fh: BinaryIO | str, ctx: ParseContext, chunk_offset: int | None = None,
                fallback: Callable[[], Iterator[RawEvent]] | None = None) -> Iterator[RawEvent]:
    """Yield every record ``evtx`` can read; errors are warnings, then the next record.

    Warnings carry the offset of the chunk the error names, or ``chunk_offset`` (a single chunk
    carved out of a larger stream). If the library refuses the file as a whole, ``fallback``
    (chunk carving) supplies the events instead.
    """
    if not isinstance(fh, str):
        bad = looping_chunks(fh)
        if bad:
            for offset in bad:
                ctx.warn("evtx: chunk whose string/template hash chain loops; skipped",
                         chunk_offset if chunk_offset is not None else offset)
            with without_chunks(fh, bad) as safe_copy:
                yield from iter_events(safe_copy, ctx, chunk_offset, fallback)
            return
    try:
        iterator = evtx.PyEvtxParser(fh).records_json()
    except (RuntimeError, OSError, ValueError) as exc:
        if fallback is None:
            ctx.warn(f"not a readable EVTX file: {exc}", 0)
            return
        ctx.warn(f"evtx: the library refuses the file ({one_line(str(exc), 200)}); carving ElfChnk "
                 "chunks instead", 0)
        yield from fallback()
        return
    errors = 0
    yielded = False
    while True:
        try:
            raw = next(iterator)
        except StopIteration:
            if not yielded and fallback is not None:
                # A header the library accepts but whose chunks it does not find (a header cut
                # short, chunks moved): whatever chunk carving finds, with a warning first.
                carved = fallback()
                first = next(carved, None)
                if first is not None:
                    ctx.warn("evtx: the library read no record from this file; carving ElfChnk "
                             "chunks instead", 0)
                    yield first
                    yield from carved
            return
        except RuntimeError as exc:
            errors += 1
            message = str(exc)
            match = _CHUNK_NUMBER.search(message)
            offset = FILE_HEADER_SIZE + int(match.group(1)) * CHUNK_SIZE if match else None
            offset = chunk_offset if chunk_offset is not None else offset
            ctx.warn(f"evtx: {one_line(message, 400)}", offset)
            if errors >= MAX_CONSECUTIVE_ERRORS:
                ctx.warn(f"evtx: giving up after {errors} consecutive errors", offset)
                return
            continue
        errors = 0
        yielded = True
        yield raw.get("event_record_id") or 0, raw["data"], raw.get("timestamp"), None


def decode(text: str, number: int, ctx: ParseContext) -> Any:
    """A record's JSON decoded: orjson, else the standard library's decoder for what orjson refuses
    (lone surrogates, integers > 64 bits); None, with a warning, for what neither reads."""
    try:
        return orjson.loads(text)
    except (ValueError, TypeError):
        pass
    try:
        return json.loads(text)
    except (ValueError, TypeError) as exc:
        ctx.warn(f"evtx: record {number} is not valid JSON: {exc}")
        return None


@dataclass
class _Block:
    """Parts of one multi-part script block seen so far."""

    order: int
    event: Event
    total: int
    parts: dict[int, str] = field(default_factory=dict)
    record_numbers: list[int] = field(default_factory=list)
    chars: int = 0


class EvtxParser(Parser):
    """Windows event logs via the ``evtx`` package."""

    NAME = "evtx"
    DESCRIPTION = "Windows XML event logs (.evtx): PowerShell, Exchange, Security, System, Sysmon, WMI"
    DATA_TYPES = ("windows:evtx:",)

    @classmethod
    def sniff(cls, head: bytes, name: str) -> bool:
        return head.startswith(MAGIC)

    def parse(self, fh: BinaryIO, ctx: ParseContext) -> Iterator[Record]:
        """Every record of one log; deleted or damaged logs are read chunk by chunk.

        A log the collector recovered from a deleted entry (``deleted`` / outcome ``recovered``)
        may have some clusters reused: it is carved one 64 KiB chunk at a time, so a broken chunk
        costs only itself and every record gets its byte offset and ``recovered: true``. A log
        without its file header is carved the same way; one whose header the library refuses is
        carved as a fallback.
        """
        from parsers.evtx_carve import EvtxCarveParser, carved_events

        head = fh.read(len(MAGIC))
        fh.seek(0)
        entry = ctx.entry
        if head != MAGIC:
            # A deleted or damaged log whose file header is gone: its chunks may still be whole.
            ctx.warn("evtx: no EVTX file header; carving ElfChnk chunks instead", 0)
            yield from EvtxCarveParser().parse(fh, ctx)
            return
        if entry.get("deleted") or entry.get("outcome") == "recovered":
            yield from EvtxCarveParser().parse(fh, ctx)
            return
        events = iter_events(fh, ctx, fallback=lambda: carved_events(fh, ctx))
        yield from self.records(events, ctx)

    def records(self, events: Iterable[RawEvent], ctx: ParseContext, recovered: bool = False,
                parser: str | None = None) -> Iterator[Record]:
        """Records from raw events: shaped, 4104 parts joined, flagged ``recovered`` if asked.

        ``parser`` names the parser in the records (the carver reuses this path under its own name).
        """
        build = _Builder(ctx, parser or self.NAME, recovered)
        fast = build.fast
        common = build.common()
        read_fields = fields_reader()
        read_json = evtx_events.NATIVE_READ_JSON
        pending: OrderedDict[str, _Block] = OrderedDict()
        pending_chars = 0
        order = -1
        for number, payload, header_time, offset in events:
            # The fields straight from the text where the C reader takes it, else from the
            # decoded document (the same fields).
            fields = read_json(number, payload) if read_json is not None else None
            if fields is None:
                decoded = decode(payload, number, ctx) if type(payload) is str else payload
                if decoded is None:
                    continue
                order += 1
                try:
                    fields = read_fields(number, decoded)
                except (AttributeError, TypeError, ValueError) as exc:
                    ctx.warn(f"evtx: record {number} has an unexpected layout: {exc}", offset)
                    yield build.bare(order, number, decoded, offset)
                    continue
            else:
                order += 1
            event_id, channel, _, _, time, _, data = fields
            if (event_id != 4104 or "ScriptBlockId" not in data) and (time is not None or channel):
                # The common case: no Event object kept (the C twin's record, else the Python one's).
                record = common(order, fields, offset)
                yield record if record is not None else fast(order, fields, offset)
                continue
            event = Event(number, *fields, offset=offset)
            if time is None and not channel:
                # A record whose System block is empty: keep it, flagged, with the time the record
                # header says it was written (labelled as such; TimeCreated is preferred otherwise).
                ctx.warn(f"evtx: record {number} has no TimeCreated and no channel (damaged System block)",
                         offset)
                written = parse_time(header_time.removesuffix(" UTC") if header_time else None)
                yield build.record(order, event, corrupted=True, written=written)
                continue
            # A part of a 4104 script block: joined with its other parts by ScriptBlockId.
            total = _int(event.data.get("MessageTotal")) or 1
            if total <= 1:
                yield build.script_block(order, event, {1: _text(event)}, 1, [number])
                continue
            block_id = str(event.data["ScriptBlockId"])
            block = pending.get(block_id)
            if block is None:
                block = pending[block_id] = _Block(order=order, event=event, total=total)
            part = _int(event.data.get("MessageNumber")) or 0
            text = _text(event)
            if part not in block.parts:
                block.parts[part] = text
                block.chars += len(text)
                pending_chars += len(text)
            block.record_numbers.append(number)
            if all(i in block.parts for i in range(1, block.total + 1)):
                del pending[block_id]
                pending_chars -= block.chars
                yield build.script_block(block.order, block.event, block.parts, block.total,
                                         block.record_numbers)
            while pending and (len(pending) > MAX_PENDING_BLOCKS or pending_chars > MAX_PENDING_CHARS):
                _, oldest = pending.popitem(last=False)
                pending_chars -= oldest.chars
                yield build.script_block(oldest.order, oldest.event, oldest.parts, oldest.total,
                                         oldest.record_numbers)
        for block in pending.values():
            yield build.script_block(block.order, block.event, block.parts, block.total, block.record_numbers)


class _Builder:
    """Turns events into records for one file: what is the same for every record is bound once."""

    def __init__(self, ctx: ParseContext, parser: str, recovered: bool) -> None:
        self.ctx = ctx
        self.parser = parser
        self.recovered = recovered

    def common(self) -> Callable[[int, Fields, int | None], Record | None]:
        """What makes the common record: :meth:`fast` through its C twin where that is built.

        The twin returns None for what it leaves to :meth:`fast` (carved records, odd fields);
        looked up per file, so that the tests can run both.
        """
        native = evtx_events.NATIVE_SHAPE
        if native is None or not PLAIN_DATACLASS:
            return self.fast
        ctx = self.ctx
        context = (Record, ctx.provenance, self.parser, ctx.host, ctx.user, self.recovered, TIME_DESC)
        return functools.partial(native, context)

    def record(self, order: int, event: Event, overrides: dict[str, Any] | None = None,
               corrupted: bool = False, written: int | None = None, message: str | None = None) -> Record:
        """The record of a kept :class:`Event` (a script block, a damaged System block)."""
        fields = (event.event_id, event.channel, event.provider, event.computer, event.time, event.head,
                  event.data)
        return self.fast(order, fields, event.offset, overrides, corrupted, written, message)

    def fast(self, order: int, fields: Fields, offset: int | None, overrides: dict[str, Any] | None = None,
             corrupted: bool = False, written: int | None = None, message: str | None = None) -> Record:
        """The record of one event given as :func:`read_fields` returns it (the per-record path)."""
        ctx = self.ctx
        event_id, channel, provider, computer, time, head, data = fields
        data_type, attributes, summary, shaped_user = describe(event_id, channel, provider, head, data,
                                                               overrides)
        if shaped_user:
            user = shaped_user
            if attributes.get("user_sid"):
                attributes.setdefault("user_name", shaped_user)
            else:
                attributes["user_name"] = shaped_user
        else:
            user = attributes.get("user_sid") or ctx.user
        if time is not None:
            timestamps = {TIME_DESC: time}
        else:
            timestamps = {WRITTEN_DESC: written} if written is not None else {}
        if message is None:
            message = one_line(f"[{event_id}] {channel}: {summary}")
        provenance = ctx.provenance_at(offset) if offset is not None else ctx.provenance
        return Record.quick(data_type, message, provenance, self.parser, order, timestamps, attributes,
                           computer or ctx.host, user, self.recovered, corrupted)

    def script_block(self, order: int, event: Event, parts: dict[int, str], total: int,
                     record_numbers: list[int]) -> Record:
        missing, missing_count = _missing_parts(parts, total)
        text = "".join(parts[i] for i in sorted(parts))
        data = {k: v for k, v in event.data.items() if k not in ("ScriptBlockText", "MessageNumber")}
        event = dataclasses.replace(event, data=data)
        overrides: dict[str, Any] = {"script_block": text, "parts": total, "record_numbers": record_numbers}
        listed = str(missing) if missing_count == len(missing) else \
            f"{missing_count:,} ({str(missing)[:-1]}, ...])"
        if missing:
            overrides["missing_parts"] = missing
            if missing_count > len(missing):
                overrides["missing_parts_count"] = missing_count
            self.ctx.warn(f"evtx: script block {data.get('ScriptBlockId')} (record {record_numbers[0]}) "
                          f"lacks part(s) {listed} of {total}", event.offset)
        suffix = f" ({total} parts{', missing ' + listed if missing else ''})" if total > 1 else ""
        path = f" {data['Path']}" if data.get("Path") else ""
        message = one_line(f"[4104] {event.channel}: Script block{path}{suffix}: {text}")
        return self.record(order, event, overrides, corrupted=bool(missing), message=message)

    def bare(self, order: int, number: int, decoded: dict[str, Any], offset: int | None) -> Record:
        ctx = self.ctx
        return Record(data_type="windows:evtx:record", message=f"EVTX record {number} (unreadable layout)",
                      provenance=ctx.provenance_at(offset), parser=self.parser, order=order,
                      attributes={"record_number": number, "raw": one_line(json.dumps(decoded), 4000)},
                      host=ctx.host, user=ctx.user, recovered=self.recovered, corrupted=True)


def _missing_parts(parts: dict[int, str], total: int) -> tuple[list[int], int]:
    """The part numbers 1..total not in ``parts`` (the first MAX_MISSING_LISTED) and how many.

    ``total`` is what the log claims (``MessageTotal``): a damaged or forged record can claim
    billions, so the parts are never enumerated up to it.
    """
    present = sum(1 for number in parts if 1 <= number <= total)
    missing: list[int] = []
    number = 1
    while len(missing) < min(MAX_MISSING_LISTED, total - present):
        if number not in parts:
            missing.append(number)
        number += 1
    return missing, total - present


def _text(event: Event) -> str:
    value = event.data.get("ScriptBlockText")
    return value if isinstance(value, str) else ("" if value is None else str(value))


def _int(value: Any) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None
