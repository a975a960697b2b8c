"""NTFS Volume Shadow Copies end to end: ``collect``/``run --vss`` on a disk with two snapshots.

The disk is the committed ``images/windows-suspect.raw`` with its NTFS partition in three states,
made with ntfs-3g's tools on the unmounted partition (no loop mount):

* store 1 (2026-10-01 08:00 UTC): the partition plus a Thunderbird folder ``Archive`` (ntfscp),
  deleted before store 2 was taken: that file exists only in the first snapshot;
* store 2 (2026-10-15 17:30 UTC): the partition as committed;
* now: the partition with the Thunderbird ``Inbox`` cleared to zero bytes (ntfstruncate).

``tests/fixtures/vss_writer.py`` turns the two older states into shadow copies of "now".
"""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import uuid
from datetime import UTC, datetime
from pathlib import Path

import pytest

from inboxtrail.cli import main
from tests.conftest import IMAGES, copy_first_mbr_partition, first_mbr_partition, sha256_of
from tests.fixtures.vss_writer import ShadowCopy, write_shadow_copies

DISK = IMAGES / "windows-suspect.raw"
FOLDERS = "/Users/dave/AppData/Roaming/Thunderbird/Profiles/k3v9x2qa.default-release/Mail/Local Folders"
ARCHIVE, INBOX = f"{FOLDERS}/Archive", f"{FOLDERS}/Inbox"
STORE_1 = (uuid.UUID("3f2e1d0c-4b5a-4697-8877-665544332211"), datetime(2026, 10, 1, 8, 0, tzinfo=UTC))
STORE_2 = (uuid.UUID("9a8b7c6d-5e4f-4a3b-9c2d-1e0f2a3b4c5d"), datetime(2026, 10, 15, 17, 30, tzinfo=UTC))
SUBJECTS = ("Q3 board pack (draft)", "Re: wire to the new supplier", "Keep this between us")


def _archive_mbox() -> bytes:
    """A Thunderbird folder (mbox) larger than an MFT record, so its data lives in clusters."""
    messages = []
    for number, subject in enumerate(SUBJECTS, start=1):
        body = "".join(f"Line {line} of message {number}: figures attached.\n" for line in range(40))
        messages.append(
            f"From - Tue Sep 29 1{number}:00:00 2026\nFrom: CFO <cfo@corp.example.com>\n"
            f"To: dave@corp.example.com\nSubject: {subject}\n"
            f"Date: Tue, 29 Sep 2026 1{number}:00:00 +0000\n"
            f"Message-ID: <vss-{number}@corp.example.com>\n\n{body}\n")
    return "".join(messages).encode()


def _run(tool: str, *args: str) -> None:
    subprocess.run([tool, *args], check=True, capture_output=True)


@pytest.fixture(scope="module")
def vss_disk(tmp_path_factory: pytest.TempPathFactory) -> dict:
    for tool in ("ntfscp", "ntfstruncate"):
        if shutil.which(tool) is None:
            pytest.skip(f"{tool} not installed (Debian package ntfs-3g)")
    work = tmp_path_factory.mktemp("vss-disk")
    scenario = json.loads((IMAGES / "windows-suspect.scenario.json").read_text(encoding="utf-8"))
    inbox = next(entry for entry in scenario["files"] if entry["path"] == INBOX)
    start, _ = first_mbr_partition(DISK)
    copy_first_mbr_partition(DISK, work / "store2.raw")  # 3 MiB
    shutil.copyfile(work / "store2.raw", work / "store1.raw")
    shutil.copyfile(work / "store2.raw", work / "now.raw")
    mbox = work / "Archive"
    mbox.write_bytes(_archive_mbox())
    _run("ntfscp", "-f", str(work / "store1.raw"), str(mbox), ARCHIVE)
    _run("ntfstruncate", str(work / "now.raw"), str(inbox["mft_entry"]), "0")
    volume = work / "volume.raw"
    write_shadow_copies(work / "now.raw", [ShadowCopy(work / "store1.raw", *STORE_1),
                                           ShadowCopy(work / "store2.raw", *STORE_2)],
                        volume, volume_identifier=uuid.UUID("1b2c3d4e-5f60-4718-8a9b-0c1d2e3f4a5b"))
    disk = work / "disk.raw"
    shutil.copyfile(DISK, disk)
    with disk.open("r+b") as target:
        target.seek(start * 512)
        target.write(volume.read_bytes())
    return {"disk": disk, "archive_sha256": hashlib.sha256(mbox.read_bytes()).hexdigest(),
            "inbox_sha256": inbox["sha256"]}


def _collect(disk: Path, out: Path, vss: str, command: str = "collect") -> tuple[dict, list[dict]]:
    assert main(["--quiet", command, str(disk), "--vss", vss, "-o", str(out)]) == 0
    bundle = out / "bundle" if command == "run" else out
    report = json.loads((bundle / "report.json").read_text(encoding="utf-8"))
    with (bundle / "manifest.jsonl").open(encoding="utf-8") as handle:
        rows = [json.loads(line) for line in handle]
    return report, rows


