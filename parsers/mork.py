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

The input is streamed (a file object, read in 64 KiB pieces, or a string): memory does not follow
the size of the file but what is kept of it, which is the dictionaries, the rows' cells (only the
``columns`` asked for) and the tables' row ids. A value longer than :data:`MAX_VALUE_CHARS` keeps
its first characters and is counted in ``cut_values`` (a 1 GB value costs 16 KiB). Whether a group
was aborted is found by looking ahead for its end marker (the file is read a second time from the
group's start, or spooled to a temporary file first when it cannot seek). Nothing raises on bad
input: unknown bytes are skipped and counted.
"""

from __future__ import annotations

import re
import shutil
import tempfile
from collections.abc import Collection, Iterator
from dataclasses import dataclass, field
from typing import BinaryIO

#: Characters of the file read at a time.
_CHUNK = 1 << 16
#: Longest value kept (characters of the raw cell); the rest of a longer value is skipped.
MAX_VALUE_CHARS = 1 << 14
#: Look-ahead for ids and group markers; a longer id is garbage and skipped.
_LOOKAHEAD = 512
_SPACE = re.compile(r"\s+")
_ID = re.compile(r"[-!+]?[0-9A-Fa-f]+(?::(?:\^[0-9A-Fa-f]+|[A-Za-z_][\w:.-]*))?")
_ID_RUN = re.compile(r"[\w:.^+!-]+")
_GROUP = re.compile(r"@\$\$(?:(?P<start>\{)[0-9A-Fa-f]*\{@|\}[0-9A-Fa-f~]*\}@)")
_ID_START = frozenset("-!+0123456789abcdefABCDEF")
_PUNCT = frozenset("<>{}[]")
#: A run of characters that start no token (garbage): one "other" token (its first character),
#: not one per character, so that megabytes of it cost one regex match per piece read instead of
#: a loop turn per character. It stops at white space and at every character ``_Scanner`` reads
#: a token from (a stray ")" stays a token of its own).
_OTHER_RUN = re.compile("[^\\s" + re.escape("".join(sorted(_PUNCT | _ID_START | set("()@/")))) + "]+")
_GROUP_END = "@$$}"
_ABORT = "@$$}~~}@"
_COLUMN_REF = re.compile(r"\^([0-9A-Fa-f]+)")
_COLUMN_NAME = re.compile(r"([^=^]+)")
_ESCAPE = re.compile(r"\\\r?\n|\\(.)|\$([0-9A-Fa-f]{2})", re.DOTALL)

#: A token: (kind, value, absolute offset). Kinds: "cell" (value: the text between the
#: parentheses), "id", "op", "gstart", "gend", "other", or the punctuation character itself.
Token = tuple[str, str, int]


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
    #: Byte offset where each row was first defined (for provenance).
    row_offsets: dict[tuple[str, str], int] = field(default_factory=dict)
    tables: dict[tuple[str, str], MorkTable] = field(default_factory=dict)
    #: Transaction groups in the file, aborted ones included.
    groups: int = 0
    aborted_groups: int = 0
    skipped: int = 0
    #: Values longer than MAX_VALUE_CHARS (kept cut), and the offset of the first one.
    cut_values: int = 0
    first_cut_offset: int | None = None

    def tables_of_kind(self, kind: str) -> Iterator[MorkTable]:
        """Tables whose meta ``k`` (kind) is ``kind``."""
        return (t for t in self.tables.values() if t.kind == kind)


# -- input ----------------------------------------------------------------------------------------
class _TextSource:
    """A string read as if it were the file (it is already in memory: slices, no copy of it)."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.at = 0
        self.position = 0

    def read(self, size: int) -> str:
        piece = self.text[self.at:self.at + size]
        self.at += len(piece)
        return piece

    def seek(self, at: int) -> None:
        self.at = at

    def find(self, needle: str, start: int) -> int:
        return self.text.find(needle, start)

    def peek(self, at: int, size: int) -> str:
        return self.text[at:at + size]


class _FileSource:
    """A seekable binary file read as Latin-1 (one character per byte: offsets are byte offsets)."""

    def __init__(self, fh: BinaryIO) -> None:
        self.fh = fh
        self.position = fh.tell()

    def read(self, size: int) -> str:
        return self.fh.read(size).decode("latin-1")

    def seek(self, at: int) -> None:
        self.fh.seek(at)

    def find(self, needle: str, start: int) -> int:
        """Offset of the first ``needle`` at or after ``start`` (-1), reading on from there."""
        keep = self.fh.tell()
        wanted = needle.encode("latin-1")
        try:
            self.fh.seek(start)
            at, tail = start, b""
            while True:
                chunk = self.fh.read(1 << 18)
                if not chunk:
                    return -1
                data = tail + chunk
                hit = data.find(wanted)
                if hit >= 0:
                    return at - len(tail) + hit
                tail = data[-(len(wanted) - 1):]
                at += len(chunk)
        finally:
            self.fh.seek(keep)

    def peek(self, at: int, size: int) -> str:
        keep = self.fh.tell()
        try:
            self.fh.seek(at)
            return self.fh.read(size).decode("latin-1")
        finally:
            self.fh.seek(keep)


class _Scanner:
    """Tokens of the input, read piece by piece; only the current piece is held."""

    def __init__(self, source: _TextSource | _FileSource, db: MorkDatabase) -> None:
        self.src = source
        self.db = db
        self.buf = ""
        self.pos = 0
        self.base = source.position  # absolute offset of buf[0]
        self.eof = False
        #: A "(" at or after this offset has no closing ")" before the end (-1: not known).
        self.no_close_from = -1
        #: (searched from, first group end marker found there or -1): keeps look-ahead linear.
        self._end_cache: tuple[int, int] | None = None

    def _fill(self, need: int) -> bool:
        """Make the buffer hold ``need`` characters after ``pos`` (fewer only at the end)."""
        while len(self.buf) - self.pos < need and not self.eof:
            chunk = self.src.read(max(_CHUNK, need))
            if not chunk:
                self.eof = True
                break
            self.base += self.pos
            self.buf = self.buf[self.pos:] + chunk
            self.pos = 0
        return len(self.buf) - self.pos >= need

    def _jump(self, at: int) -> None:
        """Continue reading at absolute offset ``at``."""
        if self.base <= at <= self.base + len(self.buf):
            self.pos = at - self.base
            return
        self.src.seek(at)
        self.buf, self.pos, self.base, self.eof = "", 0, at, False

    def __iter__(self) -> Iterator[Token]:
        while True:
            if self.pos >= len(self.buf) and not self._fill(1):
                return
            space = _SPACE.match(self.buf, self.pos)
            if space is not None:
                self.pos = space.end()
                continue
            char = self.buf[self.pos]
            at = self.base + self.pos
            if char in _PUNCT:
                self.pos += 1
                yield char, char, at
            elif char == "(":
                token = self._cell(at)
                if token is None:
                    self._jump(at + 1)
                    token = ("other", "(", at)
                yield token
            elif char in _ID_START:
                yield self._id(at)
            elif char == "@":
                token = self._group(at)
                if token is not None:
                    yield token
            elif char == "/" and self._fill(2) and self.buf[self.pos + 1] == "/":
                self._skip_line()
            else:
                run = _OTHER_RUN.match(self.buf, self.pos)
                self.pos = run.end() if run else self.pos + 1
                # A run that reaches the end of the piece goes on into the next one: the tokens
                # must not depend on how the input was read.
                while run is not None and self.pos >= len(self.buf) and self._fill(1):
                    run = _OTHER_RUN.match(self.buf, self.pos)
                    if run is not None:
                        self.pos = run.end()
                yield "other", char, at

    # -- tokens ----------------------------------------------------------------------------------
    def _id(self, at: int) -> Token:
        self._fill(_LOOKAHEAD)
        match = _ID.match(self.buf, self.pos)
        if match is None:
            self.pos += 1
            return "op", self.buf[self.pos - 1], at
        if match.end() - self.pos < _LOOKAHEAD:  # then it ends inside the look-ahead: complete
            self.pos = match.end()
            return "id", match.group(), at
        # An id as long as the look-ahead is garbage: skip the whole run, keep nothing.
        while True:
            run = _ID_RUN.match(self.buf, self.pos)
            self.pos = run.end() if run else self.pos
            if self.pos < len(self.buf) or not self._fill(1):
                return "other", "", at

    def _skip_line(self) -> None:
        """Skip a ``//`` comment to the end of its line (however long it is)."""
        while True:
            ends = [i for i in (self.buf.find("\n", self.pos), self.buf.find("\r", self.pos)) if i >= 0]
            if ends:
                self.pos = min(ends)
                return
            self.pos = len(self.buf)
            if not self._fill(1):
                return

    def _group(self, at: int) -> Token | None:
        """A group marker; an aborted group is skipped whole (None: nothing to yield)."""
        self._fill(_LOOKAHEAD)
        match = _GROUP.match(self.buf, self.pos)
        if match is None or match.end() - self.pos >= _LOOKAHEAD:
            self.pos += 1
            return "other", "@", at
        self.pos = match.end()
        if match.group("start") is None:
            return "gend", match.group(), at
        end = self._group_end(self.base + self.pos)
        if end >= 0 and self._peek(end, len(_ABORT)) == _ABORT:
            self.db.aborted_groups += 1
            self._jump(end + len(_ABORT))
            return None
        return "gstart", match.group(), at

    def _group_end(self, after: int) -> int:
        """Absolute offset of the first group end marker at or after ``after`` (-1: none)."""
        cached = self._end_cache
        if cached is not None and cached[0] <= after and (cached[1] < 0 or cached[1] >= after):
            return cached[1]
        found = self.buf.find(_GROUP_END, max(0, after - self.base))
        if found >= 0:
            found += self.base
        else:
            found = self.src.find(_GROUP_END, max(after, self.base + len(self.buf) - len(_GROUP_END) + 1))
        self._end_cache = (after, found)
        return found

    def _peek(self, at: int, size: int) -> str:
        start = at - self.base
        if 0 <= start and start + size <= len(self.buf):
            return self.buf[start:start + size]
        return self.src.peek(at, size)

    def _cell(self, at: int) -> Token | None:
        """The cell starting at ``at`` (None: it is never closed, the "(" is not a cell)."""
        if 0 <= self.no_close_from <= at:
            return None
        relative = 1  # cell text starts after "(" (relative to pos: the buffer may move)
        while True:
            start = self.pos + relative
            end = _closing(self.buf, start, start)
            if end >= 0:
                self.pos = end + 1
                if end - start > MAX_VALUE_CHARS:
                    self._count_cut(at)
                    end = start + MAX_VALUE_CHARS
                return "cell", self.buf[start:end], at
            if self.eof:
                self.no_close_from = at
                return None
            if len(self.buf) - start > MAX_VALUE_CHARS:
                return self._long_cell(at, start)
            self._fill(len(self.buf) - self.pos + _CHUNK)

    def _count_cut(self, at: int) -> None:
        self.db.cut_values += 1
        if self.db.first_cut_offset is None:
            self.db.first_cut_offset = at

    def _long_cell(self, at: int, start: int) -> Token | None:
        """A cell longer than the buffer: keep its start, skip to its close (or give up at the end)."""
        kept = self.buf[start:start + MAX_VALUE_CHARS]
        rest = self.buf[start:]
        backslashes = len(rest) - len(rest.rstrip("\\"))  # trailing run, continued by the next piece
        self.pos = len(self.buf)
        while self._fill(1):
            buf = self.buf
            close = buf.find(")")
            while close >= 0:
                first = close
                while first > 0 and buf[first - 1] == "\\":
                    first -= 1
                run = close - first + (backslashes if first == 0 else 0)
                if run % 2 == 0:
                    self.pos = close + 1
                    self._count_cut(at)
                    return "cell", kept, at
                close = buf.find(")", close + 1)
            stripped = len(buf) - len(buf.rstrip("\\"))
            backslashes = backslashes + stripped if stripped == len(buf) else stripped
            self.pos = len(buf)
        self.no_close_from = at
        return None


def _closing(buf: str, search: int, low: int) -> int:
    """Index of the first ``)`` at or after ``search`` not escaped by a backslash (-1: none).

    A ``)`` is escaped when an odd run of backslashes (not reaching back before ``low``) precedes it.
    """
    while True:
        close = buf.find(")", search)
        if close < 0:
            return -1
        first = close
        while first > low and buf[first - 1] == "\\":
            first -= 1
        if (close - first) % 2 == 0:
            return close
        search = close + 1


# -- the reader -----------------------------------------------------------------------------------
class _Reader:
    def __init__(self, scanner: _Scanner, db: MorkDatabase, columns: Collection[str] | None) -> None:
        self.tokens = iter(scanner)
        self.columns: dict[str, str] = {}
        self.atoms: dict[str, str] = {}
        self.scopes_of: dict[str, str] = {}
        self.wanted = None if columns is None else frozenset(columns)
        self.db = db
        self._pending: Token | None = None

    def _next(self) -> Token | None:
        if self._pending is not None:
            token, self._pending = self._pending, None
            return token
        return next(self.tokens, None)

    def _peek(self) -> Token | None:
        if self._pending is None:
            self._pending = next(self.tokens, None)
        return self._pending

    def _skip_to(self, closing: str) -> None:
        while (token := self._next()) is not None and token[0] != closing:
            pass

    # -- helpers ---------------------------------------------------------------------------------
    def _split_id(self, token: str, default_scope: str) -> tuple[str, str, str]:
        """(operator, id, scope) of ``-5:^80`` style ids."""
        op = token[0] if token[0] in "-!+" else ""
        token = token[len(op):]
        ident, _, scope = token.partition(":")
        if scope.startswith("^"):
            scope = self.columns.get(scope[1:].upper(), scope)
        return op, ident.upper(), scope or default_scope

    def _cell(self, body: str) -> tuple[str, str] | None:
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
        if self.wanted is not None and column not in self.wanted:
            return column, ""  # not kept: the value is not even decoded
        if rest.startswith("="):
            return column, decode_value(rest[1:])
        if rest.startswith("^"):
            atom = rest[1:].split(":", 1)[0].upper()
            return column, self.atoms.get(atom, "")
        return column, ""

    # -- the pass --------------------------------------------------------------------------------
    def read(self) -> MorkDatabase:
        while (token := self._next()) is not None:
            kind = token[0]
            if kind == "gstart":
                self.db.groups += 1
            elif kind == "gend":
                pass
            elif kind == "<":
                self._dict()
            elif kind == "[":
                self._row("", None)
            elif kind == "{":
                self._table()
            else:
                self.db.skipped += 1
        self.db.groups += self.db.aborted_groups
        return self.db

    def _dict(self) -> None:
        target = self.atoms
        while (token := self._next()) is not None:
            kind, value, _ = token
            if kind == ">":
                return
            if kind == "<":  # meta: <(a=c)> switches this dictionary to column names
                while (token := self._next()) is not None and token[0] != ">":
                    if token[0] == "cell" and token[1].replace(" ", "") == "a=c":
                        target = self.columns
                continue
            if kind == "cell":
                key, _, literal = value.partition("=")
                target[key.strip().upper()] = decode_value(literal)

    def _row(self, default_scope: str, table: MorkTable | None, cut: bool = False) -> None:
        head = self._peek()
        if head is None or head[0] != "id":
            self._skip_to("]")  # "[" without an id
            return
        self._next()
        op, ident, scope = self._split_id(head[1], default_scope)
        if not scope:
            # A row outside any table and without a scope updates the row of that id (the one
            # scope it was defined in), as Thunderbird's appended changes do.
            scope = self.scopes_of.get(ident, "")
        key = (scope, ident)
        offset = head[2]
        cells: dict[str, str] = {}
        had_cells = False  # any cell, kept or not: decides replace/update as if all were kept
        while (token := self._next()) is not None and token[0] != "]":
            if token[0] == "cell":
                cell = self._cell(token[1])
                if cell is not None:
                    had_cells = True
                    if self.wanted is None or cell[0] in self.wanted:
                        cells[cell[0]] = cell[1]
            elif token[0] == "[":  # row meta: skip it
                self._skip_to("]")
        existing = self.db.rows.get(key)
        if op == "-" and table is None:
            if had_cells:  # a bare "[-id]" outside a table clears nothing we need
                self.db.rows[key] = cells
        elif had_cells or existing is None:
            if existing is None:
                self.db.rows[key] = cells
                self.db.row_offsets[key] = offset
                self.scopes_of.setdefault(ident, scope)
            else:
                existing.update(cells)
        if table is not None:
            if cut:
                table.rows.pop(ident, None)
                table.cut[ident] = offset
            else:
                table.rows[ident] = None
                table.cut.pop(ident, None)

    def _table(self) -> None:
        head = self._peek()
        if head is None or head[0] != "id":
            depth = 1
            while depth and (token := self._next()) is not None:
                depth += {"{": 1, "}": -1}.get(token[0], 0)
            return
        self._next()
        op, ident, scope = self._split_id(head[1], "")
        table = self.db.tables.get((scope, ident))
        if table is None:
            table = self.db.tables[(scope, ident)] = MorkTable(scope=scope)
        if op in ("-", "!"):
            self._reset(table, head[2])
        cut_next = False
        while (token := self._next()) is not None and token[0] != "}":
            kind, value, offset = token
            if kind == "{":  # table meta: (k^96:c) names the kind
                while (token := self._next()) is not None and token[0] != "}":
                    if token[0] == "cell" and token[1].startswith("k"):
                        ref = token[1][1:].lstrip("=")
                        if ref.startswith("^"):
                            ref = self.columns.get(ref[1:].split(":", 1)[0].upper(), ref)
                        table.kind = ref
            elif kind == "op":
                if value == "-":
                    cut_next = True
                elif value == "!":
                    self._reset(table, offset)
            elif kind == "[":
                self._row(scope, table, cut=cut_next)
                cut_next = False
            elif kind == "id":
                row_op, row_id, _ = self._split_id(value, scope)
                if cut_next or row_op == "-":
                    table.rows.pop(row_id, None)
                    table.cut[row_id] = offset
                else:
                    table.rows[row_id] = None
                    table.cut.pop(row_id, None)
                cut_next = False
            else:
                self.db.skipped += 1

    @staticmethod
    def _reset(table: MorkTable, offset: int) -> None:
        for row_id in table.rows:
            table.cut.setdefault(row_id, offset)
        table.rows.clear()


def read_mork(source: str | BinaryIO, columns: Collection[str] | None = None) -> MorkDatabase:
    """Parse Mork from a binary file object (streamed from its current position) or from text
    (already decoded as Latin-1, so that every byte survives).

    ``columns``: keep only the cells of these columns (all when None); rows, tables and cuts are
    kept whole either way. Offsets are byte offsets of the file.
    """
    db = MorkDatabase()
    if isinstance(source, str):
        return _Reader(_Scanner(_TextSource(source), db), db, columns).read()
    if not source.seekable():  # the group look-ahead reads ahead and comes back
        with tempfile.TemporaryFile() as spool:
            shutil.copyfileobj(source, spool, 1 << 20)
            spool.seek(0)
            return _Reader(_Scanner(_FileSource(spool), db), db, columns).read()  # type: ignore[arg-type]
    return _Reader(_Scanner(_FileSource(source), db), db, columns).read()
