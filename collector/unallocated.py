"""Leftovers: mail and event-log data carved out of the unallocated blocks of a file system.

Deleting a spool (``rm /var/mail/carol``), rewriting it in place (mailx on quit) or clearing an
event log frees blocks that still hold the old bytes until something else is written there. For
every file system that holds a mail-store or event-log artifact, this module reads the blocks the
file system's allocation bitmap marks free and carves:

* **mbox messages** (``carved_mbox``): a ``From `` envelope line at the start of a line (or of a
  block) followed by an RFC 822 header line; the run goes on, through any further messages, to the
  first NUL byte, the first block that is not text, or the end of the free run;
* **EVTX chunks** (``carved_evtx_chunks``): ``ElfChnk\\0`` at a 512-byte boundary with a 128-byte
  chunk header; consecutive 64 KiB chunks form one run.

Each run is written into the bundle by the bundle writer (hashed like any file) with outcome
``recovered``, ``deleted: true``, its artifact name, ``carved_offset`` (the run's byte offset in
its volume) and the file system's label; the parse stage reads it with the mbox or EVTX carve
parser. Free blocks are found from the allocation bitmap (ext2/3/4 block bitmaps, NTFS
``$Bitmap``); other file systems are reported and skipped.

Bounds: only file systems where an artifact directory of a mail or event-log spec exists; a time
budget per file system (:data:`DEFAULT_BUDGET_SECONDS`, ``budget`` argument) after which the rest
is skipped with a warning saying how far the search got (the output is then no longer
reproducible, which the warning says); reads of :data:`CHUNK` bytes, so memory does not grow with
the volume; a progress bar.
"""

from __future__ import annotations

import io
import re
import struct
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import pytsk3

from collector.artifacts import ArtifactSpec, UserHome, expand_path
from collector.bundle import BundleWriter, CollectContext
from collector.progress import progress
from collector.source import FileSystemView, SourceFile

#: Seconds of carving per file system before the rest of its free space is skipped.
DEFAULT_BUDGET_SECONDS = 300.0
#: Bytes read from the volume at a time.
CHUNK = 1 << 20
#: Extra bytes read past a chunk so that an envelope near its end can be checked in one piece.
LOOKAHEAD = 4096
MBOX_ARTIFACT = "carved_mbox"
EVTX_ARTIFACT = "carved_evtx_chunks"
#: Artifact categories whose file systems are carved, and what is carved for each.
CARVE_KINDS = {"mail": MBOX_ARTIFACT, "eventlog": EVTX_ARTIFACT}
#: Parsers named in the manifest for each carved artifact.
CARVE_PARSERS = {MBOX_ARTIFACT: ("mbox",), EVTX_ARTIFACT: ("evtx_carve",)}
EVTX_CHUNK = 65536
EVTX_MAGIC = b"ElfChnk\x00"
EVTX_ALIGNMENT = 512
#: A block in which more than this share of bytes are control characters is not text.
BINARY_SHARE = 0.10
_ENVELOPE = re.compile(
    rb"From \S*[ \t]+(?:[A-Z][a-z]{2}[ \t]+)?[A-Z][a-z]{2}[ \t]+\d{1,2}[ \t]+\d{1,2}:\d{2}(?::\d{2})?"
    rb"(?:[ \t]+\S+)?[ \t]+\d{4}[^\n]*\r?\n[!-9;-~]+:")
#: Bytes that make a block binary: controls other than tab, LF, FF, CR (and DEL).
_CONTROL = bytes([*range(0, 9), 11, *range(14, 32), 127])
_TEXT = bytes(b for b in range(256) if b not in _CONTROL)
_ZERO = bytes(CHUNK + LOOKAHEAD)
_EXT_MAGIC = 0xEF53
_EXT_64BIT = 0x80
_EXT_BLOCK_UNINIT = 0x2


@dataclass(frozen=True)
class Carved:
    """One carved run: ``kind`` is its artifact name, ``start``/``end`` volume byte offsets."""

    kind: str
    start: int
    end: int


