"""A cache of parsed SELECT statements keyed by their shape: the text with its literals masked.

Dashboards and benchmarks send the same statement again and again with other literals (a tag
value, a time range). Tokenizing and parsing such a statement costs tens of microseconds; finding
its shape costs one regular-expression pass. `ShapeCache.parse` masks the literals ('strings',
integers, numbers, durations) of the text, looks the masked text up, and on a hit re-binds the
new literals into the cached syntax tree; on a miss it parses the text, and keeps the tree as the
template of its shape when the shape comes a second time (a one-off statement pays only for the
mask).

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
- Only successful parses are stored. A text whose literal the parser would refuse (an integer
  longer than Python converts) fails to bind and is parsed afresh, which fails as it always did.
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
from operator import itemgetter
from typing import Any, NamedTuple

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
#: that quotes and digits inside them stay in the shape too. This is the readable form;
#: `_SLOT` below matches exactly the same (a test compares them on random texts).
_SLOT_PLAIN = re.compile(
    r"""(?P<q>"[^"\\]*")
    |(?P<s>'[^'\\]*')
    |(?P<x>[/\\\x00]|--)
    |(?<![A-Za-z0-9_.])(?:
        (?P<d>(?:[0-9]+(?:ns|us|µ|u|ms|s|m|h|d|w))+(?![A-Za-z0-9_]))
        |(?P<n>[0-9]+\.[0-9]*|\.[0-9]+)
        |(?P<i>[0-9]+))""",
    re.VERBOSE,
)
#: `_SLOT_PLAIN` arranged to start with one character class, so that the regex engine skips
#: the characters no literal starts with in its fast search loop (a third fewer instructions
#: per text); each alternative then checks which character that was with a lookbehind. Group
#: names map to kinds through `_KIND_OF`; the match (group 0) is the literal's whole text.
_UNIT = "(?:ns|us|µ|u|ms|s|m|h|d|w)"
_SLOT = re.compile(
    r"""["'.0-9/\\\x00-](?:
    (?<=")(?P<q>[^"\\]*")
    |(?<=')(?P<s>[^'\\]*')
    |(?<=[/\\\x00])(?P<x>)
    |(?<=-)(?P<x2>-)
    |(?<![A-Za-z0-9_.].)(?:
        (?<=[0-9])(?P<d>[0-9]*UNIT(?:[0-9]+UNIT)*(?![A-Za-z0-9_]))
        |(?<=[0-9])(?P<n>[0-9]*\.[0-9]*)
        |(?<=\.)(?P<f>[0-9]+)
        |(?<=[0-9])(?P<i>[0-9]*)))""".replace("UNIT", _UNIT),
    re.VERBOSE,
)
_KIND_OF = {"q": "q", "s": "s", "x": "x", "x2": "x", "d": "d", "n": "n", "f": "n", "i": "i"}
_MARK = {"s": "\x00s", "d": "\x00d", "n": "\x00n", "i": "\x00i"}
_TOKEN_KIND = {"s": "STRING", "d": "DURATION", "n": "NUMBER", "i": "INTEGER"}
_MISSING = object()
_SEEN = object()  # a shape seen once: its template is built when it comes again


#: One literal of a text: (kind: s, d, n or i; its offset; its text as written, quotes and
#: all). A plain tuple: a text has several and a NamedTuple costs more to make.
_Slot = tuple[str, int, str]


class _BypassError(Exception):
    """Stops the mask pass at a regex, escape, comment or NUL: the text bypasses the cache."""


def mask_literals(text: str) -> tuple[str, list[_Slot]] | None:
    """The shape of `text` and its literals, or None when the text bypasses the cache."""
    if len(text) > MAX_TEXT:
        return None
    slots: list[_Slot] = []
    append = slots.append

    def mark(m: re.Match[str]) -> str:
        kind = _KIND_OF[m.lastgroup]  # type: ignore[index]
        if kind == "q":
            return m.group()
        if kind == "x":
            raise _BypassError
        append((kind, m.start(), m.group()))
        return _MARK[kind]  # type: ignore[index]

    try:
        return _SLOT.sub(mark, text), slots
    except _BypassError:
        return None


def _duration(raw: str) -> Expr:
    return Duration(parse_duration(raw), raw)


#: How the parser's `primary` makes a node of each kind of literal token (ValueError: it
#: refuses the literal).
_NODE: dict[str, Callable[[str], Expr]] = {
    "s": lambda raw: Literal(raw[1:-1]),
    "i": lambda raw: Literal(int(raw)),
    "n": lambda raw: Literal(float(raw)),
    "d": _duration,
}

#: Builds an expression from the new literals' nodes (a list indexed like the slots).
_Build = Callable[[list[Any]], Expr]


def _builder(e: Expr, slot_of: dict[int, int]) -> _Build | None:
    """A function building `e` anew with the nodes of its bound literals replaced (by the
    slot index `slot_of` gives their id), sharing every subtree without one; None: `e` has no
    bound literal. Made once per template, so that a hit walks no tree."""
    k = slot_of.get(id(e))
    if k is not None:
        return itemgetter(k)
    if isinstance(e, BinOp):
        op, left, right = e.op, e.left, e.right
        lb, rb = _builder(left, slot_of), _builder(right, slot_of)
        if lb is None and rb is None:
            return None
        if rb is None:
            return lambda n: BinOp(op, lb(n), right)  # type: ignore[misc]
        if lb is None:
            return lambda n: BinOp(op, left, rb(n))
        return lambda n: BinOp(op, lb(n), rb(n))
    if isinstance(e, Call):
        name = e.name
        args = [(_builder(a, slot_of), a) for a in e.args]
        if all(b is None for b, _ in args):
            return None
        return lambda n: Call(name, tuple(a if b is None else b(n) for b, a in args))
    return None


class _Statement(NamedTuple):
    """One cached SELECT and the builders of its expressions that hold bound literals."""

    select: Select
    fields: list[tuple[_Build | None, Expr, str | None]]
    condition: _Build | None


class _Template(NamedTuple):
    statements: list[_Statement]
    bound: tuple[tuple[int, Callable[[str], Expr]], ...]  # (slot index, its node's maker)
    fixed: tuple[tuple[int, str], ...]  # (slot index, the text the slot must have)


def _count(e: Expr | None, seen: dict[int, int]) -> None:
    """Count each node of the tree in `seen` (by id)."""
    if e is None:
        return
    seen[id(e)] = seen.get(id(e), 0) + 1
    if isinstance(e, BinOp):
        _count(e.left, seen)
        _count(e.right, seen)
    elif isinstance(e, Call):
        for a in e.args:
            _count(a, seen)


def _copy(s: _Statement, nodes: list[Any]) -> Select:
    t = s.select
    return Select(
        [(e if b is None else b(nodes), alias) for b, e, alias in s.fields],
        list(t.sources),
        t.condition if s.condition is None else s.condition(nodes),
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
        #: shape -> its template; None: a shape that is never cached; _SEEN: seen once
        self._entries: dict[str, _Template | object | None] = {}
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
        if template is _MISSING:
            # First sight: parse as usual and only note the shape. Building a template costs
            # half a parse more, worth it for a shape that comes again, not for a one-off.
            self._store(shape, _SEEN)
            return self._parse(text)
        if template is _SEEN:
            statements, tokens, made = self._recording(text)  # a syntax error: nothing stored
            template = _template(statements, tokens, made, slots)
            self._store(shape, template)
            if template is None:
                return statements
            # the template keeps the parsed objects; the caller gets its own copies
            return self._bind(template, slots) or self._parse(text)
        if template is None:
            return self._parse(text)
        out = self._bind(template, slots)  # type: ignore[arg-type]
        if out is not None:
            self.hits += 1
            return out
        return self._parse(text)  # a fixed literal differs, or a literal does not convert

    def _store(self, shape: str, entry: _Template | object | None) -> None:
        with self._lock:
            if len(self._entries) >= MAX_SHAPES and shape not in self._entries:
                self._entries.pop(next(iter(self._entries)), None)
            self._entries[shape] = entry  # type: ignore[assignment]

    @staticmethod
    def _bind(template: _Template, slots: list[_Slot]) -> list[Statement] | None:
        for index, text in template.fixed:
            if slots[index][2] != text:
                return None
        nodes: list[Any] = [None] * len(slots)
        try:
            for index, make in template.bound:
                nodes[index] = make(slots[index][2])
        except ValueError:  # the parser refuses this literal: let it say so
            return None
        return [_copy(s, nodes) for s in template.statements]


def _template(
    statements: list[Statement], tokens: list[Token], made: dict[int, Expr], slots: list[_Slot]
) -> _Template | None:
    """The template of a freshly parsed text, or None when its shape cannot be cached."""
    if not all(type(s) is Select for s in statements):
        return None
    selects: list[Select] = statements  # type: ignore[assignment]
    index_at = {tok.pos: i for i, tok in enumerate(tokens) if tok.kind != "EOF"}
    seen: dict[int, int] = {}
    for st in selects:
        for e, _ in st.fields:
            _count(e, seen)
        _count(st.condition, seen)
    bound: list[tuple[int, Callable[[str], Expr]]] = []
    fixed: list[tuple[int, str]] = []
    slot_of: dict[int, int] = {}
    for k, (kind, start, raw) in enumerate(slots):
        i = index_at.get(start)
        if i is None:
            return None
        tok = tokens[i]
        length = len(tok.value) + 2 if tok.kind == "STRING" else len(tok.value)
        if tok.kind != _TOKEN_KIND[kind] or length != len(raw):
            return None  # the mask and the lexer disagree about this literal
        node = made.get(i)
        if node is not None and seen.get(id(node)) == 1:
            bound.append((k, _NODE[kind]))
            slot_of[id(node)] = k
        else:
            fixed.append((k, raw))
    cached = [
        _Statement(
            st,
            [(_builder(e, slot_of), e, alias) for e, alias in st.fields],
            None if st.condition is None else _builder(st.condition, slot_of),
        )
        for st in selects
    ]
    return _Template(cached, tuple(bound), tuple(fixed))
