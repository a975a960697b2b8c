"""Maildir folder mtimes as rewrite evidence: dir lines in the manifest, folder records in the parse.

The image is a real ext4 file system built with ``mke2fs -d`` (no mount, no root) whose inode times
debugfs then sets exactly (mke2fs copies each file's ctime as "now"); the live case collects a
directory tree given as root, where only mtime and atime can be set and the rest is read back.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from collector.collect import collect
from collector.image import ImageSource
from collector.live import DirectorySource
from collector.timeutil import iso_utc
from collector.verify import verify_bundle
from parsers.engine import parse_bundle

E2FS = all(shutil.which(tool) for tool in ("mke2fs", "debugfs"))
needs_e2fs = pytest.mark.skipif(not E2FS, reason="e2fsprogs (mke2fs, debugfs) not installed")

ARTIFACTS = ["DovecotUidlists", "MaildirMessages"]
REASON = "directory: its times and inode are recorded, no content to copy"
SUBJECTS = {"cur/1790100000.M1P1.mdhost:2,S": "kept one",
            "cur/1790200000.M2P2.mdhost:2,RS": "kept two",
            ".Trash/cur/1790250000.M3P3.mdhost:2,S": "moved to trash"}

CREATED = 1_790_000_000       # every inode's crtime: the mailbox was set up then
READ = 1_790_500_000          # every atime
#: path under the Maildir -> (mtime, ctime). The story: m3 was moved from INBOX/cur to .Trash at
#: 1_790_300_000 (INBOX/cur's mtime, m3's ctime), and .Archive/cur was emptied at 1_790_400_000.
TIMES = {
    "": (CREATED, CREATED),
    "cur": (1_790_300_000, 1_790_300_000),
    "new": (1_790_199_000, 1_790_199_000),  # m2 went on to cur/ when the client saw it
    "tmp": (1_790_199_000, 1_790_199_000),
    "cur/1790100000.M1P1.mdhost:2,S": (1_790_100_000, 1_790_100_500),
    "cur/1790200000.M2P2.mdhost:2,RS": (1_790_200_000, 1_790_200_000),
    ".Archive": (CREATED, CREATED),
    ".Archive/cur": (1_790_400_000, 1_790_400_000),
    ".Archive/new": (CREATED, CREATED),
    ".Archive/tmp": (CREATED, CREATED),
    ".Trash": (CREATED, CREATED),
    ".Trash/cur": (1_790_300_000, 1_790_300_000),
    ".Trash/new": (CREATED, CREATED),
    ".Trash/tmp": (CREATED, CREATED),
    ".Trash/cur/1790250000.M3P3.mdhost:2,S": (1_790_250_000, 1_790_300_000),
}
DIRS = ["", "cur", "new", "tmp", ".Archive", ".Archive/cur", ".Archive/new", ".Archive/tmp",
        ".Trash", ".Trash/cur", ".Trash/new", ".Trash/tmp"]
MAILDIR = "/home/alice/Maildir"


def _message(subject: str) -> bytes:
    return (f"From: Dana <dana@example.org>\nTo: alice@corp.example\nSubject: {subject}\n"
            f"Date: Mon, 5 Oct 2026 09:00:00 +0000\nMessage-ID: <{subject.replace(' ', '-')}@example.org>"
            "\n\nbody\n").encode()


def _stage(root: Path) -> Path:
    """A host tree with alice's Maildir; mtimes and atimes set, deepest first."""
    (root / "etc").mkdir(parents=True)
    (root / "etc" / "hostname").write_text("mdhost\n")
    (root / "etc" / "passwd").write_text("alice:x:1000:1000::/home/alice:/bin/bash\n")
    maildir = root / "home" / "alice" / "Maildir"
    for relative in DIRS:
        (maildir / relative).mkdir(parents=True, exist_ok=True)
    for relative, subject in SUBJECTS.items():
        (maildir / relative).write_bytes(_message(subject))
    for relative in sorted(TIMES, key=lambda r: (-r.count("/"), -len(r), r)):
        os.utime(maildir / relative, (READ, TIMES[relative][0]))
    return maildir


def _debugfs(image: Path, commands: str) -> str:
    script = image.parent / "debugfs.cmd"
    script.write_text(commands)
    result = subprocess.run(["debugfs", "-w", "-f", str(script), str(image)], capture_output=True,
                            text=True, check=True)
    return result.stdout


def _inode(image: Path, path: str) -> int:
    result = subprocess.run(["debugfs", "-R", f'stat "{path}"', str(image)], capture_output=True,
                            text=True, check=True)
    return int(result.stdout.split("Inode:", 1)[1].split()[0])


