"""PowerShell (and cmd.exe) command text → invocations, and the rule matcher over them.

Event logs and PSReadLine history carry what was *typed*, and attackers type it obfuscated:
``Re`move-Mail`boxExportRequest``, ``& ('Remove-Mail'+'boxExportRequest')``,
``("{1}{0}" -f 'boxExportRequest','Remove-Mail')``, ``ri``/``del`` aliases, ``-DeleteCont`` for
``-DeleteContent``, ``c^m^d /c rd``, ``powershell -enc <base64>``. Grepping the raw text misses
these and also fires on comments or on a cmdlet name inside a string. So the text is tokenised the
way PowerShell reads it (quotes, ``(...)``/``{...}`` nesting, ``;``/``|``/newline statements),
constant string expressions are folded, aliases and unambiguous parameter prefixes are resolved,
and wrappers (``iex``, ``powershell -c/-enc``, ``cmd /c``, ``Start-Process``) are unwrapped. Rules
then match on cmdlet names, parameters, values and path classes, all case-insensitively.

The rule engine calls :func:`matches` for the ``powershell_any`` match key (see the ``*.yaml``
rule files beside this module for the spec keys).
"""

from __future__ import annotations

import base64
import binascii
import functools
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from importlib import resources
from typing import Any

from collector.yamlfile import load_yaml

#: Attributes whose text is PowerShell/cmd to be parsed, in this order.
TEXT_ATTRIBUTES = ("script_block", "command")
MAX_DEPTH = 6
MAX_NESTING = 40
_FALSE = {"$false", "false", "0", "$null", "no", "off"}
_TRUE = {"$true", "true", "1", "yes", "on"}
_QUOTES = str.maketrans({"\u2018": "'", "\u2019": "'", "\u201a": "'", "\u201b": "'",
                         "\u201c": '"', "\u201d": '"', "\u201e": '"', "\u2013": "-", "\u2014": "-"})
#: Strings are written as "unrolled loops" (``'[^']*(?:''[^']*)*'``), not ``'(?:[^']|'')*'``: the
#: same tokens, but one step per run of plain characters instead of one per character, which makes
#: a 2 MB script block (Invoke-Mimikatz) lex in milliseconds instead of a second.
_TOKEN = re.compile(r"""
    (?P<bcomment><\#.*?(?:\#>|\Z))
  | (?P<comment>\#[^\r\n]*)
  | (?P<nl>`?\r?\n)
  | (?P<ws>[ \t\f\v\u00a0]+|`[ \t])
  | (?P<sq>'[^']*(?:''[^']*)*(?:'|\Z))
  | (?P<dq>"[^"`]*(?:(?:`.|"")[^"`]*)*(?:"|\Z))
  | (?P<open>[$@]?\(|[$@]?\{)
  | (?P<close>[)}])
  | (?P<sep>&&|\|\||[;|])
  | (?P<word>[^\s'"(){};|\#][^\s'"(){};|]*|\#)
""", re.DOTALL | re.VERBOSE)
_PARAM = re.compile(r"^-([A-Za-z_?][\w?-]*)(:?)(.*)$", re.DOTALL)
_VAR = re.compile(r"^\$(?:\{([^}]+)\}|([\w:]+))$")
_DQ_VAR = re.compile(r"\$(?:\{([^}]+)\}|(\w+))")
_FORMAT_SLOT = re.compile(r"\{(\d+)(?:,[^}]*)?(?::[^}]*)?\}")
_CLOSERS = {"(": ")", "{": "}"}
OP = "\0op"
_PROGRAM = re.compile(r"\.(exe|com|bat|cmd)$", re.IGNORECASE)
_BINARY = {OP + op for op in ("-f", "-join", "-replace", "-ireplace", "-creplace")}
_BARE_PIECE = re.compile(r"\[char\](\d+)|\$([\w:]+)\[(\d+)\]|\$\{([^}]+)\}|\$([\w:]+)"
                         r"|(-(?:f|join|replace|ireplace|creplace))(?![\w-])|([+,])", re.IGNORECASE)
