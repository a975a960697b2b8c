"""Never change, never lose (issue 9): the evidence is not modified by collecting it, and a file
that changes or vanishes while it is collected is recorded as such, not silently.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
from pathlib import Path

import pytest

from collector.bundle import BundleWriter, CollectContext
from collector.collect import collect
from collector.live import DirectorySource
from collector.opener import open_source
from collector.source import SourceFile
from collector.verify import verify_bundle
from inboxtrail.cli import main
from tests.collector.test_hostile_image import write_limit
from tests.conftest import IMAGES, sha256_of

HOSTILE_IMAGE = IMAGES / "hostile.qcow2"
OLD_ATIME = 1_600_000_000_123_456_789   # 2020-09-13, older than any relatime window
OLD_MTIME = 1_590_000_000_987_654_321   # before the atime, so relatime alone would not update
SPOOL = b"From a@example.org Mon Oct  5 09:12:44 2026\nSubject: hi\n\nbody\n"
HOST_FILES = {
    "etc/hostname": b"livebox\n",
    "etc/passwd": b"dave:x:1000:1000::/home/dave:/bin/bash\n",
    "var/mail/dave": SPOOL,
    "var/mail/empty": b"",
    "home/dave/mbox": SPOOL,
    "home/dave/.bash_history": b"#1791900000\nrm /var/mail/dave\n",
    "home/dave/Mail/Sent": SPOOL,
}


# -- the image -------------------------------------------------------------------------------------
@pytest.mark.skipif(not HOSTILE_IMAGE.is_file(), reason="images/hostile.qcow2 not built")
def test_run_does_not_change_the_source_image(tmp_path):
    committed = (IMAGES / "hostile.qcow2.sha256").read_text().split()[0]
    before = os.stat(HOSTILE_IMAGE)
    assert sha256_of(HOSTILE_IMAGE) == committed
    # the spools and histories only: the 100,000-file directory is exercised by
    # tests/collector/test_hostile_image.py, which checks the hash after its run too.
    # write_limit: the collector reads /var/mail/huge (1 TiB claimed) to the end; without a cap
    # on file size that run fills the disk (ENOSPC after ~75 GB).
    with write_limit():
        code = main(["--quiet", "run", str(HOSTILE_IMAGE), "-o", str(tmp_path / "out"),
                     "--artifacts", "LinuxMailSpools,BashShellHistory"])
    assert code == 0
    after = os.stat(HOSTILE_IMAGE)
    assert sha256_of(HOSTILE_IMAGE) == committed
    assert (after.st_size, after.st_mtime_ns, after.st_ino) == (
        before.st_size, before.st_mtime_ns, before.st_ino)


# -- a live host: atime / mtime --------------------------------------------------------------------
def _host(tmp_path: Path) -> Path:
    root = tmp_path / "host"
    for relative, data in HOST_FILES.items():
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    return root


def _age(root: Path) -> dict[str, tuple[int, int]]:
    """Give every file and directory under root old times; return them (atime_ns, mtime_ns)."""
    times = {}
    for dirpath, dirnames, filenames in os.walk(root, topdown=False):
        for name in [*filenames, *dirnames, None]:
            path = os.path.join(dirpath, name) if name else dirpath
            os.utime(path, ns=(OLD_ATIME, OLD_MTIME), follow_symlinks=False)
            times[os.path.relpath(path, root)] = (OLD_ATIME, OLD_MTIME)
    return times


def _times(root: Path, known: dict[str, tuple[int, int]]) -> dict[str, tuple[int, int]]:
    """lstat every known path (no walk: listing a directory would itself move its atime)."""
    times = {}
    for relative in known:
        st = os.lstat(os.path.join(root, relative))
        times[relative] = (st.st_atime_ns, st.st_mtime_ns)
    return times


def _require_atime_updates(tmp_path: Path) -> None:
    """Skip unless a plain read on this mount moves atime (noatime mounts never do)."""
    control = tmp_path / "atime-control"
    control.write_bytes(b"control")
    control_dir = tmp_path / "atime-control-dir"
    control_dir.mkdir()
    (control_dir / "x").write_bytes(b"")
    for path in (control, control_dir / "x", control_dir):
        os.utime(path, ns=(OLD_ATIME, OLD_MTIME))
    with open(control, "rb") as handle:
        handle.read()
    if os.stat(control).st_atime_ns == OLD_ATIME:
        pytest.skip(f"the mount of {tmp_path} never updates atime on read (noatime?): "
                    "nothing to prove here")


def _dir_listing_moves_atime(tmp_path: Path) -> bool:
    directory = tmp_path / "atime-control-dir"
    os.listdir(directory)
    return os.stat(directory).st_atime_ns != OLD_ATIME


@pytest.mark.parametrize("how", ["open_source", "live"])
def test_live_collection_keeps_file_atime_and_mtime(tmp_path, how):
    _require_atime_updates(tmp_path)
    root = _host(tmp_path)
    before = _age(root)
    source = open_source(str(root)) if how == "open_source" else DirectorySource(str(root), live=True)
    assert isinstance(source, DirectorySource)
    report = collect(source, tmp_path / "bundle", quiet=True)
    assert report["counts"]["collected"] == 4  # spool, ~/mbox, ~/Mail/Sent, ~/.bash_history
    after = _times(root, before)
    files = [relative for relative in HOST_FILES]
    changed = {f: (before[f], after[f]) for f in files if after[f] != before[f]}
    assert not changed, f"collection changed file times: {changed}"
    lines = [json.loads(x) for x in (tmp_path / "bundle" / "manifest.jsonl").read_text().splitlines()]
    spool = next(line for line in lines if line["source_path"] == "/var/mail/dave")
    # the manifest records the times as they were, not as the read left them
    assert spool["atime"].startswith("2020-09-13T")


def test_live_collection_keeps_directory_atime(tmp_path):
    _require_atime_updates(tmp_path)
    if not _dir_listing_moves_atime(tmp_path):
        pytest.skip("listing a directory does not move its atime on this mount")
    root = _host(tmp_path)
    before = _age(root)
    collect(DirectorySource(str(root), live=True), tmp_path / "bundle", quiet=True)
    after = _times(root, before)
    dirs = [d for d in before if (root / d).is_dir()]
    changed = {d: (before[d], after[d]) for d in dirs if after[d] != before[d]}
    assert not changed, f"collection changed directory times: {changed}"


# -- a file that changes or vanishes while it is collected ------------------------------------------
def _ctx() -> CollectContext:
    return CollectContext(artifact="LinuxMailSpools", category="mail", pattern="/var/mail/*",
                          parsers=("mbox",), filesystem="live")


def _entry(location: str, size: int, opener) -> SourceFile:
    return SourceFile(location=location, name=location.rsplit("/", 1)[-1], kind="file", size=size,
                      times={"mtime": 1_791_000_000_000_000}, inode=42, provenance="live:/",
                      opener=opener)


def _close(writer: BundleWriter) -> dict:
    return writer.close({"tool": "inboxtrail", "interrupted": False})


@pytest.mark.parametrize(("stated", "content"), [(10, b"x" * 25), (100, b"y" * 40)],
                         ids=["grew", "shrank"])
def test_size_change_records_both_sizes_and_the_hash_of_what_was_read(tmp_path, stated, content):
    writer = BundleWriter(tmp_path / "bundle")
    line = writer.add_file(_entry("/var/mail/growing", stated, lambda: io.BytesIO(content)), _ctx())
    _close(writer)
    assert line["size"] == stated
    assert line["size_read"] == len(content)
    assert line["sha256"] == hashlib.sha256(content).hexdigest()
    assert line["md5"] == hashlib.md5(content).hexdigest()
    assert line["outcome"] == "collected"
    assert line["reason"] == f"size changed while reading: stated {stated}, read {len(content)}"
    assert (tmp_path / "bundle" / line["bundle_path"]).read_bytes() == content
    assert verify_bundle(tmp_path / "bundle").ok


def test_vanished_file_is_failed_with_the_reason(tmp_path):
    def gone():
        raise FileNotFoundError(2, "No such file or directory", "/var/mail/gone")

    writer = BundleWriter(tmp_path / "bundle")
    line = writer.add_file(_entry("/var/mail/gone", 12, gone), _ctx())
    report = _close(writer)
    assert line["outcome"] == "failed"
    assert line["reason"].startswith("vanished before it could be read: ")
    assert "/var/mail/gone" in line["reason"]
    assert line["bundle_path"] is None and line["sha256"] is None and line["size"] == 12
    assert report["counts"]["failed"] == 1
    assert not [p for p in (tmp_path / "bundle").rglob("*") if p.is_file()
                and p.name not in ("manifest.jsonl", "report.json")]
    assert verify_bundle(tmp_path / "bundle").ok


def test_live_file_removed_between_listing_and_reading(tmp_path):
    root = _host(tmp_path)
    fs = next(DirectorySource(str(root), live=True).filesystems())
    entry = fs.stat("/var/mail/dave")
    (root / "var" / "mail" / "dave").unlink()
    writer = BundleWriter(tmp_path / "bundle")
    line = writer.add_file(entry, _ctx())
    _close(writer)
    assert line["outcome"] == "failed" and line["reason"].startswith("vanished before it could be read")
    assert line["size"] == len(SPOOL)


def test_live_file_growing_between_listing_and_reading(tmp_path):
    root = _host(tmp_path)
    fs = next(DirectorySource(str(root), live=True).filesystems())
    entry = fs.stat("/var/mail/dave")
    more = b"From b@example.org Tue Oct  6 10:00:00 2026\nSubject: late\n\nnew mail\n"
    with open(root / "var" / "mail" / "dave", "ab") as handle:
        handle.write(more)
    writer = BundleWriter(tmp_path / "bundle")
    line = writer.add_file(entry, _ctx())
    _close(writer)
    assert (line["size"], line["size_read"]) == (len(SPOOL), len(SPOOL + more))
    assert line["sha256"] == hashlib.sha256(SPOOL + more).hexdigest()
    assert line["reason"] == f"size changed while reading: stated {len(SPOOL)}, read {len(SPOOL + more)}"


def test_read_error_midway_publishes_no_partial_file(tmp_path):
    class Broken(io.RawIOBase):
        def __init__(self) -> None:
            self.calls = 0

        def readable(self) -> bool:
            return True

        def readinto(self, buffer) -> int:
            self.calls += 1
            if self.calls > 1:
                raise OSError(5, "Input/output error")
            buffer[:4] = b"From"
            return 4

    writer = BundleWriter(tmp_path / "bundle")
    line = writer.add_file(_entry("/var/mail/bad-sector", 4096, lambda: io.BufferedReader(Broken())),
                           _ctx())
    _close(writer)
    assert line["outcome"] == "failed" and line["reason"].startswith("read error: ")
    assert line["bundle_path"] is None
    with contextlib.suppress(StopIteration):
        leftover = next(p for p in (tmp_path / "bundle" / "files").rglob("*") if p.is_file())
        pytest.fail(f"partial file left in the bundle: {leftover}")
