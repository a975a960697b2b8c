"""Live collection: files locked by a running program are read through the raw volume; homes.

On Windows the event log service, Outlook and the Mail app keep EVTX, PST and Unistore files
open without sharing them, so a normal open fails with a sharing violation (WinError 32/33) and
the collector reads them with The Sleuth Kit from ``\\\\.\\C:`` by path. That condition cannot
happen on Linux, so here the normal open of the locked files raises the very error Windows
raises, and the "volume" is the real NTFS partition of ``images/windows-suspect.raw``: the bytes
and hashes must be the volume's (the ground truth in ``windows-suspect.scenario.json``), not the
stale copies on the live tree, and the manifest must say how each file was read.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from collector.collect import collect
from collector.live import (
    DirectoryFileSystem,
    DirectorySource,
    RawVolume,
    home_location,
    homes_from_passwd,
    homes_from_profile_list,
    is_sharing_violation,
    live_os,
    open_noatime,
    windows_raw_volume,
)
from tests.conftest import IMAGES, sha256_of

WINDOWS = IMAGES / "windows-suspect.raw"
LOCKED_MARKERS = ("/winevt/Logs/", "/Comms/Unistore/")
STALE = b"stale copy on the live tree, not what the volume holds\n"


def _truth() -> dict:
    path = IMAGES / "windows-suspect.scenario.json"
    if not path.exists() or not WINDOWS.exists():
        pytest.skip("images/windows-suspect.raw not built")
    return json.loads(path.read_text(encoding="utf-8"))


def _sharing_violation(path: str) -> PermissionError:
    """The exception Python raises on Windows for a file another process holds unshared."""
    exc = PermissionError(13, "The process cannot access the file because it is being used by "
                              "another process", path)
    exc.winerror = 32  # set by CPython from GetLastError() on Windows; absent on POSIX
    return exc


def _locked_open(path: str):
    if any(marker.replace("/", "\\") in path or marker in path for marker in LOCKED_MARKERS):
        raise _sharing_violation(path)
    return open_noatime(path)


@pytest.fixture()
def live_tree(tmp_path: Path) -> tuple[Path, dict, list[dict]]:
    """A live C:\\ stand-in holding every EVTX/Unistore/PSReadLine file of the image's volume."""
    truth = _truth()
    wanted = [f for f in truth["files"]
              if any(m in f["path"] for m in (*LOCKED_MARKERS, "/PSReadLine/"))]
    root = tmp_path / "C"
    for item in wanted:
        host = root / item["path"].lstrip("/")
        host.parent.mkdir(parents=True, exist_ok=True)
        host.write_bytes(STALE)
    return root, truth, wanted


def _manifest(bundle: Path) -> dict[str, dict]:
    with (bundle / "manifest.jsonl").open(encoding="utf-8") as handle:
        return {line["source_path"]: line for line in map(json.loads, handle)}


def test_locked_files_read_through_raw_volume(live_tree, tmp_path: Path) -> None:
    root, truth, wanted = live_tree
    volume = RawVolume(str(WINDOWS), offset=truth["partition_offset_bytes"])
    before = sha256_of(WINDOWS)
    source = DirectorySource(str(root), live=True, raw_volume=(volume, "/"),
                             normal_open=_locked_open)
    collect(source, tmp_path / "b", quiet=True)
    manifest = _manifest(tmp_path / "b")
    locked = [f for f in wanted if any(m in f["path"] for m in LOCKED_MARKERS)]
    assert len(locked) == 8  # six EVTX logs, two Unistore files (one MFT-resident)
    for item in locked:
        line = manifest[item["path"]]
        assert line["outcome"] == "collected", line
        assert line["sha256"] == item["sha256"], item["path"]
        assert line["size"] == item["size"]
        copied = (tmp_path / "b" / line["bundle_path"]).read_bytes()
        assert hashlib.sha256(copied).hexdigest() == item["sha256"]
        assert line["provenance"] == (
            f"live:{root}|raw:{WINDOWS}|tsk:{item['path']} "
            "(locked by another process ([WinError 32]))")
    # A file nobody locks is read the normal way, from the live tree.
    (history,) = [f for f in wanted if "/PSReadLine/" in f["path"]]
    line = manifest[history["path"]]
    assert line["provenance"] == f"live:{root}"
    assert line["sha256"] == hashlib.sha256(STALE).hexdigest()
    assert sha256_of(WINDOWS) == before


def test_locked_file_absent_from_volume_fails_with_the_lock_as_reason(live_tree,
                                                                      tmp_path: Path) -> None:
    root, truth, _wanted = live_tree
    extra = root / "Windows/System32/winevt/Logs/Application.evtx"  # not in the image
    extra.write_bytes(STALE)
    volume = RawVolume(str(WINDOWS), offset=truth["partition_offset_bytes"])
    fs = DirectoryFileSystem(str(root), raw_volume=(volume, "/"), normal_open=_locked_open)
    entry = fs.stat("/Windows/System32/winevt/Logs/Application.evtx")
    assert entry is not None and entry.provenance == f"dir:{root}"
    with pytest.raises(PermissionError) as caught:
        entry.open()
    assert is_sharing_violation(caught.value)
    assert isinstance(caught.value.__cause__, FileNotFoundError)


def test_other_permission_errors_are_not_read_raw(live_tree) -> None:
    root, truth, wanted = live_tree

    def denied(path: str):
        raise PermissionError(13, "Access is denied", path)  # no winerror 32/33: not a lock

    volume = RawVolume(str(WINDOWS), offset=truth["partition_offset_bytes"])
    fs = DirectoryFileSystem(str(root), raw_volume=(volume, "/"), normal_open=denied)
    entry = fs.stat(wanted[-1]["path"])
    assert entry.provenance == f"dir:{root}"
    with pytest.raises(PermissionError):
        entry.open()