#: Automatic variables whose letters obfuscators index into (``$ShellId[1]+$ShellId[13]+'x'`` = iex).
AUTOMATIC_VARIABLES = {"shellid": "Microsoft.PowerShell",
                       "pshome": "C:\\Windows\\System32\\WindowsPowerShell\\v1.0",
                       "env:comspec": "C:\\Windows\\system32\\cmd.exe",
                       "env:public": "C:\\Users\\Public"}


@dataclass(frozen=True)
class Atom:
    """One lexical piece: a bare word, a string (quotes removed) or a bracketed group."""

    kind: str
    value: str
    glued: bool
    inner: tuple[tuple[Atom, ...], ...] = ()


@dataclass(frozen=True)
class Invocation:
    """One command of a statement, after de-obfuscation."""

    name: str
    params: tuple[tuple[str, str | None], ...]
    args: tuple[str, ...]
    text: str
    #: Text of the pipeline stage feeding this command (``Get-ChildItem x | Remove-Item``).
    piped: str | None = None

    def values(self) -> list[str]:
        """Positional arguments, parameter values and piped input: where paths and targets are."""
        values = list(self.args) + [v for _, v in self.params if v is not None]
        return [*values, self.piped] if self.piped else values


@dataclass(frozen=True)
class Script:
    """Everything read out of one text: invocations and the normalised text."""

    invocations: tuple[Invocation, ...]
    text: str


# -- data: aliases and parameter names ------------------------------------------------------------
@functools.lru_cache(maxsize=1)
def _tables() -> tuple[dict[str, str], dict[str, dict[str, str]], dict[str, str]]:
    data = load_yaml((resources.files("parsers.rules") / "powershell_cmdlets.yaml")
                          .read_text(encoding="utf-8"))
    aliases = {k.lower(): v.lower() for k, v in data["aliases"].items()}
    common = _names(data["common_parameters"])
    params = {cmd.lower(): {**common, **_names(names)} for cmd, names in data["parameters"].items()}
    return aliases, params, common


def _names(entries: Iterable[Any]) -> dict[str, str]:
    """``["Name", {"Recurse": ["r"]}]`` → lookup of every name and alias to its canonical name."""
    out: dict[str, str] = {}
    for entry in entries:
        if isinstance(entry, dict):
            for name, aliases in entry.items():
                out[name.lower()] = name.lower()
                for alias in aliases or ():
                    out[str(alias).lower()] = name.lower()
        else:
            out[str(entry).lower()] = str(entry).lower()
    return out


def canonical_command(word: str) -> str:
    """Lower-case command name: module qualifier, directory and ``.exe`` dropped, alias resolved."""
    name = word.strip().strip("&").strip().lower().replace("^", "")
    name = re.split(r"[\\/]", name)[-1]
    if name.endswith(".exe"):
        name = name[:-4]
    aliases, _, _ = _tables()
    return aliases.get(name, name)


def resolve_parameter(command: str, typed: str) -> str | None:
    """PowerShell's parameter binding by name: exact, alias, or unambiguous prefix.

    Returns the canonical lower-case name, the typed name for a command without a parameter table,
    or ``None`` when the prefix is ambiguous (PowerShell refuses to run such a command).
    """
    typed = typed.lower()
    _, tables, _ = _tables()
    table = tables.get(command)
    if table is None:
        return typed
    if typed in table:
        return table[typed]
    targets = {target for name, target in table.items() if name.startswith(typed)}
    if len(targets) == 1:
        return targets.pop()
    return None if targets else typed


# -- tokenising ---------------------------------------------------------------------------------
def _unescape_dq(body: str) -> str:
    return re.sub(r"`(.)", lambda m: m.group(1), body.replace('""', '"'), flags=re.DOTALL)


def _lex(text: str) -> Iterator[tuple[str, str]]:
    for match in _TOKEN.finditer(text):
        yield match.lastgroup or "word", match.group()


