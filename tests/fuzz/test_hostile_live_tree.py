"""Hostile names on a live host (issue 9): the booby-trapped image's names, in a real directory.

``tests/collector/test_hostile_image.py`` checks them through dfvfs on ``images/hostile.qcow2``;
the live source (``collector/live.py``: ``inboxtrail run --live`` or a mounted directory) walks
the tree with ``os`` calls instead, so the same guarantees are checked here on a tree built in a
temporary directory: the collection finishes, nothing is written outside the bundle, every name
is kept verbatim in the manifest, case-colliding names get distinct bundle files, reserved Windows
names are not bundle names, and symlink loops are recorded, never followed.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from collector.collect import collect
from collector.live import DirectorySource

SPOOL = b"From mallory@example.org Mon Oct  5 09:12:44 2026\nSubject: %s\n\nbody\n"
#: File names under /var/mail (bytes: POSIX names are bytes; some are not UTF-8).
NAMES: tuple[bytes, ...] = (
    b"..foo", b"...", b"..\\..\\Windows\\System32\\evil", b"new\nline", b"From \nmallory",
    b"tab\tcr\rname", b"ansi\x1b[31mred", b"\x01\x02\x03\x7f", "invoice\u202etxt.exe".encode(),
    b"L" * 255, b"%2E%2E", b"trailing.", b"trailing ", b"-rf", b"CON", b"nul.txt", b"COM1",
    b"aux.mbox", b"LPT9.", b"Inbox", b"INBOX", b"inbox", b"bad\xff\xfeutf8", b"caf\xe9",
)


def _tree(tmp_path: Path) -> Path:
    root = tmp_path / "root"
    (root / "etc").mkdir(parents=True)
    (root / "etc" / "passwd").write_bytes(b"eve:x:1000:1000::/home/eve:/bin/bash\n")
    mail = root / "var" / "mail"
    mail.mkdir(parents=True)
    for index, name in enumerate(NAMES):
        with open(os.path.join(os.fsencode(mail), name), "wb") as handle:
            handle.write(SPOOL % str(index).encode())
    os.symlink("loop_b", mail / "loop_a")  # a -> b -> a
    os.symlink("loop_a", mail / "loop_b")
    os.symlink("../../../../outside", mail / "escape")
    maildir = root / "home" / "eve" / "Maildir"
    (maildir / "cur").mkdir(parents=True)
    (maildir / "cur" / "1791000000.M1P1.host:2,S").write_bytes(b"Subject: kept\n\nbody\n")
    os.symlink(".", maildir / "loop")  # a walk of ** must not spin through it
    os.symlink("..", maildir / "cur" / "up")
    (tmp_path / "outside").write_bytes(b"not evidence")
    return root


@pytest.fixture(scope="module")
def live_collect(tmp_path_factory: pytest.TempPathFactory) -> dict:
    base = tmp_path_factory.mktemp("hostile-live")
    root = _tree(base)
    bundle = base / "bundle"
    report = collect(DirectorySource(str(root), live=True), bundle, quiet=True)
    manifest = (bundle / "manifest.jsonl").read_text(encoding="utf-8")
    lines = [json.loads(line) for line in manifest.splitlines()]
    return {"base": base, "root": root, "bundle": bundle, "report": report, "lines": lines,
            "by_path": {line["source_path"]: line for line in lines}}


def test_collection_finishes_inside_the_bundle(live_collect: dict) -> None:
    bundle = live_collect["bundle"].resolve()
    assert sorted(p.name for p in live_collect["base"].iterdir()) == ["bundle", "outside", "root"]
    written = [line["bundle_path"] for line in live_collect["lines"] if line["bundle_path"]]
    assert len(written) >= len(NAMES)
    for relative in written:
        parts = relative.split("/")
        assert parts[0] == "files" and ".." not in parts and "" not in parts, relative
        target = bundle / relative
        assert target.resolve().is_relative_to(bundle) and target.is_file() and not target.is_symlink()
        assert len(os.fsencode(parts[-1])) <= 255
    assert not [p for p in live_collect["base"].rglob("evil*") if "bundle" not in p.parts]
    assert not list(bundle.rglob("*.part"))


def test_every_name_is_kept_verbatim_with_its_content(live_collect: dict) -> None:
    by_path = live_collect["by_path"]
    for index, name in enumerate(NAMES):
        location = "/var/mail/" + os.fsdecode(name)
        assert location in by_path, name
        line = by_path[location]
        assert os.fsencode(line["source_path"]) == b"/var/mail/" + name
        assert line["outcome"] == "collected", (name, line.get("reason"))
        assert (live_collect["bundle"] / line["bundle_path"]).read_bytes() == SPOOL % str(index).encode()


def test_case_collisions_and_reserved_names_get_safe_distinct_paths(live_collect: dict) -> None:
    by_path = live_collect["by_path"]
    cased = [by_path["/var/mail/" + n]["bundle_path"] for n in ("Inbox", "INBOX", "inbox")]
    assert len({p.lower() for p in cased}) == 3
    reserved = {"con", "nul", "com1", "aux", "lpt9"}
    for name in ("CON", "nul.txt", "COM1", "aux.mbox", "LPT9."):
        last = by_path["/var/mail/" + name]["bundle_path"].rsplit("/", 1)[-1]
        assert last.split(".")[0].rstrip(" .").lower() not in reserved, last
        assert not last.endswith((".", " ")), last


def test_symlinks_and_loops_are_recorded_not_followed(live_collect: dict) -> None:
    by_path = live_collect["by_path"]
    for link, target in (("/var/mail/loop_a", "loop_b"), ("/var/mail/loop_b", "loop_a"),
                         ("/var/mail/escape", "../../../../outside")):
        line = by_path[link]
        assert line["kind"] == "symlink" and line["link_target"] == target, line
        assert line["sha256"] is None or line["outcome"] == "empty", line
    assert not any(line["source_path"].endswith("/outside") for line in live_collect["lines"])
    maildir = [p for p in by_path if p.startswith("/home/eve/Maildir/")]
    assert "/home/eve/Maildir/cur/1791000000.M1P1.host:2,S" in maildir
    assert not [p for p in maildir if "/loop/" in p or "/up/" in p], maildir


if os.name != "posix":  # pragma: no cover - POSIX names and symlinks
    pytestmark = pytest.mark.skip("POSIX only")
