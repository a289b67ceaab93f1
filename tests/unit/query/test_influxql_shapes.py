"""The shape cache of parse_query (pulsar_cluster/query/influxql/shapes.py): a statement parsed
through the cache is exactly what a fresh parse gives (compared by repr, so 1, 1.0 and True
differ), errors included, whatever was cached before."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pulsar_cluster.errors import QueryError
from pulsar_cluster.query.influxql import shapes
from pulsar_cluster.query.influxql.parser import SHAPES, parse_query, parse_query_fresh

TSBS = (
    "SELECT max(usage_user) FROM cpu WHERE (hostname = 'host_944') AND time >= "
    "'2026-11-25T17:44:14Z' AND time < '2026-11-25T18:44:14Z' GROUP BY time(1m)"
)


def outcome(parse, text: str) -> tuple[str, str]:  # type: ignore[no-untyped-def]
    try:
        return "ok", repr(parse(text))
    except QueryError as exc:
        return "QueryError", exc.message
    except ValueError as exc:  # int() of a huge literal: the parser's own behaviour
        return "ValueError", str(exc)


def same_as_fresh(text: str) -> None:
    assert outcome(parse_query, text) == outcome(parse_query_fresh, text), text


def both_ways(a: str, b: str) -> None:
    """Parse a, b, a (b's tree is the template: a hit binds a's literals into it), then, on
    an empty cache, b, a, b (a's tree is the template), each compared with a fresh parse."""
    for x, y in ((a, b), (b, a)):
        SHAPES.clear()
        same_as_fresh(x)  # first sight of the shape
        same_as_fresh(y)  # the template is built
        same_as_fresh(x)  # a hit, if the shape has a template and its fixed literals match


def test_tsbs_shape_hits_and_rebinds() -> None:
    SHAPES.clear()
    same_as_fresh(TSBS)  # first sight: the shape is noted
    same_as_fresh(TSBS.replace("host_944", "host_1"))  # second: its template is built
    hits = SHAPES.hits
    other = TSBS.replace("host_944", "host_7").replace("17:44", "03:01")
    same_as_fresh(other)
    assert SHAPES.hits == hits + 1
    assert len(SHAPES) == 1


def test_returned_statements_are_the_callers_own() -> None:
    SHAPES.clear()
    parse_query(TSBS)
    first = parse_query(TSBS)[0]
    first.fields.append(first.fields[0])
    first.limit = 3
    assert outcome(parse_query, TSBS) == outcome(parse_query_fresh, TSBS)


def test_memory_is_bounded() -> None:
    SHAPES.clear()
    for n in range(shapes.MAX_SHAPES + 20):
        parse_query(f"SELECT f{n} FROM m WHERE t = 'x'")
        parse_query(f"SELECT f{n} FROM m WHERE t = 'y'")
    assert len(SHAPES) <= shapes.MAX_SHAPES
    long = "SELECT a FROM m WHERE " + " AND ".join(f"t = '{i}'" for i in range(700))
    assert len(long) > shapes.MAX_TEXT and shapes.mask_literals(long) is None


@pytest.mark.parametrize(
    ("first", "second"),
    [
        ("SELECT a FROM m LIMIT 5", "SELECT a FROM m LIMIT 6"),  # fixed literal differs
        ("SELECT a FROM m WHERE v > -5", "SELECT a FROM m WHERE v > -7"),  # negated
        (
            "SELECT mean(v) FROM m WHERE time > 1 GROUP BY time(5m)",
            "SELECT mean(v) FROM m WHERE time > 1 GROUP BY time(0m)",
        ),
        ("SELECT a FROM m tz('UTC')", "SELECT a FROM m tz('CET')"),
        ("SELECT a FROM m WHERE t IN ('a', 'b')", "SELECT a FROM m WHERE t IN ('c', 'd')"),
        ("SELECT a FROM m fill(1)", "SELECT a FROM m fill(2)"),
        (
            "SELECT a FROM m WHERE time > now() - 1h",
            "SELECT a FROM m WHERE time > now() - 99999999999999999999999w",
        ),
        ("SELECT a FROM m WHERE v = 1", "SELECT a FROM m WHERE v = " + "9" * 5000),
        ("SELECT a FROM m WHERE v = 1.5", "SELECT a FROM m WHERE v = .5"),
        ("SELECT a FROM m WHERE v = 'x'", "SELECT a FROM m WHERE v = 'it''s'"),
        ("SELECT a FROM m WHERE v = 'x'", "SELECT a FROM m WHERE v = 'a\\'b'"),
        ("SELECT a FROM m WHERE v = 'x'", "SELECT a FROM m WHERE v = 'x' -- 'c'"),
        ("SELECT a FROM m WHERE v =~ /x'/", "SELECT a FROM m WHERE v =~ /y'/"),
        ('SELECT "a 1" FROM m WHERE v = 2', 'SELECT "a 2" FROM m WHERE v = 2'),
        ("SELECT a2 FROM m WHERE v = 2", "SELECT a3 FROM m WHERE v = 2"),
        ("SELECT a FROM m WHERE v = 2 ;", "SELECT a FROM m WHERE v = 3 ; SHOW DATABASES"),
        ("SHOW TAG VALUES WITH KEY = 'a'", "SHOW TAG VALUES WITH KEY = 'b'"),
        ("SELECT a FROM m WHERE v = 2", "SELECT a FROM m WHERE v = 2x"),
        ("SELECT a FROM m WHERE v = 2m", "SELECT a FROM m WHERE v = 2mx"),
        ("SELECT a FROM m WHERE v = 'x'", "SELECT a FROM m WHERE v = 'x"),
        ("SELECT a FROM m WHERE v = 'x\x00'", "SELECT a FROM m WHERE v = 'y\x00'"),
    ],
)
def test_literal_cases_agree_with_a_fresh_parse(first: str, second: str) -> None:
    both_ways(first, second)


STRINGS = st.text(st.sampled_from("ab'\"\\/-1 .m\n:TZ"), max_size=6)
LITERALS = st.one_of(
    STRINGS.map(lambda s: "'" + s.replace("\\", "").replace("'", "") + "'"),
    st.integers(0, 10**20).map(str),
    st.floats(0, 1e12, allow_nan=False, allow_infinity=False).map(repr),
    st.tuples(
        st.integers(0, 10**6), st.sampled_from(["ns", "u", "µ", "ms", "s", "m", "h", "d", "w"])
    ).map(lambda t: f"{t[0]}{t[1]}"),
    st.sampled_from(["0s", "-1", "-2.5", ".5", "1.", "'UTC'", "1h30m", "5mx", "x5", "true"]),
)
UNITS = st.sampled_from(["ns", "u", "µ", "ms", "s", "m", "h", "d", "w"])
SAME_KIND = {
    "s": STRINGS.map(lambda s: "'" + s.replace("\\", "").replace("'", "") + "'"),
    "i": st.integers(0, 10**20).map(str),
    "n": st.floats(0, 1e12, allow_nan=False, allow_infinity=False).map(repr),
    "d": st.tuples(st.integers(0, 10**6), UNITS).map(lambda t: f"{t[0]}{t[1]}"),
}
#: Statement shapes with holes (`{}`) for literals: the hot ones and ones where a literal's
#: value matters to the parser.
SHAPES_WITH_HOLES = [
    "SELECT max(usage_user) FROM cpu WHERE (hostname = {}) AND time >= {} AND time < {} "
    "GROUP BY time({})",
    "SELECT mean(v), percentile(v, {}) AS p FROM m WHERE t = {} OR t = {} GROUP BY time({}, {})",
    "SELECT a FROM m WHERE v > {} LIMIT {} OFFSET {} SLIMIT {}",
    "SELECT a FROM m WHERE v > -{} AND w < {} - {} fill({}) tz({})",
    "SELECT a FROM m WHERE t IN ({}, {}) AND time > now() - {}",
    'SELECT "f {}" FROM "m" WHERE "t" = {} AND time > {}',
    "SELECT top(v, {}) FROM m WHERE time > {} + {}; SELECT b FROM m WHERE x = {}",
    "SELECT a FROM m WHERE v = {}{} AND w = {}",
    "SELECT a FROM m WHERE time > {} GROUP BY time({}) fill({})",
    "SHOW TAG VALUES WITH KEY = {} WHERE t = {} LIMIT {}",
    "SELECT a FROM m WHERE v = {} ORDER BY time DESC LIMIT {}",
]


def check_with_other_literals(text: str, data: st.DataObject) -> None:
    """`text`, and the text with other literals in its literals' places, parse both ways round
    as they parse fresh (a text that bypasses the cache: fresh only)."""
    masked = shapes.mask_literals(text)
    if masked is None:
        SHAPES.clear()
        same_as_fresh(text)
        return
    _, slots = masked
    # mostly literals of the same kind (the same shape: a cache hit), sometimes any literal
    other = [data.draw(st.one_of(SAME_KIND[kind], LITERALS)) for kind, _, _ in slots]
    both_ways(text, with_literals(text, slots, other))


@settings(max_examples=300, deadline=None)
@given(
    shape=st.sampled_from(SHAPES_WITH_HOLES),
    first=st.lists(LITERALS, min_size=8, max_size=8),
    data=st.data(),
)
def test_cached_parse_is_a_fresh_parse(shape: str, first: list[str], data: st.DataObject) -> None:
    check_with_other_literals(shape.format(*first[: shape.count("{}")]), data)


TOKENS = st.sampled_from(
    ["SELECT", "a", "b2", '"q 1"', "FROM", "m", "WHERE", "AND", "OR", "=", "!=", ">", "<", "(",
     ")", ",", "-", "+", "GROUP", "BY", "time", "fill", "LIMIT", ";", "::", "tag", "now()", "*",
     "IN", "tz", "."]
)  # fmt: skip


@settings(max_examples=300, deadline=None)
@given(
    words=st.lists(st.one_of(TOKENS, LITERALS), min_size=1, max_size=14),
    other=st.lists(LITERALS, min_size=14, max_size=14),
    glue=st.sampled_from([" ", ""]),
)
def test_random_token_soups_agree(words: list[str], other: list[str], glue: str) -> None:
    """Random (mostly invalid) statements, then the same with other literals: errors are the
    same errors, at the same places."""
    text = glue.join(["SELECT", *words])
    masked = shapes.mask_literals(text)
    if masked is None:
        SHAPES.clear()
        same_as_fresh(text)
        return
    _, slots = masked
    both_ways(text, with_literals(text, slots, other))


def with_literals(text: str, slots: list, other: list[str]) -> str:  # type: ignore[type-arg]
    """`text` with its literals (as mask_literals found them) replaced by `other`."""
    out, last = [], 0
    for (_, start, raw), new in zip(slots, other, strict=False):
        out += [text[last:start], new]
        last = start + len(raw)
    return "".join(out) + text[last:]


LEAVES = st.one_of(LITERALS, st.sampled_from(["a", "time", "t::tag", "v::field", "now()", '"q"']))
EXPRS = st.recursive(
    LEAVES,
    lambda inner: st.one_of(
        st.tuples(
            inner, st.sampled_from(["=", "!=", "<", ">=", "+", "-", "*", "AND", "OR"]), inner
        ).map(" ".join),
        inner.map(lambda e: f"({e})"),
        inner.map(lambda e: f"-{e}"),
        st.tuples(st.sampled_from(["mean", "max", "percentile"]), st.lists(inner, max_size=2)).map(
            lambda t: f"{t[0]}({', '.join(t[1])})"
        ),
    ),
    max_leaves=6,
)
TAILS = st.sampled_from(
    ["", " GROUP BY time({})", " GROUP BY time({}, {}), t fill({})", " LIMIT {}", " tz({})"]
)


@settings(max_examples=400, deadline=None)
@given(
    fields=st.lists(EXPRS, min_size=1, max_size=2),
    where=EXPRS,
    tail=TAILS,
    tail_literals=st.lists(LITERALS, min_size=3, max_size=3),
    data=st.data(),
)
def test_generated_statements_with_other_literals_agree(
    fields: list[str], where: str, tail: str, tail_literals: list[str], data: st.DataObject
) -> None:
    text = f"SELECT {', '.join(fields)} FROM m WHERE {where}" + tail.format(*tail_literals)
    check_with_other_literals(text, data)


def _matches(pattern, text: str) -> list[tuple[str, int, str]]:  # type: ignore[no-untyped-def]
    return [(shapes._KIND_OF[m.lastgroup], m.start(), m.group()) for m in pattern.finditer(text)]


@settings(max_examples=1000, deadline=None)
@given(
    st.lists(
        st.sampled_from([*"ab1290.'\"/\\-_ msuhdwµ\x00x", "ms", "ns", "--", "1h", ".5", "'s'"]),
        max_size=16,
    )
)
def test_fast_mask_pattern_matches_the_plain_one(parts: list[str]) -> None:
    text = "".join(parts)
    assert _matches(shapes._SLOT, text) == _matches(shapes._SLOT_PLAIN, text)


#: Valid statements with typed holes: every pair is one shape, so most pairs hit the cache.
TYPED_SHAPES = [
    "SELECT max(usage_user) FROM cpu WHERE (hostname = {s}) AND time >= {s} AND time < {s} "
    "GROUP BY time({d})",
    "SELECT mean(v), percentile(v, {i}) FROM m WHERE t = {s} OR t = {s} GROUP BY time({d}), t",
    "SELECT * FROM cpu WHERE usage_user > {n} AND hostname = {s} AND time >= now() - {d}",
    'SELECT "v" FROM "m" WHERE ("host" = {s}) AND time >= {i}ms AND time <= {d} LIMIT {i}',
    "SELECT derivative(mean(v), {d}) FROM m WHERE time > {s} - {d} GROUP BY time({d}) fill({i})",
    "SELECT v FROM m WHERE v > -{n} AND w != {i} AND u = {s}; SELECT w FROM m WHERE t = {s}",
]


@settings(max_examples=300, deadline=None)
@given(shape=st.sampled_from(TYPED_SHAPES), data=st.data())
def test_typed_shapes_hit_and_agree(shape: str, data: st.DataObject) -> None:
    def fill() -> str:
        out, rest = [], shape
        while "{" in rest:
            head, _, tail = rest.partition("{")
            kind, _, rest = tail.partition("}")
            out += [head, data.draw(SAME_KIND[kind])]
        return "".join([*out, rest])

    both_ways(fill(), fill())
