"""What mail object a record is about, and what the collection found of that object.

A shell command names paths; a file-system record is a path; a message lives in a mailbox; an
Exchange cmdlet names an identity. Resolving these "targets" lets the parse stage put a command
next to the collected state of the file it touched (empty now, deleted inode, written at the
same minute), and lets the findings report group evidence into one story per object.
"""

from __future__ import annotations

from typing import Any

from collector.timeutil import iso_utc, parse_iso
from parsers.rules.engine import default_engine
from parsers.shell_command import parse_command_line, resolve_path

_OBJECT_ATTRIBUTES = ("path", "mailbox", "identity", "Identity", "mailbox_identity", "target_filename",
                      "TargetFilename", "object_name", "ObjectName", "file_name")
#: A file written or deleted this close to a command is reported as matching it.
NEAR_US = 5 * 60 * 1_000_000


def record_targets(record: dict[str, Any]) -> list[str]:
    """The mail objects a record (as a ``records.jsonl`` dict) is about."""
    attributes = record.get("attributes") or {}
    data_type = record["data_type"]
    if data_type.startswith("shell:") and isinstance(attributes.get("command"), str):
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


def link_state(record: dict[str, Any], index: StateIndex) -> list[str]:
    """States of the collected files a tagged record's command touched (empty when none)."""
    times = list((record.get("timestamps") or {}).values())
    when = min(times) if times else None
    states: list[str] = []
    for target in record_targets(record):
        states += index.describe(target, when)
    return states