def test_raw_volume_reads_by_path_case_insensitively() -> None:
    truth = _truth()
    volume = RawVolume(str(WINDOWS), offset=truth["partition_offset_bytes"])
    (item,) = [f for f in truth["files"] if f["path"].endswith("/Security.evtx")]
    assert volume.size(item["path"].upper()) == item["size"]
    with volume.open(item["path"]) as handle:
        assert hashlib.sha256(handle.read()).hexdigest() == item["sha256"]
    with pytest.raises(FileNotFoundError):
        volume.open("/Windows/System32/winevt/Logs/nope.evtx")


def test_raw_volume_that_is_no_file_system_is_an_oserror(tmp_path: Path) -> None:
    junk = tmp_path / "junk.raw"
    junk.write_bytes(b"\x00" * 65536)
    with pytest.raises(OSError, match="cannot open raw volume"):
        RawVolume(str(junk)).open("/x")


def test_windows_raw_volume_of_a_directory() -> None:
    volume, inner = windows_raw_volume("c:\\")
    assert (volume.volume_path, inner) == ("\\\\.\\C:", "/")
    volume, inner = windows_raw_volume("D:\\Mount\\evidence\\")
    assert (volume.volume_path, inner) == ("\\\\.\\D:", "/Mount/evidence")
    assert windows_raw_volume("\\\\server\\share\\x") is None
    assert windows_raw_volume("/home") is None


# -- user homes of the live host ---------------------------------------------------------------
def test_homes_from_passwd_keeps_real_homes() -> None:
    entries = [("root", "/root"), ("dave", "/home/dave/"), ("nobody", "/nonexistent"),
               ("sshd", "/run/sshd"), ("ldapuser", "/srv/homes/ldapuser"), ("odd", "relative"),
               ("null", "/dev/null"), ("dave", "/home/dave")]
    assert homes_from_passwd(entries) == [
        ("dave", "/home/dave"), ("ldapuser", "/srv/homes/ldapuser"), ("root", "/root"),
        ("sshd", "/run/sshd")]


def test_homes_from_profile_list_expands_like_windows() -> None:
    profiles = [("S-1-5-18", "%systemroot%\\system32\\config\\systemprofile"),
                ("S-1-5-19", "%SystemRoot%\\ServiceProfiles\\LocalService"),
                ("S-1-5-21-1-1001", "C:\\Users\\dave"),
                ("S-1-5-21-1-1002", "%SystemDrive%\\Users\\erin.old\\"),
                ("S-1-5-21-1-1003", "D:\\Profiles\\frank"),
                ("S-1-5-21-1-1004", "%UNSET%\\Users\\ghost")]
    env = {"SystemRoot": "C:\\Windows", "SYSTEMDRIVE": "C:"}
    assert homes_from_profile_list(profiles, env) == [
        ("LocalService", "C:\\Windows\\ServiceProfiles\\LocalService"),
        ("dave", "C:\\Users\\dave"), ("erin.old", "C:\\Users\\erin.old"),
        ("frank", "D:\\Profiles\\frank"),
        ("systemprofile", "C:\\Windows\\system32\\config\\systemprofile")]


def test_home_location_maps_host_paths_into_the_root() -> None:
    assert home_location("/", "/home/dave") == "/home/dave"
    assert home_location("/", "/") == "/"
    assert home_location("/mnt/root", "/mnt/root/home/x") == "/home/x"
    assert home_location("/mnt/root", "/mnt/rootkit/x") is None
    assert home_location("/mnt/root", "/home/x") is None
    assert home_location("C:\\", "C:\\Users\\dave") == "/Users/dave"
    assert home_location("C:\\", "c:\\users\\Dave") == "/users/Dave"
    assert home_location("C:\\", "D:\\Profiles\\frank") is None


def test_account_homes_of_a_live_root(tmp_path: Path) -> None:
    fs = DirectoryFileSystem(str(tmp_path), account_homes=[
        ("dave", str(tmp_path / "home" / "dave")), ("eve", "/elsewhere/eve"),
        ("root", str(tmp_path / "root"))])
    assert fs.account_homes() == [("dave", "/home/dave"), ("root", "/root")]
    # A mounted directory (not --live) never takes homes from the examiner's own machine.
    source = DirectorySource(str(tmp_path))
    (view,) = source.filesystems()
    assert view.account_homes() == []


@pytest.mark.parametrize(("os_name", "wanted"), [
    ("linux", [("dave", "/home/dave"), ("root", "/root")]),
    ("darwin", [("erin", "/Users/erin"), ("root", "/var/root")]),
    ("windows", [("erin", "/Users/erin")]),
])
def test_live_homes_per_os(tmp_path: Path, os_name: str, wanted: list) -> None:
    for folder in ("home/dave", "root", "Users/erin", "Users/Public", "Users/Default",
                   "var/root", "home/lost+found"):
        (tmp_path / folder).mkdir(parents=True)
    (tmp_path / "Users" / "desktop.ini").write_text("[.ShellClassInfo]\n")
    (tmp_path / "home" / "link").symlink_to(tmp_path / "root")
    fs = DirectoryFileSystem(str(tmp_path), live_os_name=os_name)
    assert fs.account_homes() == wanted


def test_live_os_matches_this_host() -> None:
    import os
    import sys

    expected = "windows" if os.name == "nt" else ("darwin" if sys.platform == "darwin" else "linux")
    assert live_os() == expected
