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


# -- a mail reader run without -f reads the user's own spool ----------------------------------------
def _bundle_with_history(tmp_path, spool: bytes | None):
    """A real bundle (collected from a directory tree) of a user who ran `mail`, with or without
    a spool; returns the tagged record of that command as the parse stage tags it."""
    import os

    from collector.bundle import read_manifest
    from collector.collect import collect
    from collector.live import DirectorySource
    from parsers.base import ParseContext
    from parsers.bash_history import BashHistoryParser
    from parsers.record import Provenance
    from parsers.targets import StateIndex, tag_with_state

    root = tmp_path / "root"
    (root / "etc").mkdir(parents=True)
    (root / "etc" / "passwd").write_text("carol:x:1002:1002::/home/carol:/bin/bash\n")
    home = root / "home" / "carol"
    home.mkdir(parents=True)
    history = home / ".bash_history"
    history.write_text("#1791647318\nmail\n#1791647600\nmail -s hello dana@example.org\n")
    (root / "var" / "mail").mkdir(parents=True)
    if spool is not None:
        (root / "var" / "mail" / "carol").write_bytes(spool)
        os.utime(root / "var" / "mail" / "carol", (1791653208, 1791653208))
    bundle = tmp_path / "bundle"
    collect(DirectorySource(str(root)), bundle, quiet=True)
    manifest = read_manifest(bundle)
    index = StateIndex(manifest)
    entry = next(line for line in manifest if line["source_path"] == "/home/carol/.bash_history")
    ctx = ParseContext(provenance=Provenance(entry["bundle_path"], entry["source_path"], entry["sha256"]),
                       user=entry["user"], entry=entry)
    with (bundle / entry["bundle_path"]).open("rb") as handle:
        records = [tag_with_state(r, index) for r in BashHistoryParser().parse(handle, ctx)]
    return records


def test_mail_reader_with_missing_spool_is_evidence(tmp_path):
    reader, sender = _bundle_with_history(tmp_path, spool=None)
    assert reader.attributes["command"] == "mail"
    assert reader.attributes["spool_path"] == "/var/mail/carol"
    assert reader.attributes["spool_state"] == "missing"
    assert reader.attributes["spool_detail"] == (
        "missing: no file /var/mail/carol or /var/spool/mail/carol was found")
    assert reader.message == ("mail [reads the spool of carol; /var/mail/carol: missing: no file "
                              "/var/mail/carol or /var/spool/mail/carol was found]")
    assert reader.tags == ("T1070.008", "shell_mail_reader_spool_gone")
    assert reader.attributes["rule_hits"] == [
        "shell_mail_reader_spool_gone (T1070.008, medium): User read mail from their spool, which is "
        "now missing, empty or deleted"]
    # The tagged command is linked to the spool's collected state; nothing was collected.
    assert "target_state" not in reader.attributes
    # `mail -s ... address` sends mail: it does not read the spool.
    assert "spool_state" not in sender.attributes and sender.tags == ()


def test_mail_reader_with_present_or_empty_spool(tmp_path):
    message = (b"From dana@example.org Mon Oct  5 09:12:44 2026\nSubject: hi\n\nbody\n")
    reader, _ = _bundle_with_history(tmp_path / "present", spool=message)
    assert reader.attributes["spool_state"] == "present"
    assert reader.attributes["spool_detail"] == (
        f"present, {len(message)} bytes, last written 2026-10-10T17:26:48.000000+00:00")
    assert reader.message == "mail" and reader.tags == ()
    emptied, _ = _bundle_with_history(tmp_path / "empty", spool=b"")
    assert emptied.attributes["spool_state"] == "empty"
    assert emptied.tags == ("T1070.008", "shell_mail_reader_spool_gone")
    assert emptied.message == ("mail [reads the spool of carol; /var/mail/carol: empty, 0 bytes, "
                               "last written 2026-10-10T17:26:48.000000+00:00]")
    [state] = emptied.attributes["target_state"]
    assert state.startswith("/var/mail/carol: empty, inode ")
    assert state.endswith(", 0 bytes, last written 2026-10-10T17:26:48.000000+00:00")


def test_spool_reader_user():
    from parsers.targets import spool_reader_user

    assert spool_reader_user("mail", "carol") == "carol"
    assert spool_reader_user("mailx -N", "carol") == "carol"
    assert spool_reader_user("sudo mail -u carol", "bob") == "carol"
    assert spool_reader_user("mutt", "alice") == "alice"
    assert spool_reader_user("mail -f /var/mail/carol", "bob") is None  # the -f rule's case
    assert spool_reader_user("mail bob@example.org < note.txt", "alice") is None  # sending
    assert spool_reader_user("mailq", "root") is None
    assert spool_reader_user("mail", None) is None


def test_reference_image_mail_readers(linux_records):
    """carol ran `mail`; her spool /var/mail/carol is now a deleted entry. alice's is still there.
    The parse stage (parsers/engine.py) annotates and tags both records."""
    records = {(r["provenance"]["source_path"], r["attributes"]["command"]): r for r in linux_records
               if r["data_type"].startswith("shell:")}
    carol = records["/home/carol/.bash_history", "mail"]
    assert carol["attributes"]["spool_state"] == "deleted"
    assert carol["attributes"]["spool_detail"] == (
        "deleted, inode 75, deleted 2026-10-12T14:32:10.000000+00:00")
    assert carol["message"] == ("mail [reads the spool of carol; /var/mail/carol: deleted, inode 75, "
                                "deleted 2026-10-12T14:32:10.000000+00:00]")
    assert carol["tags"] == ["T1070.008", "shell_mail_reader_spool_gone"]
    assert carol["attributes"]["target_state"] == [
        "/var/mail/carol: deleted, inode 75, 3152 bytes, deleted 2026-10-12T14:32:10.000000+00:00, "
        "last written 2026-10-10T17:26:48.000000+00:00"]
    alice = records["/home/alice/.zsh_history", "mail"]
    assert alice["attributes"]["spool_state"] == "present" and alice["tags"] == []
    assert alice["attributes"]["spool_detail"] == (
        "present, 4976 bytes, last written 2026-10-12T11:48:03.000000+00:00")
