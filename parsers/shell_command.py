"""Split a shell command line into simple commands, the way a shell would, for the rule engine.

Rules must survive how people type: ``sudo``, ``command``/``builtin``/``\\rm``, absolute binary
paths, quoting, variables, ``;``/``&&``/``|`` chains and ``bash -c '...'``. Grepping the raw line
cannot tell ``rm /var/mail/x`` from ``grep rm /var/mail/x``; tokenising with :mod:`shlex` can.
Broken quoting (a history line cut short) falls back to whitespace splitting, never to an error.
"""

from __future__ import annotations

import posixpath
import re
import shlex
from dataclasses import dataclass, field

_SEPARATORS = {";", "&&", "||", "|", "&", "|&", ";;", "(", ")", "\n"}
_REDIRECTS = {">", ">>", ">|", "&>", "&>>", "<", "<<", "<<<", ">&", "<&", "<>"}
#: Wrappers whose first non-option word is the real command.
_WRAPPERS = {"sudo", "doas", "command", "builtin", "exec", "nohup", "env", "time", "nice",
             "ionice", "stdbuf", "chroot", "su", "runuser", "setsid", "timeout", "strace", "xargs"}
#: Wrapper options that take a value (``sudo -u bob``, ``nice -n 5``, ``timeout 10``).
_WRAPPER_VALUE_OPTIONS = {"-u", "-g", "-n", "-C", "-p", "-r", "-t", "-U", "-h", "-c", "-s", "-k"}
_SHELLS = {"sh", "bash", "zsh", "dash", "ksh", "ash", "busybox"}
_ASSIGNMENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*=")
_MAX_DEPTH = 4


@dataclass
class SimpleCommand:
    """One command of a pipeline or list: program, arguments and redirections."""

    program: str
    args: list[str] = field(default_factory=list)
    redirects: list[tuple[str, str]] = field(default_factory=list)
    wrappers: list[str] = field(default_factory=list)


def _tokens(line: str) -> list[str]:
    lexer = shlex.shlex(line, posix=True, punctuation_chars=True)
    lexer.whitespace_split = True
    lexer.commenters = ""
    try:
        return list(lexer)
    except ValueError:
        # Unbalanced quotes: drop quote characters and split on whitespace and operators.
        cleaned = line.replace('"', " ").replace("'", " ")
        return re.findall(r"&&|\|\||>>|>\||&>|[;|&<>()]|[^\s;|&<>()]+", cleaned)


def _strip_program(word: str) -> str:
    word = word.lstrip("\\")
    return posixpath.basename(word) if "/" in word else word


def _unwrap(words: list[str]) -> tuple[list[str], list[str]]:
    """Remove env assignments and wrapper commands; return (words, wrappers seen)."""
    wrappers: list[str] = []
    i = 0
    while i < len(words):
        word = words[i]
        if _ASSIGNMENT.match(word):
            i += 1
            continue
        name = _strip_program(word)
        if name in _WRAPPERS and i + 1 < len(words):
            wrappers.append(name)
            i += 1
            if name == "timeout" and i < len(words) and re.match(r"^[\d.]+[smhd]?$", words[i]):
                i += 1
            while i < len(words) and words[i].startswith("-") and words[i] != "--":
                option = words[i]
                i += 1
                if option in _WRAPPER_VALUE_OPTIONS and i < len(words) and name != "su":
                    i += 1
            if i < len(words) and words[i] == "--":
                i += 1
            continue
        break
    return words[i:], wrappers


def parse_command_line(line: str, depth: int = 0) -> list[SimpleCommand]:
    """Split ``line`` into simple commands (``bash -c`` strings are parsed too)."""
    commands: list[SimpleCommand] = []
    current: list[str] = []
    redirects: list[tuple[str, str]] = []
    tokens = _tokens(line)
    i = 0

    def flush() -> None:
        words, wrappers = _unwrap(current)
        if words or redirects:
            program = _strip_program(words[0]) if words else ""
            command = SimpleCommand(program=program, args=words[1:], redirects=list(redirects),
                                    wrappers=wrappers)
            commands.append(command)
            if program in _SHELLS and depth < _MAX_DEPTH and "-c" in command.args:
                index = command.args.index("-c")
                if index + 1 < len(command.args):
                    commands.extend(parse_command_line(command.args[index + 1], depth + 1))
        current.clear()
        redirects.clear()

    while i < len(tokens):
        token = tokens[i]
        if token in _SEPARATORS:
            flush()
        elif token in _REDIRECTS:
            target = tokens[i + 1] if i + 1 < len(tokens) else ""
            if current and current[-1].isdigit() and token.startswith((">", "<")):
                current.pop()  # '2>' file-descriptor prefix, not an argument
            redirects.append((token, target))
            i += 1
        else:
            current.append(token)
        i += 1
    flush()
    return commands


def resolve_path(arg: str, cwd: str | None, home: str | None) -> str:
    """Best-effort absolute form of a path argument (``~``, ``$HOME``, relative to ``cwd``)."""
    path = arg
    if home and (path == "~" or path.startswith("~/")):
        path = home + path[1:]
    elif re.match(r"^~[A-Za-z0-9_.-]+(/|$)", path):
        user, _, rest = path[1:].partition("/")
        path = f"/home/{user}" + (f"/{rest}" if rest else "")
    elif home and re.match(r"^\$\{?HOME\}?(/|$)", path):
        path = home + path[path.index("/"):] if "/" in path else home
    if cwd and not path.startswith(("/", "~", "$")):
        path = posixpath.join(cwd, path)
    return posixpath.normpath(path) if path.startswith("/") else path
