"""Split a shell command line into simple commands, the way a shell would, for the rule engine.

Rules must survive how people type: ``sudo``, ``command``/``builtin``/``\\rm``, absolute binary
paths, quoting, variables, ``;``/``&&``/``|`` chains and ``bash -c '...'``. Grepping the raw line
cannot tell ``rm /var/mail/x`` from ``grep rm /var/mail/x``; tokenising with :mod:`shlex` can.
Broken quoting (a history line cut short) falls back to whitespace splitting, never to an error.

One history entry may span lines (a loop typed over several lines, a here-document): unquoted
newlines separate commands, here-document bodies become the ``stdin`` of their command, and so
does the text an ``echo``/``printf`` pipes in, so ``echo 'd *' | mail -f box`` can be judged on
what it told ``mail`` to do. ``for f in ...`` and ``X=...`` give variables a best-effort value.
PowerShell lines (``dialect="powershell"``) use the backtick as escape and keep backslashes.
"""

from __future__ import annotations

import ntpath
import posixpath
import re
import shlex
from dataclasses import dataclass, field

_SEPARATORS = {";", "&&", "||", "|", "&", "|&", ";;", "(", ")", "\n"}
_PIPES = {"|", "|&"}
_REDIRECTS = {">", ">>", ">|", "&>", "&>>", "<", "<<", "<<<", ">&", "<&", "<>"}
#: Wrappers whose first non-option word is the real command.
_WRAPPERS = {"sudo", "doas", "command", "builtin", "exec", "nohup", "env", "time", "nice",
             "ionice", "stdbuf", "chroot", "su", "runuser", "setsid", "timeout", "strace", "xargs"}
#: Wrapper options that take a value (``sudo -u bob``, ``nice -n 5``, ``timeout 10``).
_WRAPPER_VALUE_OPTIONS = {"-u", "-g", "-n", "-C", "-p", "-r", "-t", "-U", "-h", "-c", "-s", "-k"}
_XARGS_VALUE_OPTIONS = {"-I", "-i", "-n", "-P", "-L", "-l", "-d", "-E", "-e", "-s", "-a"}
#: Reserved words that may start a simple command inside a compound one (``do rm x``).
_KEYWORDS = {"if", "then", "else", "elif", "do", "while", "until", "!", "{", "}", "fi", "done"}
#: Builtins whose ``NAME=value`` arguments are assignments.
_DECLARATIONS = {"export", "declare", "typeset", "local", "readonly"}
_SHELLS = {"sh", "bash", "zsh", "dash", "ksh", "ash", "mksh", "busybox", "fish"}
_ASSIGNMENT = re.compile(r"^([A-Za-z_][A-Za-z0-9_]*)=(.*)$", re.DOTALL)
_VARIABLE = re.compile(r"^\$(?:\{([A-Za-z_][A-Za-z0-9_]*)\}|([A-Za-z_][A-Za-z0-9_]*))(.*)$", re.DOTALL)
_HEREDOC = re.compile(r"<<(-?)[ \t]*(['\"]?)([^\s'\"<>;&|()]+)\2")
_MAX_DEPTH = 4
_MAX_VARIABLE_VALUES = 64


@dataclass
class SimpleCommand:
    """One command of a pipeline or list: program, arguments and redirections.

    ``stdin`` is text known to be fed to the command (a here-document or here-string, or what an
    ``echo``/``printf``/``cat <<EOF`` before it in a pipeline printed); ``piped_args`` are the
    arguments of the command piped into this one (what ``xargs`` turns into operands).
    """

    program: str
    args: list[str] = field(default_factory=list)
    redirects: list[tuple[str, str]] = field(default_factory=list)
    wrappers: list[str] = field(default_factory=list)
    assignments: list[tuple[str, str]] = field(default_factory=list)
    stdin: str | None = None
    piped_args: list[str] = field(default_factory=list)
    dialect: str = "posix"


