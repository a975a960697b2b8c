"""The one rule engine: shell histories, event logs and file-system records share it.

Rules are data (``*.yaml`` beside this module). A rule names the record types it applies to and a
match: ``command_any`` (parsed shell commands: programs, options, path classes, redirections) or
``fields`` (attribute equality). A matching record gets the rule id and the ATT&CK technique in
its tags, plus a human-readable ``rule_hits`` attribute.
"""

from __future__ import annotations

import dataclasses
import functools
import posixpath
import re
from dataclasses import dataclass
from importlib import resources
from typing import Any

from collector.yamlfile import load_yaml
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
    #: The technique's classic name where ATT&CK renamed it (e.g. "Clear Mailbox Data").
    technique_classic: str = ""

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
        #: id(rule) -> words one of which a command line must contain to match it (None: no filter).
        self._needles: dict[int, tuple[str, ...] | None] = {}
        #: data_type -> the rules that look at it (rules are matched only against their types).
        self._by_type: dict[str, list[Rule]] = {}

    # -- matching helpers -------------------------------------------------------------------------
    def in_class(self, path: str, class_name: str, cwd: str | None = None, home: str | None = None) -> bool:
        """Whether ``path`` (as typed, or resolved against ``cwd``/``home``) is in a path class."""
        return self._in_class(path, class_name, cwd, home)

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
            if "xargs" in command.wrappers:  # `find /var/mail | xargs rm`: piped words are operands
                operands = operands + [a for a in command.piped_args if not a.startswith("-")]
            if not any(self._in_class(a, spec["path_class"], cwd, home)
                       for a in operands if a not in skip):
                return False
        if "redirect_class" in spec:
            ops = set(spec.get("redirect_ops", (">",)))
            if not any(op in ops and self._in_class(target, spec["redirect_class"], cwd, home)
                       for op, target in command.redirects):
                return False
        return self._shell_extras_match(spec, command, cwd, home)

    def _shell_extras_match(self, spec: dict[str, Any], command: SimpleCommand, cwd: str | None,
                            home: str | None) -> bool:
        """The command_any keys of the shell-history rules (see parsers/rules/shell_*.yaml).

        ``args_regex`` (every regex matches some argument), ``args_text_regex`` (the arguments
        joined by spaces), ``stdin_regex`` (here-document, here-string or echo/printf piped in),
        ``assigns`` (``NAME: regex`` for ``NAME=value``, ``export NAME=value``), ``find_exec``
        (``find ... -exec <program>``) and ``move_out_of`` (``mv`` from a path class to outside it).
        """
        if "args_regex" in spec and not all(any(re.search(p, a) for a in command.args)
                                            for p in spec["args_regex"]):
            return False
        if "args_text_regex" in spec and not re.search(spec["args_text_regex"], " ".join(command.args)):
            return False
        if "stdin_regex" in spec and not (command.stdin and re.search(spec["stdin_regex"], command.stdin)):
            return False
        assigns = spec.get("assigns")
        if assigns is not None and not any(name in assigns and re.fullmatch(assigns[name], value)
                                           for name, value in command.assignments):
            return False
        if "find_exec" in spec:
            args = command.args
            if not any(a in ("-exec", "-execdir", "-ok", "-okdir") and i + 1 < len(args)
                       and posixpath.basename(args[i + 1]) in spec["find_exec"]
                       for i, a in enumerate(args)):
                return False
        if "move_out_of" in spec:
            paths = [a for a in command.args if not a.startswith("-")]
            target = next((a[len("--target-directory="):] for a in command.args
                           if a.startswith("--target-directory=")), None)
            if "-t" in command.args and command.args.index("-t") + 1 < len(command.args):
                target = command.args[command.args.index("-t") + 1]
                paths.remove(target)
            elif target is None and len(paths) >= 2:
                target = paths.pop()
            store = spec["move_out_of"]
            if target is None or self._in_class(target, store, cwd, home) or not any(
                    self._in_class(p, store, cwd, home) for p in paths):
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
            needles = self._needles.get(id(rule), ())
            if needles == ():
                needles = self._needles[id(rule)] = _command_needles(match["command_any"])
            if needles is not None and not any(n in _unquoted(command_text) for n in needles):
                return False  # cheap pre-filter: no program of the rule is named at all
            cwd = record.attributes.get("cwd")
            home = record.attributes.get("home")
            matched = False
            for command in _parsed(command_text):
                if any(self._command_matches(spec, command, cwd, home) for spec in match["command_any"]):
                    matched = True
                    break
                if command.program == "cd":  # `cd /var/mail; rm carol`
                    target = command.args[-1] if command.args else home
                    cwd = resolve_path(target, cwd, home) if target and target != "-" else None
                    cwd = cwd if cwd and cwd.startswith("/") else None
            if not matched:
                return False
        if "powershell_any" in match:  # PowerShell/cmd text: script blocks, cmdlets, command lines
            from parsers.rules import powershell

            if not powershell.matches(match["powershell_any"], record.attributes, self._classes):
                return False
        return True

    # -- public -----------------------------------------------------------------------------------
    def applicable(self, data_type: str) -> list[Rule]:
        """The rules that look at records of ``data_type`` (computed once per type)."""
        rules = self._by_type.get(data_type)
        if rules is None:
            rules = self._by_type[data_type] = [r for r in self.rules if r.applies_to(data_type)]
        return rules

    def hits(self, record: Record) -> list[Rule]:
        """The rules that ``record`` matches, in rule order."""
        applicable = self._by_type.get(record.data_type)
        if applicable is None:
            applicable = self.applicable(record.data_type)
        return [r for r in applicable if self._matches(r, record)] if applicable else []

    def tag(self, record: Record) -> Record:
        """Return ``record`` with the ids and techniques of every matching rule in its tags."""
        applicable = self._by_type.get(record.data_type)
        if applicable is None:
            applicable = self.applicable(record.data_type)
        if not applicable:  # most records (a System log's service events): no rule looks at them
            return record
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