def _parse_atoms(tokens: list[tuple[str, str]], pos: int, depth: int,
                 ) -> tuple[list[tuple[Atom, ...]], int]:
    """Statements (lists of atoms) until the closing bracket of this level."""
    statements: list[tuple[Atom, ...]] = []
    current: list[Atom] = []
    glued = False
    while pos < len(tokens):
        kind, text = tokens[pos]
        pos += 1
        if kind in ("ws", "comment", "bcomment"):
            glued = False
            continue
        if kind in ("nl", "sep"):
            if kind == "nl" and text.startswith("`"):  # line continuation
                glued = False
                continue
            if current:
                statements.append(tuple(current))
            # A pipeline stage remembers that it reads the previous stage (`'...' | iex`).
            current, glued = ([Atom("pipe", "|", False)] if text == "|" else []), False
            continue
        if kind == "close":
            if depth > 0:
                break
            glued = False
            continue
        if kind == "open":
            if depth >= MAX_NESTING:
                current.append(Atom("bare", text, glued))
                glued = True
                continue
            inner, pos = _parse_atoms(tokens, pos, depth + 1)
            current.append(Atom("group", text, glued, tuple(inner)))
            glued = True
            continue
        if kind == "sq":
            body = text[1:-1] if len(text) > 1 and text.endswith("'") else text[1:]
            current.append(Atom("str", body.replace("''", "'"), glued))
        elif kind == "dq":
            body = text[1:-1] if len(text) > 1 and text.endswith('"') else text[1:]
            current.append(Atom("dstr", _unescape_dq(body), glued))
        else:
            current.append(Atom("bare", text.replace("`", ""), glued))
        glued = True
    if current and current[-1].kind != "pipe":
        statements.append(tuple(current))
    return statements, pos


def _words(statement: tuple[Atom, ...]) -> list[list[Atom]]:
    words: list[list[Atom]] = []
    for atom in statement:
        if atom.glued and words:
            words[-1].append(atom)
        else:
            words.append([atom])
    return words