def fold_lines(text: str, dialect: str = "posix") -> tuple[str, list[str]]:
    """Fold one (possibly multi-line) entry into one line; return it and its here-doc bodies.

    Unquoted newlines become ``;`` (or a space after ``|``/``&&``/``||``), backslash-newline is
    a continuation, and the lines of each here-document are removed and returned in order.
    """
    if "\n" not in text and "\r" not in text:
        return text, []
    text = text.replace("\r\n", "\n")
    escape = "`" if dialect == "powershell" else "\\"
    out: list[str] = []
    bodies: list[str] = []
    pending: list[tuple[str, bool]] = []
    quote: str | None = None
    i, n = 0, len(text)
    while i < n:
        char = text[i]
        if quote == "'":
            out.append(char)
            quote = None if char == "'" else quote
            i += 1
            continue
        if char == escape and i + 1 < n:
            if text[i + 1] == "\n":
                i += 2  # line continuation
                continue
            out.append(text[i:i + 2])
            i += 2
            continue
        if quote == '"':
            out.append(char)
            quote = None if char == '"' else quote
            i += 1
            continue
        if char in "'\"":
            quote = char
            out.append(char)
            i += 1
            continue
        if char == "<" and dialect == "posix" and text.startswith("<<", i) and not text.startswith("<<<", i):
            match = _HEREDOC.match(text, i)
            if match:
                pending.append((match.group(3), match.group(1) == "-"))
                out.append(f"<< {match.group(3)}")
                i = match.end()
                continue
        if char == "\n":
            tail = "".join(out[-16:]).rstrip()
            out.append(" " if tail.endswith(("|", "&&", "||", "(", "{")) or not tail else " ; ")
            i += 1
            for delimiter, strip_tabs in pending:
                lines: list[str] = []
                while i < n:
                    end = text.find("\n", i)
                    end = n if end < 0 else end
                    line = text[i:end]
                    i = end + 1
                    if (line.lstrip("\t") if strip_tabs else line) == delimiter:
                        break
                    lines.append(line)
                bodies.append("\n".join(lines))
            pending.clear()
            continue
        out.append(char)
        i += 1
    return "".join(out), bodies


def heredoc_delimiters(line: str) -> list[tuple[str, bool]]:
    """The here-documents one physical line opens: (delimiter, strip leading tabs), in order."""
    if "<<" not in line:
        return []
    found: list[tuple[str, bool]] = []
    quote: str | None = None
    i = 0
    while i < len(line):
        char = line[i]
        if quote:
            if char == "\\" and quote == '"':
                i += 1
            elif char == quote:
                quote = None
        elif char == "\\":
            i += 1
        elif char in "'\"":
            quote = char
        elif char == "#" and (i == 0 or line[i - 1] in " \t;&|"):
            break  # a comment
        elif line.startswith("<<<", i):
            i += 2
        elif line.startswith("<<", i):
            match = _HEREDOC.match(line, i)
            if match:
                found.append((match.group(3), match.group(1) == "-"))
                i = match.end()
                continue
        i += 1
    return found


_PLAIN_TOKENS = {"posix": re.compile(r"[();<>|&]+|[^\s();<>|&]+"),
                 "powershell": re.compile(r"[;<>|&]+|[^\s;<>|&]+")}
_QUOTING = {"posix": re.compile(r"['\"\\]"), "powershell": re.compile(r"['\"`]")}


def _tokens(line: str, dialect: str = "posix") -> list[str]:
    if not _QUOTING[dialect].search(line):
        # Nothing quoted or escaped: what shlex would return, about ten times faster.
        return _PLAIN_TOKENS[dialect].findall(line)
    # PowerShell: `(Get-PSReadLineOption).HistorySavePath` stays one word; backtick escapes.
    punctuation: bool | str = ";&|<>" if dialect == "powershell" else True
    lexer = shlex.shlex(line, posix=True, punctuation_chars=punctuation)
    lexer.whitespace_split = True
    lexer.commenters = ""
    if dialect == "powershell":
        lexer.escape = "`"
    try:
        return list(lexer)
    except ValueError:
        # Unbalanced quotes: drop quote characters and split on whitespace and operators.
        cleaned = line.replace('"', " ").replace("'", " ")
        return re.findall(r"&&|\|\||>>|>\||&>|<<<|<<|[;|&<>()]|[^\s;|&<>()]+", cleaned)


def _strip_program(word: str, dialect: str = "posix") -> str:
    word = word.lstrip("\\")
    if dialect == "powershell":
        name = ntpath.basename(word) if ("\\" in word or "/" in word) else word
        return name[:-4] if name.lower().endswith(".exe") else name
    return posixpath.basename(word) if "/" in word else word


