"""Tag and field predicates of a query, in the plain (list) form a plan carries on the wire.

Tag predicates are resolved through the tag index to a set of series *before* any data is read:

    ["true"]                       every series of the measurement
    ["cmp", key, op, value]        op: "=", "!=", "=~", "!~" (value: a regex for the last two)
    ["in", key, [v1, v2, ...]]     key equal to one of the values
    ["and", a, b]  ["or", a, b]

A series without the tag key has the empty string as its value (InfluxDB's rule), so
`host != 'a'` and `host =~ /^$/` match it.

Field predicates filter points of each series:

    ["fcmp", field, op, literal]   op: = != < <= > >= =~ !~; a point without the field fails
    ["and", a, b]  ["or", a, b]
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any, Protocol

import numpy as np

from pulsar_cluster.errors import QueryError

__all__ = [
    "TRUE",
    "TagIndexView",
    "resolve_series",
    "check_tag_expr",
    "field_mask",
    "fields_of",
    "compile_regex",
]

TRUE: list[Any] = ["true"]
_TAG_OPS = {"=", "!=", "=~", "!~"}
_FIELD_OPS = {"=", "!=", "<", "<=", ">", ">=", "=~", "!~"}


class TagIndexView(Protocol):
    """The index view a tag predicate is resolved against (node/engine/index.py provides it).

    Every method returns a fresh copy; storage keys are `database NUL series_key`.
    """

    def series_of_measurement(self, database: str, measurement: str) -> set[bytes]: ...

    def series_with_tag(
        self, database: str, measurement: str, key: str, value: str
    ) -> set[bytes]: ...

    def tag_values(self, database: str, measurement: str, key: str) -> list[str]: ...


def compile_regex(pattern: str) -> re.Pattern[str]:
    try:
        return re.compile(pattern)
    except re.error as exc:
        raise QueryError(f"invalid regular expression /{pattern}/: {exc}") from None


def check_tag_expr(expr: Any) -> None:
    """Raise QueryError unless expr is a well-formed tag predicate."""
    if not isinstance(expr, list) or not expr:
        raise QueryError("malformed tag predicate")
    op = expr[0]
    if op == "true" and len(expr) == 1:
        return
    if op in ("and", "or") and len(expr) == 3:
        check_tag_expr(expr[1])
        check_tag_expr(expr[2])
        return
    if op == "cmp" and len(expr) == 4 and expr[2] in _TAG_OPS:
        if not isinstance(expr[1], str) or not isinstance(expr[3], str):
            raise QueryError("a tag comparison needs a tag key and a string value")
        if expr[2] in ("=~", "!~"):
            compile_regex(expr[3])
        return
    if op == "in" and len(expr) == 3 and isinstance(expr[2], list):
        if not all(isinstance(v, str) for v in expr[2]):
            raise QueryError("IN takes a list of strings")
        return
    raise QueryError(f"malformed tag predicate {expr!r}")


def _value_test(op: str, value: Any) -> Callable[[str], bool]:
    if op == "=":
        return lambda v: v == value
    if op == "!=":
        return lambda v: v != value
    rx = compile_regex(value)
    if op == "=~":
        return lambda v: rx.search(v) is not None
    return lambda v: rx.search(v) is None


def resolve_series(expr: Any, view: TagIndexView, database: str, measurement: str) -> set[bytes]:
    """Storage keys of the measurement's series that satisfy the tag predicate."""
    universe: set[bytes] | None = None

    def everything() -> set[bytes]:
        nonlocal universe
        if universe is None:
            universe = view.series_of_measurement(database, measurement)
        return universe

    def key_matching(key: str, test: Callable[[str], bool]) -> set[bytes]:
        values = view.tag_values(database, measurement, key)
        out: set[bytes] = set()
        for v in values:
            if test(v):
                out |= view.series_with_tag(database, measurement, key, v)
        if test(""):  # series without the key count as having the empty value
            having: set[bytes] = set()
            for v in values:
                having |= view.series_with_tag(database, measurement, key, v)
            out |= everything() - having
        return out

    def walk(e: Any) -> set[bytes]:
        op = e[0]
        if op == "true":
            return set(everything())
        if op == "and":
            left = walk(e[1])
            return left & walk(e[2]) if left else left
        if op == "or":
            return walk(e[1]) | walk(e[2])
        if op == "cmp" and e[2] == "=" and e[3] != "":
            return view.series_with_tag(database, measurement, e[1], e[3])  # the posting list
        if op == "cmp":
            return key_matching(e[1], _value_test(e[2], e[3]))
        if op == "in":
            wanted = set(e[2])
            return key_matching(e[1], wanted.__contains__)
        raise QueryError(f"malformed tag predicate {e!r}")

    check_tag_expr(expr)
    return walk(expr)


def fields_of(expr: Any) -> set[str]:
    """Field names a field predicate reads."""
    if expr is None:
        return set()
    if expr[0] in ("and", "or"):
        return fields_of(expr[1]) | fields_of(expr[2])
    return {expr[1]}


_NUM_CMP: dict[str, Callable[[np.ndarray, Any], np.ndarray]] = {
    "=": np.equal,
    "!=": np.not_equal,
    "<": np.less,
    "<=": np.less_equal,
    ">": np.greater,
    ">=": np.greater_equal,
}


def _compare(values: np.ndarray, op: str, literal: Any) -> np.ndarray:
    if op in ("=~", "!~"):
        if values.dtype != object:
            return np.zeros(len(values), dtype=bool)
        rx = compile_regex(literal)
        hit = np.fromiter((rx.search(v) is not None for v in values), bool, len(values))
        return hit if op == "=~" else ~hit
    numeric_values = values.dtype != object
    numeric_literal = isinstance(literal, int | float) and not isinstance(literal, bool)
    if isinstance(literal, bool):
        if values.dtype != np.bool_ or op not in ("=", "!="):
            return np.zeros(len(values), dtype=bool)
        return _NUM_CMP[op](values, literal)
    if numeric_values and numeric_literal and values.dtype != np.bool_:
        return _NUM_CMP[op](values, literal)
    if not numeric_values and isinstance(literal, str):
        fn = _NUM_CMP[op]
        return np.fromiter((bool(fn(v, literal)) for v in values), bool, len(values))
    return np.zeros(len(values), dtype=bool)  # type mismatch: InfluxDB matches nothing


def field_mask(
    expr: Any, ts: np.ndarray, get: Callable[[str], tuple[np.ndarray, np.ndarray] | None]
) -> np.ndarray:
    """Which of the rows at times `ts` satisfy the field predicate; `get(field)` reads a field."""
    op = expr[0]
    if op == "and":
        return field_mask(expr[1], ts, get) & field_mask(expr[2], ts, get)
    if op == "or":
        return field_mask(expr[1], ts, get) | field_mask(expr[2], ts, get)
    if op != "fcmp" or expr[2] not in _FIELD_OPS:
        raise QueryError(f"malformed field predicate {expr!r}")
    data = get(expr[1])
    out = np.zeros(len(ts), dtype=bool)
    if data is None or not len(data[0]) or not len(ts):
        return out
    fts, fvals = data
    pos = np.searchsorted(fts, ts)
    inside = pos < len(fts)
    inside[inside] = fts[pos[inside]] == ts[inside]
    rows = np.flatnonzero(inside)
    out[rows] = _compare(fvals[pos[rows]], expr[2], expr[3])
    return out
