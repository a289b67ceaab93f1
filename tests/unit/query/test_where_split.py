"""split_where (pulsar_cluster/query/where.py) against the reference it replaced (copied below
as it was): it now classifies each node once instead of once per level, and reads time strings
with parse_time_string, a fast path of parse_rfc3339. Random WHERE expressions give the same
Where, or the same error, as the reference. One change since, made to both: an OR of time
conditions or of mixed sides is refused instead of answered as an AND."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from pulsar_cluster.errors import QueryError
from pulsar_cluster.query.influxql.ast import BinOp, Call, Duration, Expr, Ident, Literal, Regex
from pulsar_cluster.query.influxql.parser import parse_expression
from pulsar_cluster.query.where import (
    _FLIP,
    Where,
    _field_expr,
    _tag_expr,
    parse_time_string,
    split_where,
)
from pulsar_cluster.timeutil import parse_rfc3339

# --- the reference: split_where and time_value as they were -------------------------------------


def time_value(e: Expr, now: int) -> int:
    """A time expression: now(), RFC 3339 string, int ns, durations, + and -."""
    if isinstance(e, Call) and e.name == "now" and not e.args:
        return now
    if isinstance(e, Literal) and isinstance(e.value, str):
        try:
            return parse_rfc3339(e.value)
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
    return isinstance(e, Ident) and e.name.lower() == "time" and e.cast is None


def reference_split_where(
    expr: Expr | None, now: int, is_tag: Callable[[str], bool] | None = None
) -> Where:
    out = Where()
    if expr is None:
        return out

    def leaves(e: Expr) -> set[str]:
        if isinstance(e, BinOp) and e.op in ("AND", "OR"):
            return leaves(e.left) | leaves(e.right)
        return {classify(e)}

    def classify(e: Expr) -> str:
        if isinstance(e, BinOp) and e.op in ("AND", "OR"):
            kinds = {classify(e.left), classify(e.right)}
            if e.op == "OR" and (len(kinds) > 1 or kinds & {"time", "mixed"}):
                # (changed since: an OR of time conditions or of mixed sides is refused)
                if "time" in leaves(e):
                    raise QueryError("time conditions cannot be combined with OR")
                raise QueryError("OR between tag and field conditions is not supported")
            if len(kinds) == 1:
                return kinds.pop()
            return "mixed"
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

    def add_time(e: BinOp) -> None:
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

    def conj(a: list[Any] | None, b: list[Any]) -> list[Any]:
        return b if a is None else ["and", a, b]

    def walk(e: Expr) -> None:
        kind = classify(e)
        if kind == "mixed":
            assert isinstance(e, BinOp)
            walk(e.left)
            walk(e.right)
        elif kind == "time":
            if not isinstance(e, BinOp) or e.op in ("AND", "OR"):
                assert isinstance(e, BinOp)
                walk(e.left)
                walk(e.right)
            else:
                add_time(e)
        elif kind == "tag":
            out.tags = conj(out.tags, _tag_expr(e))
        else:
            out.fields = conj(out.fields, _field_expr(e))

    walk(expr)
    return out


# --- the tests ---------------------------------------------------------------------------------


def outcome(fn: Callable[[], Where]) -> tuple[str, Any]:
    try:
        return "ok", repr(fn())
    except QueryError as exc:
        return "error", exc.message


LEAVES = st.sampled_from(
    ["host = 'a'", "host != 'b'", "host =~ /x/", "rack::tag = 1", "v > 1", "v::field = 'x'",
     "s = 'str'", "time >= '2026-01-02T03:04:05Z'", "time < now() - 1h", "time <= 1500",
     "'2026-01-01T00:00:00.5Z' < time", "time = 7", "time != 5", "time > 'bad'", "host = true",
     "v = w", "1 = 1", "time > '2026-02-30T00:00:00Z'", "host IN ('a', 'b')", "v > -2.5",
     "time >= '2026-01-02 03:04:05+01:00'", "time > 1d + 5"]
)  # fmt: skip
EXPRS = st.recursive(
    LEAVES,
    lambda inner: st.tuples(inner, st.sampled_from([" AND ", " OR "]), inner).map(
        lambda t: f"({''.join(t)})"
    ),
    max_leaves=6,
)


@settings(max_examples=400, deadline=None)
@given(text=EXPRS, schema=st.booleans())
def test_split_where_answers_as_the_reference(text: str, schema: bool) -> None:
    expr = parse_expression(text)
    is_tag = {"host", "rack"}.__contains__ if schema else None
    now = 1_700_000_000_000_000_000
    assert outcome(lambda: split_where(expr, now, is_tag)) == outcome(
        lambda: reference_split_where(expr, now, is_tag)
    )


def rfc_outcome(fn: Callable[[str], int], text: str) -> tuple[str, Any]:
    try:
        return "ok", fn(text)
    except ValueError as exc:
        return "error", str(exc)


@settings(max_examples=300, deadline=None)
@given(
    when=st.datetimes(min_value=datetime(1, 1, 1), max_value=datetime(9999, 12, 31, 23, 59, 59)),
    digits=st.integers(0, 9),
)
def test_time_strings_read_as_parse_rfc3339(when: datetime, digits: int) -> None:
    text = when.replace(tzinfo=UTC).strftime("%Y-%m-%dT%H:%M:%S")
    text += ("." + f"{when.microsecond:06d}000"[:digits] if digits else "") + "Z"
    assert rfc_outcome(parse_time_string, text) == rfc_outcome(parse_rfc3339, text)


@settings(max_examples=300, deadline=None)
@given(
    parts=st.tuples(*(st.integers(0, 99) for _ in range(6))),
    year=st.integers(0, 9999),
    tail=st.sampled_from(["Z", "z", ".1Z", ".1234567891Z", "", "+01:00", " ", ".Z"]),
)
def test_out_of_range_and_other_forms_read_as_parse_rfc3339(
    parts: tuple[int, ...], year: int, tail: str
) -> None:
    mo, d, h, mi, s, _ = parts
    text = f"{year:04d}-{mo:02d}-{d:02d}T{h:02d}:{mi:02d}:{s:02d}{tail}"
    assert rfc_outcome(parse_time_string, text) == rfc_outcome(parse_rfc3339, text)