class _Reader:
    """Turns atoms into invocations, folding constants and tracking simple variables."""

    def __init__(self, depth: int = 0) -> None:
        self.depth = depth
        self.variables: dict[str, str] = {}
        self.invocations: list[Invocation] = []
        self.texts: list[str] = []
        #: Constant value of the previous pipeline stage, and of the stage piped into this one.
        self.previous: str | None = None
        self.previous_text: str | None = None
        self.piped_input: str | None = None
        self.piped_text: str | None = None

    # constant folding ---------------------------------------------------------------------------
    def _atom_value(self, atom: Atom, bracketed: bool = False) -> str:
        if atom.kind == "group":
            folded = self._fold_group(atom)
            if folded is not None:
                return f"{atom.value}'{folded}'{_CLOSERS[atom.value[-1]]}" if bracketed else folded
            opener = atom.value
            closer = _CLOSERS[opener[-1]]
            return opener + "; ".join(self._render(s) for s in atom.inner) + closer
        if atom.kind == "dstr":
            return _DQ_VAR.sub(lambda m: self.variables.get((m.group(1) or m.group(2)).lower(), m.group(0)),
                               atom.value)
        return atom.value

    def _render(self, statement: tuple[Atom, ...]) -> str:
        return " ".join(self.word_value(w) for w in _words(statement))

    def _fold_group(self, atom: Atom) -> str | None:
        values = self._fold_group_list(atom)
        return values[0] if values is not None and len(values) == 1 else None

    def _fold_group_list(self, atom: Atom) -> list[str] | None:
        if atom.value not in ("(", "$(", "@(") or len(atom.inner) != 1:
            return None
        items = self._fold_items(list(atom.inner[0]))
        return _evaluate_list(items) if items else None

    def _fold(self, atoms: list[Atom]) -> str | None:
        """Value of a constant string expression (``'a'+'b'``, ``'{1}{0}' -f 'b','a'``, ``-join``,
        ``-replace``, ``[char]39``, ``$ShellId[1]``)."""
        items = self._fold_items(atoms)
        return _evaluate(items) if items else None

    def _fold_items(self, atoms: list[Atom]) -> list[str] | None:
        items: list[str] = []
        for atom in atoms:
            if atom.kind in ("str", "dstr"):
                items.append(self._atom_value(atom))
            elif atom.kind == "group":
                folded = self._fold_group_list(atom)
                if folded is None:
                    return None
                for index, value in enumerate(folded):
                    items.extend([OP + ",", value] if index else [value])
            elif atom.kind == "bare":
                pieces = self._bare_items(atom.value)
                if pieces is None:
                    return None
                items.extend(pieces)
            else:
                return None
        return items

    def _bare_items(self, value: str) -> list[str] | None:
        """A bare word inside an expression as fold items (operators, ``[char]N``, variables)."""
        items: list[str] = []
        pos = 0
        for match in _BARE_PIECE.finditer(value):
            if match.start() != pos:
                return None
            pos = match.end()
            char, indexed, index, braced, plain, op, punct = match.groups()
            if char is not None:
                items.append(chr(int(char)) if int(char) < 0x110000 else "")
            elif indexed is not None:
                known = self._lookup(indexed)
                if known is None or int(index) >= len(known):
                    return None
                items.append(known[int(index)])
            elif braced is not None or plain is not None:
                known = self._lookup(braced or plain)
                if known is None:
                    return None
                items.append(known)
            else:
                items.append(OP + (op or punct).lower())
        return items if pos == len(value) else None

    def _lookup(self, name: str) -> str | None:
        name = name.lower()
        return self.variables.get(name, AUTOMATIC_VARIABLES.get(name))

    def _variable(self, word: str) -> str | None:
        match = _VAR.match(word)
        if not match:
            return None
        return self.variables.get((match.group(1) or match.group(2)).lower())

    def word_value(self, word: list[Atom]) -> str:
        if len(word) == 1:
            atom = word[0]
            if atom.kind == "bare" and atom.value.startswith("$"):
                return self._variable(atom.value) or atom.value
            return self._atom_value(atom)
        folded = self._fold(word) if any(a.kind != "bare" for a in word) else None
        if folded is not None:
            return folded
        return "".join(self._atom_value(a, bracketed=True) for a in word)

    # statements ---------------------------------------------------------------------------------
    def read(self, statements: list[tuple[Atom, ...]]) -> None:
        for statement in statements:
            self._statement(statement)
            previous, previous_text = self.previous, self.previous_text
            for atom in statement:
                if atom.kind == "group" and atom.inner:
                    self.read(list(atom.inner))
            self.previous, self.previous_text = previous, previous_text

    def _statement(self, statement: tuple[Atom, ...]) -> None:
        piped = statement[0].kind == "pipe"
        self.piped_input = self.previous if piped else None
        self.piped_text = self.previous_text if piped else None
        if piped:
            statement = statement[1:]
        self.previous = self._fold(list(statement))
        words = _words(statement)
        head = words[0][0] if words else None
        if head is not None and head.kind == "bare" and re.fullmatch(r"\$[\w:{}]+[-+*/]?=.*", head.value):
            # `$p="..."` typed without spaces: split into `$p`, `=`, value as if spaced.
            name, _, rest = head.value.partition("=")
            split = [[Atom("bare", name, False)], [Atom("bare", "=", False)]]
            remainder = ([Atom("bare", rest, False)] if rest else []) + words[0][1:]
            words = split + ([remainder] if remainder else []) + words[1:]
        values = [self.word_value(w) for w in words]
        self.texts.append(" ".join(values))
        self.previous_text = self.texts[-1]
        start = 0
        # `$x = 'value'` (also `$x = Remove-Item ...`): remember constants, then read the right side.
        while start + 1 < len(words) and words[start][0].kind == "bare" and \
                words[start][0].value.startswith("$") and \
                re.fullmatch(r"[-+*/]?=", values[start + 1]):
            match = _VAR.match(words[start][0].value) if len(words[start]) == 1 else None
            folded = self._fold([a for w in words[start + 2:] for a in w])
            if folded is not None and match:
                self.variables[(match.group(1) or match.group(2)).lower()] = folded
            start += 2
        if start >= len(words):
            return
        first = words[start]
        head = first[0]
        call = False
        if head.kind == "bare" and head.value in ("&", "."):
            if len(first) > 1:
                first = first[1:]
            elif start + 1 < len(words):
                start += 1
                first = words[start]
            call = True
        elif head.kind == "bare" and head.value.startswith("&") and len(head.value) > 1:
            first = [Atom("bare", head.value[1:], False), *first[1:]]
            call = True
        if not call and first[0].kind != "bare":
            # A Windows command line names its program in quotes: "C:\...\cmd.exe" /c ...
            if not (len(first) == 1 and first[0].kind in ("str", "dstr")
                    and _PROGRAM.search(first[0].value)):
                return
            call = True
        name_text = self.word_value(first)
        if not call and (not name_text or name_text[0] in "$[@0123456789-+'\"(" or name_text[0] == "."):
            return
        if not name_text:
            return
        name = canonical_command(name_text)
        self._invocation(name, words[start + 1:], " ".join(values[start:]))

    def _invocation(self, name: str, words: list[list[Atom]], text: str) -> None:
        params: list[tuple[str, str | None]] = []
        args: list[str] = []
        raw: list[str] = []
        i = 0
        while i < len(words):
            word = words[i]
            value = self.word_value(word)
            raw.append(value)
            match = _PARAM.match(value) if word[0].kind == "bare" and not re.match(r"^-\d", value) else None
            if match and not (name in ("cmd",) or name.endswith(".bat")):
                pname, colon, rest = match.groups()
                resolved = resolve_parameter(name, pname)
                pvalue: str | None = None
                if colon:
                    if rest:
                        pvalue = rest
                    elif i + 1 < len(words):
                        i += 1
                        pvalue = self.word_value(words[i])
                        raw.append(pvalue)
                elif i + 1 < len(words):
                    nxt = words[i + 1]
                    nvalue = self.word_value(nxt)
                    if not (nxt[0].kind == "bare" and _PARAM.match(nvalue) and not re.match(r"^-\d", nvalue)):
                        pvalue = nvalue
                        raw.append(nvalue)
                        i += 1
                params.append((resolved if resolved is not None else "?" + pname.lower(), pvalue))
            else:
                args.append(value)
            i += 1
        self.invocations.append(Invocation(name=name, params=tuple(params), args=tuple(args), text=text,
                                           piped=self.piped_text))
        self._unwrap(name, params, args, raw)

    def _nested(self, text: str | None) -> None:
        if not text or self.depth >= MAX_DEPTH:
            return
        inner = read_script(text, self.depth + 1)
        self.invocations.extend(inner.invocations)
        self.texts.append(inner.text)

    def _unwrap(self, name: str, params: list[tuple[str, str | None]], args: list[str],
                raw: list[str]) -> None:
        """Read the command text that wrappers run (``iex``, ``powershell``, ``cmd /c``, ...)."""
        if name == "invoke-expression":
            self._nested(_param(params, "command") or (args[0] if args else self.piped_input))
        elif name in ("cmd", "command"):
            for index, word in enumerate(raw):
                if word.lower() in ("/c", "/k", "/r") or word.lower().startswith(("/c ", "/k ")):
                    rest = raw[index + 1:]
                    if word.lower() not in ("/c", "/k", "/r"):
                        rest = [word[3:], *rest]
                    self._nested(" ".join(rest))
                    break
        elif name in ("powershell", "pwsh", "powershell_ise"):
            self._powershell_cli(raw)
        elif name == "start-process":
            target = _param(params, "filepath") or (args[0] if args else None)
            arguments = _param(params, "argumentlist") or (args[1] if len(args) > 1 else "")
            if target:
                self._nested(f"{target} {arguments}")
        elif name == "invoke-command":
            pass  # -ScriptBlock {...} groups are read as nested statements already

    def _powershell_cli(self, raw: list[str]) -> None:
        value_options = ("executionpolicy", "ep", "windowstyle", "version", "inputformat", "outputformat",
                         "configurationname", "psconsolefile", "settingsfile", "workingdirectory", "wd",
                         "custompipename", "file")
        i = 0
        while i < len(raw):
            word = raw[i]
            lower = word.lower().lstrip("/")
            if word.startswith(("-", "/")) and len(word) > 1:
                option = lower.lstrip("-")
                if "command".startswith(option) and option:
                    self._nested(" ".join(raw[i + 1:]))
                    return
                if (option and "encodedcommand".startswith(option)) or option in ("ec", "enc"):
                    if i + 1 < len(raw):
                        self._nested(decode_encoded_command(raw[i + 1]))
                    return
                if option and (option in ("w", "f", "v", "ex", "if", "of") or
                               any(o.startswith(option) and len(option) > 1 for o in value_options)):
                    i += 2
                    continue
                i += 1
                continue
            self._nested(" ".join(raw[i:]))
            return


