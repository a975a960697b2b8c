"""The ESE writer's databases read identically with libesedb (pyesedb) and dissect.esedb.

Two independent readers see the same tables, columns, types and every value, on a one-page table,
a multi-page one (linked leaves under a root branch page) and a three-level one; every page carries
a correct checksum by the parser's own check; the same input gives the same bytes.
"""

from __future__ import annotations

import struct
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from parsers.windows_mail import page_checksum_ok, xor32
from tests.fixtures.ese_writer import (
    BINARY,
    BIT,
    CURRENCY,
    DATE_TIME,
    DOUBLE,
    FIXED_FORMATS,
    GUID,
    LONG,
    LONG_BINARY,
    LONG_LONG,
    LONG_TEXT,
    SHORT,
    TEXT,
    UNSIGNED_BYTE,
    UNSIGNED_LONG,
    UNSIGNED_SHORT,
    Column,
    Table,
    _encode,
    database_bytes,
    write_database,
)

pyesedb = pytest.importorskip("pyesedb")
dissect_esedb = pytest.importorskip("dissect.esedb")

COLUMNS = [
    Column("Id", LONG), Column("Flag", BIT), Column("Byte", UNSIGNED_BYTE), Column("Short", SHORT),
    Column("Money", CURRENCY), Column("Ratio", DOUBLE), Column("When", DATE_TIME),
    Column("Count", UNSIGNED_LONG), Column("Big", LONG_LONG), Column("Guid", GUID),
    Column("Port", UNSIGNED_SHORT), Column("Name", TEXT), Column("Blob", BINARY),
    Column("Subject", LONG_TEXT), Column("Body", LONG_BINARY), Column("Sparse", LONG_LONG, tagged=True),
    Column("Label", TEXT, tagged=True),
]


def _row(i: int) -> dict[str, Any]:
    """Row ``i``: every column set on some rows, null on others."""
    row: dict[str, Any] = {
        "Id": i * 3 - 5, "Flag": i % 2 == 0, "Byte": i % 256, "Short": -i, "Money": i * 10_000,
        "Ratio": i / 7, "When": datetime(2026, 10, 5, 9, 12, 44, tzinfo=UTC),
        "Count": 4_000_000_000 + i, "Big": -(1 << 40) - i, "Guid": uuid.UUID(int=i + 1),
        "Port": 65_000 + i % 500, "Name": f"name {i} ü", "Blob": bytes([i % 256, 0, 255]),
        "Subject": f"Subject {i} — Grüße", "Body": b"\x00\x01" * (i % 5 + 1),
        "Sparse": i if i % 3 == 0 else None, "Label": f"label-{i}" if i % 4 == 0 else None}
    if i % 5 == 0:
        row.update(Short=None, Name=None, Subject=None)
    return row


def _tables(rows: int, page_text: int = 0) -> list[Table]:
    extra = [Column("Filler", LONG_TEXT)] if page_text else []
    return [
        Table("Small", [Column("Key", LONG), Column("Value", TEXT)],
              [{"Key": 2, "Value": "two"}, {"Key": 1, "Value": "one"}], key="Key"),
        Table("Everything", COLUMNS + extra,
              [{**_row(i), **({"Filler": "x" * page_text} if page_text else {})} for i in range(rows)],
              key="Id"),
    ]


def _expected(table: Table, libesedb: bool = False) -> list[list[bytes | None]]:
    """Each row's stored bytes per column, in key order. libesedb does not read the null bitmap
    of fixed columns: a null one stored before the row's last set fixed column reads as its zero
    bytes there (dissect.esedb, like esent, reads None)."""
    fixed = [c for c in table.columns if c.type not in (TEXT, BINARY, LONG_TEXT, LONG_BINARY)
             and not c.tagged]
    result = []
    for r in sorted(table.rows, key=lambda r: r[table.key]):
        last = max((i for i, c in enumerate(fixed) if r.get(c.name) is not None), default=-1)
        zero = ({c.name: bytes(struct.calcsize(FIXED_FORMATS[c.type])) for c in fixed[:last + 1]}
                if libesedb else {})
        result.append([zero.get(c.name) if r.get(c.name) is None else
                       _encode(c.type, r[c.name], c.codepage) for c in table.columns])
    return result


