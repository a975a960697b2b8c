"""Leftovers: mail and event-log data carved out of the free blocks and file slack of a file system.

Deleting a spool (``rm /var/mail/carol``), rewriting it in place (mailx on quit) or clearing an
event log frees blocks that still hold the old bytes until something else is written there; a
file rewritten shorter keeps old bytes past its new end in its last cluster (file slack). For
every file system that holds a mail-store or event-log artifact, this module reads the blocks the
file system's allocation records mark free and carves:

* **mbox messages** (``carved_mbox``): a ``From `` envelope line at the start of a line (or of a
  block) followed by an RFC 822 header line; the run goes on, through any further messages, to the
  first NUL byte, the first block that is not text, or the end of the free run;
* **EVTX chunks** (``carved_evtx_chunks``): ``ElfChnk\\0`` at a 512-byte boundary with a 128-byte
  chunk header; consecutive 64 KiB chunks form one run.

Where mbox messages are carved, the slack of every allocated file is carved for them too (an EVTX
chunk needs 64 KiB, more than a slack holds): the bytes from the end of the file's default data
stream to the end of its allocation, at most :data:`SLACK_MAX` (one read per file), for
non-resident streams that are neither compressed, encrypted nor sparse there. Files under the
file system's mail artifact directories are searched first, then the rest of the tree. On NTFS
and FAT, sectors of the last cluster past the last written one keep what was there (drive slack);
ext4 (the kernel's page cache, and libext2fs) zeroes the tail of a file's last block, so its slack
is nearly always empty and costs one read per file.

Each run is written into the bundle by the bundle writer (hashed like any file) with outcome
``recovered``, ``deleted: true``, its artifact name, ``carved_offset`` (the run's byte offset in
its volume) and the file system's label; a run from slack is named ``/$Slack/INODE-OFFSET`` and
its reason names the file. The parse stage reads it with the mbox or EVTX carve parser. Free
blocks are found from the allocation records (ext2/3/4 block bitmaps, NTFS ``$Bitmap``, the FAT
of FAT12/16/32); other file systems are reported and only their slack is searched.

Bounds: only file systems where an artifact directory of a mail or event-log spec exists; a time
budget per file system (:data:`DEFAULT_BUDGET_SECONDS`, ``budget`` argument) of which the free
blocks may take :data:`FREE_SHARE` when slack is searched too, the slack walk getting the rest;
past it the rest is skipped with a warning saying how far the search got (the output is then no
longer reproducible, which the warning says); reads of :data:`CHUNK` bytes, so memory does not
grow with the volume; a progress bar for each pass.
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
#: Most bytes read from one file's slack: the largest usual cluster (NTFS, FAT, exFAT: 64 KiB).
SLACK_MAX = 65536
#: Share of the budget the free blocks may take when slack is searched too (the rest is the slack
#: walk's, and what the free blocks leave unused as well).
FREE_SHARE = 0.8
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
_LOW_NIBBLE = bytes(b & 0x0F for b in range(256))
_EXT_MAGIC = 0xEF53
_EXT_64BIT = 0x80
_EXT_BLOCK_UNINIT = 0x2
#: FAT types by cluster count (Microsoft's FAT specification): fewer than 4085 is FAT12, fewer
#: than 65525 FAT16, else FAT32.
_FAT12_MAX, _FAT16_MAX = 4085, 65525
_FAT_TYPES = int(pytsk3.TSK_FS_TYPE_FAT12) | int(pytsk3.TSK_FS_TYPE_FAT16) | int(pytsk3.TSK_FS_TYPE_FAT32)
#: Attribute types that are a file's default data stream (NTFS: the unnamed $DATA).
_DATA_TYPES = {int(pytsk3.TSK_FS_ATTR_TYPE_DEFAULT), int(pytsk3.TSK_FS_ATTR_TYPE_NTFS_DATA)}
_ATTR_NONRES = int(pytsk3.TSK_FS_ATTR_NONRES)
#: Streams whose bytes on disk are not the file's bytes (or not on disk): no slack is read.
_ATTR_NOT_PLAIN = (int(pytsk3.TSK_FS_ATTR_COMP) | int(pytsk3.TSK_FS_ATTR_ENC)
                   | int(pytsk3.TSK_FS_ATTR_SPARSE))
_RUN_NOT_ON_DISK = int(pytsk3.TSK_FS_ATTR_RUN_FLAG_SPARSE) | int(pytsk3.TSK_FS_ATTR_RUN_FLAG_FILLER)
_META_REG = int(pytsk3.TSK_FS_META_TYPE_REG)
_META_DIR = int(pytsk3.TSK_FS_META_TYPE_DIR)
_NAME_UNALLOC = int(pytsk3.TSK_FS_NAME_FLAG_UNALLOC)


@dataclass(frozen=True)
class Carved:
    """One carved run: ``kind`` is its artifact name, ``start``/``end`` volume byte offsets."""

    kind: str
    start: int
    end: int


@dataclass(frozen=True)
class SlackOrigin:
    """The allocated file whose slack held a carved run."""

    path: str
    inode: int


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


def fat_free_runs(read: Callable[[int, int], bytes]) -> tuple[int, int, Iterator[tuple[int, int]]]:
    """(sector size, sector count, free runs in sectors) of FAT12/16/32 from its first FAT.

    A zero entry is a free cluster; cluster ``n`` (from 2) starts ``(n - 2)`` clusters into the
    data area, which follows the reserved sectors, the FATs and (FAT12/16) the root directory.
    Runs are counted in sectors because clusters are not aligned to the volume's start.
    """
    boot = read(0, 512)
    if len(boot) < 512 or boot[510:512] != b"\x55\xaa":
        raise ValueError("no FAT boot sector at offset 0")
    sector, per_cluster, reserved, fats, root_entries, total16 = struct.unpack_from("<HBHBHH", boot, 11)
    fat16_size, = struct.unpack_from("<H", boot, 22)
    total32, fat32_size = struct.unpack_from("<II", boot, 32)
    fat_size, total = fat16_size or fat32_size, total16 or total32
    if sector not in (512, 1024, 2048, 4096) or not per_cluster or not fats or not fat_size:
        raise ValueError(f"implausible FAT boot sector ({sector}-byte sectors, {per_cluster} per "
                         f"cluster, {fats} FATs of {fat_size} sectors)")
    data = reserved + fats * fat_size + -(-root_entries * 32 // sector)
    clusters = max(0, (total - data) // per_cluster)
    width = 12 if clusters < _FAT12_MAX else 16 if clusters < _FAT16_MAX else 32
    table = reserved * sector

    def free_clusters() -> Iterator[tuple[int, int]]:
        """(first cluster, count) of the zero entries of clusters 2 .. clusters + 1."""
        last = clusters + 2
        if width == 12:
            raw = read(table, (last * 3 + 1) // 2)
            for cluster in range(2, min(last, len(raw) * 2 // 3)):
                pair, = struct.unpack_from("<H", raw, cluster * 3 // 2)
                if not (pair >> 4 if cluster & 1 else pair & 0xFFF):
                    yield cluster, 1
            return
        size = width // 8
        per_read = CHUNK // size
        for base in range(0, last, per_read):
            raw = bytearray(read(table + base * size, min(per_read, last - base) * size))
            if width == 32:
                raw[3::4] = raw[3::4].translate(_LOW_NIBBLE)  # the top 4 bits are reserved
            for match in re.finditer(rb"\x00{%d,}" % size, raw):
                first = max(2, base + -(-match.start() // size))
                end = min(last, base + match.end() // size)
                if end > first:
                    yield first, end - first

    def runs() -> Iterator[tuple[int, int]]:
        for first, count in free_clusters():
            yield data + (first - 2) * per_cluster, count * per_cluster

    return sector, total, merge_runs(runs(), total)


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


# -- file slack ---------------------------------------------------------------------------------------
def slack_extent(file: pytsk3.File, block_size: int) -> tuple[int, int] | None:
    """Volume byte range ``[start, end)`` of the slack after ``file``'s default data stream.

    That is the rest of the allocation run holding the stream's end, at most :data:`SLACK_MAX`
    bytes; None for resident, compressed, encrypted or sparse streams, a sparse or filler run at
    the end, or a stream that fills its allocation. TSK's runs count in its blocks (FAT: sectors,
    while the run spans the whole cluster), so the run's end is the cluster's end.
    """
    for attribute in file:
        info = attribute.info
        if int(info.type) not in _DATA_TYPES or info.name:
            continue
        flags = int(info.flags)
        if not flags & _ATTR_NONRES or flags & _ATTR_NOT_PLAIN:
            return None
        block, skew = divmod(int(info.size), block_size)
        for run in attribute:
            first, count = int(run.offset), int(run.len)
            if first <= block < first + count:
                if int(run.flags) & _RUN_NOT_ON_DISK:
                    return None
                start = (int(run.addr) + block - first) * block_size + skew
                end = min((int(run.addr) + count) * block_size, start + SLACK_MAX)
                return (start, end) if end > start else None
        return None
    return None


def carve_slack(data: bytes, start: int, block_size: int) -> list[Carved]:
    """The mbox runs in one file's slack ``data`` read at volume offset ``start``.

    The slack's first byte counts as the start of a line: what precedes it is the live file's
    end, not the old content. A run still open at the end of the slack ends there.
    """
    if not data.strip(b"\x00"):
        return []
    carver = _RunCarver(block_size, mbox=True, evtx=False)
    return [*carver.feed(start, data, len(data)), *carver.close(start + len(data))]


def _actual_path(fs_info: pytsk3.FS_Info, location: str) -> tuple[str, int] | None:
    """``location`` spelt as the file system spells it ("" for the root) and its inode, if a directory."""
    parts: list[str] = []
    inode = int(fs_info.info.root_inum)
    for segment in (part for part in location.split("/") if part):
        try:
            file = fs_info.open("/" + "/".join([*parts, segment]))
        except OSError:
            return None
        name, meta = file.info.name, file.info.meta
        if meta is None or int(meta.type) != _META_DIR:
            return None
        parts.append(name.name.decode("utf-8", "surrogateescape") if name is not None else segment)
        inode = int(meta.addr)
    return "".join("/" + part for part in parts), inode


def walk_files(fs_info: pytsk3.FS_Info, roots: Sequence[str]) -> Iterator[tuple[str, pytsk3.File]]:
    """(path, file) of the allocated regular files under the directories ``roots``, then the rest.

    Each directory is read once (a root inside another is walked with it; the walk from ``/``
    does not enter the roots again; a directory met twice, as in a damaged image, is not walked
    again); hard links are met once per name. The order is the file system's directory order, so
    an image always walks the same way. Unreadable directories are skipped.
    """
    found = sorted(resolved for root in roots if (resolved := _actual_path(fs_info, root)) is not None)
    tops: list[tuple[str, int]] = []
    for path, inode in found:
        if not any(path == top or path.startswith(top + "/") for top, _ in tops):
            tops.append((path, inode))
    root = int(fs_info.info.root_inum)
    seen = {inode for _, inode in tops}
    walks = [*tops, *([] if root in seen else [("", root)])]
    seen.add(root)
    for path, inode in walks:
        stack = [(path, inode)]
        while stack:
            directory, address = stack.pop()
            try:
                entries = fs_info.open_dir(inode=address)
            except OSError:
                continue
            subdirs = []
            for entry in entries:
                name, meta = entry.info.name, entry.info.meta
                if (meta is None or name is None or name.name in (b".", b"..")
                        or int(name.flags) & _NAME_UNALLOC):
                    continue
                child = f"{directory}/{name.name.decode('utf-8', 'surrogateescape')}"
                kind, child_inode = int(meta.type), int(meta.addr)
                if kind == _META_REG:
                    yield child, entry
                elif kind == _META_DIR and child_inode not in seen:
                    seen.add(child_inode)
                    subdirs.append((child, child_inode))
            stack.extend(reversed(subdirs))  # depth first, in directory order


def _mail_roots(fs: FileSystemView, specs: Sequence[ArtifactSpec], homes: list[UserHome]) -> list[str]:
    """The existing directories where the mail artifacts' patterns start (searched first)."""
    roots: list[str] = []
    for spec in specs:
        if CARVE_KINDS.get(spec.category) != MBOX_ARTIFACT:
            continue
        for raw in spec.paths:
            for pattern in expand_path(raw, homes):
                prefix = _static_prefix(pattern)
                entry = fs.stat(prefix)
                if entry is not None and entry.kind == "dir" and prefix not in roots:
                    roots.append(prefix)
    return roots


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
                read: Callable[[int, int], bytes], origin: SlackOrigin | None = None) -> None:
    """Copy one carved run into the bundle (hashed) with its manifest line.

    ``origin`` is the file whose slack held the run (None: free blocks).
    """
    size = item.end - item.start
    if origin is None:
        location = f"/$Unallocated/{item.kind}-{item.start:013d}"
        provenance, pattern = f"{fs.provenance}|unallocated@{item.start}", "(unallocated blocks)"
        reason = f"carved from unallocated blocks of {fs.label} at byte {item.start} ({size} bytes)"
    else:
        location = f"/$Slack/{origin.inode}-{item.start:013d}"
        provenance, pattern = f"{fs.provenance}|slack:{origin.inode}@{item.start}", "(file slack)"
        reason = (f"carved from the slack of {origin.path} (inode {origin.inode}) of {fs.label} at "
                  f"byte {item.start} ({size} bytes)")
    entry = SourceFile(
        location=location, name=location.rsplit("/", 1)[-1], kind="file", size=size,
        deleted=True, provenance=provenance,
        opener=lambda: io.BufferedReader(_VolumeRange(read, item.start, item.end), CHUNK))
    ctx = CollectContext(artifact=item.kind, category="carved", pattern=pattern,
                         parsers=CARVE_PARSERS[item.kind], filesystem=fs.label)
    extra: dict[str, Any] = {"carved_offset": item.start, "reason": reason}
    if origin is not None:
        extra["slack_of"] = origin.path
    writer.add_file(entry, ctx, extra=extra)