_UNQUOTE = str.maketrans("", "", "'\"\\")


@functools.lru_cache(maxsize=256)
def _unquoted(text: str) -> str:
    """``text`` without quotes and backslashes (so that ``r''m`` still names ``rm``)."""
    return text.translate(_UNQUOTE) if ("'" in text or '"' in text or "\\" in text) else text


def _command_needles(specs: list[dict[str, Any]]) -> tuple[str, ...] | None:
    """Substrings a command line must contain for one of ``specs`` to match, or None."""
    needles: set[str] = set()
    for spec in specs:
        if spec.get("programs"):
            needles.update(spec["programs"])
        elif "assigns" in spec:
            needles.add("=")
        elif "redirect_class" in spec:
            needles.add(">")
        else:
            return None
    return tuple(sorted(needles))


@functools.lru_cache(maxsize=4096)
def _parsed(command_text: str) -> tuple[SimpleCommand, ...]:
    """Parsed commands of a line (cached: several rules look at the same line)."""
    return tuple(parse_command_line(command_text))


def load_rules() -> tuple[list[Rule], dict[str, list[str]]]:
    """Read every rule file and the path classes shipped beside this module."""
    folder = resources.files("parsers.rules")
    path_classes = load_yaml((folder / "paths.yaml").read_text(encoding="utf-8"))
    rules: list[Rule] = []
    for item in sorted(folder.iterdir(), key=lambda p: p.name):
        if not item.name.endswith(".yaml") or item.name == "paths.yaml":
            continue
        data = load_yaml(item.read_text(encoding="utf-8")) or {}
        for raw in data.get("rules", ()):
            rules.append(Rule(id=raw["id"], title=raw["title"], technique=raw["technique"],
                              technique_name=raw.get("technique_name", ""),
                              severity=raw.get("severity", "medium"),
                              data_types=tuple(raw["data_types"]), match=raw["match"],
                              technique_classic=raw.get("technique_classic", "")))
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
