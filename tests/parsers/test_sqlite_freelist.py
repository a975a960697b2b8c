"""SQLite free-page carving: records decoded from freed table-leaf pages."""

from __future__ import annotations

import io
import sqlite3
from pathlib import Path

from parsers.sqlite_freelist import carve_free_pages, decode_record, free_pages


def _db(tmp_path: Path, secure_delete: bool) -> Path:
    path = tmp_path / "t.db"
    conn = sqlite3.connect(path)
    conn.execute(f"PRAGMA secure_delete={'ON' if secure_delete else 'OFF'}")
    conn.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, name TEXT, n INTEGER, r REAL, b BLOB)")
    conn.executemany("INSERT INTO t VALUES (?, ?, ?, ?, ?)",
                     [(i, f"row {i}" * 5, i * 1000, i / 4, b"\x00\x01") for i in range(1, 401)])
    conn.commit()
    conn.execute("DELETE FROM t WHERE id > 100")
    conn.commit()
    conn.close()
    return path


def test_deleted_rows_come_back_from_free_pages(tmp_path):
    path = _db(tmp_path, secure_delete=False)
    with path.open("rb") as handle:
        _size, _usable, encoding, leaves = free_pages(handle)
        rows = list(carve_free_pages(handle))
    assert encoding == "utf-8" and leaves
    # Free leaf pages keep their rows; the trunk page's own old cells are not read.
    assert len(rows) >= 150 and len({r.rowid for r in rows}) == len(rows)  # 175 with SQLite 3.40
    for row in rows:
        assert row.rowid > 100
        assert row.values == (None, f"row {row.rowid}" * 5, row.rowid * 1000, row.rowid / 4, b"\x00\x01")


def test_secure_delete_leaves_nothing(tmp_path):
    path = _db(tmp_path, secure_delete=True)
    with path.open("rb") as handle:
        assert list(carve_free_pages(handle)) == []


def test_not_sqlite():
    assert free_pages(io.BytesIO(b"nope" * 100))[3] == []
    assert list(carve_free_pages(io.BytesIO(b""))) == []


def test_decode_record_rejects_garbage():
    assert decode_record(b"\x03\x01\x09\x05") == (5, 1)
    assert decode_record(b"\x05\x01") is None
    assert decode_record(b"\x02\x0a") is None  # reserved serial type
