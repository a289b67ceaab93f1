"""Splitting a WHERE expression into a time range, a tag predicate and a field predicate.

Conjuncts (terms joined by AND) are classified one by one: a comparison of `time` narrows the
range; a comparison of a tag key goes to the tag predicate (resolved through the index); one of a
field goes to the field predicate (evaluated on points). An identifier is a tag when written
`name::tag`, when it is a known tag key of the measurement, or - with no schema at hand - when it
is compared with a string or a regex; otherwise it is a field. OR may join tag conditions with
tag conditions and field conditions with field conditions; an OR of time conditions, or of
anything mixed, is refused with a QueryError naming the problem (rather than answered as an
AND; InfluxDB 1.x does that with time conditions under OR).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date
from typing import Any

from pulsar_cluster.errors import QueryError
from pulsar_cluster.query.conditions import TRUE
from pulsar_cluster.query.influxql.ast import BinOp, Call, Duration, Expr, Ident, Literal, Regex
from pulsar_cluster.query.plan import MAX_TIME, MIN_TIME
from pulsar_cluster.timeutil import parse_rfc3339

__all__ = ["Where", "split_where", "time_value", "parse_time_string"]

_FLIP = {"<": ">", "<=": ">=", ">": "<", ">=": "<=", "=": "=", "!=": "!="}


@dataclass(slots=True)
class Where:
    start: int = MIN_TIME
    end: int = MAX_TIME  # exclusive
    tags: list[Any] | None = None
    fields: list[Any] | None = None
    has_lower: bool = False
    has_upper: bool = False

    def tag_expr(self) -> list[Any]:
        return self.tags if self.tags is not None else list(TRUE)


#: The common form of a time literal, `2006-01-02T15:04:05Z` with an optional fraction: its
#: value is computed here in about half of parse_rfc3339's instructions (no datetime objects,
#: each date's day number computed once); anything else, and any invalid date or time, goes to
#: parse_rfc3339.
_UTC_TIME = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(?:\.[0-9]{1,9})?Z")
_EPOCH_ORDINAL = date(1970, 1, 1).toordinal()
#: Days since the epoch of a `YYYY-MM-DD` (valid dates only); a pure function's memo, bounded
_DAYS: dict[str, int] = {}
_MAX_DAYS = 4096


def parse_time_string(text: str) -> int:
    """parse_rfc3339(text), faster for its common form."""
    if _UTC_TIME.fullmatch(text) is not None:
        day = text[:10]
        days = _DAYS.get(day)
        if days is None:
            try:
                days = date(int(text[:4]), int(text[5:7]), int(text[8:10])).toordinal()
            except ValueError:
                return parse_rfc3339(text)  # raises its own error
            days -= _EPOCH_ORDINAL
            if len(_DAYS) >= _MAX_DAYS:
                _DAYS.clear()
            _DAYS[day] = days
        h, mi, s = int(text[11:13]), int(text[14:16]), int(text[17:19])
        if h < 24 and mi < 60 and s < 60:  # datetime's own checks
            ns = (days * 86_400 + h * 3_600 + mi * 60 + s) * 1_000_000_000
            return ns + int(text[20:-1].ljust(9, "0")) if len(text) > 20 else ns
    return parse_rfc3339(text)


def time_value(e: Expr, now: int) -> int:
    """A time expression: now(), RFC 3339 string, int ns, durations, + and -."""
    if isinstance(e, Call) and e.name == "now" and not e.args:
        return now
    if isinstance(e, Literal) and isinstance(e.value, str):
        try:
            return parse_time_string(e.value)
        except ValueError as exc:
            raise QueryError(f"invalid time literal: {exc}") from None
    if isinstance(e, Literal) and isinstance(e.value, int) and not isinstance(e.value, bool):
        return e.value
    if isinstance(e, Literal) and isinstance(e.value, float):
        return int(e.value)
    if isinstance(e, Duration):
        return e.ns
    if isinstance(e, BinOp) and e.op in ("+", "-"):
        left, right = time_value(e.left, now), time_value(e.right, now)
        return left + right if e.op == "+" else left - right
    raise QueryError("invalid time expression: use now(), durations, RFC 3339 or epoch ns")


def _is_time(e: Expr) -> bool:
    return type(e) is Ident and e.cast is None and e.name.lower() == "time"


def _classify(e: Expr, is_tag: Callable[[str], bool] | None, kinds: dict[int, str]) -> str:
    """The class of `e` ("time", "tag", "field", or "mixed": an AND of several classes), noted
    for every node in `kinds` (by id) so that the walk does not classify a subtree again.
    Children are classified left first, so the first error found is always the same one."""
    if type(e) is BinOp and e.op in ("AND", "OR"):
        left = _classify(e.left, is_tag, kinds)
        right = _classify(e.right, is_tag, kinds)
        if e.op == "OR" and (left != right or left in ("time", "mixed")):
            # A time range is one interval, and a tag predicate selects series before any
            # point is read: an OR of time conditions, or of sides whose conditions are of
            # different classes (`(host = 'a' AND usage > 1) OR (host = 'b' AND usage > 2)`),
            # has no such split. Refused rather than answered as an AND.
            if "time" in _leaf_classes(e, kinds):
                raise QueryError("time conditions cannot be combined with OR")
            raise QueryError("OR between tag and field conditions is not supported")
        kind = left if left == right else "mixed"
        kinds[id(e)] = kind
        return kind
    kind = _classify_comparison(e, is_tag)
    kinds[id(e)] = kind
    return kind


def _leaf_classes(e: Expr, kinds: dict[int, str]) -> set[str]:
    """The classes of the comparisons under `e` (all classified in `kinds` already)."""
    if type(e) is BinOp and e.op in ("AND", "OR"):
        return _leaf_classes(e.left, kinds) | _leaf_classes(e.right, kinds)
    return {kinds[id(e)]}


def _classify_comparison(e: Expr, is_tag: Callable[[str], bool] | None) -> str:
    if not isinstance(e, BinOp):
        raise QueryError("invalid condition: expected a comparison")
    left, right = e.left, e.right
    if _is_time(left) or _is_time(right):
        return "time"
    ident, other = (left, right) if isinstance(left, Ident) else (right, left)
    if not isinstance(ident, Ident):
        raise QueryError("invalid condition: a comparison needs a tag or field name")
    if ident.cast == "tag":
        return "tag"
    if ident.cast is not None:
        return "field"
    if is_tag is not None:
        return "tag" if is_tag(ident.name) else "field"
    if isinstance(other, Regex) or e.op == "IN":
        return "tag"
    if isinstance(other, Literal) and isinstance(other.value, str):
        return "tag"
    return "field"


def _add_time(out: Where, e: BinOp, now: int) -> None:
    op = e.op
    if _is_time(e.left):
        value = time_value(e.right, now)
    else:
        value = time_value(e.left, now)
        op = _FLIP.get(op, op)
    if op in (">", ">="):
        out.start = max(out.start, value + (op == ">"))
        out.has_lower = True
    elif op in ("<", "<="):
        out.end = min(out.end, value + (op == "<="))
        out.has_upper = True
    elif op == "=":
        out.start, out.end = max(out.start, value), min(out.end, value + 1)
        out.has_lower = out.has_upper = True
    else:
        raise QueryError(f"unsupported time comparison '{op}': use <, <=, >, >=, =")


def _walk(e: Expr, out: Where, now: int, kinds: dict[int, str]) -> None:
    kind = kinds[id(e)]
    if kind == "mixed" or (kind == "time" and e.op in ("AND", "OR")):  # type: ignore[attr-defined]
        assert isinstance(e, BinOp)
        _walk(e.left, out, now, kinds)
        _walk(e.right, out, now, kinds)
    elif kind == "time":
        assert isinstance(e, BinOp)
        _add_time(out, e, now)
    elif kind == "tag":
        t = _tag_expr(e)
        out.tags = t if out.tags is None else ["and", out.tags, t]
    else:
        f = _field_expr(e)
        out.fields = f if out.fields is None else ["and", out.fields, f]


def split_where(expr: Expr | None, now: int, is_tag: Callable[[str], bool] | None = None) -> Where:
    out = Where()
    if expr is None:
        return out
    kinds: dict[int, str] = {}
    _classify(expr, is_tag, kinds)  # every error of the expression's structure, first
    _walk(expr, out, now, kinds)
    return out


def _tag_expr(e: Expr) -> list[Any]:
    assert isinstance(e, BinOp)
    if e.op in ("AND", "OR"):
        return [e.op.lower(), _tag_expr(e.left), _tag_expr(e.right)]
    ident, other = (e.left, e.right) if isinstance(e.left, Ident) else (e.right, e.left)
    assert isinstance(ident, Ident)
    if e.op == "IN":
        assert isinstance(other, Literal)
        return ["in", ident.name, list(other.value)]
    if e.op in ("=~", "!~"):
        if not isinstance(other, Regex):
            raise QueryError(f"{e.op} needs a /regex/")
        return ["cmp", ident.name, e.op, other.pattern]
    if e.op not in ("=", "!="):
        raise QueryError(f"tag '{ident.name}' can only be compared with =, !=, =~, !~")
    if not isinstance(other, Literal):
        raise QueryError(f"tag '{ident.name}' must be compared with a 'string'")
    value = other.value
    if isinstance(value, bool):
        value = "true" if value else "false"
    return ["cmp", ident.name, e.op, str(value)]


def _field_expr(e: Expr) -> list[Any]:
    assert isinstance(e, BinOp)
    if e.op in ("AND", "OR"):
        return [e.op.lower(), _field_expr(e.left), _field_expr(e.right)]
    op = e.op
    ident: Expr
    other: Expr
    if isinstance(e.left, Ident):
        ident, other = e.left, e.right
    else:
        ident, other = e.right, e.left
        op = _FLIP.get(op, op)
    if not isinstance(ident, Ident):
        raise QueryError("invalid condition: a comparison needs a field name")
    if isinstance(other, Regex):
        return ["fcmp", ident.name, op, other.pattern]
    if not isinstance(other, Literal) or e.op == "IN":
        raise QueryError(f"field '{ident.name}' must be compared with a number, string or bool")
    return ["fcmp", ident.name, op, other.value]
