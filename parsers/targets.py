"""What mail object a record is about, and what the collection found of that object.

A shell command names paths; a file-system record is a path; a message lives in a mailbox; an
Exchange cmdlet names an identity. Resolving these "targets" lets the parse stage put a command
next to the collected state of the file it touched (empty now, deleted inode, written at the
same minute), and lets the findings report group evidence into one story per object.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from collector.timeutil import iso_utc, parse_iso
from parsers.record import Record
from parsers.rules.engine import default_engine
from parsers.shell_command import parse_command_line, resolve_path

_OBJECT_ATTRIBUTES = ("path", "mailbox", "identity", "Identity", "mailbox_identity", "target_filename",
                      "TargetFilename", "object_name", "ObjectName", "file_name")
#: A file written or deleted this close to a command is reported as matching it.
NEAR_US = 5 * 60 * 1_000_000
#: Mail readers that open the user's spool when run without ``-f FILE`` (and without recipients,
#: which would make them send mail instead).
SPOOL_READERS = frozenset({"mail", "mailx", "Mail", "nail", "s-nail", "bsd-mailx", "heirloom-mailx",
                           "mutt", "neomutt"})
#: Where the spool of user USER is (``/var/spool/mail`` is often a link to ``/var/mail``).
SPOOL_DIRS = ("/var/mail", "/var/spool/mail")
#: The artifact whose collection looked for spools (absence from the manifest then means missing).
SPOOL_ARTIFACT = "LinuxMailSpools"
#: Options of the mailx family and mutt that take a value (so that value is not a recipient).
_VALUE_OPTIONS = frozenset({"-s", "-c", "-b", "-r", "-a", "-A", "-q", "-S", "-u", "-e", "-F", "-H",
                            "-i", "-m", "-T", "-X", "-Y", "-C", "-L", "-M", "-O"})


def record_targets(record: dict[str, Any]) -> list[str]:
    """The mail objects a record (as a ``records.jsonl`` dict) is about."""
    attributes = record.get("attributes") or {}
    data_type = record["data_type"]
    if data_type.startswith("shell:") and isinstance(attributes.get("command"), str):
        spool = attributes.get("spool_path")
        engine = default_engine()
        cwd, home = attributes.get("cwd"), attributes.get("home")
        dialect = "powershell" if data_type.startswith("shell:powershell") else "posix"
        found = set()
        for command in parse_command_line(attributes["command"], dialect=dialect):
            words = [a for a in command.args if not a.startswith("-")]
            words += [target for _, target in command.redirects]
            words += [a.split("=", 1)[1] for a in command.args if a.startswith("of=")]
            for word in words:
                resolved = resolve_path(word, cwd, home)
                if engine.in_class(resolved, "mail_store", cwd, home):
                    found.add(resolved)
        if isinstance(spool, str) and spool:
            found.add(spool)  # a mail reader run without -f opened the user's spool
        return sorted(found)
    if data_type.startswith("mail:"):
        return [attributes.get("mailbox") or record["provenance"]["source_path"]]
    for key in _OBJECT_ATTRIBUTES:
        value = attributes.get(key)
        if isinstance(value, str) and value:
            return [value]
    return []


class StateIndex:
    """The collected state of every path in a bundle's manifest, by path."""

    def __init__(self, manifest: list[dict[str, Any]]) -> None:
        self._by_path: dict[str, list[dict[str, Any]]] = {}
        #: Whether collection looked for spools at all (else a spool's absence proves nothing).
        self.spools_searched = any(line.get("artifact") == SPOOL_ARTIFACT for line in manifest)
        for line in manifest:
            if (line.get("kind") in ("file", "symlink", None) and line.get("outcome") != "missing") or \
                    line.get("deleted"):
                self._by_path.setdefault(line["source_path"], []).append(line)

    def describe(self, path: str, when: int | None) -> list[str]:
        """Human-readable states of ``path`` (live and deleted copies), noting times near ``when``."""
        states = []
        for line in self._by_path.get(path, ()):
            parts = ["deleted" if line.get("deleted") else line.get("outcome") or "?"]
            if line.get("inode") is not None:
                parts.append(f"inode {line['inode']}")
            if line.get("size") is not None:
                parts.append(f"{line['size']} bytes")
            for key, label in (("dtime", "deleted"), ("mtime", "last written")):
                if line.get(key):
                    moment = parse_iso(line[key])
                    near = when is not None and abs(moment - when) <= NEAR_US
                    note = " (matches the command time)" if near else ""
                    parts.append(f"{label} {iso_utc(moment)}{note}")
            states.append(f"{path}: " + ", ".join(parts))
        return states


    def spool_state(self, user: str) -> tuple[str, str, str] | None:
        """(state, path, description) of ``user``'s spool: present, empty, deleted or missing.

        None when the bundle was collected without looking for spools.
        """
        deleted: tuple[str, dict[str, Any]] | None = None
        for folder in SPOOL_DIRS:
            path = f"{folder}/{user}"
            for line in self._by_path.get(path, ()):
                if line.get("kind") == "symlink":
                    continue
                if line.get("deleted"):
                    deleted = deleted or (path, line)
                    continue
                size = line.get("size") or 0
                state = "present" if size else "empty"
                written = f", last written {iso_utc(parse_iso(line['mtime']))}" if line.get("mtime") else ""
                return state, path, f"{state}, {size} bytes{written}"
        if deleted is not None:
            path, line = deleted
            parts = ["deleted"]
            if line.get("inode") is not None:
                parts.append(f"inode {line['inode']}")
            if line.get("dtime"):
                parts.append(f"deleted {iso_utc(parse_iso(line['dtime']))}")
            return "deleted", path, ", ".join(parts)
        if not self.spools_searched:
            return None
        return "missing", f"{SPOOL_DIRS[0]}/{user}", (
            f"missing: no file {' or '.join(f'{d}/{user}' for d in SPOOL_DIRS)} was found")