@pytest.fixture(scope="module")
def image(tmp_path_factory: pytest.TempPathFactory) -> Path:
    base = tmp_path_factory.mktemp("maildir-image")
    _stage(base / "staging")
    image = base / "fs.img"
    env = {**os.environ, "E2FSPROGS_FAKE_TIME": str(CREATED)}
    subprocess.run(["mke2fs", "-q", "-F", "-t", "ext4", "-b", "4096", "-I", "256",
                    "-U", "6d61696c-6469-7273-0000-000000000001", "-E",
                    "hash_seed=6d61696c-6469-7273-0000-000000000002", "-d", str(base / "staging"),
                    str(image), "8M"], check=True, env=env, capture_output=True)
    commands = []
    for relative, (mtime, ctime) in TIMES.items():
        path = f"{MAILDIR}/{relative}".rstrip("/")
        for field, value in (("mtime", mtime), ("ctime", ctime), ("atime", READ), ("crtime", CREATED)):
            commands.append(f'sif "{path}" {field} @{value}')
        commands += [f'sif "{path}" {field}_extra 0' for field in ("mtime", "ctime", "atime", "crtime")]
    _debugfs(image, "\n".join(commands) + "\n")
    return image


@pytest.fixture(scope="module")
def image_run(image: Path, tmp_path_factory: pytest.TempPathFactory) -> dict:
    out = tmp_path_factory.mktemp("maildir-run")
    source = ImageSource(str(image))
    try:
        report = collect(source, out / "bundle", artifacts=ARTIFACTS, quiet=True, carve_budget=0)
    finally:
        source.close()
    parse_bundle(out / "bundle", out / "parsed", quiet=True)
    return {"out": out, "report": report, "lines": _lines(out / "bundle"),
            "records": _records(out / "parsed")}


def _lines(bundle: Path) -> list[dict]:
    with (bundle / "manifest.jsonl").open(encoding="utf-8") as handle:
        return [json.loads(text) for text in handle]


def _records(parsed: Path) -> list[dict]:
    with (parsed / "records.jsonl").open(encoding="utf-8") as handle:
        return [json.loads(text) for text in handle]


def _us(seconds: int) -> int:
    return seconds * 1_000_000


def _iso(seconds: int) -> str:
    return iso_utc(_us(seconds))


def _dir_line(relative: str, provenance: str, filesystem: str, inode: int, size: int,
              times: dict[str, str | None]) -> dict:
    return {"artifact": "MaildirMessages", "category": "mail", "pattern": f"{MAILDIR}/**",
            "filesystem": filesystem, "source_path": f"{MAILDIR}/{relative}".rstrip("/"),
            "provenance": provenance, "bundle_path": None, "size": size, "sha256": None, "md5": None,
            **times, "dtime": None, "inode": inode, "deleted": False, "kind": "dir",
            "link_target": None, "user": "alice", "home": "/home/alice", "parsers": ["maildir"],
            "outcome": "empty", "reason": REASON}


# -- the image -------------------------------------------------------------------------------------
@needs_e2fs
def test_image_dir_lines_are_exact(image, image_run):
    lines = image_run["lines"]
    dirs = [line for line in lines if line["kind"] == "dir"]
    filesystem = image_run["report"]["filesystems"][0]
    expected = [
        _dir_line(relative, filesystem["provenance"], filesystem["label"],
                  _inode(image, f"{MAILDIR}/{relative}".rstrip("/")), 0,
                  {"mtime": _iso(TIMES[relative][0]), "atime": _iso(READ),
                   "ctime": _iso(TIMES[relative][1]), "crtime": _iso(CREATED)})
        for relative in DIRS]
    assert dirs == expected
    # after every file line of the file system, in walk order; the file lines are as before
    assert lines[-len(DIRS):] == expected
    files = [line for line in lines if line["kind"] == "file"]
    assert sorted(line["source_path"] for line in files) == sorted(f"{MAILDIR}/{r}" for r in SUBJECTS)
    assert all(line["outcome"] == "collected" and line["parsers"] == ["maildir"] for line in files)
    assert image_run["report"]["counts"]["empty"] == len(DIRS)
    # missing: the patterns for new/ and tmp/ (all empty) and the three of /var/vmail
    assert image_run["report"]["artifacts"]["MaildirMessages"] == {"collected": 3, "empty": len(DIRS),
                                                                   "missing": 5}


@needs_e2fs
def test_verify_accepts_dir_lines(image_run):
    result = verify_bundle(image_run["out"] / "bundle")
    assert result.ok, result.problems
    assert result.checked == len(SUBJECTS)


