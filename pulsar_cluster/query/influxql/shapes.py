"""A cache of parsed SELECT statements keyed by their shape: the text with its literals masked.

Dashboards and benchmarks send the same statement again and again with other literals (a tag
value, a time range). Tokenizing and parsing such a statement costs tens of microseconds; finding
its shape costs one regular-expression pass. `ShapeCache.parse` masks the literals ('strings',
integers, numbers, durations) of the text, looks the masked text up, and on a hit re-binds the
new literals into the cached syntax tree; on a miss it parses the text and keeps the tree as the
template of its shape.

Why a hit gives exactly what a fresh parse gives:
- Texts with the same masked text have the same characters outside the literals, and each
  literal is one token of the same kind (the mask pattern is the lexer's own for these tokens,
  and the template's tokens are checked against the mask when it is stored). The lexer and the
  parser decide only by token kinds and by the values of non-literal tokens, except where a
  literal's value itself is read. So the parse takes the same path and builds the same tree,
  except for the nodes made from literals.
- A literal that the parser turned into a plain node (`Literal`, `Duration`) that is still in the
  finished tree is *bound*: on a hit its node is built anew from the new text, as the parser
  builds it. Any other literal (LIMIT n, fill(n), GROUP BY time(d), tz('UTC'), an IN list, a
  negated number) is *fixed*: the cached tree is used only when it has the same text there;
  otherwise the statement is parsed afresh.
- Only successful parses are stored. A text whose literal the parser would refuse (a duration
  too long to convert) fails to bind and is parsed afresh, which raises the parser's own error.
  Texts with a `/` (a regex or a division, decided by context), a backslash (escapes), a
  comment, or a NUL (the mask's marker) bypass the cache.
- Statements are mutable dataclasses: every hit returns new statement objects (the expression
  nodes, frozen, are shared where unchanged).

Bounded memory: at most MAX_SHAPES entries of texts up to MAX_TEXT characters (a template is
the tree of one such text); when full, the oldest entry goes.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Callable
from typing import NamedTuple

from pulsar_cluster.query.influxql.ast import (
    BinOp,
    Call,
    Duration,
    Expr,
    Literal,
    Select,
    Statement,
)
from pulsar_cluster.query.influxql.lexer import Token
from pulsar_cluster.timeutil import parse_duration

__all__ = ["ShapeCache", "mask_literals", "MAX_SHAPES", "MAX_TEXT"]

MAX_SHAPES = 256
MAX_TEXT = 4096

#: The literal tokens, exactly as the lexer's pattern spells them, and what bypasses the cache
#: (`x`). A number, integer or duration must not continue an identifier or a number (`host2`,
#: `1.5.3`): the lookbehind leaves those digits in the shape. Quoted identifiers are matched so
#: that quotes and digits inside them stay in the shape too. The leading lookahead lets the scan
#: skip other characters quickly (it is 3x faster with it).
_SLOT = re.compile(
    r"""(?=["'.0-9/\\\x00-])(?:
    (?P<q>"[^"\\]*")
    |(?P<s>'[^'\\]*')
    |(?P<x>[/\\\x00]|--)
    |(?<![A-Za-z0-9_.])(?:
        (?P<d>(?:[0-9]+(?:ns|us|µ|u|ms|s|m|h|d|w))+(?![A-Za-z0-9_]))
        |(?P<n>[0-9]+\.[0-9]*|\.[0-9]+)
        |(?P<i>[0-9]+)))""",
    re.VERBOSE,
)
_MARK = {"s": "\x00s", "d": "\x00d", "n": "\x00n", "i": "\x00i"}
_TOKEN_KIND = {"s": "STRING", "d": "DURATION", "n": "NUMBER", "i": "INTEGER"}
_MISSING = object()


class _Slot(NamedTuple):
    kind: str  # s, d, n, i
    start: int
    text: str  # the literal as written (with its quotes)


class _BypassError(Exception):
    pass


def mask_literals(text: str) -> tuple[str, list[_Slot]] | None:
    """The shape of `text` and its literals, or None when the text bypasses the cache."""
    if len(text) > MAX_TEXT:
        return None
    slots: list[_Slot] = []
    append = slots.append

    def mark(m: re.Match[str]) -> str:
        kind = m.lastgroup
        if kind == "q":
            return m.group()
        if kind == "x":
            raise _BypassError
        append(_Slot(kind, m.start(), m.group()))  # type: ignore[arg-type]
        return _MARK[kind]  # type: ignore[index]

    try:
        return _SLOT.sub(mark, text), slots
    except _BypassError:
        return None


def _node(kind: str, raw: str) -> Expr:
    """The node the parser's `primary` makes of this literal token."""
    if kind == "s":
        return Literal(raw[1:-1])
    if kind == "i":
        return Literal(int(raw))
    if kind == "n":
        return Literal(float(raw))
    return Duration(parse_duration(raw), raw)


class _Template(NamedTuple):
    statements: list[Select]
    bound: tuple[tuple[int, Expr], ...]  # (slot index, the template's node of that slot)
    fixed: tuple[tuple[int, str], ...]  # (slot index, the text the slot must have)
    dirty: frozenset[int]  # ids of the bound nodes and of the nodes above them


def _walk(e: Expr | None, seen: dict[int, int], parents: dict[int, int]) -> None:
    """Count each node of the tree in `seen` (by id) and note its parent's id."""
    if e is None:
        return
    seen[id(e)] = seen.get(id(e), 0) + 1
    children: tuple[Expr, ...] = ()
    if isinstance(e, BinOp):
        children = (e.left, e.right)
    elif isinstance(e, Call):
        children = e.args
    for c in children:
        parents[id(c)] = id(e)
        _walk(c, seen, parents)


def _rebind(e: Expr, new: dict[int, Expr], dirty: frozenset[int]) -> Expr:
    """`e` with the nodes keyed in `new` (by id) replaced; `dirty` holds the ids of the bound
    nodes and of every node above one, so untouched subtrees are returned as they are."""
    key = id(e)
    if key not in dirty:
        return e
    found = new.get(key)
    if found is not None:
        return found
    if isinstance(e, BinOp):
        return BinOp(e.op, _rebind(e.left, new, dirty), _rebind(e.right, new, dirty))
    assert isinstance(e, Call)  # only BinOp and Call have children
    return Call(e.name, tuple(_rebind(a, new, dirty) for a in e.args))


def _copy(t: Select, new: dict[int, Expr], dirty: frozenset[int]) -> Select:
    condition = t.condition
    return Select(
        [(_rebind(e, new, dirty), alias) for e, alias in t.fields],
        list(t.sources),
        None if condition is None else _rebind(condition, new, dirty),
        t.every,
        t.offset,
        None if t.group_tags is None else list(t.group_tags),
        t.fill,
        t.fill_value,
        t.descending,
        t.limit,
        t.offset_rows,
        t.slimit,
        t.soffset,
    )


#: parse(text) -> (statements, tokens, {token index: node made of that literal token})
RecordingParse = Callable[[str], tuple[list[Statement], list[Token], dict[int, Expr]]]


class ShapeCache:
    def __init__(self, parse: Callable[[str], list[Statement]], recording: RecordingParse) -> None:
        self._parse = parse
        self._recording = recording
        self._entries: dict[str, _Template | None] = {}  # None: a shape that is never cached
        self._lock = threading.Lock()  # parse_query may run in worker threads as well
        self.hits = 0

    def __len__(self) -> int:
        return len(self._entries)

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()

    def parse(self, text: str) -> list[Statement]:
        masked = mask_literals(text)
        if masked is None:
            return self._parse(text)
        shape, slots = masked
        template = self._entries.get(shape, _MISSING)
        if template is not _MISSING:
            if template is None:
                return self._parse(text)
            out = self._bind(template, slots)
            if out is not None:
                self.hits += 1
                return out
            return self._parse(text)  # a fixed literal differs, or a literal does not convert
        statements, tokens, made = self._recording(text)  # raises on a syntax error: not stored
        template = _template(statements, tokens, made, slots)
        with self._lock:
            if len(self._entries) >= MAX_SHAPES:
                self._entries.pop(next(iter(self._entries)), None)
            self._entries[shape] = template
        if template is None:
            return statements
        # the template keeps the parsed objects; the caller gets its own copies
        return self._bind(template, slots) or self._parse(text)

    @staticmethod
    def _bind(template: _Template, slots: list[_Slot]) -> list[Statement] | None:
        for index, text in template.fixed:
            if slots[index].text != text:
                return None
        new: dict[int, Expr] = {}
        try:
            for index, node in template.bound:
                slot = slots[index]
                new[id(node)] = _node(slot.kind, slot.text)
        except ValueError:  # the parser refuses this literal: let it say so
            return None
        return [_copy(t, new, template.dirty) for t in template.statements]


def _template(
    statements: list[Statement], tokens: list[Token], made: dict[int, Expr], slots: list[_Slot]
) -> _Template | None:
    """The template of a freshly parsed text, or None when its shape cannot be cached."""
    if not all(type(s) is Select for s in statements):
        return None
    index_at = {tok.pos: i for i, tok in enumerate(tokens) if tok.kind != "EOF"}
    seen: dict[int, int] = {}
    parents: dict[int, int] = {}
    for s in statements:
        assert isinstance(s, Select)
        for e, _ in s.fields:
            _walk(e, seen, parents)
        _walk(s.condition, seen, parents)
    bound: list[tuple[int, Expr]] = []
    fixed: list[tuple[int, str]] = []
    for k, slot in enumerate(slots):
        i = index_at.get(slot.start)
        if i is None:
            return None
        tok = tokens[i]
        length = len(tok.value) + 2 if tok.kind == "STRING" else len(tok.value)
        if tok.kind != _TOKEN_KIND[slot.kind] or length != len(slot.text):
            return None  # the mask and the lexer disagree about this literal
        node = made.get(i)
        if node is not None and seen.get(id(node)) == 1:
            bound.append((k, node))
        else:
            fixed.append((k, slot.text))
    dirty: set[int] = set()
    for _, node in bound:
        key: int | None = id(node)
        while key is not None and key not in dirty:
            dirty.add(key)
            key = parents.get(key)
    return _Template(statements, tuple(bound), tuple(fixed), frozenset(dirty))  # type: ignore[arg-type]
