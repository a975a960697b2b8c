"""Invalid UTF-8 in evidence is kept losslessly in records and never breaks an output file."""

from __future__ import annotations

import json

from inboxtrail.cli import main


def test_invalid_utf8_history_end_to_end(tmp_path):
    folder = tmp_path / "export"
    folder.mkdir()
    (folder / ".bash_history").write_bytes(b"#1791900000\nrm /var/mail/caf\xe9\n#1791900001\nls \xff\xfe\n")
    out = tmp_path / "out"
    assert main(["-q", "run", str(folder), "-o", str(out)]) == 0
    for name in ("records.jsonl", "timeline.csv", "timeline.jsonl", "timeline.l2t.csv"):
        (out / name).read_bytes().decode("utf-8")  # every output is valid UTF-8
    records = [json.loads(line) for line in (out / "records.jsonl").read_text().splitlines()]
    commands = [r["attributes"]["command"] for r in records if r["data_type"] == "shell:bash:command"]
    # Lossless: the original bytes come back with surrogateescape.
    originals = [c.encode("utf-8", "surrogateescape") for c in commands]
    assert originals == [b"rm /var/mail/caf\xe9", b"ls \xff\xfe"]
    rows = [json.loads(line) for line in (out / "timeline.jsonl").read_text().splitlines()]
    rm_row = next(r for r in rows if r["data_type"] == "shell:bash:command" and r["command"].startswith("rm"))
    assert rm_row["command"] == "rm /var/mail/caf\\xe9"
    assert "shell_mail_file_removed" in rm_row["tag"]