def _format(template: str, args: list[str]) -> str:
    """PowerShell's ``-f``: ``{0}`` slots (alignment and format strings ignored)."""
    def slot(match: re.Match) -> str:
        index = int(match.group(1))
        return args[index] if index < len(args) else match.group(0)
    return _FORMAT_SLOT.sub(slot, template)


def _expand(template: str, match: re.Match) -> str:
    """A ``-replace`` replacement: ``$1`` is a group, everything else literal."""
    def group(ref: re.Match) -> str:
        number = int(ref.group(1))
        return (match.group(number) or "") if number <= (match.re.groups or 0) else ref.group(0)
    return re.sub(r"\$(\d+)", group, template)


def _segment(items: list[str]) -> list[str] | None:
    """``'a'+'b', 'c'`` → ``["ab", "c"]``; ``None`` unless it is exactly that shape."""
    values: list[str] = []
    current = ""
    expect_value = True
    for item in items:
        if item == OP + ",":
            if expect_value:
                return None
            values.append(current)
            current, expect_value = "", True
        elif item == OP + "+":
            if expect_value:
                return None
            expect_value = True
        elif item.startswith(OP):
            return None
        else:
            if not expect_value:
                return None
            current += item
            expect_value = False
    if expect_value:
        return None
    values.append(current)
    return values