def _folder(relative: str, message: str, attributes: dict, tags: list[str], provenance: dict) -> dict:
    rule = ("maildir_folder_message_removed (T1070.008, medium): Maildir cur/ changed after its newest "
            "message (a message was expunged, deleted or moved out then)")
    if tags:
        attributes = {**attributes, "rule_hits": [rule], "severity": "medium"}
    source = f"{MAILDIR}/{relative}"
    folder_path = source.rsplit("/", 1)[0]
    folder = folder_path.rsplit("/", 1)[1]
    return {"attributes": {"folder": "INBOX" if folder == "Maildir" else folder,
                           "folder_path": folder_path, "path": source,
                           "subdir": relative.rsplit("/", 1)[-1], **attributes},
            "corrupted": False, "data_type": "mail:maildir:folder", "host": "mdhost",
            "message": message, "order": 0, "parser": "maildir",
            "provenance": {**provenance, "source_path": source}, "recovered": False, "tags": tags,
            "time_bounds": {}, "timestamps": {"Content Modification Time": _us(TIMES[relative][0])},
            "user": "alice"}


TAGS = ["T1070.008", "maildir_folder_message_removed"]


def _expected_folders(provenance: dict) -> list[dict]:
    where = "Maildir folder {} {}/ ({}/{})"
    inbox_newest = f"{MAILDIR}/cur/1790200000.M2P2.mdhost:2,RS"
    trash_newest = f"{MAILDIR}/.Trash/cur/1790250000.M3P3.mdhost:2,S"
    created = _iso(CREATED)
    return [
        _folder("cur", f"{where.format('INBOX', 'cur', MAILDIR, 'cur')} changed after its newest message "
                f"file (2 present, the newest changed at {_iso(1_790_200_000)}): a message was removed "
                "(expunged or deleted) or moved out after the last one still present",
                {"message_files": 2, "newest_file_time": _iso(1_790_200_000), "newest_file": inbox_newest,
                 "removed_after_newest": True, "evidence": "folder_changed_after_newest"},
                TAGS, provenance),
        _folder("new", f"{where.format('INBOX', 'new', MAILDIR, 'new')} is empty and changed after its "
                f"creation ({created}): a message was removed (expunged or deleted) or moved out, and "
                "none is left (new/: mail clients move messages to cur/ once seen, usually not a deletion)",
                {"message_files": 0, "created": created, "removed_after_newest": True,
                 "evidence": "folder_emptied"}, [], provenance),
        _folder(".Archive/cur", f"{where.format('.Archive', 'cur', MAILDIR, '.Archive/cur')} is empty and "
                f"changed after its creation ({created}): a message was removed (expunged or deleted) or "
                "moved out, and none is left",
                {"message_files": 0, "created": created, "removed_after_newest": True,
                 "evidence": "folder_emptied"}, TAGS, provenance),
        _folder(".Archive/new", f"{where.format('.Archive', 'new', MAILDIR, '.Archive/new')} is empty and "
                f"unchanged since its creation ({created})",
                {"message_files": 0, "created": created, "removed_after_newest": False}, [], provenance),
        _folder(".Trash/cur", f"{where.format('.Trash', 'cur', MAILDIR, '.Trash/cur')} changed: the "
                "arrival or flag change of a message still present (1 present, the newest changed at "
                f"{_iso(1_790_300_000)})",
                {"message_files": 1, "in_trash_folder": True, "newest_file_time": _iso(1_790_300_000),
                 "newest_file": trash_newest, "removed_after_newest": False}, [], provenance),
        _folder(".Trash/new", f"{where.format('.Trash', 'new', MAILDIR, '.Trash/new')} is empty and "
                f"unchanged since its creation ({created})",
                {"message_files": 0, "in_trash_folder": True, "created": created,
                 "removed_after_newest": False}, [], provenance),
    ]


@needs_e2fs
def test_image_folder_records_are_exact(image_run):
    folders = [r for r in image_run["records"] if r["data_type"] == "mail:maildir:folder"]
    filesystem = image_run["report"]["filesystems"][0]
    provenance = {"bundle_path": None, "evidence": filesystem["provenance"],
                  "filesystem": filesystem["label"], "offset": None, "sha256": None}
    assert folders == _expected_folders(provenance)
    warnings = (image_run["out"] / "parsed" / "parse_warnings.jsonl").read_text()
    assert warnings == ""


@needs_e2fs
def test_dir_lines_get_untagged_stat_records_and_no_content_parse(image_run):
    stats = {r["provenance"]["source_path"]: r for r in image_run["records"] if r["data_type"] == "fs:stat"}
    for relative in DIRS:
        record = stats[f"{MAILDIR}/{relative}".rstrip("/")]
        assert record["attributes"]["kind"] == "dir" and record["tags"] == []
        assert record["timestamps"]["Content Modification Time"] == _us(TIMES[relative][0])
    per_source = {}
    for record in image_run["records"]:
        per_source.setdefault(record["provenance"]["source_path"], []).append(record["data_type"])
    # the folder directory and tmp/ have their stat record only; cur/ and new/ one folder record more
    assert per_source[MAILDIR] == ["fs:stat"]
    assert per_source[f"{MAILDIR}/tmp"] == ["fs:stat"]
    assert per_source[f"{MAILDIR}/cur"] == ["fs:stat", "mail:maildir:folder"]
    messages = [r for r in image_run["records"] if r["data_type"] == "mail:maildir:message"]
    assert sorted(r["attributes"]["subject"] for r in messages) == sorted(SUBJECTS.values())