def _read_pyesedb(path: Path) -> dict[str, tuple[list[tuple[str, int]], list[list[bytes | None]]]]:
    database = pyesedb.file()
    database.open(str(path))
    try:
        result = {}
        for t in range(database.number_of_tables):
            table = database.get_table(t)
            columns = [(table.get_column(c).name, table.get_column(c).type)
                       for c in range(table.number_of_columns)]
            rows = []
            for r in range(table.number_of_records):
                record = table.get_record(r)
                rows.append([None if (v := record.get_value_data(c)) is None else bytes(v)
                             for c in range(len(columns))])
            result[table.name] = (columns, rows)
        return result
    finally:
        database.close()


def _read_dissect(path: Path) -> dict[str, tuple[list[tuple[str, int]], list[list[bytes | None]]]]:
    with path.open("rb") as handle:
        database = dissect_esedb.EseDB(handle)
        result = {}
        for table in database.tables():
            columns = [(c.name, int(c.type.value)) for c in table.columns]
            rows = [[None if (v := record.get(c.name, raw=True)) is None else bytes(v)
                     for c in table.columns] for record in table.records()]
            result[table.name] = (columns, rows)
        return result


def _check(path: Path, tables: list[Table]) -> None:
    libesedb, dissect = _read_pyesedb(path), _read_dissect(path)
    names = ["MSysObjects", "MSysObjectsShadow", *[t.name for t in tables]]
    assert list(libesedb) == names and list(dissect) == names
    for table in tables:
        columns = [(c.name, c.type) for c in table.columns]
        assert libesedb[table.name] == (columns, _expected(table, libesedb=True))
        assert dissect[table.name] == (columns, _expected(table))
    for reader in (libesedb, dissect):  # the backup catalog is an exact copy
        assert reader["MSysObjects"][1] == reader["MSysObjectsShadow"][1]


def _pages(data: bytes, page_size: int) -> list[tuple[int, int]]:
    """(page number, flags) of every page, checking each page's checksum on the way."""
    header = data[:page_size]
    assert struct.unpack_from("<I", header)[0] == xor32(header[4:]) ^ 0x89ABCDEF
    assert data[page_size:2 * page_size] == header  # the shadow copy
    pages = []
    for pgno in range(1, len(data) // page_size - 1):
        page = data[(pgno + 1) * page_size:(pgno + 2) * page_size]
        assert page_checksum_ok(page, pgno) is True, pgno
        pages.append((pgno, struct.unpack_from("<I", page, 36)[0]))
    return pages


def test_one_page_tables_read_identically(tmp_path: Path):
    tables = _tables(12)
    path = write_database(tmp_path / "one.edb", tables)
    _check(path, tables)
    pages = _pages(path.read_bytes(), 8192)
    assert len(pages) == 26 and pages[3] == (4, 0x803) and pages[23] == (24, 0x803)  # catalogs
    assert pages[24:] == [(25, 0x803), (26, 0x803)]  # root+leaf pages of the two tables


def test_multi_page_table_reads_identically(tmp_path: Path):
    tables = _tables(700)
    path = write_database(tmp_path / "multi.edb", tables)
    _check(path, tables)
    flags = [f for _, f in _pages(path.read_bytes(), 8192)]
    assert flags[25] == 0x805  # Everything's root: a branch page over leaves
    assert flags.count(0x802) > 10  # its leaves


def test_three_level_table_reads_identically(tmp_path: Path):
    tables = _tables(900, page_text=700)  # ~1.5 KiB rows: two per 4 KiB leaf
    path = write_database(tmp_path / "deep.edb", tables, page_size=4096)
    _check(path, tables)
    flags = [f for _, f in _pages(path.read_bytes(), 4096)]
    assert flags[25] == 0x801  # root over branch pages
    assert flags.count(0x804) >= 2  # branch pages over leaves


def test_same_input_same_bytes_and_limits(tmp_path: Path):
    assert database_bytes(_tables(30)) == database_bytes(_tables(30))
    with pytest.raises(ValueError, match="does not fit a page"):
        database_bytes([Table("T", [Column("Id", LONG), Column("Text", LONG_TEXT)],
                              [{"Id": 1, "Text": "x" * 5000}])])
    with pytest.raises(ValueError, match="duplicate keys"):
        database_bytes([Table("T", [Column("Id", LONG)], [{"Id": 1}, {"Id": 1}])])
    with pytest.raises(ValueError, match="must be an integer column"):
        database_bytes([Table("T", [Column("Name", TEXT)], [{"Name": "a"}])])
    written = write_database(tmp_path / "x.edb", _tables(3))
    assert [p.name for p in tmp_path.iterdir()] == ["x.edb"]  # no temporary file left behind
    assert written.read_bytes() == database_bytes(_tables(3))