def _evaluate(items: list[str]) -> str | None:
    """A constant expression's single string value (``None`` for a list or a non-constant)."""
    values = _evaluate_list(items)
    return values[0] if values is not None and len(values) == 1 else None


def _evaluate_list(items: list[str]) -> list[str] | None:
    """Fold ``+``, ``,``, ``-f``, ``-join`` and ``-replace`` over string items, left to right."""
    segments: list[list[str]] = [[]]
    operators: list[str] = []
    for item in items:
        if item in _BINARY:
            operators.append(item[len(OP):])
            segments.append([])
        else:
            segments[-1].append(item)
    if not segments[0] and operators and operators[0] == "-join":
        right = _segment(segments[1])
        if right is None:
            return None
        left: list[str] | None = ["".join(right)]
        operators, segments = operators[1:], [[], *segments[2:]]
    else:
        left = _segment(segments[0])
    for operator, segment in zip(operators, segments[1:], strict=False):
        right = _segment(segment)
        if left is None or right is None:
            return None
        if operator == "-f":
            if len(left) != 1:
                return None
            left = [_format(left[0], right)]
        elif operator == "-join":
            if len(right) != 1:
                return None
            left = [right[0].join(left)]
        else:
            if len(left) != 1 or len(right) > 2:
                return None
            flags = 0 if operator == "-creplace" else re.IGNORECASE
            template = right[1] if len(right) == 2 else ""
            try:
                left = [re.sub(right[0], functools.partial(_expand, template), left[0], flags=flags)]
            except (re.error, IndexError):
                return None
    return left


def _param(params: list[tuple[str, str | None]], name: str) -> str | None:
    for pname, value in params:
        if pname == name or (name.startswith(pname) and len(pname) > 1):
            return value
    return None


def decode_encoded_command(text: str) -> str | None:
    """``powershell -EncodedCommand``: base64 of UTF-16LE text."""
    cleaned = re.sub(r"[^A-Za-z0-9+/=]", "", text)
    cleaned += "=" * (-len(cleaned) % 4)
    try:
        return base64.b64decode(cleaned).decode("utf-16-le", "replace")
    except (binascii.Error, ValueError):
        return None


def read_script(text: str, depth: int = 0) -> Script:
    """Tokenise and read ``text``; never raises for odd input."""
    prepared = text.translate(_QUOTES)
    prepared = re.sub(r"\^(?=\S)", "", prepared) if "^" in prepared else prepared
    tokens = list(_lex(prepared))
    statements, _ = _parse_atoms(tokens, 0, 0)
    reader = _Reader(depth)
    try:
        reader.read(statements)
    except RecursionError:  # pathological nesting: keep what was read
        pass
    return Script(invocations=tuple(reader.invocations), text="\n".join(reader.texts))


@functools.lru_cache(maxsize=16)
def parse(text: str) -> Script:
    """Cached :func:`read_script`: the rules of one record look at the same text (a small cache,
    since script blocks can be megabytes)."""
    return read_script(text)


# -- matching -----------------------------------------------------------------------------------
def _truthy(value: str | None) -> bool:
    return value is None or value.strip().lower() not in _FALSE