@needs_e2fs
def test_parse_is_byte_identical_for_any_worker_count(image_run):
    out = image_run["out"]
    parse_bundle(out / "bundle", out / "parsed2", quiet=True, workers=2)
    assert (out / "parsed2" / "records.jsonl").read_bytes() == (out / "parsed" / "records.jsonl").read_bytes()


@needs_e2fs
def test_collection_is_deterministic(image, image_run, tmp_path):
    source = ImageSource(str(image))
    try:
        collect(source, tmp_path / "bundle", artifacts=ARTIFACTS, quiet=True, carve_budget=0)
    finally:
        source.close()
    assert (tmp_path / "bundle" / "manifest.jsonl").read_bytes() == (
        image_run["out"] / "bundle" / "manifest.jsonl").read_bytes()


# -- a live / mounted tree -------------------------------------------------------------------------
#: cur/'s mtime on the live tree: after the ctimes the files get now (a ctime cannot be set).
LATER = 4_102_444_800  # 2100-01-01


def test_live_tree_dir_lines_and_folder_records(tmp_path):
    root = tmp_path / "root"
    maildir = _stage(root)
    os.utime(maildir / "cur", (READ, LATER))
    before = {relative: os.lstat(maildir / relative) for relative in DIRS}
    out = tmp_path / "out"
    source = DirectorySource(str(root))
    report = collect(source, out / "bundle", artifacts=ARTIFACTS, quiet=True, carve_budget=0)
    after = {relative: os.lstat(maildir / relative) for relative in DIRS}
    # reading the tree changed no time of its directories (listed with O_NOATIME)
    assert {r: (s.st_atime_ns, s.st_mtime_ns, s.st_ctime_ns) for r, s in after.items()} == {
        r: (s.st_atime_ns, s.st_mtime_ns, s.st_ctime_ns) for r, s in before.items()}
    filesystem = report["filesystems"][0]
    assert (filesystem["label"], filesystem["provenance"]) == ("root", f"directory:{root}")

    def ns_iso(ns: int) -> str:
        return iso_utc(ns // 1000)

    expected = [
        _dir_line(relative, f"directory:{root}", "root", st.st_ino, st.st_size,
                  {"mtime": ns_iso(st.st_mtime_ns), "atime": _iso(READ), "ctime": ns_iso(st.st_ctime_ns),
                   "crtime": None})
        for relative, st in before.items()]
    lines = _lines(out / "bundle")
    assert [line for line in lines if line["kind"] == "dir"] == expected
    assert verify_bundle(out / "bundle").ok

    parse_bundle(out / "bundle", out / "parsed", quiet=True)
    folders = {r["provenance"]["source_path"]: r for r in _records(out / "parsed")
               if r["data_type"] == "mail:maildir:folder"}
    assert sorted(folders) == sorted(f"{MAILDIR}/{r}" for r in DIRS if r.rsplit("/", 1)[-1] in ("cur", "new"))
    inbox = folders[f"{MAILDIR}/cur"]
    newest = max(max(os.lstat(p).st_mtime_ns, os.lstat(p).st_ctime_ns) // 1000
                 for p in (maildir / "cur").iterdir())
    assert inbox["timestamps"] == {"Content Modification Time": _us(LATER)}
    assert inbox["tags"] == TAGS
    assert inbox["attributes"]["removed_after_newest"] is True
    assert inbox["attributes"]["newest_file_time"] == iso_utc(newest)
    assert inbox["message"].endswith("a message was removed (expunged or deleted) or moved out after "
                                     "the last one still present")
    # a live Linux tree has no birth times: an empty folder cannot be judged, and is not tagged
    archive = folders[f"{MAILDIR}/.Archive/cur"]
    assert "removed_after_newest" not in archive["attributes"] and archive["tags"] == []
    assert archive["message"] == (f"Maildir folder .Archive cur/ ({MAILDIR}/.Archive/cur) is empty; no "
                                  "creation time to compare its last change with")
    # the .Trash message's ctime is now, later than the mtime set on .Trash/cur: nothing removed
    assert folders[f"{MAILDIR}/.Trash/cur"]["attributes"]["removed_after_newest"] is False