def _free_runs(fs_info: pytsk3.FS_Info, read: Callable[[int, int], bytes]
               ) -> tuple[int, int, Iterator[tuple[int, int]]] | None:
    """(block size, block count, free runs) from the allocation records, None for other types."""
    ftype = int(fs_info.info.ftype)
    if ftype & int(pytsk3.TSK_FS_TYPE_EXT_DETECT):
        return ext_free_runs(read)
    if ftype & int(pytsk3.TSK_FS_TYPE_NTFS_DETECT):
        return ntfs_free_runs(fs_info)
    if ftype & _FAT_TYPES:
        return fat_free_runs(read)
    return None


def carve_free_blocks(fs: FileSystemView, writer: BundleWriter, fs_info: pytsk3.FS_Info,
                      read: Callable[[int, int], bytes], kinds: Sequence[str], deadline: float,
                      budget: float, quiet: bool) -> list[str]:
    """Carve the free blocks of ``fs`` into the bundle until ``deadline``; the warnings."""
    try:
        free = _free_runs(fs_info, read)
    except (OSError, ValueError, struct.error) as exc:
        return [f"{fs.label}: unallocated space not carved: allocation bitmap unreadable: {exc}"]
    if free is None:
        return [f"{fs.label}: unallocated space not carved (no allocation bitmap reader for "
                f"file system type 0x{int(fs_info.info.ftype):x})"]
    block_size, blocks, runs = free
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
                    f"{fs.label}: carving stopped after {_share(kinds, budget)} at byte {item} "
                    f"of {blocks * block_size}; free space after it was not searched (a re-run with "
                    f"another budget may find more)")
                break
            _add_carved(writer, fs, item, read)
    except (OSError, struct.error) as exc:
        warnings.append(f"{fs.label}: carving stopped by a read error: {exc}")
    finally:
        bar.close()
    return warnings