def _value_equals(value: str | None, expected: Any) -> bool:
    if isinstance(expected, bool):
        if value is None:
            return expected
        lowered = value.strip().strip("'\"").lower()
        return lowered in (_TRUE if expected else _FALSE)
    return value is not None and value.strip().strip("'\"").lower() == str(expected).lower()


def _param_matches(invocation: Invocation, spec: Any) -> bool:
    if isinstance(spec, str):
        spec = {"name": spec}
    wanted = str(spec["name"]).lower()
    for name, value in invocation.params:
        if name != wanted:
            continue
        if "value" in spec:
            if _value_equals(value, spec["value"]):
                return True
        elif "values" in spec:
            if any(_value_equals(value, v) for v in spec["values"]):
                return True
        elif "regex" in spec:
            if value is not None and re.search(spec["regex"], value, re.IGNORECASE):
                return True
        elif _truthy(value):
            return True
    return False


def _path_pieces(value: str) -> list[str]:
    normal = value.replace("\\", "/").strip("'\"")
    return [normal] + [p for p in re.split(r"[\s();,'\"]+", normal) if p and p != normal]


def _path_matches(values: Iterable[str], spec: dict[str, Any], classes: dict[str, list[re.Pattern]]) -> bool:
    patterns = list(classes.get(spec["path_class"], ())) if "path_class" in spec else []
    patterns += [_compiled(p) for p in spec.get("path_patterns", ())]
    return any(p.search(piece) for v in values for piece in _path_pieces(v) for p in patterns)


@functools.lru_cache(maxsize=1024)
def _compiled(pattern: str) -> re.Pattern:
    return re.compile(pattern, re.IGNORECASE)


def _invocation_matches(spec: dict[str, Any], inv: Invocation, classes: dict[str, list[re.Pattern]]) -> bool:
    if "cmdlets" in spec and inv.name not in {c.lower() for c in spec["cmdlets"]}:
        return False
    if "args_any" in spec:
        wanted = {str(a).lower() for a in spec["args_any"]}
        if not any(a.lower() in wanted for a in inv.args):
            return False
    if "params_any" in spec and not any(_param_matches(inv, p) for p in spec["params_any"]):
        return False
    if "params_all" in spec and not all(_param_matches(inv, p) for p in spec["params_all"]):
        return False
    if ("path_class" in spec or "path_patterns" in spec) and not _path_matches(inv.values(), spec, classes):
        return False
    if "text_any" in spec and not any(_compiled(r).search(inv.text) for r in spec["text_any"]):
        return False
    return True


def _attribute_spec_matches(spec: dict[str, Any], attributes: dict[str, Any],
                            classes: dict[str, list[re.Pattern]]) -> bool:
    """Specs on structured fields (4663 ObjectName + AccessMask, Sysmon TargetFilename)."""
    values = [str(attributes[a]) for a in spec["attribute_paths"] if attributes.get(a)]
    if not values or not _path_matches(values, spec, classes):
        return False
    if "access_mask_any" in spec:
        try:
            mask = int(str(attributes.get("AccessMask", "0")), 0)
        except ValueError:
            return False
        if not mask & int(spec["access_mask_any"]):
            return False
    return True


def record_text(attributes: dict[str, Any]) -> str:
    """The PowerShell/cmd text of a record (script block and/or command)."""
    return "\n".join(str(attributes[a]) for a in TEXT_ATTRIBUTES if isinstance(attributes.get(a), str))


def matches(specs: list[dict[str, Any]], attributes: dict[str, Any],
            classes: dict[str, list[re.Pattern]] | None = None) -> bool:
    """Whether any spec matches the record with ``attributes`` (the ``powershell_any`` hook)."""
    classes = classes or {}
    script: Script | None = None
    for spec in specs:
        if "attribute_paths" in spec:
            if _attribute_spec_matches(spec, attributes, classes):
                return True
            continue
        if script is None:
            text = record_text(attributes)
            if not text:
                return False
            script = parse(text)
        if "cmdlets" not in spec and "text_any" in spec and not any(
                k in spec for k in ("params_any", "params_all", "args_any", "path_class", "path_patterns")):
            if any(_compiled(r).search(script.text) for r in spec["text_any"]):
                return True
            continue
        if any(_invocation_matches(spec, inv, classes) for inv in script.invocations):
            return True
    return False
