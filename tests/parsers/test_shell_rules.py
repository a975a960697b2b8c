"""Shell-history rules: each rule fires on the ways people type it and not on look-alikes."""

from __future__ import annotations

import pytest

from parsers.record import Provenance, Record
from parsers.rules import default_engine

HOME = "/home/bob"


def _hits(command: str, data_type: str = "shell:bash:command", cwd: str | None = None,
          **extra: object) -> set[str]:
    attributes: dict[str, object] = {"command": command, "home": HOME, **extra}
    if cwd:
        attributes["cwd"] = cwd
    record = Record(data_type=data_type, message=command, parser="test", order=0,
                    provenance=Provenance(bundle_path=None, source_path="/x", sha256=None),
                    attributes=attributes)
    return {rule.id for rule in default_engine().hits(record)}


POSITIVES = {
    "shell_mail_file_removed": [
        "sudo rm /var/mail/carol",
        "sudo truncate -s 0 /home/carol/mbox",
        "cp /dev/null /var/mail/root",
        "\\rm -f \"$MAIL\"",
        "command rm -rf ~/Maildir/cur/*",
        "/bin/rm /var/spool/mail/alice",
        "builtin cd /tmp; sudo -u root /usr/bin/shred -u /var/mail/bob",
        "bash -c 'rm -f /var/mail/x'",
        "su -c 'unlink /var/mail/alice' root",
        "> /var/mail/alice",
        ":> ~/mbox",
        "cat /dev/null > $MAIL",
        "dd if=/dev/zero of=/var/mail/bob bs=1 count=0",
        "find /var/vmail -name '*.eml' -delete",
        "find ~/Maildir -type f -exec rm {} \\;",
        "find /var/mail -type f | xargs rm -f",
        "mv /var/mail/carol /dev/null",
        "mv ~/Maildir /tmp/.x",
        "srm -r ~/.thunderbird/abcd.default/ImapMail",
        "wipe -f ~/Library/Mail/V10/MailData/Envelope\\ Index",
        "rm -rf \"/Users/eve/Library/Mail\"",
        "for f in /var/mail/*; do\n  rm \"$f\"\ndone",
        "BOX=/var/mail/alice; rm $BOX",
        "rm ~alice/mbox",
        "sed -i '/^From /,$d' /var/mail/alice",
    ],
    "shell_mail_client_spool": ["mail -f /var/mail/carol", "mutt -f ~/mbox", "alpine -f INBOX"],
    "shell_mail_client_delete": [
        "echo 'd *' | mail -f /var/mail/carol",
        "printf 'd 1-20\\nq\\n' | mailx",
        "mail -f /var/mail/bob <<EOF\nd *\nq\nEOF",
        "s-nail -f ~/mbox <<< 'delete 1-$'",
        "mutt -f /var/mail/bob -e 'push D~A<enter>qy'",
    ],
    "shell_mail_dovecot_expunge": [
        "doveadm expunge -u bob mailbox INBOX all",
        "sudo doveadm flags add -u bob '\\Deleted' mailbox INBOX all",
        "doveadm mailbox delete -u bob Archive",
    ],
    "shell_mail_osascript_delete": [
        "osascript -e 'tell application \"Mail\" to delete every message of inbox'",
        "osascript <<EOF\ntell application \"Mail\"\n  delete (every message of mailbox \"INBOX\")\n"
        "end tell\nEOF",
    ],
    "shell_mail_envelope_index_modified": [
        "sqlite3 ~/Library/Mail/V10/MailData/Envelope\\ Index 'DELETE FROM messages WHERE ROWID > 5'",
        "echo 'update messages set deleted=1;' | sqlite3 'Envelope Index'",
    ],
    "shell_history_disabled": [
        "unset HISTFILE", "export HISTFILE=/dev/null", "HISTSIZE=0", "export HISTFILESIZE=0",
        "set +o history", "SAVEHIST=0", "kill -9 $$", "fish --private",
    ],
    "shell_history_cleared": ["history -c", "history -cw", "history -d 42", "history clear"],
    "shell_history_filtered": ["export HISTCONTROL=ignorespace", "HISTIGNORE='*'"],
    "shell_history_file_removed": [
        "shred -u ~/.bash_history", "ln -sf /dev/null ~/.bash_history", "rm -f $HISTFILE",
        "cat /dev/null > ~/.zsh_history", "truncate -s0 /root/.bash_history",
    ],
}

