"""The findings report: verdict, stories in time order, and a page that renders in Chromium."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync",
                  "--hide-scrollbars"]


def test_markdown_verdict_and_stories(linux_run: Path):
    text = (linux_run / "findings.md").read_text(encoding="utf-8")
    assert "**Mail clearing: evidence found**" in text
    carol = text.split("/var/mail/carol (high)", 1)[1].split("\n## ", 1)[0]
    # The chain for carol's spool, in time order, with the recovered messages counted.
    assert carol.index("mail -f /var/mail/carol") < carol.index("sudo rm /var/mail/carol")
    assert "deleted file, 3152 bytes, inode 75" in carol
    assert "3 messages recovered from deleted data" in carol
    assert "sha256 41cf53973da7a09903143b8eac0ea3fe0ee5ec5ad93ec1b7c9a76cf4b1852933" in carol


def test_html_is_self_contained(linux_run: Path):
    page = (linux_run / "findings.html").read_text(encoding="utf-8")
    assert page.startswith("<!DOCTYPE html>") and "<svg" in page
    assert "http://" not in page.replace('xmlns="http://www.w3.org/2000/svg"', "")
    assert "https://" not in page and "<script" not in page
    assert "Mail clearing: evidence found" in page


def _chromium() -> str:
    binary = shutil.which("chromium") or shutil.which("chromium-browser")
    if binary is None:
        if os.environ.get("CI"):
            pytest.fail("chromium is missing in CI: .ci/run installs it")
        pytest.skip("chromium not installed (Debian package `chromium`; .ci/run installs it)")
    return binary


def test_html_renders_in_headless_chromium(linux_run: Path, tmp_path: Path):
    image = pytest.importorskip("PIL.Image", reason="pillow (test extra) not installed")
    shot = tmp_path / "findings.png"
    subprocess.run([_chromium(), *CHROMIUM_FLAGS, f"--user-data-dir={tmp_path / 'profile'}",
                    "--window-size=1200,1400", f"--screenshot={shot}",
                    (linux_run / "findings.html").as_uri()],
                   check=True, capture_output=True, timeout=120)
    picture = image.open(shot).convert("RGB")
    colours = picture.getcolors(maxcolors=1 << 20)
    assert colours is not None and len(colours) > 50, "screenshot looks blank"
    pixels = {colour for _, colour in colours}
    assert (0xB7, 0x1C, 0x1C) in pixels  # the red "evidence found" banner
    assert (0xD6, 0x27, 0x28) in pixels  # deletion evidence bars in the chart


def test_export_then_removed_is_one_story(tmp_path: Path):
    from inboxtrail.cli import main
    from tests.fixtures.evtx_scenarios import write_mail_clearing_logs

    write_mail_clearing_logs(tmp_path / "logs")
    out = tmp_path / "out"
    assert main(["-q", "run", str(tmp_path / "logs"), "-o", str(out)]) == 0
    text = (out / "findings.md").read_text(encoding="utf-8")
    assert "**Mail clearing: evidence found**" in text
    story = text.split("mailbox ceo: exported, then the export request removed", 1)[1].split("\n## ", 1)[0]
    assert "exchange_export_then_removed, T1070.008" in story
    assert story.index("New-MailboxExportRequest") < story.index("Remove-MailboxExportRequest")
    assert text.count("mailbox ceo: exported") == 1


def test_verdict_is_about_mail_clearing():
    from timeline.findings import verdict

    def hit(technique: str, severity: str) -> dict:
        return {"tags": [technique, "some_rule"], "attributes": {"severity": severity}}

    assert verdict([]) == "none found"
    # a cleared Security log or shell history is the cover-up, not mail clearing itself
    assert verdict([hit("T1070.001", "high"), hit("T1070.003", "high")]) == "indications"
    assert verdict([hit("T1070.008", "low"), hit("T1070.001", "high")]) == "indications"
    assert verdict([hit("T1070.008", "high")]) == "evidence found"
