"""The HFS+ writer's volumes read back the same through libfshfs, The Sleuth Kit and libhfsp.

Each volume holds nested directories with their own owners and modes, an empty file, a file cut
into three extents, ASCII and Latin-1 names (stored decomposed), names that differ only in case on
HFSX, distinct create, content-mod, attribute-mod and access times per entry, and enough entries
that the catalog needs an index level. ``pyfshfs`` (what dfvfs uses) and ``pytsk3`` must each list
exactly the written tree with every size, sha256, mode, owner, group and the four times; Debian's
``hfsplus`` tools (libhfsp: ``hpmount -r``/``hpls``/``hpcopy -r``) must list the same CNIDs, kinds,
sizes and contents. libhfsp's limits, worked around or left out as stated in the test: it reads
the "backup" volume header of an unwrapped volume from sector 1 (``volume_open`` reads block
``maxblocks - 2`` while ``maxblocks`` is still 3), so it is given a copy of the volume with the
header copied into the boot blocks at byte 512; its names are ASCII only (combining marks and
non-ASCII letters dropped); ``hpls`` shows no mode, owner or seconds; it does not open HFSX.
(``hpfsck`` is not used: its B-tree check compares record offsets before byte-swapping them, so
it rejects every node on a little-endian host.)
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import re
import shutil
import stat
import subprocess
import unicodedata
from datetime import UTC, datetime, timedelta
from pathlib import Path, PurePosixPath

import pytest

from tests.conftest import sha256_of
from tests.fixtures.hfsplus_writer import HfsEntry, HfsLayout, HfsTimes, hfs_name, write_hfsplus

pyfshfs = pytest.importorskip("pyfshfs")
pytsk3 = pytest.importorskip("pytsk3")

BASE = datetime(2026, 10, 18, 16, 40, 0, tzinfo=UTC)
VOLUME_NAME = "Macintosh HD"


def _times(step: int) -> HfsTimes:
    """Four distinct instants per entry, so a swapped field cannot go unnoticed."""
    start = BASE + timedelta(minutes=7 * step)
    return HfsTimes(created=start - timedelta(days=3), modified=start, changed=start + timedelta(seconds=61),
                    accessed=start + timedelta(hours=5))


def _entries(case_sensitive: bool) -> list[HfsEntry]:
    entries = [
        HfsEntry("/Users", _times(0), directory=True, uid=0, gid=80),
        HfsEntry("/Users/erin", _times(1), directory=True, mode=0o750),
        HfsEntry("/Users/erin/Library", _times(2), directory=True, mode=0o700),
        HfsEntry("/Users/erin/Library/Mail", _times(3), directory=True, mode=0o700),
        HfsEntry("/Users/erin/.zsh_history", _times(4), data=b": 1792530464:0;exit\n", mode=0o600),
        HfsEntry("/Users/erin/Library/Mail/empty.emlx", _times(5), data=b""),
        HfsEntry("/Users/erin/Library/Mail/Envelope Index", _times(6), data=bytes(range(256)) * 90,
                 fragments=3),
        HfsEntry("/Users/erin/Library/Mail/Brouillons résumé Ærø.emlx", _times(7),
                 data="Subject: résumé\n".encode(), mode=0o640, uid=502, gid=12),
        HfsEntry("/Users/erin/Library/Mail/Zoë", _times(8), directory=True, mode=0o755),
        HfsEntry("/Users/erin/Library/Mail/Zoë/ß.emlx", _times(9), data=b"eszett\n"),
        HfsEntry("/Users/erin/Library/Mail/Zoë/Émile.emlx", _times(55), data=b"accent\n"),
        HfsEntry("/Users/erin/Library/Mail/Zoë/eve.emlx", _times(56), data=b"plain\n"),
        HfsEntry("/Users/erin/Library/Mail/Zoë/Zed.emlx", _times(57), data=b"upper\n"),
    ]
    entries += [HfsEntry("/Users/erin/Library/Mail/Messages", _times(50), directory=True)]
    entries += [HfsEntry(f"/Users/erin/Library/Mail/Messages/{n}.partial.emlx", _times(10 + n),
                         data=f"message {n}\n".encode() * (n + 1)) for n in range(40)]
    if case_sensitive:
        entries += [HfsEntry("/Users/erin/Library/Mail/INBOX", _times(60), data=b"upper\n"),
                    HfsEntry("/Users/erin/Library/Mail/inbox", _times(61), data=b"lower\n")]
    return entries


def _expected(entries: list[HfsEntry], layout: HfsLayout) -> dict[str, dict]:
    """Path (decomposed, as HFS+ stores names) -> what every reader must show."""
    found = {}
    for entry in entries:
        path = "/".join(hfs_name(part) for part in PurePosixPath(entry.path).parts[1:])
        data = b"" if entry.directory else entry.data
        mode = entry.mode if entry.mode is not None else (0o755 if entry.directory else 0o644)
        times = (entry.times.created, entry.times.modified, entry.times.changed, entry.times.accessed)
        found["/" + path] = {
            "cnid": layout.cnids[entry.path], "directory": entry.directory, "size": len(data),
            "sha256": None if entry.directory else hashlib.sha256(data).hexdigest(),
            "mode": (stat.S_IFDIR if entry.directory else stat.S_IFREG) | mode, "uid": entry.uid,
            "gid": entry.gid, "times": tuple(int(t.timestamp()) for t in times)}
    return found


@pytest.fixture(scope="module", params=["hfsplus", "hfsx"])
def volume(request: pytest.FixtureRequest,
           tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict, HfsLayout]:
    case_sensitive = request.param == "hfsx"
    entries = _entries(case_sensitive)
    out = tmp_path_factory.mktemp(request.param) / f"{request.param}.img"
    layout = _write(entries, out, case_sensitive)
    return out, _expected(entries, layout), layout


def _write(entries: list[HfsEntry], out: Path, case_sensitive: bool) -> HfsLayout:
    """The volume of the tests: created 40 days before BASE in UTC+2, last written 2 days after."""
    return write_hfsplus(entries, out, volume_name=VOLUME_NAME, created=BASE - timedelta(days=40),
                         modified=BASE + timedelta(days=2), tz_offset=2 * 3600, case_sensitive=case_sensitive)


def _pyfshfs_tree(image: Path) -> tuple[dict[str, dict], str]:
    fs = pyfshfs.volume()
    fs.open(str(image))
    found: dict[str, dict] = {}

    def walk(entry, prefix: str) -> None:
        for child in entry.sub_file_entries:
            path = f"{prefix}/{child.name}"
            directory = stat.S_ISDIR(child.file_mode)
            digest = None
            if not directory:
                digest = hashlib.sha256()
                while chunk := child.read_buffer(1 << 16):
                    digest.update(chunk)
                digest = digest.hexdigest()
            times = (child.creation_time, child.modification_time, child.entry_modification_time,
                     child.access_time)
            found[path] = {"cnid": child.identifier, "directory": directory,
                           "size": 0 if directory else child.size, "sha256": digest, "mode": child.file_mode,
                           "uid": child.owner_identifier, "gid": child.group_identifier,
                           "times": tuple(int(t.replace(tzinfo=UTC).timestamp()) for t in times)}
            if directory:
                walk(child, path)
            # the same entry by path, through the catalog's index nodes
            assert fs.get_file_entry_by_path(path).identifier == child.identifier, path

    walk(fs.get_root_directory(), "")
    name = fs.name
    fs.close()
    return found, name


def _tsk_tree(image: Path) -> tuple[dict[str, dict], str]:
    fs = pytsk3.FS_Info(pytsk3.Img_Info(str(image)))
    assert fs.info.ftype == pytsk3.TSK_FS_TYPE_HFS_DETECT or fs.info.ftype & pytsk3.TSK_FS_TYPE_HFS
    found: dict[str, dict] = {}

    def walk(path: str) -> None:
        for child in fs.open_dir(path or "/"):
            name = child.info.name.name.decode("utf-8")
            if name in (".", "..") or (not path and name.startswith("$")):  # TSK's virtual special files
                continue
            meta = child.info.meta
            directory = meta.type == pytsk3.TSK_FS_META_TYPE_DIR
            full = f"{path}/{name}"
            data = child.read_random(0, meta.size) if meta.size else b""  # TSK refuses a 0-byte read
            digest = None if directory else hashlib.sha256(data).hexdigest()
            kind = stat.S_IFDIR if directory else stat.S_IFREG
            found[full] = {"cnid": meta.addr, "directory": directory, "size": 0 if directory else meta.size,
                           "sha256": digest, "mode": kind | int(meta.mode), "uid": meta.uid, "gid": meta.gid,
                           "times": (meta.crtime, meta.mtime, meta.ctime, meta.atime)}
            if directory:
                walk(full)

    walk("")
    return found, fs.info.ftype


@pytest.mark.parametrize("reader", ["pyfshfs", "pytsk3"])
def test_readers_list_the_written_tree(reader: str, volume: tuple[Path, dict, HfsLayout]) -> None:
    image, expected, layout = volume
    assert layout.catalog_depth >= 2, "the tree must be big enough to need an index node"
    found, _ = (_pyfshfs_tree if reader == "pyfshfs" else _tsk_tree)(image)
    assert sorted(found) == sorted(expected)
    for path, want in expected.items():
        assert found[path] == want, path


#: Catalog order of two folders, worked out by hand from TN1150: HFS+ folds case (``É`` is ``E`` +
#: U+0301, after ``v``; ``ß`` U+00DF has no upper case and sorts after ``z``); HFSX compares
#: UTF-16 units (upper case first).
_ORDER = {
    "hfsplus": {"/Users/erin/Library/Mail": ["Brouillons résumé Ærø.emlx", "empty.emlx", "Envelope Index",
                                             "Messages", "Zoë"],
                "/Users/erin/Library/Mail/Zoë": ["eve.emlx", "Émile.emlx", "Zed.emlx", "ß.emlx"]},
    "hfsx": {"/Users/erin/Library/Mail": ["Brouillons résumé Ærø.emlx", "Envelope Index", "INBOX", "Messages",
                                          "Zoë", "empty.emlx", "inbox"],
             "/Users/erin/Library/Mail/Zoë": ["Émile.emlx", "Zed.emlx", "eve.emlx", "ß.emlx"]},
}


@pytest.mark.parametrize("reader", ["pyfshfs", "pytsk3"])
def test_readers_list_names_in_catalog_order(reader: str, volume: tuple[Path, dict, HfsLayout]) -> None:
    image, _, _ = volume
    found, _ = (_pyfshfs_tree if reader == "pyfshfs" else _tsk_tree)(image)  # both walk leaf order
    for folder, names in _ORDER[image.stem].items():
        nfd = unicodedata.ucd_3_2_0.normalize("NFD", folder)
        listed = [path.rpartition("/")[2] for path in found if path.rpartition("/")[0] == nfd]
        assert listed == [unicodedata.ucd_3_2_0.normalize("NFD", name) for name in names], folder


def test_pyfshfs_reads_the_volume_name(volume: tuple[Path, dict, HfsLayout]) -> None:
    assert _pyfshfs_tree(volume[0])[1] == VOLUME_NAME


def test_volume_header_dates_and_alternate_header(volume: tuple[Path, dict, HfsLayout]) -> None:
    """Create date in local time (here UTC+2), the others in UTC; the alternate header is a copy."""
    image, _, layout = volume
    data = image.read_bytes()
    assert len(data) == layout.size
    header, alternate = data[1024:1536], data[-1024:-512]
    assert header == alternate
    assert header[:4] in (b"H+\x00\x04", b"HX\x00\x05")
    created, modified = int.from_bytes(header[16:20], "big"), int.from_bytes(header[20:24], "big")
    epoch_1904 = datetime(1904, 1, 1, tzinfo=UTC)
    assert epoch_1904 + timedelta(seconds=created) == BASE - timedelta(days=40) + timedelta(hours=2)
    assert epoch_1904 + timedelta(seconds=modified) == BASE + timedelta(days=2)
    free = int.from_bytes(header[48:52], "big")
    assert free == layout.free_blocks == 16 + 2  # the spare blocks and the two gaps between extents
    tsk = pytsk3.FS_Info(pytsk3.Img_Info(str(image)))
    assert tsk.info.block_count == layout.total_blocks


def test_same_input_same_bytes_and_content_streamed_from_a_path(
        volume: tuple[Path, dict, HfsLayout], tmp_path: Path) -> None:
    image, _, _ = volume
    hfsx = image.name.startswith("hfsx")
    entries = _entries(hfsx)
    index = next(i for i, e in enumerate(entries) if e.path.endswith("Envelope Index"))
    source = tmp_path / "Envelope Index"
    source.write_bytes(entries[index].data)
    entries[index] = dataclasses.replace(entries[index], data=source)
    _write(entries, tmp_path / "again.img", hfsx)
    assert sha256_of(tmp_path / "again.img") == sha256_of(image)


def test_writer_rejects_what_it_cannot_write(tmp_path: Path) -> None:
    times = _times(0)
    with pytest.raises(ValueError, match="equal as HFS"):
        write_hfsplus([HfsEntry("/INBOX", times, data=b"a"), HfsEntry("/inbox", times, data=b"b")],
                      tmp_path / "dup.img", volume_name="x", created=BASE)
    with pytest.raises(ValueError, match="parent directory"):
        write_hfsplus([HfsEntry("/a/b", times)], tmp_path / "orphan.img", volume_name="x", created=BASE)
    with pytest.raises(ValueError, match="outside"):
        write_hfsplus([HfsEntry("/\u0416", times)], tmp_path / "cyrillic.img", volume_name="x", created=BASE)
    assert not list(tmp_path.iterdir())


# -- libhfsp (Debian's hfsplus tools) ----------------------------------------------------------

def _hp(home: Path, *args: str) -> str:
    result = subprocess.run(args, capture_output=True, stdin=subprocess.DEVNULL, timeout=60, check=False,
                            env={**os.environ, "HOME": str(home), "TZ": "UTC", "LC_ALL": "C"})
    assert result.returncode == 0, (args, result.stderr.decode(errors="replace"))
    return result.stdout.decode("latin-1")


def _libhfsp_name(name: str) -> str:
    """How libhfsp's unicode_uni2asc shows a decomposed name: ASCII kept, everything else dropped."""
    return "".join(char for char in name if ord(char) < 0x80)


