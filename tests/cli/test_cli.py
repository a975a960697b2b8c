"""The CLI's contract: stages, exit codes and clear errors."""

from __future__ import annotations

import json
import shutil
import zipfile

import pytest

from inboxtrail.cli import main
from tests.conftest import LINUX_IMAGE, corpus_path


def test_help_documents_exit_codes(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["run", "--help"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    assert "exit codes:" in out and "130" in out


def test_missing_source_and_unrecognised_image(tmp_path, capsys):
    assert main(["-q", "run", str(tmp_path / "missing.E01"), "-o", str(tmp_path / "o")]) == 3
    assert "not found" in capsys.readouterr().err
    junk = tmp_path / "junk.vmdk"
    junk.write_bytes(b"\x00" * 4096)
    assert main(["-q", "run", str(junk), "-o", str(tmp_path / "o")]) == 3
    assert "no supported file system" in capsys.readouterr().err
    assert main(["-q", "run", "-o", str(tmp_path / "o")]) == 2


def test_refuses_other_run_unless_forced(tmp_path, capsys):
    history = corpus_path("history/plaso")
    out = tmp_path / "out"
    assert main(["-q", "run", str(history), "-o", str(out)]) == 0
    assert main(["-q", "run", str(history), "-o", str(out)]) == 0  # same source: re-run is fine
    other = tmp_path / "other"
    shutil.copytree(history, other)
    assert main(["-q", "run", str(other), "-o", str(out)]) == 4
    assert "--force" in capsys.readouterr().err
    assert main(["-q", "run", str(other), "--force", "-o", str(out)]) == 0
    report = json.loads((out / "bundle" / "report.json").read_text())
    assert report["source"] == str(other)


def test_stages_one_by_one_equal_run(tmp_path, linux_run):
    bundle = tmp_path / "bundle"
    assert main(["-q", "collect", str(LINUX_IMAGE), "-o", str(bundle)]) == 0
    assert main(["-q", "verify", str(bundle)]) == 0
    assert main(["-q", "parse", str(bundle), "-o", str(tmp_path)]) == 0
    assert main(["-q", "timeline", str(tmp_path), "-o", str(tmp_path / "tl")]) == 0
    for name in ("timeline.csv", "timeline.jsonl", "timeline.l2t.csv"):
        assert (tmp_path / "tl" / name).read_bytes() == (linux_run / name).read_bytes()


def test_parse_on_a_non_bundle_is_a_clear_error(tmp_path, capsys):
    assert main(["-q", "parse", str(tmp_path), "-o", str(tmp_path / "o")]) == 5
    assert "not an inboxtrail bundle" in capsys.readouterr().err


def test_list_commands(capsys):
    assert main(["list", "artifacts"]) == 0
    assert "LinuxMailSpools" in capsys.readouterr().out
    assert main(["list", "parsers"]) == 0
    out = capsys.readouterr().out
    assert "mbox" in out and "bash_history" in out
    assert main(["list", "rules"]) == 0
    assert "shell_mail_file_removed" in capsys.readouterr().out


def test_run_on_single_loose_file(tmp_path):
    history = corpus_path("history/plaso/zsh_extended_history.txt")
    out = tmp_path / "out"
    assert main(["-q", "run", str(history), "-o", str(out)]) == 0
    records = [json.loads(x) for x in (out / "records.jsonl").read_text().splitlines()]
    commands = [r["attributes"]["command"] for r in records if r["data_type"] == "shell:zsh:command"]
    # 5 physical lines; the third command continues over two of them.
    assert commands == ["cd plaso", "ls", "echo dfgdfg \\\n& touch /tmp/afile",
                        "PYTHONPATH=. ./runtests.py"]


def test_artifacts_and_extra_paths(tmp_path):
    out = tmp_path / "out"
    assert main(["-q", "collect", str(LINUX_IMAGE), "--artifacts", "LinuxMailSpools",
                 "--path", "/etc/host*", "-o", str(out)]) == 0
    lines = [json.loads(x) for x in (out / "manifest.jsonl").read_text().splitlines()]
    # carol's deleted spool is also carved out of the free blocks of the spool's file system
    assert {line["artifact"] for line in lines} == {"LinuxMailSpools", "AdHocPath", "carved_mbox"}
    assert any(line["source_path"] == "/etc/hostname" for line in lines)
    assert main(["-q", "collect", str(LINUX_IMAGE), "--artifacts", "Nope", "-o",
                 str(tmp_path / "o2")]) == 5


def test_zip_bundle_collect_verify_parse(tmp_path, linux_run):
    archive = tmp_path / "case.zip"
    assert main(["-q", "collect", str(LINUX_IMAGE), "-o", str(archive)]) == 0
    assert main(["-q", "verify", str(archive)]) == 0
    assert main(["-q", "parse", str(archive), "-o", str(tmp_path / "p")]) == 0
    assert (tmp_path / "p" / "records.jsonl").read_bytes() == (linux_run / "records.jsonl").read_bytes()
    assert main(["-q", "collect", str(LINUX_IMAGE), "-o", str(archive)]) == 4
    assert main(["-q", "collect", str(LINUX_IMAGE), "--force", "-o", str(archive)]) == 0
    with zipfile.ZipFile(archive) as zf:
        names = zf.namelist()
    assert names == sorted(names) and "manifest.jsonl" in names
    assert not list(tmp_path.glob(".case.zip*")), "staging directory left behind"


def test_output_identical_for_any_worker_count(tmp_path, linux_run):
    for workers in ("1", "3"):
        out = tmp_path / f"w{workers}"
        assert main(["-q", "run", str(LINUX_IMAGE), "--workers", workers, "-o", str(out)]) == 0
        for name in ("records.jsonl", "timeline.csv", "timeline.jsonl", "timeline.l2t.csv"):
            assert (out / name).read_bytes() == (linux_run / name).read_bytes(), (workers, name)


def test_parse_pool_and_one_process_give_the_same_outputs(tmp_path, linux_run, monkeypatch):
    """The reference image is small enough to be parsed in one process whatever --workers says;
    forced through the pool, every output (findings included, gathered in the workers) is the same."""
    from parsers import engine

    contexts = []
    get_context = engine.multiprocessing.get_context
    monkeypatch.setattr(engine, "POOL_MIN_WORK", 0)
    monkeypatch.setattr(engine.multiprocessing, "get_context",
                        lambda method=None: contexts.append(method) or get_context(method))
    out = tmp_path / "pool"
    assert main(["-q", "run", str(LINUX_IMAGE), "--workers", "3", "-o", str(out)]) == 0
    assert contexts, "the parse stage did not start a pool"
    for name in ("records.jsonl", "timeline.csv", "timeline.jsonl", "timeline.l2t.csv", "findings.md",
                 "findings.html", "parse_warnings.jsonl"):
        assert (out / name).read_bytes() == (linux_run / name).read_bytes(), name


def test_timesketch_upload_failure_is_a_clear_error(tmp_path, capsys):
    pytest.importorskip("timesketch_import_client", reason="timesketch extra not installed")
    out = tmp_path / "out"
    # Nothing listens on the discard port: the official client fails, we say so and exit 5.
    assert main(["-q", "run", str(LINUX_IMAGE), "--timesketch", "http://127.0.0.1:9",
                 "--timesketch-user", "examiner", "-o", str(out)]) == 5
    assert "Timesketch upload to http://127.0.0.1:9 failed" in capsys.readouterr().err
    assert (out / "timeline.jsonl").is_file()  # the run's outputs are complete regardless


def test_sha256_only_and_no_carving(tmp_path):
    out = tmp_path / "out"
    assert main(["-q", "collect", str(LINUX_IMAGE), "--hash", "sha256", "--carve-budget", "0",
                 "-o", str(out)]) == 0
    lines = [json.loads(x) for x in (out / "manifest.jsonl").read_text().splitlines()]
    report = json.loads((out / "report.json").read_text())
    assert report["hashes"] == ["sha256"]
    assert not [line for line in lines if line["artifact"].startswith("carved_")]
    collected = [line for line in lines if line["outcome"] in ("collected", "recovered")]
    assert collected and all(line["md5"] is None and len(line["sha256"]) == 64 for line in collected)
    assert main(["-q", "verify", str(out)]) == 0


@pytest.mark.parametrize("argv", [["-q", "collect", "img", "-o", "b"], ["collect", "img", "-o", "b", "-q"],
                                  ["run", "img", "--quiet", "-o", "b"], ["--quiet", "verify", "b"]])
def test_quiet_before_or_after_the_command(argv):
    from inboxtrail.cli import build_parser

    assert build_parser().parse_args(argv).quiet is True
    assert build_parser().parse_args([a for a in argv if a not in ("-q", "--quiet")]).quiet is False