def _live(rows: list[dict], path: str) -> dict[str, dict]:
    """The allocated file at ``path`` per file system label."""
    return {row["filesystem"]: row for row in rows if row["source_path"] == path and not row["deleted"]}


@pytest.fixture(scope="module")
def collected_all(vss_disk: dict, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict, list]:
    out = tmp_path_factory.mktemp("vss-all") / "bundle"
    report, rows = _collect(vss_disk["disk"], out, "all")
    return out, report, rows


def test_every_snapshot_is_collected_with_its_store_index(collected_all: tuple[Path, dict, list]) -> None:
    _, report, _ = collected_all
    provenance = {fs["label"]: fs["provenance"] for fs in report["filesystems"]}
    assert sorted(provenance) == ["p1", "p1-vss1", "p1-vss2"]
    assert "|TSK_PARTITION/p1|VSHADOW/vss1" in provenance["p1-vss1"]
    assert "|TSK_PARTITION/p1|VSHADOW/vss2" in provenance["p1-vss2"]
    assert "VSHADOW" not in provenance["p1"]
    assert report["counts"]["failed"] == 0


def test_each_snapshot_is_labelled_with_its_creation_time(collected_all: tuple[Path, dict, list]) -> None:
    _, report, rows = collected_all
    provenance = {fs["label"]: fs["provenance"] for fs in report["filesystems"]}
    assert "VSHADOW/vss1@2026-10-01T08:00:00.000000+00:00|" in provenance["p1-vss1"]
    assert "VSHADOW/vss2@2026-10-15T17:30:00.000000+00:00|" in provenance["p1-vss2"]
    assert _live(rows, ARCHIVE)["p1-vss1"]["provenance"] == provenance["p1-vss1"]


def test_a_file_only_in_the_first_snapshot_is_collected(collected_all: tuple[Path, dict, list],
                                                        vss_disk: dict) -> None:
    out, _, rows = collected_all
    archive = _live(rows, ARCHIVE)
    assert sorted(archive) == ["p1-vss1"]
    row = archive["p1-vss1"]
    assert row["outcome"] == "collected"
    assert row["sha256"] == vss_disk["archive_sha256"]
    assert row["bundle_path"] == f"files/p1-vss1{ARCHIVE}"
    assert sha256_of(out / row["bundle_path"]) == vss_disk["archive_sha256"]


def test_the_cleared_inbox_keeps_its_content_in_both_snapshots(collected_all: tuple[Path, dict, list],
                                                               vss_disk: dict) -> None:
    out, _, rows = collected_all
    inbox = _live(rows, INBOX)
    assert sorted(inbox) == ["p1", "p1-vss1", "p1-vss2"]
    assert inbox["p1"]["size"] == 0
    for label in ("p1-vss1", "p1-vss2"):
        assert inbox[label]["sha256"] == vss_disk["inbox_sha256"], label
        assert sha256_of(out / inbox[label]["bundle_path"]) == vss_disk["inbox_sha256"]


def test_vss_none_collects_the_current_volume_only(vss_disk: dict, tmp_path: Path) -> None:
    report, rows = _collect(vss_disk["disk"], tmp_path / "bundle", "none")
    assert [fs["label"] for fs in report["filesystems"]] == ["p1"]
    assert _live(rows, ARCHIVE) == {}
    assert _live(rows, INBOX)["p1"]["size"] == 0


def test_vss_by_number_collects_that_store_only(vss_disk: dict, tmp_path: Path) -> None:
    report, rows = _collect(vss_disk["disk"], tmp_path / "bundle", "1")
    assert sorted(fs["label"] for fs in report["filesystems"]) == ["p1", "p1-vss1"]
    assert sorted(_live(rows, ARCHIVE)) == ["p1-vss1"]
    assert sorted(_live(rows, INBOX)) == ["p1", "p1-vss1"]


def test_run_puts_the_snapshot_mail_on_the_timeline(vss_disk: dict, tmp_path: Path) -> None:
    before = sha256_of(vss_disk["disk"])
    out = tmp_path / "case"
    _collect(vss_disk["disk"], out, "all", command="run")
    with (out / "records.jsonl").open(encoding="utf-8") as handle:
        records = [json.loads(line) for line in handle]
    archive = [r for r in records if r["data_type"] == "mail:thunderbird:message"
               and r["provenance"]["source_path"] == ARCHIVE]
    assert {r["provenance"]["filesystem"] for r in archive} == {"p1-vss1"}
    assert sorted(subject for subject in SUBJECTS if any(subject in r["message"] for r in archive)) == \
        sorted(SUBJECTS)
    assert all(r["provenance"]["sha256"] == vss_disk["archive_sha256"] for r in archive)
    assert sha256_of(vss_disk["disk"]) == before  # the evidence is only read
