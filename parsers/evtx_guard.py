"""Keep the ``evtx`` package out of endless loops on hostile chunks.

Each EVTX chunk holds hash tables (64 common-string slots at 0x80, 32 template slots at 0x180)
whose entries start with the offset of the next entry in the same chain. The ``evtx`` package
(0.14) follows a chain that loops through two or more entries forever, inside Rust, where no
Python signal can stop it. Such chunks are found here first, with a visited set per chain, and
their ``ElfChnk`` magic is blanked in a temporary copy, so the library reports them as bad chunks
(a warning with the offset) and reads everything else.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from typing import BinaryIO

FILE_HEADER = 4096
CHUNK = 65536
_MAGIC = b"ElfChnk\x00"
_TABLES = ((0x80, 64), (0x180, 32))


def chunk_loops(chunk: bytes) -> bool:
    """Whether any hash chain of one chunk comes back to an entry it already visited."""
    if not chunk.startswith(_MAGIC) or len(chunk) < 0x200:
        return False
    for table, count in _TABLES:
        for slot in range(count):
            offset = int.from_bytes(chunk[table + 4 * slot:table + 4 * slot + 4], "little")
            seen: set[int] = set()
            while 0x200 <= offset <= len(chunk) - 4:
                if offset in seen:
                    return True
                seen.add(offset)
                offset = int.from_bytes(chunk[offset:offset + 4], "little")
    return False


def looping_chunks(fh: BinaryIO) -> list[int]:
    """File offsets of the chunks whose chains loop (the file is read once, a chunk at a time)."""
    bad = []
    fh.seek(FILE_HEADER)
    offset = FILE_HEADER
    while True:
        chunk = fh.read(CHUNK)
        if not chunk:
            break
        if chunk_loops(chunk):
            bad.append(offset)
        offset += len(chunk)
    fh.seek(0)
    return bad


@contextlib.contextmanager
def without_chunks(fh: BinaryIO, offsets: list[int]) -> Iterator[str]:
    """A temporary copy of ``fh`` whose chunks at ``offsets`` have their magic blanked."""
    fd, name = tempfile.mkstemp(prefix="inboxtrail-evtx-", suffix=".evtx")
    try:
        with os.fdopen(fd, "wb") as out:
            fh.seek(0)
            shutil.copyfileobj(fh, out, 1 << 20)
            for offset in offsets:
                out.seek(offset)
                out.write(b"\x00" * len(_MAGIC))
        fh.seek(0)
        yield name
    finally:
        os.unlink(name)