def _share(kinds: Sequence[str], budget: float) -> str:
    """How much of the budget the free blocks had, for the warning."""
    if MBOX_ARTIFACT in kinds:
        return f"{FREE_SHARE * budget:.0f} seconds ({FREE_SHARE:.0%} of the {budget:.0f}-second budget)"
    return f"the {budget:.0f}-second budget"


def carve_file_slack(fs: FileSystemView, writer: BundleWriter, fs_info: pytsk3.FS_Info,
                     read: Callable[[int, int], bytes], roots: Sequence[str], deadline: float,
                     budget: float, quiet: bool) -> list[str]:
    """Carve mbox runs out of the slack of the allocated files of ``fs`` until ``deadline``.

    Slack lies inside allocated clusters, which the free-block pass never reads, so no byte is
    collected twice by the two passes.
    """
    block_size = int(fs_info.info.block_size)
    bar = progress(desc=f"slack {fs.label}", unit="file", quiet=quiet)
    warnings: list[str] = []
    files = failed = 0
    first_failure = ""
    try:
        for path, file in walk_files(fs_info, roots):
            if time.monotonic() > deadline:
                warnings.append(
                    f"{fs.label}: file slack search stopped after the {budget:.0f}-second budget at "
                    f"{path} ({files} files searched); the files after it were not searched (a "
                    f"re-run with another budget may find more)")
                break
            files += 1
            bar.update(1)
            try:
                extent = slack_extent(file, block_size)
                data = read(extent[0], extent[1] - extent[0]) if extent is not None else b""
            except (OSError, RuntimeError) as exc:  # a damaged record: only this file's slack
                failed += 1
                first_failure = first_failure or f"{path}: {exc}"
                continue
            if extent is None:
                continue
            origin = SlackOrigin(path, int(file.info.meta.addr))
            for item in carve_slack(data, extent[0], block_size):
                _add_carved(writer, fs, item, read, origin)
    except (OSError, struct.error) as exc:
        warnings.append(f"{fs.label}: file slack search stopped by a read error: {exc}")
    finally:
        bar.close()
    if failed:
        warnings.insert(0, f"{fs.label}: slack of {failed} file(s) not read (first: {first_failure})")
    return warnings


def carve_filesystem(fs: FileSystemView, writer: BundleWriter, specs: Sequence[ArtifactSpec],
                     homes: list[UserHome], quiet: bool = False,
                     budget: float = DEFAULT_BUDGET_SECONDS) -> list[str]:
    """Carve the free blocks, and for mbox the file slack, of ``fs`` when it holds a mail or
    event-log artifact, into the bundle.

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
    slack = MBOX_ARTIFACT in kinds
    start = time.monotonic()
    warnings = carve_free_blocks(fs, writer, fs_info, read, kinds,
                                 start + budget * (FREE_SHARE if slack else 1.0), budget, quiet)
    if slack:
        warnings += carve_file_slack(fs, writer, fs_info, read, _mail_roots(fs, specs, homes),
                                     start + budget, budget, quiet)
    return warnings