def _unwrap(words: list[str], dialect: str = "posix") -> tuple[list[str], list[str], list[tuple[str, str]]]:
    """Remove assignments, keywords and wrappers; return (words, wrappers, assignments)."""
    wrappers: list[str] = []
    assignments: list[tuple[str, str]] = []
    i = 0
    while i < len(words):
        word = words[i]
        assignment = _ASSIGNMENT.match(word)
        if assignment and dialect == "posix":
            assignments.append((assignment.group(1), assignment.group(2)))
            i += 1
            continue
        if word in _KEYWORDS and dialect == "posix":
            i += 1
            continue
        name = _strip_program(word, dialect)
        if name in _WRAPPERS and i + 1 < len(words):
            wrappers.append(name)
            i += 1
            if name == "timeout" and i < len(words) and re.match(r"^[\d.]+[smhd]?$", words[i]):
                i += 1
            while i < len(words) and words[i].startswith("-") and words[i] != "--":
                option = words[i]
                i += 1
                if name in ("su", "runuser") and option in ("-c", "--command") and i < len(words):
                    # su -c 'cmd' user: the string is a shell command line.
                    return ["sh", "-c", words[i]], wrappers, assignments
                values = _XARGS_VALUE_OPTIONS if name == "xargs" else _WRAPPER_VALUE_OPTIONS
                if option in values and i < len(words) and name not in ("su", "runuser"):
                    i += 1
            if i < len(words) and words[i] == "--":
                i += 1
            continue
        break
    return words[i:], wrappers, assignments


def _expand(args: list[str], variables: dict[str, list[str]]) -> list[str]:
    """Replace ``$VAR``/``${VAR}`` (alone or as a path prefix) by the values seen in the entry."""
    if not variables:
        return args
    out: list[str] = []
    for arg in args:
        match = _VARIABLE.match(arg)
        values = variables.get(match.group(1) or match.group(2)) if match else None
        if match and values is not None:
            out.extend(value + match.group(3) for value in values)
        else:
            out.append(arg)
    return out


def _printed_text(command: SimpleCommand) -> str | None:
    """What ``echo``/``printf``/``cat <<EOF`` writes to its stdout, as far as it is known."""
    if command.program in ("echo", "printf", "print"):
        words = [a for a in command.args if not re.match(r"^-[neE]+$", a)]
        return " ".join(words).replace("\\n", "\n")
    if command.program == "cat" and command.stdin is not None and not command.args:
        return command.stdin
    return None


def parse_command_line(line: str, depth: int = 0, dialect: str = "posix") -> list[SimpleCommand]:
    """Split ``line`` into simple commands (``bash -c`` strings are parsed too)."""
    text, bodies = fold_lines(line, dialect)
    commands: list[SimpleCommand] = []
    current: list[str] = []
    redirects: list[tuple[str, str]] = []
    state: dict[str, object] = {"stdin": None, "previous": None, "separator": None}
    variables: dict[str, list[str]] = {}
    tokens = _tokens(text, dialect)
    i = 0

    def flush(separator: str | None) -> None:
        words, wrappers, assignments = _unwrap(current, dialect)
        previous: SimpleCommand | None = state["previous"]  # type: ignore[assignment]
        piped = previous if state["separator"] in _PIPES else None
        if words or redirects or assignments:
            program = _strip_program(words[0], dialect) if words else ""
            args = _expand(words[1:], variables) if dialect == "posix" else words[1:]
            if program in _DECLARATIONS:
                assignments = assignments + [(m.group(1), m.group(2)) for a in args
                                             if (m := _ASSIGNMENT.match(a))]
            command = SimpleCommand(program=program, args=args, redirects=list(redirects),
                                    wrappers=wrappers, assignments=assignments,
                                    stdin=state["stdin"], dialect=dialect)  # type: ignore[arg-type]
            if piped is not None:
                if command.stdin is None:
                    command.stdin = _printed_text(piped)
                command.piped_args = list(piped.args)
            commands.append(command)
            if not words or program in _DECLARATIONS:
                for name, value in assignments:
                    variables[name] = [value]
            if program == "for" and len(args) >= 2 and args[1] == "in":
                variables[args[0]] = args[2:2 + _MAX_VARIABLE_VALUES]
            if program in _SHELLS and depth < _MAX_DEPTH and "-c" in command.args:
                index = command.args.index("-c")
                if index + 1 < len(command.args):
                    commands.extend(parse_command_line(command.args[index + 1], depth + 1))
            state["previous"] = command
        else:
            state["previous"] = None
        state["separator"] = separator
        state["stdin"] = None
        current.clear()
        redirects.clear()

    while i < len(tokens):
        token = tokens[i]
        if token in _SEPARATORS:
            flush(token)
        elif token in _REDIRECTS:
            target = tokens[i + 1] if i + 1 < len(tokens) else ""
            if current and current[-1].isdigit() and token.startswith((">", "<")):
                current.pop()  # '2>' file-descriptor prefix, not an argument
            redirects.append((token, target))
            if token == "<<<":
                state["stdin"] = target
            elif token == "<<":
                state["stdin"] = bodies.pop(0) if bodies else ""
            i += 1
        else:
            current.append(token)
        i += 1
    flush(None)
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
