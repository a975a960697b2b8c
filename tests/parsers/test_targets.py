"""Commands are linked to the collected state of the mail files they touched."""

from __future__ import annotations

from parsers.targets import record_targets


def _shell(records, command):
    return next(r for r in records
                if r["data_type"].startswith("shell:") and r["attributes"]["command"] == command)


def test_cause_next_to_effect(linux_records):
    rm = _shell(linux_records, "sudo rm /var/mail/carol")
    assert rm["attributes"]["target_state"] == [
        "/var/mail/carol: deleted, inode 75, 3152 bytes, deleted 2026-10-12T14:32:10.000000+00:00 "
        "(matches the command time), last written 2026-10-10T17:26:48.000000+00:00"]
    truncate = _shell(linux_records, "sudo truncate -s 0 /home/carol/mbox")
    assert truncate["attributes"]["target_state"] == [
        "/home/carol/mbox: empty, inode 48, 0 bytes, last written 2026-10-12T14:33:40.000000+00:00 "
        "(matches the command time)"]
    assert "target_state" not in _shell(linux_records, "ls -la /var/mail")["attributes"]


def test_record_targets_resolve_paths():
    record = {"data_type": "shell:bash:command", "provenance": {"source_path": "/home/bob/.bash_history"},
              "attributes": {"command": "cd /var/mail && rm carol; : > ~/mbox; grep x /var/mail/alice",
                             "cwd": "/tmp", "home": "/home/bob"}}
    # Every mail path the line names, resolved against the home directory ("~/mbox").
    assert record_targets(record) == ["/home/bob/mbox", "/var/mail", "/var/mail/alice"]
    mail = {"data_type": "mail:mbox:message", "provenance": {"source_path": "/var/mail/x"}, "attributes": {}}
    assert record_targets(mail) == ["/var/mail/x"]