# -- which blocks are free --------------------------------------------------------------------------
def _bit_runs(first: int, bitmap: bytes, lsb_first: bool = True) -> Iterator[tuple[int, int]]:
    """(first block, count) of the clear bits of ``bitmap`` (block ``first`` is bit 0)."""
    for match in re.finditer(rb"\x00+|[^\xff]", bitmap):
        index = match.start()
        if match.group(0)[0] == 0:
            yield first + index * 8, len(match.group(0)) * 8
            continue
        value = match.group(0)[0]
        for bit in range(8):
            mask = (1 << bit) if lsb_first else (0x80 >> bit)
            if not value & mask:
                yield first + index * 8 + bit, 1


def merge_runs(runs: Iterable[tuple[int, int]], limit: int) -> Iterator[tuple[int, int]]:
    """Adjacent runs joined, each cut at block ``limit`` (bitmaps pad past the last block)."""
    start = length = 0
    for first, count in runs:
        if first >= limit:
            break
        count = min(count, limit - first)
        if length and first == start + length:
            length += count
            continue
        if length:
            yield start, length
        start, length = first, count
    if length:
        yield start, length


def ext_free_runs(read: Callable[[int, int], bytes]) -> tuple[int, int, Iterator[tuple[int, int]]]:
    """(block size, block count, free runs) of an ext2/3/4 file system from its block bitmaps.

    Groups flagged ``BLOCK_UNINIT`` have never had a bitmap written: all their blocks are free.
    """
    sb = read(1024, 1024)
    if len(sb) < 1024 or struct.unpack_from("<H", sb, 56)[0] != _EXT_MAGIC:
        raise ValueError("no ext superblock at offset 1024")
    blocks_lo, = struct.unpack_from("<I", sb, 4)
    first_data, log_size = struct.unpack_from("<II", sb, 20)
    per_group, = struct.unpack_from("<I", sb, 32)
    incompat, = struct.unpack_from("<I", sb, 96)
    if log_size > 16 or not per_group:
        raise ValueError(f"implausible ext superblock (log block size {log_size}, "
                         f"{per_group} blocks per group)")
    block_size = 1024 << log_size
    wide = bool(incompat & _EXT_64BIT)
    desc_size = struct.unpack_from("<H", sb, 254)[0] if wide else 32
    desc_size = desc_size if desc_size >= 32 else 32
    blocks = blocks_lo | ((struct.unpack_from("<I", sb, 336)[0] << 32) if wide else 0)
    groups = -(-(blocks - first_data) // per_group)
    table = (first_data + 1) * block_size

    def runs() -> Iterator[tuple[int, int]]:
        per_read = max(1, CHUNK // desc_size)
        for base in range(0, groups, per_read):
            count = min(per_read, groups - base)
            descriptors = read(table + base * desc_size, count * desc_size)
            for index in range(count):
                group = base + index
                desc = descriptors[index * desc_size:(index + 1) * desc_size]
                if len(desc) < 32:
                    return
                first = first_data + group * per_group
                flags, = struct.unpack_from("<H", desc, 18)
                if flags & _EXT_BLOCK_UNINIT:
                    yield first, per_group
                    continue
                bitmap_block, = struct.unpack_from("<I", desc, 0)
                if wide and desc_size >= 64:
                    bitmap_block |= struct.unpack_from("<I", desc, 32)[0] << 32
                if not 0 < bitmap_block < blocks:
                    continue  # a damaged descriptor: its group is not searched
                bitmap = read(bitmap_block * block_size, per_group // 8 or 1)
                yield from _bit_runs(first, bitmap)

    return block_size, blocks, merge_runs(runs(), blocks)


def ntfs_free_runs(fs_info: pytsk3.FS_Info) -> tuple[int, int, Iterator[tuple[int, int]]]:
    """(cluster size, cluster count, free runs) of NTFS from ``$Bitmap`` (MFT entry 6)."""
    cluster = int(fs_info.info.block_size)
    clusters = int(fs_info.info.block_count)
    bitmap = fs_info.open_meta(inode=6)
    size = int(bitmap.info.meta.size)

    def runs() -> Iterator[tuple[int, int]]:
        for offset in range(0, size, CHUNK):
            data = bitmap.read_random(offset, min(CHUNK, size - offset))
            if not data:
                return
            yield from _bit_runs(offset * 8, data)

    return cluster, clusters, merge_runs(runs(), clusters)


# -- carving one free run -----------------------------------------------------------------------------
def _text_end(data: bytes, begin: int, limit: int, base: int, block_size: int, whole_first: bool) -> int:
    """Index of the first NUL or the first non-text block at or after ``begin`` (else -1).

    Block boundaries are those of the volume (``base`` is the volume offset of ``data[0]``). The
    block holding ``begin`` is judged whole only when ``whole_first`` (a run carried over from the
    previous chunk); the block where a message starts is judged by its NUL bytes only, since what
    precedes the envelope in it may be anything.
    """
    nul = data.find(b"\x00", begin, limit)
    stop = limit if nul < 0 else nul
    skew = (base + begin) % block_size
    block = begin - skew if whole_first else begin + (block_size - skew if skew else block_size)
    block = max(block, begin)
    while block < stop:
        piece = data[block:min(block + block_size, stop)]
        if len(piece.translate(None, _TEXT)) > BINARY_SHARE * len(piece):
            return block
        block += block_size
    return nul


def _evtx_header_ok(data: bytes, index: int) -> bool:
    """A chunk header, not a stray magic: its header size field (0x28) is 128."""
    field = data[index + 0x28:index + 0x2C]
    return len(field) < 4 or struct.unpack("<I", field)[0] == 0x80


class _RunCarver:
    """Finds carved runs in one free run of the volume, fed chunk by chunk."""

    def __init__(self, block_size: int, mbox: bool, evtx: bool) -> None:
        self.block_size, self.mbox, self.evtx = block_size, mbox, evtx
        self.mbox_start: int | None = None
        self.evtx_start: int | None = None
        self.evtx_next = -1
        self.previous = b""  # the byte before the current chunk (a From_ must start a line)

    def feed(self, base: int, data: bytes, size: int) -> Iterator[Carved]:
        """Carve ``data[:size]`` at volume offset ``base`` (``data`` may run ``LOOKAHEAD`` past)."""
        if self.mbox:
            yield from self._mbox(base, data, size)
        if self.evtx:
            yield from self._evtx(base, data, size)
        self.previous = data[size - 1:size]

    def close(self, end: int) -> Iterator[Carved]:
        """The runs still open when the free run (or its non-zero data) ends at ``end``."""
        if self.mbox_start is not None:
            yield Carved(MBOX_ARTIFACT, self.mbox_start, end)
            self.mbox_start = None
        if self.evtx_start is not None:
            yield Carved(EVTX_ARTIFACT, self.evtx_start, min(self.evtx_next, end))
            self.evtx_start = None

    def _mbox(self, base: int, data: bytes, size: int) -> Iterator[Carved]:
        index = 0
        carried = self.mbox_start is not None
        while True:
            if self.mbox_start is not None:
                end = _text_end(data, index, size, base, self.block_size, carried)
                if end < 0:
                    return
                yield Carved(MBOX_ARTIFACT, self.mbox_start, base + end)
                self.mbox_start = None
                index = end
            carried = False
            found = data.find(b"From ", index, size)
            if found < 0:
                return
            before = data[found - 1:found] if found else self.previous
            at_line = before in (b"\n", b"") or (base + found) % self.block_size == 0
            if at_line and _ENVELOPE.match(data, found, found + LOOKAHEAD):
                self.mbox_start = base + found
                index = found
            else:
                index = found + 1

    def _evtx(self, base: int, data: bytes, size: int) -> Iterator[Carved]:
        index = 0
        while True:
            found = data.find(EVTX_MAGIC, index, size)
            if found < 0:
                break
            index = found + 1
            offset = base + found
            if offset % EVTX_ALIGNMENT or not _evtx_header_ok(data, found):
                continue
            if self.evtx_start is not None:
                if offset < self.evtx_next:
                    continue  # inside the chunk already taken
                if offset > self.evtx_next:
                    yield Carved(EVTX_ARTIFACT, self.evtx_start, self.evtx_next)
                    self.evtx_start = None
            if self.evtx_start is None:
                self.evtx_start = offset
            self.evtx_next = offset + EVTX_CHUNK
        if self.evtx_start is not None and self.evtx_next < base + size:
            # Where the next chunk of the run would start there is none: the run ends there.
            yield Carved(EVTX_ARTIFACT, self.evtx_start, self.evtx_next)
            self.evtx_start = None


def carve_runs(read: Callable[[int, int], bytes], runs: Iterable[tuple[int, int]], block_size: int,
               kinds: Sequence[str], deadline: float | None = None,
               advance: Callable[[int], None] | None = None) -> Iterator[Carved | int]:
    """Carved runs of ``kinds`` in the free ``runs`` (block, count) of a volume read by ``read``.

    Yields :class:`Carved` items in volume order; if ``deadline`` (a :func:`time.monotonic`
    value) passes, yields the volume offset where the search stopped and ends.
    """
    mbox, evtx = MBOX_ARTIFACT in kinds, EVTX_ARTIFACT in kinds
    for first, count in runs:
        start, end = first * block_size, (first + count) * block_size
        carver = _RunCarver(block_size, mbox, evtx)
        position = start
        while position < end:
            if deadline is not None and time.monotonic() > deadline:
                yield from carver.close(position)
                yield position
                return
            size = min(CHUNK, end - position)
            data = read(position, min(size + LOOKAHEAD, end - position))
            if len(data) < size:  # the volume ends early (a truncated image)
                size = len(data)
                if not size:
                    break
            if data == _ZERO[:len(data)]:
                yield from carver.close(position)
                carver = _RunCarver(block_size, mbox, evtx)
            else:
                yield from carver.feed(position, data, size)
            position += size
            if advance is not None:
                advance(size)
        yield from carver.close(min(position, end))


# -- the collector step ------------------------------------------------------------------------------
def _static_prefix(pattern: str) -> str:
    """The directory part of a path pattern before its first wildcard segment."""
    parts = []
    for segment in pattern.split("/")[1:-1]:
        if any(c in segment for c in "*?["):
            break
        parts.append(segment)
    return "/" + "/".join(parts)


def carve_kinds(fs: FileSystemView, specs: Sequence[ArtifactSpec], homes: list[UserHome]) -> list[str]:
    """What to carve on ``fs``: the carved artifacts of the mail/event-log specs present on it."""
    kinds: set[str] = set()
    for spec in specs:
        kind = CARVE_KINDS.get(spec.category)
        if kind is None or kind in kinds:
            continue
        for raw in spec.paths:
            for pattern in expand_path(raw, homes):
                entry = fs.stat(_static_prefix(pattern))
                if entry is not None and entry.kind == "dir":
                    kinds.add(kind)
                    break
            if kind in kinds:
                break
    return sorted(kinds)


def _tsk_volume(fs: FileSystemView) -> tuple[Any, Callable[[int, int], bytes]] | None:
    """The Sleuth Kit's view of ``fs`` and a reader over its volume, for image file systems.

    Image file systems (collector/image.py) open TSK on their volume to list deleted names; the
    same handle is reused here. Live and directory sources have none: their free space is not
    visible, so nothing is carved.
    """
    opener = getattr(fs, "_deleted_lister", None)
    lister = opener() if callable(opener) else None
    if lister is None:
        return None
    return lister._fs, lister._img.read  # the one TSK handle of this volume


class _VolumeRange(io.RawIOBase):
    """Read-only file object over ``[start, end)`` of a volume (a carved run's content)."""

    def __init__(self, read: Callable[[int, int], bytes], start: int, end: int) -> None:
        super().__init__()
        self._read, self._start, self._end, self._pos = read, start, end, start

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: bytearray | memoryview) -> int:  # type: ignore[override]
        want = min(len(buffer), self._end - self._pos, CHUNK)
        if want <= 0:
            return 0
        data = self._read(self._pos, want)
        buffer[:len(data)] = data
        self._pos += len(data)
        return len(data)


def _add_carved(writer: BundleWriter, fs: FileSystemView, item: Carved,
                read: Callable[[int, int], bytes]) -> None:
    """Copy one carved run into the bundle (hashed) with its manifest line."""
    location = f"/$Unallocated/{item.kind}-{item.start:013d}"
    entry = SourceFile(
        location=location, name=location.rsplit("/", 1)[-1], kind="file", size=item.end - item.start,
        deleted=True, provenance=f"{fs.provenance}|unallocated@{item.start}",
        opener=lambda: io.BufferedReader(_VolumeRange(read, item.start, item.end), CHUNK))
    ctx = CollectContext(artifact=item.kind, category="carved", pattern="(unallocated blocks)",
                         parsers=CARVE_PARSERS[item.kind], filesystem=fs.label)
    writer.add_file(entry, ctx, extra={
        "carved_offset": item.start,
        "reason": f"carved from unallocated blocks of {fs.label} at byte {item.start} "
                  f"({item.end - item.start} bytes)"})


def carve_filesystem(fs: FileSystemView, writer: BundleWriter, specs: Sequence[ArtifactSpec],
                     homes: list[UserHome], quiet: bool = False,
                     budget: float = DEFAULT_BUDGET_SECONDS) -> list[str]:
    """Carve the free blocks of ``fs`` into the bundle when it holds a mail or event-log artifact.

    Returns:
        Warnings for the report (unsupported file system, budget exhausted, unreadable bitmap).
    """
    kinds = carve_kinds(fs, specs, homes)
    if not kinds:
        return []
    volume = _tsk_volume(fs)
    if volume is None:
        return []
    fs_info, read = volume
    ftype = int(fs_info.info.ftype)
    try:
        if ftype & int(pytsk3.TSK_FS_TYPE_EXT_DETECT):
            block_size, blocks, runs = ext_free_runs(read)
        elif ftype & int(pytsk3.TSK_FS_TYPE_NTFS_DETECT):
            block_size, blocks, runs = ntfs_free_runs(fs_info)
        else:
            return [f"{fs.label}: unallocated space not carved (no allocation bitmap reader for "
                    f"file system type 0x{ftype:x})"]
    except (OSError, ValueError, struct.error) as exc:
        return [f"{fs.label}: unallocated space not carved: allocation bitmap unreadable: {exc}"]
    deadline = time.monotonic() + budget
    bar = progress(total=blocks * block_size, desc=f"carve {fs.label}", unit="B", unit_scale=True,
                   quiet=quiet)
    warnings: list[str] = []
    last = 0

    def advance(size: int) -> None:
        bar.update(size)

    def runs_with_progress() -> Iterator[tuple[int, int]]:
        nonlocal last
        for first, count in runs:
            bar.update(max(0, first * block_size - last))
            last = (first + count) * block_size
            yield first, count

    try:
        for item in carve_runs(read, runs_with_progress(), block_size, kinds, deadline, advance):
            if isinstance(item, int):
                warnings.append(
                    f"{fs.label}: carving stopped after the {budget:.0f}-second budget at byte {item} "
                    f"of {blocks * block_size}; free space after it was not searched (a re-run with "
                    f"another budget may find more)")
                break
            _add_carved(writer, fs, item, read)
    except (OSError, struct.error) as exc:
        warnings.append(f"{fs.label}: carving stopped by a read error: {exc}")
    finally:
        bar.close()
    return warnings