#: ``hpls -a -i -l``: CNID, f/d, (file: type/creator, data and resource fork sizes; folder: item
#: count), date, name.
_HPLS_LINE = re.compile(r"^\s*(?P<cnid>\d+) (?P<kind>[fd]) (?P<middle>.*?) "
                        r"(?P<date>[A-Z][a-z]{2} [ \d]\d (?: \d{4}|\d\d:\d\d)) (?P<name>.*)$")


@pytest.mark.skipif(shutil.which("hpls") is None,
                    reason="Debian's hfsplus tools (hpmount, hpls, hpcopy) absent")
def test_libhfsp_lists_and_copies_the_written_tree(volume: tuple[Path, dict, HfsLayout],
                                                   tmp_path: Path) -> None:
    image, expected, _ = volume
    if image.name.startswith("hfsx"):
        pytest.skip("libhfsp 1.0.4 opens only 'H+' volumes, not HFSX")
    copy = tmp_path / "libhfsp.img"  # sector 1 holds a header copy for libhfsp's backup-header check
    shutil.copyfile(image, copy)
    with copy.open("r+b") as handle:
        handle.seek(1024)
        header = handle.read(512)
        handle.seek(512)
        handle.write(header)
    home = tmp_path / "home"
    home.mkdir()
    _hp(home, "hpmount", "-r", str(copy))
    found: dict[str, dict] = {}

    def walk(path: str) -> None:
        """List the current folder; copy files and enter folders whose names libhfsp can type."""
        for line in _hp(home, "hpls", "-a", "-i", "-l").splitlines():
            match = _HPLS_LINE.match(line)
            if match is None:
                assert line.split()[1] == "Thread", line  # the folder's own thread record
                continue
            name, full = match["name"], f"{path}/{match['name']}"
            entry: dict = {"cnid": int(match["cnid"]), "directory": match["kind"] == "d"}
            if match["kind"] == "f":
                entry["size"] = int(match["middle"].split()[-2])  # data fork, then resource fork
            typable = name in {p.rpartition("/")[2] for p in expected}
            if typable and match["kind"] == "f":
                target = tmp_path / f"copy-{entry['cnid']}"
                _hp(home, "hpcopy", "-r", name, str(target))
                entry["sha256"] = hashlib.sha256(target.read_bytes()).hexdigest()
            found[full] = entry
            if typable and match["kind"] == "d":
                _hp(home, "hpcd", name)
                walk(full)
                _hp(home, "hpcd", "..")

    try:
        walk("")
    finally:
        _hp(home, "hpumount")
    wanted = {}
    for path, want in expected.items():
        parent, _, leaf = path.rpartition("/")
        if parent != _libhfsp_name(parent):
            continue  # inside a folder whose name libhfsp cannot type
        shown = f"{parent}/{_libhfsp_name(leaf)}"
        wanted[shown] = {"cnid": want["cnid"], "directory": want["directory"]}
        if not want["directory"]:
            wanted[shown]["size"] = want["size"]
            if leaf == _libhfsp_name(leaf):
                wanted[shown]["sha256"] = want["sha256"]
    assert len(wanted) > 40
    assert found == wanted
