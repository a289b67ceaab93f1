"""Any input to the query front ends is answered or refused with a QueryError: no crash."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from pulsar_cluster.errors import QueryError
from pulsar_cluster.query.compile import compile_select
from pulsar_cluster.query.influxql.parser import parse_query
from pulsar_cluster.query.native import parse_native_query
from pulsar_cluster.query.where import split_where

WORDS = st.sampled_from(
    ["SELECT", "FROM", "WHERE", "GROUP", "BY", "time(", "fill(", ")", "(", ",", ";", "=", "=~",
     "!~", "!=", "<", ">=", "AND", "OR", "mean(", "*", "cpu", '"q"', "'s'", "/re/", "10s", "1.5",
     "42", "-", "+", "now()", "SHOW", "TAG", "VALUES", "WITH", "KEY", "LIMIT", "ORDER", "DESC",
     "::", "tag", "percentile(", "top(", "derivative(", "DELETE", "DROP", "SERIES", "IN"]
)  # fmt: skip


@settings(max_examples=400, deadline=None)
@given(st.one_of(st.text(max_size=60), st.lists(WORDS, max_size=16).map(" ".join)))
def test_influxql_parser_answers_or_refuses(text: str) -> None:
    try:
        statements = parse_query(text)
    except QueryError:
        return
    assert statements


SCALARS = st.one_of(
    st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False), st.text(max_size=10)
)
JSONISH = st.recursive(
    SCALARS,
    lambda inner: st.one_of(
        st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=5), inner, max_size=3)
    ),
    max_leaves=8,
)
KEYS = st.sampled_from(
    ["db", "measurement", "fields", "where", "start", "end", "aggregate", "every", "group_by",
     "fill", "limit", "offset", "order", "slimit", "consistency"]
)  # fmt: skip
VALUES = st.one_of(
    JSONISH,
    st.sampled_from(["mean", "percentile_99", "top_3", "1m", "host = 'a'", "desc", "linear",
                     "2026-01-01T00:00:00Z", "derivative", "rate"]),
    st.lists(st.sampled_from(["usage", "host", ""]), max_size=3),
)  # fmt: skip


@settings(max_examples=400, deadline=None)
@given(st.dictionaries(KEYS, VALUES, max_size=10))
def test_native_query_answers_or_refuses(doc: dict) -> None:
    doc = {"db": "d", "measurement": "m", **doc}
    try:
        query = parse_native_query(doc, now=10**18)
        if query.spec.items is not None or not query.needs_fields:
            compile_select(query.spec, 10**18)
    except QueryError:
        return


@settings(max_examples=300, deadline=None)
@given(st.lists(WORDS, min_size=1, max_size=12).map(" ".join))
def test_where_split_answers_or_refuses(text: str) -> None:
    try:
        statements = parse_query(f"SELECT v FROM m WHERE {text}")
        split_where(statements[0].condition, 0)  # type: ignore[union-attr]
    except QueryError:
        return
