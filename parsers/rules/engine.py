"""The one rule engine: shell histories, event logs and file-system records share it.

Rules are data (``*.yaml`` beside this module). A rule names the record types it applies to and a
match: ``command_any`` (parsed shell commands: programs, options, path classes, redirections) or
``fields`` (attribute equality). A matching record gets the rule id and the ATT&CK technique in
its tags, plus a human-readable ``rule_hits`` attribute.
"""

from __future__ import annotations

import dataclasses
import functools
import re
from dataclasses import dataclass
from importlib import resources
from typing import Any

import yaml

from parsers.record import Record
from parsers.shell_command import SimpleCommand, parse_command_line, resolve_path

SEVERITY_RANK = {"informational": 0, "low": 1, "medium": 2, "high": 3, "critical": 4}


@dataclass(frozen=True)
class Rule:
    """One deletion-evidence rule."""

    id: str
    title: str
    technique: str
    technique_name: str
    severity: str
    data_types: tuple[str, ...]
    match: dict[str, Any]

    def applies_to(self, data_type: str) -> bool:
        """Whether the rule looks at records of ``data_type`` (prefix match)."""
        return any(data_type.startswith(prefix) for prefix in self.data_types)


def _has_option(args: list[str], option: str) -> bool:
    letter = option.lstrip("-")
    for arg in args:
        if arg == "--":
            return False
        if arg == option:
            return True
        if len(letter) == 1 and arg.startswith("-") and not arg.startswith("--") and letter in arg[1:]:
            return True
    return False


class RuleEngine:
    """Applies a set of rules to records."""

    def __init__(self, rules: list[Rule], path_classes: dict[str, list[str]]) -> None:
        self.rules = rules
        self._classes = {name: [re.compile(p, re.IGNORECASE) for p in patterns]
                         for name, patterns in path_classes.items()}

    # -- matching helpers -------------------------------------------------------------------------
    def _in_class(self, path: str, class_name: str, cwd: str | None, home: str | None) -> bool:
        candidates = {path, resolve_path(path, cwd, home)}
        return any(regex.search(c) for regex in self._classes.get(class_name, ()) for c in candidates)

    def _command_matches(self, spec: dict[str, Any], command: SimpleCommand, cwd: str | None,
                         home: str | None) -> bool:
        programs = spec.get("programs")
        if programs is not None and command.program not in programs:
            return False
        if "options_any" in spec and not any(_has_option(command.args, o) for o in spec["options_any"]):
            return False
        operands = [a for a in command.args if not a.startswith("-") or a == "-"]
        if "args_include" in spec and not all(a in command.args for a in spec["args_include"]):
            return False
        if "arg_prefix" in spec:
            prefix = spec["arg_prefix"]
            operands = [a[len(prefix):] for a in command.args if a.startswith(prefix)]
            if not operands:
                return False
        if "path_class" in spec:
            skip = set(spec.get("args_include", ()))
            if not any(self._in_class(a, spec["path_class"], cwd, home)
                       for a in operands if a not in skip):
                return False
        if "redirect_class" in spec:
            ops = set(spec.get("redirect_ops", (">",)))
            if not any(op in ops and self._in_class(target, spec["redirect_class"], cwd, home)
                       for op, target in command.redirects):
                return False
        return True

    def _matches(self, rule: Rule, record: Record) -> bool:
        match = rule.match
        if "fields" in match:
            for key, expected in match["fields"].items():
                if record.attributes.get(key) != expected:
                    return False
        if "fields_regex" in match:  # attribute -> regular expression (case-insensitive search)
            for key, pattern in match["fields_regex"].items():
                value = record.attributes.get(key)
                if not isinstance(value, str) or not _regex(pattern).search(value):
                    return False
        if "fields_any" in match:  # attribute -> list of accepted values
            for key, accepted in match["fields_any"].items():
                if record.attributes.get(key) not in accepted:
                    return False
        if "command_any" in match:
            command_text = record.attributes.get("command")
            if not isinstance(command_text, str):
                return False
            cwd = record.attributes.get("cwd")
            home = record.attributes.get("home")
            commands = _parsed(command_text)
            if not any(self._command_matches(spec, c, cwd, home)
                       for spec in match["command_any"] for c in commands):
                return False
        return True

    # -- public -----------------------------------------------------------------------------------
    def hits(self, record: Record) -> list[Rule]:
        """The rules that ``record`` matches, in rule order."""
        return [r for r in self.rules if r.applies_to(record.data_type) and self._matches(r, record)]

    def tag(self, record: Record) -> Record:
        """Return ``record`` with the ids and techniques of every matching rule in its tags."""
        hits = list({rule.id: rule for rule in reversed(self.hits(record))}.values())[::-1]
        if not hits:
            return record
        tags = [t for rule in hits for t in (rule.id, rule.technique)]
        attributes = dict(record.attributes)
        attributes["rule_hits"] = [f"{r.id} ({r.technique}, {r.severity}): {r.title}" for r in hits]
        attributes["severity"] = max((r.severity for r in hits), key=lambda s: SEVERITY_RANK.get(s, 0))
        return dataclasses.replace(record, attributes=attributes).with_tags(tags)


@functools.lru_cache(maxsize=1024)
def _regex(pattern: str) -> re.Pattern[str]:
    return re.compile(pattern, re.IGNORECASE)


@functools.lru_cache(maxsize=4096)
def _parsed_cached(command_text: str) -> tuple[SimpleCommand, ...]:
    return tuple(parse_command_line(command_text))


def _parsed(command_text: str) -> tuple[SimpleCommand, ...]:
    return _parsed_cached(command_text)


def load_rules() -> tuple[list[Rule], dict[str, list[str]]]:
    """Read every rule file and the path classes shipped beside this module."""
    folder = resources.files("parsers.rules")
    path_classes = yaml.safe_load((folder / "paths.yaml").read_text(encoding="utf-8"))
    rules: list[Rule] = []
    for item in sorted(folder.iterdir(), key=lambda p: p.name):
        if not item.name.endswith(".yaml") or item.name == "paths.yaml":
            continue
        data = yaml.safe_load(item.read_text(encoding="utf-8")) or {}
        for raw in data.get("rules", ()):
            rules.append(Rule(id=raw["id"], title=raw["title"], technique=raw["technique"],
                              technique_name=raw.get("technique_name", ""),
                              severity=raw.get("severity", "medium"),
                              data_types=tuple(raw["data_types"]), match=raw["match"]))
    # One rule id may be defined in several files (one per source: EVTX, Exchange logs, the M365
    # audit log...) so that the same act gets the same id wherever it is seen; the definitions
    # must then agree on what the rule is.
    by_id: dict[str, Rule] = {}
    for rule in rules:
        first = by_id.setdefault(rule.id, rule)
        if (first.technique, first.severity) != (rule.technique, rule.severity):
            raise ValueError(f"rule {rule.id} is defined twice with different technique/severity")
    return rules, path_classes


@functools.lru_cache(maxsize=1)
def default_engine() -> RuleEngine:
    """The engine over the bundled rules (loaded once per process)."""
    rules, classes = load_rules()
    return RuleEngine(rules, classes)
