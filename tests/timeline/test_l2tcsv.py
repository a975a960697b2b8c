"""l2tcsv as plaso writes it: 17 columns, MACB letters, MM/DD/YYYY and HH:MM:SS."""

from __future__ import annotations

from pathlib import Path

from timeline.l2tcsv import HEADER, macb

PLASO_HEADER = ("date,time,timezone,MACB,source,sourcetype,type,user,host,short,desc,version,"
                "filename,inode,notes,format,extra")


def test_header_is_plasos():
    assert ",".join(HEADER) == PLASO_HEADER


def test_macb_letters_follow_plaso_descriptions():
    assert macb(["Content Modification Time"]) == "M..."
    assert macb(["Last Access Time"]) == ".A.."
    assert macb(["Metadata Modification Time", "Content Modification Time"]) == "M.C."
    assert macb(["Creation Time", "Last Access Time"]) == ".A.B"
    assert macb(["Command Executed Time"]) == "M..."  # as plaso marks a bash history line
    assert macb(["Event Time"]) == "...B"  # plaso: an event's TimeCreated is its creation time
    assert macb(["Sent Time (Date header)"]) == "...."


def test_reference_rows(linux_run: Path):
    lines = (linux_run / "timeline.l2t.csv").read_text(encoding="utf-8").splitlines()
    assert lines[0] == PLASO_HEADER
    rows = [line.split(",") for line in lines[1:]]
    assert all(len(row) == 17 for row in rows)
    rm = next(row for row in rows if row[10] == "sudo rm /var/mail/carol")
    assert rm[:9] == ["10/12/2026", "14:32:10", "UTC", "M...", "LOG", "Bash History",
                      "Command Executed Time", "bob", "mailhost"]
    assert rm[11] == "2" and rm[12] == "p1:/home/bob/.bash_history" and rm[15] == "bash_history"
    assert rm[14] == "T1070.008 shell_mail_file_removed"
    # The deleted spool's ctime and dtime coincide: one line, like plaso's MACB groups.
    carol = [row for row in rows if row[12] == "p1:/var/mail/carol" and row[4] == "FILE"]
    grouped = next(row for row in carol if row[1] == "14:32:10")
    assert grouped[3] == "..C." and grouped[6] == "Deletion Time; Metadata Modification Time"
    assert grouped[13] == "75"


def test_hostile_cells_cannot_bite(tmp_path: Path):
    import csv as csv_module
    import json as json_module

    from parsers.record import Provenance, Record
    from timeline.build import build_timeline

    values = ["=HYPERLINK(\"http://x\",\"y\")", "+cmd|' /C calc'!A0", "-2+3", "@SUM(A1)", "\tx", "\rx",
              'say "hi", then "bye"', "multi\nline, text", '"unbalanced']
    records = [Record(data_type="shell:bash:command", message=v, parser="bash_history", order=i,
                      provenance=Provenance(bundle_path="b", source_path="/h/.bash_history", sha256=None),
                      timestamps={"Command Executed Time": 1_700_000_000_000_000 + i},
                      attributes={"command": v}) for i, v in enumerate(values)]
    path = tmp_path / "records.jsonl"
    path.write_text("".join(r.to_json() + "\n" for r in records))
    build_timeline([path], tmp_path)
    with (tmp_path / "timeline.l2t.csv").open(newline="") as handle:
        rows = list(csv_module.reader(handle))
    assert len(rows) == 1 + len(values) and all(len(row) == 17 for row in rows)
    descs = [row[10] for row in rows[1:]]
    for desc in descs:
        assert not desc.startswith(("=", "+", "@", "\t", "\r")) and not (desc.startswith("-") and desc != "-")
    assert "'=HYPERLINK(\"http://x\" \"y\")" in descs and 'say "hi"  then "bye"' in descs
    jsonl = [json_module.loads(line) for line in (tmp_path / "timeline.jsonl").read_text().splitlines()]
    assert sorted(r["command"] for r in jsonl) == sorted(values)  # raw values intact in JSONL