NEGATIVES = {
    "shell_mail_file_removed": [
        "rm /tmp/mail.log", "grep d /var/mail/alice", "ls -la /var/mail", "cat /var/mail/alice > /tmp/x",
        "cp /var/mail/alice /tmp/alice.bak", "mv ~/Maildir/new/1 ~/Maildir/cur/", "find /var/mail -name x",
        "echo rm /var/mail/x", "tail -n 50 /var/log/mail.log", "rm ~/mbox.tgz", "rm -rf ~/projects/mailer",
    ],
    "shell_mail_client_spool": ["mail", "mailq", "mail bob@example.org < report.txt"],
    "shell_mail_client_delete": [
        "echo 'report attached' | mail -s done bob@example.org", "mail -f /var/mail/carol",
        "echo d | grep d", "mutt -e 'set sort=date'",
    ],
    "shell_mail_dovecot_expunge": ["doveadm search -u bob mailbox INBOX all",
                                   "doveadm flags add -u bob '\\Seen' all"],
    "shell_mail_osascript_delete": ["osascript -e 'tell application \"Mail\" to check for new mail'",
                                    "osascript -e 'tell application \"Finder\" to delete file \"x\"'"],
    "shell_mail_envelope_index_modified": [
        "sqlite3 ~/Library/Mail/V10/MailData/Envelope\\ Index 'SELECT count(*) FROM messages'",
        "sqlite3 app.db 'DELETE FROM cache'",
    ],
    "shell_history_disabled": ["echo $HISTFILE", "HISTSIZE=10000", "set -o history", "kill -9 1234",
                               "unset PROMPT_COMMAND"],
    "shell_history_cleared": ["history", "history | grep ssh", "history 20"],
    "shell_history_filtered": ["export HISTCONTROL=ignoredups", "HISTSIZE=5000"],
    "shell_history_file_removed": ["cat ~/.bash_history", "grep ssh ~/.bash_history", "rm ~/.bashrc.bak",
                                   "cp ~/.bash_history /tmp/h"],
}


@pytest.mark.parametrize(("rule", "command"), [(r, c) for r, cs in POSITIVES.items() for c in cs])
def test_rule_fires(rule: str, command: str):
    assert rule in _hits(command)


@pytest.mark.parametrize(("rule", "command"), [(r, c) for r, cs in NEGATIVES.items() for c in cs])
def test_rule_does_not_fire_on_look_alike(rule: str, command: str):
    assert rule not in _hits(command)


#: Rules that match what parsers/targets.py learnt about the command's target, not its text.
STATE_RULES = {
    "shell_mail_reader_spool_gone": ("spool_state", ["missing", "empty", "deleted"], ["present", None]),
}


@pytest.mark.parametrize("rule", sorted(STATE_RULES))
def test_state_rule_fires_on_its_states_only(rule: str):
    field, positives, negatives = STATE_RULES[rule]
    for state in positives:
        assert rule in _hits("mail", **{field: state}), state
    for state in negatives:
        assert rule not in _hits("mail", **({field: state} if state else {})), state


def test_every_shell_rule_has_a_positive_and_a_negative():
    ids = {r.id for r in default_engine().rules if r.id.startswith("shell_")}
    assert ids == set(POSITIVES) | set(STATE_RULES)
    assert set(POSITIVES) == set(NEGATIVES)


def test_cwd_from_the_history_and_from_the_same_line():
    assert "shell_mail_file_removed" in _hits("rm carol", cwd="/var/mail")
    assert "shell_mail_file_removed" in _hits("cd /var/spool/mail && rm -f bob")
    assert "shell_mail_file_removed" not in _hits("rm carol", cwd="/tmp")


def test_shell_rules_leave_powershell_to_the_powershell_rules():
    # PowerShell history is matched by the powershell_any rules (aliases, obfuscation); the
    # POSIX shell rules must not double-tag it.
    for command in ("rm C:\\Users\\bob\\AppData\\Local\\Comms\\Unistore\\data -Recurse", "history -c",
                    "rm $MAIL"):
        assert not {h for h in _hits(command, "shell:powershell:command") if h.startswith("shell_")}


def test_tags_carry_rule_and_technique():
    record = Record(data_type="shell:bash:command", message="unset HISTFILE", parser="test", order=0,
                    provenance=Provenance(bundle_path=None, source_path="/x", sha256=None),
                    attributes={"command": "unset HISTFILE"})
    tagged = default_engine().tag(record)
    assert tagged.tags == ("T1070.003", "shell_history_disabled")
    assert tagged.attributes["severity"] == "high"