def spool_reader_user(command_text: str, user: str | None) -> str | None:
    """The user whose spool a mail-reader command line opens, or None.

    ``mail``, ``mailx``, ``s-nail`` and ``mutt`` without ``-f FILE`` and without recipients read
    the spool of the user running them (``-u USER``: that user's spool).
    """
    if not any(name in command_text for name in ("mail", "Mail", "mutt")):
        return None
    for command in parse_command_line(command_text):
        if command.program not in SPOOL_READERS:
            continue
        args = command.args
        if any(a == "-f" or (a.startswith("-") and not a.startswith("--") and "f" in a[1:]
                             and a[1:].isalpha() and a not in _VALUE_OPTIONS) for a in args):
            continue  # reads the named file (or ~/mbox): rule shell_mail_client_spool's case
        owner, operands, skip = user, [], False
        for index, arg in enumerate(args):
            if skip:
                skip = False
                continue
            if arg in _VALUE_OPTIONS:
                skip = True
                if arg == "-u" and index + 1 < len(args):
                    owner = args[index + 1]
                continue
            if not arg.startswith("-"):
                operands.append(arg)
        if not operands and owner:
            return owner
    return None


def annotate_spool(record: Record, index: StateIndex | None) -> Record:
    """A mail-reader command with the collected state of the spool it opened, as attributes.

    ``spool_state`` (present, empty, deleted, missing) is what rule
    ``shell_mail_reader_spool_gone`` (rules/mail_reader_spool.yaml) matches; a spool that is not
    there any more is also said in the record's message.
    """
    command = record.attributes.get("command")
    if index is None or not record.data_type.startswith("shell:") or not isinstance(command, str):
        return record
    user = spool_reader_user(command, record.user)
    found = index.spool_state(user) if user else None
    if found is None:
        return record
    state, path, detail = found
    attributes = {**record.attributes, "spool_path": path, "spool_state": state, "spool_detail": detail}
    message = record.message
    if state != "present":
        message += f" [reads the spool of {user}; {path}: {detail}]"
    return dataclasses.replace(record, attributes=attributes, message=message)


def tag_with_state(record: Record, index: StateIndex | None) -> Record:
    """The parse stage's tagging of one record: the spool a mail reader opened, the rules, then the
    collected state of the mail files a tagged shell command touched (``target_state``)."""
    if index is not None and record.data_type.startswith("shell:"):
        record = annotate_spool(record, index)
    record = default_engine().tag(record)
    if record.tags and index is not None and record.data_type.startswith("shell:"):
        states = link_state(record.to_dict(), index)
        if states:
            record = dataclasses.replace(record, attributes={**record.attributes, "target_state": states})
    return record


def link_state(record: dict[str, Any], index: StateIndex) -> list[str]:
    """States of the collected files a tagged record's command touched (empty when none)."""
    times = list((record.get("timestamps") or {}).values())
    when = min(times) if times else None
    states: list[str] = []
    for target in record_targets(record):
        states += index.describe(target, when)
    return states
