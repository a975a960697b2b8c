"""Carve table rows out of the free pages of an SQLite database file.

Why: when rows are deleted and a whole b-tree page empties, SQLite puts the page on its freelist
and, unless ``secure_delete`` is on, leaves its bytes as they were. Those old leaf pages still hold
the deleted rows, complete with their rowids. This module reads the freelist straight from the file
(SQLite itself never shows free pages) and decodes the cells of every free page that was a table
leaf. Only cells whose payload lies entirely on the page are decoded (overflowed payloads are
counted, not guessed at). The caller decides which table a carved row belongs to (by column count
and content).

Format: https://www.sqlite.org/fileformat2.html (database header, freelist trunk/leaf pages, b-tree
page header, table leaf cells, record format with serial types).
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, BinaryIO

TABLE_LEAF = 0x0D
MAX_FREE_PAGES = 1_000_000


@dataclass(frozen=True)
class CarvedRow:
    """One row decoded from a free page."""

    page: int
    offset: int  # byte offset of the cell in the file
    rowid: int
    values: tuple[Any, ...]


def _varint(data: bytes, pos: int) -> tuple[int, int]:
    """SQLite varint at ``pos``: (value, next position). Raises IndexError past the end."""
    value = 0
    for i in range(8):
        byte = data[pos + i]
        value = (value << 7) | (byte & 0x7F)
        if not byte & 0x80:
            return value, pos + i + 1
    return (value << 8) | data[pos + 8], pos + 9


def decode_record(payload: bytes, encoding: str = "utf-8") -> tuple[Any, ...] | None:
    """The values of an SQLite record, or None when the bytes are not a well-formed record."""
    try:
        header_size, pos = _varint(payload, 0)
        if header_size < 1 or header_size > len(payload):
            return None
        types = []
        while pos < header_size:
            serial, pos = _varint(payload, pos)
            types.append(serial)
        if pos != header_size:
            return None
        values: list[Any] = []
        body = header_size
        for serial in types:
            if serial == 0:
                values.append(None)
            elif 1 <= serial <= 6:
                size = (1, 2, 3, 4, 6, 8)[serial - 1]
                if body + size > len(payload):
                    return None
                values.append(int.from_bytes(payload[body:body + size], "big", signed=True))
                body += size
            elif serial == 7:
                if body + 8 > len(payload):
                    return None
                values.append(struct.unpack(">d", payload[body:body + 8])[0])
                body += 8
            elif serial in (8, 9):
                values.append(serial - 8)
            elif serial >= 12:
                size = (serial - 12) // 2
                if body + size > len(payload):
                    return None
                raw = payload[body:body + size]
                values.append(raw.decode(encoding, "replace") if serial % 2 else bytes(raw))
                body += size
            else:
                return None  # 10 and 11 are reserved
        return tuple(values) if body == len(payload) else None
    except IndexError:
        return None


def free_pages(fh: BinaryIO) -> tuple[int, int, str, list[int]]:
    """(page size, usable size, text encoding, free leaf page numbers) of the database in ``fh``."""
    fh.seek(0)
    header = fh.read(100)
    if len(header) < 100 or not header.startswith(b"SQLite format 3\x00"):
        return 0, 0, "utf-8", []
    page_size = struct.unpack(">H", header[16:18])[0]
    page_size = 65536 if page_size == 1 else page_size
    usable = page_size - header[20]
    encoding = {2: "utf-16-le", 3: "utf-16-be"}.get(struct.unpack(">I", header[56:60])[0], "utf-8")
    trunk = struct.unpack(">I", header[32:36])[0]
    leaves: list[int] = []
    seen: set[int] = set()
    while trunk and trunk not in seen and len(leaves) < MAX_FREE_PAGES:
        seen.add(trunk)
        fh.seek((trunk - 1) * page_size)
        page = fh.read(page_size)
        if len(page) < 8:
            break
        following, count = struct.unpack(">II", page[:8])
        count = min(count, (usable - 8) // 4)
        leaves += [struct.unpack(">I", page[8 + 4 * i:12 + 4 * i])[0] for i in range(count)]
        trunk = following
    return page_size, usable, encoding, leaves


def carve_free_pages(fh: BinaryIO) -> Iterator[CarvedRow]:
    """Every fully local table-leaf cell on the free pages of the database in ``fh``."""
    page_size, usable, encoding, leaves = free_pages(fh)
    for number in leaves:
        fh.seek((number - 1) * page_size)
        page = fh.read(page_size)
        if len(page) < page_size or page[0] != TABLE_LEAF:
            continue
        cells = struct.unpack(">H", page[3:5])[0]
        for index in range(min(cells, (usable - 8) // 2)):
            pointer = struct.unpack(">H", page[8 + 2 * index:10 + 2 * index])[0]
            if not 8 <= pointer < usable:
                continue
            try:
                size, pos = _varint(page, pointer)
                rowid, pos = _varint(page, pos)
            except IndexError:
                continue
            if size > usable - 35 or pos + size > usable:
                continue  # overflowing payload: not carved
            values = decode_record(page[pos:pos + size], encoding)
            if values is not None:
                yield CarvedRow(page=number, offset=(number - 1) * page_size + pointer, rowid=rowid,
                                values=values)
