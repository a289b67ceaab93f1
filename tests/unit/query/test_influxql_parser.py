"""Golden tests of InfluxQL parsing (statements, expressions, errors) and property tests of the
lexer's quoting and literals."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pulsar_cluster.errors import QueryError
from pulsar_cluster.query.influxql.ast import (
    BinOp,
    Call,
    DatabaseStatement,
    DeleteStatement,
    Duration,
    Ident,
    Literal,
    Regex,
    Select,
    Show,
    Source,
    Wildcard,
)
from pulsar_cluster.query.influxql.parser import parse_expression, parse_query
from pulsar_cluster.query.where import split_where

S = 1_000_000_000
GRAFANA = (
    'SELECT mean("usage_idle") FROM "cpu" WHERE ("host" =~ /^h1$/) AND time >= now() - 1h '
    'and time <= now() GROUP BY time(10s), "host" fill(null)'
)


def one(q: str):  # type: ignore[no-untyped-def]
    stmts = parse_query(q)
    assert len(stmts) == 1
    return stmts[0]


def test_grafana_select() -> None:
    s = one(GRAFANA)
    assert isinstance(s, Select)
    assert s.fields == [(Call("mean", (Ident("usage_idle"),)), None)]
    assert s.sources == [Source("cpu")]
    assert s.every == 10 * S and s.group_tags == ["host"] and s.fill == "null"
    now = Call("now", ())
    assert s.condition == BinOp(
        "AND",
        BinOp(
            "AND",
            BinOp("=~", Ident("host"), Regex("^h1$")),
            BinOp(">=", Ident("time"), BinOp("-", now, Duration(3600 * S, "1h"))),
        ),
        BinOp("<=", Ident("time"), now),
    )
    w = split_where(s.condition, now=10_000 * S, is_tag=lambda n: n == "host")
    assert (w.start, w.end) == (10_000 * S - 3600 * S, 10_000 * S + 1)
    assert w.tags == ["cmp", "host", "=~", "^h1$"] and w.fields is None


@pytest.mark.parametrize(
    ("query", "check"),
    [
        ("select * from cpu", lambda s: s.fields == [(Wildcard(), None)]),
        (
            'SELECT "a b"::field AS x, b FROM "db"."rp"."m"',
            lambda s: (
                s.fields == [(Ident("a b", "field"), "x"), (Ident("b"), None)]
                and s.sources == [Source("m", database="db", retention_policy="rp")]
            ),
        ),
        ("SELECT v FROM /^cp/, mem", lambda s: s.sources == [Source(regex="^cp"), Source("mem")]),
        (
            'SELECT v FROM "db"."rp"./^c/, "/", db..m',
            lambda s: (
                s.sources
                == [
                    Source(regex="^c", database="db", retention_policy="rp"),
                    Source("/"),
                    Source("m", database="db"),
                ]
            ),
        ),
        (
            "SELECT percentile(v, 99.5), top(v, 3) FROM m",
            lambda s: (
                s.fields[0][0] == Call("percentile", (Ident("v"), Literal(99.5)))
                and s.fields[1][0] == Call("top", (Ident("v"), Literal(3)))
            ),
        ),
        (
            "SELECT derivative(mean(v), 1s) FROM m WHERE time > 0 GROUP BY time(1m, -15s)",
            lambda s: (
                s.fields[0][0]
                == Call("derivative", (Call("mean", (Ident("v"),)), Duration(S, "1s")))
                and s.every == 60 * S
                and s.offset == -15 * S
            ),
        ),
        ("SELECT v FROM m GROUP BY *", lambda s: s.group_tags is None),
        ("SELECT count(v) FROM m fill(previous)", lambda s: s.fill == "previous"),
        ("SELECT count(v) FROM m fill(-1.5)", lambda s: (s.fill, s.fill_value) == ("value", -1.5)),
        ("SELECT count(v) FROM m fill(none)", lambda s: s.fill == "none"),
        (
            "SELECT v FROM m ORDER BY time DESC LIMIT 10 OFFSET 5 SLIMIT 2 SOFFSET 1",
            lambda s: (
                (s.descending, s.limit, s.offset_rows, s.slimit, s.soffset) == (True, 10, 5, 2, 1)
            ),
        ),
        (
            r"SELECT v FROM m WHERE a = 'it\'s' AND v > -2.5 AND ok = true",
            lambda s: (
                s.condition
                == BinOp(
                    "AND",
                    BinOp(
                        "AND",
                        BinOp("=", Ident("a"), Literal("it's")),
                        BinOp(">", Ident("v"), Literal(-2.5)),
                    ),
                    BinOp("=", Ident("ok"), Literal(True)),
                )
            ),
        ),
        (
            "SELECT v FROM m WHERE time >= '2026-01-01T00:00:00Z' AND time < 1767225600000000000",
            lambda s: (
                split_where(s.condition, 0).start == 1767225600 * S
                and split_where(s.condition, 0).end == 1767225600 * S
            ),
        ),
        ("SELECT v FROM m tz('UTC')", lambda s: True),
    ],
)
def test_select_golden(query: str, check) -> None:  # type: ignore[no-untyped-def]
    s = one(query)
    assert isinstance(s, Select)
    assert check(s)


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("SHOW DATABASES", Show("databases")),
        ("show measurements", Show("measurements")),
        (
            "SHOW MEASUREMENTS ON db WITH MEASUREMENT =~ /cp/ WHERE host = 'a' LIMIT 3",
            Show(
                "measurements",
                "db",
                measurement_op="=~",
                measurement_value="cp",
                condition=BinOp("=", Ident("host"), Literal("a")),
                limit=3,
            ),
        ),
        ("SHOW TAG KEYS FROM cpu", Show("tag_keys", sources=[Source("cpu")])),
        (
            'SHOW TAG VALUES FROM "cpu" WITH KEY = "host"',
            Show("tag_values", sources=[Source("cpu")], key_op="=", key_values=["host"]),
        ),
        (
            "SHOW TAG VALUES WITH KEY IN (host, region)",
            Show("tag_values", key_op="IN", key_values=["host", "region"]),
        ),
        ("SHOW TAG VALUES WITH KEY =~ /ho/", Show("tag_values", key_op="=~", key_values=["ho"])),
        ("SHOW FIELD KEYS FROM /./", Show("field_keys", sources=[Source(regex=".")])),
        (
            "SHOW SERIES FROM cpu WHERE host = 'a'",
            Show(
                "series",
                sources=[Source("cpu")],
                condition=BinOp("=", Ident("host"), Literal("a")),
            ),
        ),
        ("SHOW RETENTION POLICIES ON db", Show("retention", "db")),
        ('CREATE DATABASE "x"', DatabaseStatement("CREATE DATABASE", "x")),
        ("DROP DATABASE x", DatabaseStatement("DROP DATABASE", "x")),
        (
            "DROP SERIES FROM cpu WHERE host = 'a'",
            DeleteStatement(
                "DROP SERIES", [Source("cpu")], BinOp("=", Ident("host"), Literal("a"))
            ),
        ),
        (
            "DELETE FROM cpu WHERE time < 5",
            DeleteStatement("DELETE", [Source("cpu")], BinOp("<", Ident("time"), Literal(5))),
        ),
    ],
)
def test_other_statements_golden(query: str, expected) -> None:  # type: ignore[no-untyped-def]
    assert one(query) == expected


def test_several_statements_split_by_semicolons() -> None:
    stmts = parse_query("SHOW DATABASES; SELECT v FROM m;; SHOW MEASUREMENTS;")
    assert [type(s).__name__ for s in stmts] == ["Show", "Select", "Show"]


@pytest.mark.parametrize(
    ("query", "message"),
    [
        (
            "SELEC v FROM m",
            "found SELEC, expected SELECT, DELETE, SHOW, CREATE, DROP at line 1, char 1",
        ),
        (
            "SELECT FROM m",
            "found FROM, expected identifier, string, number, bool at line 1, char 8",
        ),
        ("SELECT v m", "found m, expected FROM at line 1, char 10"),
        ("SELECT v FROM m WHERE", "found EOF, expected identifier, string, number, bool"),
        ("SELECT v FROM m WHERE a = 'x", "unterminated quoted string at line 1, char 27"),
        ('SELECT "v FROM m', "unterminated quoted identifier"),
        ("SELECT v FROM m WHERE a =~ 'x'", "expected regex"),
        ("SELECT v FROM m GROUP BY time(0s)", "duration must be positive"),
        ("SELECT v FROM m fill(sideways)", "expected null, none, previous, linear or a number"),
        ("SELECT v FROM m LIMIT x", "found x, expected integer"),
        ("SELECT v FROM m ORDER BY v", "only ORDER BY time supported"),
        ("SELECT v FROM m\nWHERE $", "found $, expected a token at line 2, char 7"),
        ("SHOW TAG VALUES", "found EOF, expected WITH"),
        ("", 'missing required parameter "q"'),
        (";", "found EOF, expected SELECT, SHOW"),
    ],
)
def test_parse_errors_say_where(query: str, message: str) -> None:
    with pytest.raises(QueryError) as info:
        parse_query(query)
    assert message in info.value.message


@pytest.mark.parametrize(
    ("query", "name"),
    [
        ("SHOW USERS", "SHOW USERS"),
        ("SHOW SERIES CARDINALITY", "SHOW SERIES CARDINALITY"),
        ("CREATE USER bob WITH PASSWORD 'x'", "CREATE USER"),
        ("DROP SHARD 1", "DROP SHARD"),
        ("ALTER USER bob", "ALTER USER"),
        ("SELECT v INTO x FROM m", "SELECT ... INTO"),
        ("GRANT ALL TO bob", "GRANT"),
        ("SELECT v FROM m GROUP BY /re/", "GROUP BY /regex/"),
        ("SELECT max FROM (SELECT max(v) FROM m)", "subqueries"),
    ],
)
def test_unsupported_statements_are_named(query: str, name: str) -> None:
    with pytest.raises(QueryError, match="not supported") as info:
        parse_query(query)
    assert name in info.value.message


NAMES = st.text(
    st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"),
    min_size=1,
    max_size=20,
)


def quote(name: str, q: str) -> str:
    return q + name.replace("\\", "\\\\").replace(q, "\\" + q) + q


@given(field=NAMES, measurement=NAMES, value=st.text(max_size=20))
def test_quoted_identifiers_and_strings_round_trip(
    field: str, measurement: str, value: str
) -> None:
    value = value.replace("\x00", "")
    dq, sq = '"', "'"
    s = one(
        f"SELECT {quote(field, dq)} FROM {quote(measurement, dq)} WHERE tag = {quote(value, sq)}"
    )
    assert s.fields == [(Ident(field), None)]
    assert s.sources == [Source(measurement)]
    assert s.condition == BinOp("=", Ident("tag"), Literal(value))


@given(
    parts=st.lists(
        st.tuples(
            st.integers(1, 10_000), st.sampled_from(["ns", "u", "µ", "ms", "s", "m", "h", "d", "w"])
        ),
        min_size=1,
        max_size=3,
    )
)
def test_duration_literals(parts) -> None:  # type: ignore[no-untyped-def]
    unit_ns = {"ns": 1, "u": 1000, "µ": 1000, "ms": 10**6, "s": S, "m": 60 * S, "h": 3600 * S,
               "d": 86400 * S, "w": 7 * 86400 * S}  # fmt: skip
    text = "".join(f"{n}{u}" for n, u in parts)
    e = parse_expression(f"time > now() - {text}")
    assert isinstance(e, BinOp) and isinstance(e.right, BinOp)
    assert e.right.right == Duration(sum(n * unit_ns[u] for n, u in parts), text)


@given(st.integers(0, 10**15), st.integers(0, 10**6))
def test_number_literals(i: int, frac: int) -> None:
    assert parse_expression(f"v > {i}") == BinOp(">", Ident("v"), Literal(i))
    assert parse_expression(f"v > -{i}.{frac}") == BinOp(
        ">", Ident("v"), Literal(-float(f"{i}.{frac}"))
    )


def test_native_where_in_lists_and_parentheses() -> None:
    e = parse_expression("host IN ('a', 'b') AND (region =~ /^eu/ OR rack != '7')")
    w = split_where(e, 0)
    assert w.tags == [
        "and",
        ["in", "host", ["a", "b"]],
        ["or", ["cmp", "region", "=~", "^eu"], ["cmp", "rack", "!=", "7"]],
    ]
    with pytest.raises(QueryError, match="OR between tag and field"):
        split_where(parse_expression("host = 'a' OR v > 1"), 0)
    with pytest.raises(QueryError, match="time conditions cannot be combined with OR"):
        split_where(parse_expression("time > 5 OR host = 'a'"), 0)
    w = split_where(parse_expression("v > 1 AND host = 'a' AND time >= 10 AND time < 20"), 0)
    assert (w.start, w.end, w.fields) == (10, 20, ["fcmp", "v", ">", 1])


def test_grafana_absolute_range_in_epoch_milliseconds() -> None:
    s = one("SELECT mean(v) FROM m WHERE time >= 1767225600000ms and time <= 1767229200000ms "
            "GROUP BY time(1m) fill(null)")  # fmt: skip
    w = split_where(s.condition, 0)
    assert (w.start, w.end) == (1767225600 * S, 1767229200 * S + 1)
