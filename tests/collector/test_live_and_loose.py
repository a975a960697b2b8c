"""Directory / live-root and loose-file sources: same manifest contract, nothing changed."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import pytest

from collector.collect import collect
from collector.errors import SourceNotFoundError, UnrecognisedSourceError
from collector.live import DirectorySource, open_noatime
from collector.loose import LooseSource
from collector.opener import open_source

SPOOL = b"From a@example.org Mon Oct  5 09:12:44 2026\nSubject: hi\n\nbody\n"


def _root(tmp_path: Path) -> Path:
    root = tmp_path / "root"
    (root / "etc").mkdir(parents=True)
    (root / "etc" / "hostname").write_text("livebox\n")
    (root / "etc" / "passwd").write_text("dave:x:1000:1000::/home/dave:/bin/bash\n")
    (root / "var" / "mail").mkdir(parents=True)
    (root / "var" / "mail" / "dave").write_bytes(SPOOL)
    (root / "var" / "mail" / "empty").write_bytes(b"")
    (root / "home" / "dave").mkdir(parents=True)
    (root / "home" / "dave" / ".bash_history").write_text("#1791900000\nrm /var/mail/dave\n")
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret").write_text("not evidence")
    (root / "var" / "spool").mkdir()
    os.symlink(outside, root / "var" / "spool" / "mail")
    os.symlink("/etc/shadow", root / "var" / "mail" / "link")
    return root


def _manifest(bundle: Path) -> dict[str, dict]:
    lines = [json.loads(x) for x in (bundle / "manifest.jsonl").read_text().splitlines()]
    return {line["source_path"]: line for line in lines}


def test_directory_source_collects_and_records_outcomes(tmp_path):
    root = _root(tmp_path)
    source = open_source(str(root))
    assert isinstance(source, DirectorySource)
    report = collect(source, tmp_path / "bundle", quiet=True)
    manifest = _manifest(tmp_path / "bundle")
    spool = manifest["/var/mail/dave"]
    assert spool["outcome"] == "collected" and spool["user"] == "dave"
    assert spool["sha256"] == hashlib.sha256(SPOOL).hexdigest()
    assert spool["md5"] == hashlib.md5(SPOOL).hexdigest()
    assert (tmp_path / "bundle" / spool["bundle_path"]).read_bytes() == SPOOL
    assert manifest["/var/mail/empty"]["outcome"] == "empty"
    link = manifest["/var/mail/link"]
    assert link["outcome"] == "empty" and link["link_target"] == "/etc/shadow"
    # A symlinked spool directory is recorded, never followed out of the tree.
    assert manifest["/var/spool/mail"]["kind"] == "symlink"
    assert not any("secret" in path for path in manifest)
    assert report["filesystems"][0]["hostname"] == "livebox"
    assert report["counts"]["collected"] >= 2


def test_live_collection_changes_no_times(tmp_path):
    root = _root(tmp_path)
    spool = root / "var" / "mail" / "dave"
    old = 1_600_000_000
    os.utime(spool, (old, old))
    before = os.stat(spool)
    collect(DirectorySource(str(root), live=True), tmp_path / "bundle", quiet=True)
    after = os.stat(spool)
    assert (after.st_atime_ns, after.st_mtime_ns) == (before.st_atime_ns, before.st_mtime_ns)


def test_open_noatime_reads(tmp_path):
    path = tmp_path / "f"
    path.write_bytes(b"abc")
    with open_noatime(str(path)) as handle:
        assert handle.read() == b"abc"


def test_loose_folder_and_single_file(tmp_path):
    folder = tmp_path / "export"
    (folder / "sub").mkdir(parents=True)
    (folder / "sub" / "carol.mbox").write_bytes(SPOOL)
    (folder / "notes.txt").write_text("hello")
    source = open_source(str(folder))
    assert isinstance(source, LooseSource)
    collect(source, tmp_path / "b1", quiet=True)
    manifest = _manifest(tmp_path / "b1")
    assert set(manifest) == {"/sub/carol.mbox", "/notes.txt"}
    assert all(line["parsers"] == [] for line in manifest.values())
    single = open_source(str(folder / "sub" / "carol.mbox"))
    collect(single, tmp_path / "b2", quiet=True)
    assert set(_manifest(tmp_path / "b2")) == {"/carol.mbox"}


def test_opener_errors(tmp_path):
    with pytest.raises(SourceNotFoundError):
        open_source(str(tmp_path / "nope.raw"))
    bogus = tmp_path / "disk.raw"
    bogus.write_bytes(b"\x00" * 65536)
    with pytest.raises(UnrecognisedSourceError):
        open_source(str(bogus))


def test_artifact_file_skips_the_image_scan(tmp_path):
    """A file that starts with an artifact signature opens as a loose file without dfvfs;
    the same bytes behind an image extension still go to the image reader (and fail there)."""
    import subprocess
    import sys

    from collector.opener import is_artifact_file
    from tests.fixtures.evtx_writer import EvtxWriter

    log = tmp_path / "Security.evtx"
    with EvtxWriter(log, computer="dc01") as writer:
        writer.add(channel="Security", provider="Microsoft-Windows-Eventlog", event_id=1102,
                   time=1_700_000_000_000_000)
    spool = tmp_path / "dave"
    spool.write_bytes(SPOOL)
    other = tmp_path / "notes.txt"
    other.write_text("hello")
    assert is_artifact_file(str(log)) and is_artifact_file(str(spool))
    assert not is_artifact_file(str(other)) and not is_artifact_file(str(tmp_path / "missing"))
    disguised = tmp_path / "disk.raw"
    disguised.write_bytes(log.read_bytes())
    assert not is_artifact_file(str(disguised))
    with pytest.raises(UnrecognisedSourceError):
        open_source(str(disguised))
    root = Path(__file__).resolve().parents[2]
    check = ("import sys; from collector.opener import open_source; "
             f"s = open_source({str(log)!r}); print(type(s).__name__, 'dfvfs' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", check], cwd=root, capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["LooseSource", "False"]
    collect(open_source(str(log)), tmp_path / "bundle", quiet=True)
    assert set(_manifest(tmp_path / "bundle")) == {"/Security.evtx"}
