"""Golden parses of the data-definition statements (CREATE/DROP DATABASE, DROP SERIES and
MEASUREMENT, CREATE/ALTER/DROP RETENTION POLICY), their errors in InfluxDB's wording, property
tests of the policy clauses (any order) and of the Go duration format SHOW answers with."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pulsar_cluster.errors import QueryError
from pulsar_cluster.query.influxql.ast import (
    BinOp,
    DatabaseStatement,
    DeleteStatement,
    Ident,
    Literal,
    RetentionSpec,
    RetentionStatement,
    Source,
)
from pulsar_cluster.query.influxql.ddl import go_duration, shard_group_duration
from pulsar_cluster.query.influxql.parser import parse_query
from pulsar_cluster.timeutil import parse_duration

H = 3_600_000_000_000
D = 24 * H


def one(q: str):  # type: ignore[no-untyped-def]
    (stmt,) = parse_query(q)
    return stmt


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("CREATE DATABASE db", DatabaseStatement("CREATE DATABASE", "db")),
        (
            'CREATE DATABASE "my db" WITH DURATION 30d REPLICATION 1 SHARD DURATION 1d NAME rp',
            DatabaseStatement("CREATE DATABASE", "my db", RetentionSpec(30 * D, 1, D, "rp")),
        ),
        (
            "create database db with name one",
            DatabaseStatement("CREATE DATABASE", "db", RetentionSpec(name="one")),
        ),
        (
            "CREATE DATABASE db WITH DURATION INF",
            DatabaseStatement("CREATE DATABASE", "db", RetentionSpec(duration_ns=0)),
        ),
        ("DROP DATABASE db", DatabaseStatement("DROP DATABASE", "db")),
        ("DROP MEASUREMENT cpu", DeleteStatement("DROP MEASUREMENT", [Source("cpu")], None)),
        ('DROP MEASUREMENT "a b"', DeleteStatement("DROP MEASUREMENT", [Source("a b")], None)),
        (
            "DROP SERIES WHERE host = 'a'",
            DeleteStatement("DROP SERIES", [], BinOp("=", Ident("host"), Literal("a"))),
        ),
        (
            "DROP SERIES FROM cpu, /^mem/",
            DeleteStatement("DROP SERIES", [Source("cpu"), Source(regex="^mem")], None),
        ),
        (
            "CREATE RETENTION POLICY week ON db DURATION 7d REPLICATION 1 DEFAULT",
            RetentionStatement(
                "CREATE RETENTION POLICY", "week", "db", RetentionSpec(7 * D, 1, default=True)
            ),
        ),
        (
            'CREATE RETENTION POLICY "w" ON "db" DURATION 1h REPLICATION 3 SHARD DURATION 30m',
            RetentionStatement(
                "CREATE RETENTION POLICY", "w", "db", RetentionSpec(H, 3, 30 * 60 * 10**9)
            ),
        ),
        (
            "ALTER RETENTION POLICY autogen ON db DURATION INF DEFAULT",
            RetentionStatement(
                "ALTER RETENTION POLICY", "autogen", "db", RetentionSpec(0, default=True)
            ),
        ),
        (
            "ALTER RETENTION POLICY autogen ON db REPLICATION 2",
            RetentionStatement(
                "ALTER RETENTION POLICY", "autogen", "db", RetentionSpec(replication=2)
            ),
        ),
        (
            "DROP RETENTION POLICY autogen ON db",
            RetentionStatement("DROP RETENTION POLICY", "autogen", "db"),
        ),
    ],
)
def test_ddl_statements_golden(query: str, expected) -> None:  # type: ignore[no-untyped-def]
    assert one(query) == expected


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ("CREATE DATABASE", "found EOF, expected database name at line 1, char 16"),
        ("CREATE DATABASE db WITH", "found EOF, expected DURATION, NAME, REPLICATION, SHARD"),
        ("CREATE DATABASE db WITH DURATION", "found EOF, expected duration"),
        ("CREATE DATABASE db WITH DURATION 5", "found 5, expected duration"),
        ("CREATE DATABASE db WITH DEFAULT", "expected DURATION, NAME, REPLICATION, SHARD"),
        ("CREATE DATABASE db WITH DURATION 1d DURATION 2d", "found DURATION, expected ;"),
        ("DROP DATABASE", "found EOF, expected database name"),
        ("DROP MEASUREMENT", "found EOF, expected measurement name"),
        ("DROP MEASUREMENT /re/", "found re, expected measurement name"),
        ("DROP SERIES", "found EOF, expected FROM or WHERE"),
        ("DROP SERIES FROM", "found EOF, expected measurement"),
        ("CREATE RETENTION POLICY p ON db", "found EOF, expected DURATION"),
        ("CREATE RETENTION POLICY p ON db DURATION 1d", "found EOF, expected REPLICATION"),
        ("CREATE RETENTION POLICY p db DURATION 1d", "found db, expected ON"),
        ("CREATE RETENTION p ON db", "found p, expected POLICY"),
        (
            "CREATE RETENTION POLICY p ON db DURATION 1d REPLICATION 0",
            "invalid value 0: must be 1 <= n <= 2147483647",
        ),
        ("ALTER RETENTION POLICY p ON db", "expected DURATION, REPLICATION, SHARD, DEFAULT"),
        ("ALTER RETENTION POLICY p ON db SHARD 1d", "found 1d, expected DURATION"),
        ("DROP RETENTION POLICY p", "found EOF, expected ON"),
    ],
)
def test_ddl_parse_errors(query: str, message: str) -> None:
    with pytest.raises(QueryError) as info:
        parse_query(query)
    assert info.value.message.startswith("error parsing query: "), info.value.message
    assert message in info.value.message


_CLAUSES = {
    "DURATION": ("DURATION {}", "duration_ns"),
    "REPLICATION": ("REPLICATION {}", "replication"),
    "SHARD": ("SHARD DURATION {}", "shard_duration_ns"),
    "DEFAULT": ("DEFAULT", "default"),
}


@given(
    st.permutations(list(_CLAUSES)),
    st.integers(0, 6),
    st.integers(1, 9_999),
    st.integers(1, 5),
    st.integers(1, 500),
)
def test_policy_clauses_in_any_order(order, keep, hours, replication, minutes) -> None:  # type: ignore[no-untyped-def]
    chosen = order[: max(1, keep)]
    values = {"DURATION": f"{hours}h", "REPLICATION": str(replication), "SHARD": f"{minutes}m"}
    text = " ".join(_CLAUSES[c][0].format(values.get(c, "")) for c in chosen)
    stmt = one(f"ALTER RETENTION POLICY p ON db {text}")
    expected = RetentionSpec()
    if "DURATION" in chosen:
        expected.duration_ns = hours * H
    if "REPLICATION" in chosen:
        expected.replication = replication
    if "SHARD" in chosen:
        expected.shard_duration_ns = minutes * 60 * 10**9
    expected.default = "DEFAULT" in chosen
    assert stmt == RetentionStatement("ALTER RETENTION POLICY", "p", "db", expected)


@pytest.mark.parametrize(
    ("ns", "text"),
    [
        (0, "0s"),
        (H, "1h0m0s"),
        (7 * D, "168h0m0s"),
        (90 * 10**9, "1m30s"),
        (30 * 10**9, "30s"),
        (1_500_000_000, "1.5s"),
        (2_500_000, "2.5ms"),
        (H + 1_250_000_000, "1h0m1.25s"),
    ],
)
def test_go_duration_golden(ns: int, text: str) -> None:
    assert go_duration(ns) == text


@given(st.integers(1, 10**7))
def test_go_duration_parses_back(seconds: int) -> None:
    # What SHOW RETENTION POLICIES prints is a valid InfluxQL duration of the same length.
    assert parse_duration(go_duration(seconds * 10**9)) == seconds * 10**9


def test_shard_group_duration_follows_influxdb() -> None:
    assert [shard_group_duration(d) for d in (0, H, 2 * D - 1, 2 * D, 180 * D)] == [
        7 * D,
        H,
        H,
        D,
        7 * D,
    ]
