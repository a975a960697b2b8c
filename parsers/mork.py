"""A Mork reader (Mozilla's text database: Thunderbird ``.msf`` summaries, old ``.mab``/``history.dat``).

Mork is append-only between rewrites: changes are appended as transaction groups
(``@$${id{@ ... @$$}id}@``) and a row removed from a table is written as a cut (``-`` before the
row) while the row's earlier cells stay in the file. That is what makes it evidence: a Thunderbird
summary keeps the headers (message-id, subject, sender, dates, flags) of messages deleted from the
folder until the summary is rewritten. This reader therefore keeps, besides the live state, which
rows every table **lost** (cut, or dropped by a table reset).

Grammar handled (the Mork 1.4 text format as Mozilla's ``morkParser`` reads it):

* ``//`` comments; dictionaries ``< <(a=c)> (80=name) ... >`` (``(a=c)`` meta: column names) and
  ``< (80=value) ... >`` (value atoms); values escape ``)`` ``\\`` ``$`` with ``\\``, hex bytes as
  ``$XX``, and ``\\`` + newline continues a line;
* rows ``[id(:scope) (^col^atom) (^col=value) (name=value) ...]`` — ``[-id ...]`` clears the row
  first; tables ``{id:scope {meta} rows-or-ids ...}`` — ``-`` before a row cuts it from the table,
  ``!`` (or a ``-id`` table) clears the table first;
* groups; an aborted group (``@$$}~~}@``) is ignored.

Everything is read in one pass with a regular-expression tokenizer; nothing raises on bad input
(unknown bytes are skipped and counted).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field

_TOKEN = re.compile(
    r"""\s*(?:
        (?P<comment>//[^\r\n]*)
      | (?P<gstart>@\$\$\{[0-9A-Fa-f]*\{@)
      | (?P<gend>@\$\$\}(?P<gid>[0-9A-Fa-f~]*)\}@)
      | (?P<cell>\((?:[^\\)]|\\.)*\))
      | (?P<id>[-!+]?[0-9A-Fa-f]+(?::(?:\^[0-9A-Fa-f]+|[A-Za-z_][\w:.-]*))?)
      | (?P<op>[-!+])
      | (?P<punct>[<>{}\[\]])
      | (?P<other>\S))""", re.VERBOSE | re.DOTALL)
_COLUMN_REF = re.compile(r"\^([0-9A-Fa-f]+)")
_COLUMN_NAME = re.compile(r"([^=^]+)")
#: A whole aborted group (its changes never happened), blanked out before reading.
_ABORTED = re.compile(r"@\$\$\{[0-9A-Fa-f]*\{@(?:(?!@\$\$\}).)*@\$\$\}~~\}@", re.DOTALL)
_ESCAPE = re.compile(r"\\\r?\n|\\(.)|\$([0-9A-Fa-f]{2})", re.DOTALL)


def decode_value(raw: str) -> str:
    """A Mork literal as text: escapes resolved, ``$XX`` bytes gathered and read as UTF-8."""
    if "\\" not in raw and "$" not in raw:
        return raw
    out = bytearray()
    position = 0
    for match in _ESCAPE.finditer(raw):
        out += raw[position:match.start()].encode("latin-1", "replace")
        if match.group(1) is not None:
            out += match.group(1).encode("latin-1", "replace")
        elif match.group(2) is not None:
            out.append(int(match.group(2), 16))
        position = match.end()
    out += raw[position:].encode("latin-1", "replace")
    try:
        return out.decode("utf-8")
    except UnicodeDecodeError:
        return out.decode("latin-1")


@dataclass
class MorkTable:
    """A table: its live rows in order, and the rows it lost (cut or reset away)."""

    scope: str
    kind: str | None = None
    rows: dict[str, None] = field(default_factory=dict)
    cut: dict[str, int] = field(default_factory=dict)


@dataclass
class MorkDatabase:
    """Rows by (scope, id) with their cells, tables by (scope, id), and parse statistics."""

    rows: dict[tuple[str, str], dict[str, str]] = field(default_factory=dict)
    #: Character offset where each row was first defined (for provenance).
    row_offsets: dict[tuple[str, str], int] = field(default_factory=dict)
    tables: dict[tuple[str, str], MorkTable] = field(default_factory=dict)
    #: Transaction groups in the file, aborted ones included.
    groups: int = 0
    aborted_groups: int = 0
    skipped: int = 0

    def tables_of_kind(self, kind: str) -> Iterator[MorkTable]:
        """Tables whose meta ``k`` (kind) is ``kind``."""
        return (t for t in self.tables.values() if t.kind == kind)


class _Tokens:
    """The token stream, read lazily with a short look-behind window (memory stays small)."""

    _WINDOW = 64

    def __init__(self, text: str) -> None:
        self._matches = _TOKEN.finditer(text)
        self._cache: dict[int, tuple[str, str, int, str | None]] = {}
        self._count = 0
        self._done = False

    def _fill(self, index: int) -> None:
        while not self._done and self._count <= index:
            match = next(self._matches, None)
            if match is None or match.lastgroup is None:  # the end, or trailing whitespace
                self._done = True
                return
            if match.lastgroup == "comment":
                continue
            self._cache[self._count] = (match.lastgroup, match.group(match.lastgroup),
                                        match.start(match.lastgroup), match.group("gid"))
            self._cache.pop(self._count - self._WINDOW, None)
            self._count += 1

    def has(self, index: int) -> bool:
        """Whether token ``index`` exists (reading on as needed)."""
        if index >= self._count:
            self._fill(index)
        return index < self._count

    def __getitem__(self, index: int) -> tuple[str, str, int, str | None]:
        if index >= self._count:
            self._fill(index)
        return self._cache[index]


class _Reader:
    def __init__(self, text: str) -> None:
        self.text = text
        self.columns: dict[str, str] = {}
        self.atoms: dict[str, str] = {}
        self.scopes_of: dict[str, str] = {}
        self.db = MorkDatabase()

    # -- helpers ---------------------------------------------------------------------------------
    def _split_id(self, token: str, default_scope: str) -> tuple[str, str, str]:
        """(operator, id, scope) of ``-5:^80`` style ids."""
        op = token[0] if token[0] in "-!+" else ""
        token = token[len(op):]
        ident, _, scope = token.partition(":")
        if scope.startswith("^"):
            scope = self.columns.get(scope[1:].upper(), scope)
        return op, ident.upper(), scope or default_scope

    def _cell(self, token: str) -> tuple[str, str] | None:
        body = token[1:-1]
        if body.startswith("^"):
            match = _COLUMN_REF.match(body)
            if not match:
                return None
            column = self.columns.get(match.group(1).upper(), match.group(1))
            rest = body[match.end():]
        else:
            match = _COLUMN_NAME.match(body)
            if not match:
                return None
            column, rest = match.group(1), body[match.end():]
        if rest.startswith("="):
            return column, decode_value(rest[1:])
        if rest.startswith("^"):
            atom = rest[1:].split(":", 1)[0].upper()
            return column, self.atoms.get(atom, "")
        return column, ""

    # -- the pass --------------------------------------------------------------------------------
    def read(self) -> MorkDatabase:
        text, self.db.aborted_groups = _ABORTED.subn(lambda m: " " * len(m.group()), self.text)
        self.db.groups = self.db.aborted_groups  # counted here: their text is gone from now on
        tokens = _Tokens(text)
        i = 0
        while tokens.has(i):
            kind, value, _, _ = tokens[i]
            if kind == "gstart":
                self.db.groups += 1
                i += 1
                continue
            if kind == "gend":
                i += 1
                continue
            if value == "<":
                i = self._dict(tokens, i + 1)
            elif value == "[":
                i = self._row(tokens, i + 1, "", None)
            elif value == "{":
                i = self._table(tokens, i + 1)
            else:
                self.db.skipped += 1
                i += 1
        return self.db

    def _dict(self, tokens: _Tokens, i: int) -> int:
        target = self.atoms
        while tokens.has(i):
            kind, value, _, _ = tokens[i]
            if value == ">":
                return i + 1
            if value == "<":  # meta: <(a=c)> switches this dictionary to column names
                i += 1
                while tokens.has(i) and tokens[i][1] != ">":
                    if tokens[i][0] == "cell" and tokens[i][1].replace(" ", "") == "(a=c)":
                        target = self.columns
                    i += 1
                i += 1
                continue
            if kind == "cell":
                key, _, literal = value[1:-1].partition("=")
                target[key.strip().upper()] = decode_value(literal)
            i += 1
        return i

    def _row(self, tokens: _Tokens, i: int, default_scope: str, table: MorkTable | None,
             cut: bool = False) -> int:
        if not tokens.has(i) or tokens[i][0] != "id":
            # "[" without an id: skip to the closing bracket
            while tokens.has(i) and tokens[i][1] != "]":
                i += 1
            return i + 1
        op, ident, scope = self._split_id(tokens[i][1], default_scope)
        if not scope:
            # A row outside any table and without a scope updates the row of that id (the one
            # scope it was defined in), as Thunderbird's appended changes do.
            scope = self.scopes_of.get(ident, "")
        key = (scope, ident)
        offset = tokens[i][2]
        i += 1
        cells: dict[str, str] = {}
        while tokens.has(i) and tokens[i][1] != "]":
            if tokens[i][0] == "cell":
                cell = self._cell(tokens[i][1])
                if cell is not None:
                    cells[cell[0]] = cell[1]
            elif tokens[i][1] == "[":  # row meta: skip it
                while tokens.has(i) and tokens[i][1] != "]":
                    i += 1
            i += 1
        existing = self.db.rows.get(key)
        if op == "-" and table is None:
            if existing is not None and not cells:
                pass  # a bare "[-id]" outside a table clears nothing we need; keep the old cells
            elif cells:
                self.db.rows[key] = cells
        elif cells or existing is None:
            if existing is None:
                self.db.rows[key] = dict(cells)
                self.db.row_offsets[key] = offset
                self.scopes_of.setdefault(ident, scope)
            else:
                existing.update(cells)
        if table is not None:
            if cut:
                if ident in table.rows:
                    del table.rows[ident]
                table.cut[ident] = offset
            else:
                table.rows[ident] = None
                table.cut.pop(ident, None)
        return i + 1

    def _table(self, tokens: _Tokens, i: int) -> int:
        if not tokens.has(i) or tokens[i][0] != "id":
            depth = 1
            while tokens.has(i) and depth:
                depth += {"{": 1, "}": -1}.get(tokens[i][1], 0)
                i += 1
            return i
        op, ident, scope = self._split_id(tokens[i][1], "")
        table = self.db.tables.get((scope, ident))
        if table is None:
            table = self.db.tables[(scope, ident)] = MorkTable(scope=scope)
        if op in ("-", "!"):
            self._reset(table, tokens[i][2])
        i += 1
        cut_next = False
        while tokens.has(i) and tokens[i][1] != "}":
            kind, value, offset, _ = tokens[i]
            if value == "{":  # table meta: (k^96:c) names the kind
                i += 1
                while tokens.has(i) and tokens[i][1] != "}":
                    if tokens[i][0] == "cell":
                        body = tokens[i][1][1:-1]
                        if body.startswith("k"):
                            ref = body[1:].lstrip("=")
                            if ref.startswith("^"):
                                ref = self.columns.get(ref[1:].split(":", 1)[0].upper(), ref)
                            table.kind = ref
                    i += 1
                i += 1
                continue
            if kind == "op":
                if value == "-":
                    cut_next = True
                elif value == "!":
                    self._reset(table, offset)
                i += 1
                continue
            if value == "[":
                i = self._row(tokens, i + 1, scope, table, cut=cut_next)
                cut_next = False
                continue
            if kind == "id":
                row_op, row_id, _ = self._split_id(value, scope)
                if cut_next or row_op == "-":
                    table.rows.pop(row_id, None)
                    table.cut[row_id] = offset
                else:
                    table.rows[row_id] = None
                    table.cut.pop(row_id, None)
                cut_next = False
                i += 1
                continue
            self.db.skipped += 1
            i += 1
        return i + 1

    @staticmethod
    def _reset(table: MorkTable, offset: int) -> None:
        for row_id in table.rows:
            table.cut.setdefault(row_id, offset)
        table.rows.clear()


def read_mork(text: str) -> MorkDatabase:
    """Parse Mork text (decoded as Latin-1 so that every byte survives)."""
    return _Reader(text).read()
