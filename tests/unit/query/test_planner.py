"""InfluxQL statements end to end over an in-memory backend: answers in InfluxDB's JSON shape
(as documented for InfluxDB 1.x /query), planning rules and errors."""

from __future__ import annotations

import asyncio
from typing import Any

from node.query import execute_partial
from pulsar_cluster.batch import FieldType
from pulsar_cluster.errors import QueryError
from pulsar_cluster.query.influxql.parser import parse_query
from pulsar_cluster.query.influxql.planner import execute_statement
from pulsar_cluster.query.partial import Partial
from pulsar_cluster.query.plan import Plan
from tests.unit.query.memsource import MemSource

S = 1_000_000_000


class MemBackend:
    def __init__(self, source: MemSource) -> None:
        self.source = source

    async def query(self, plan: Plan) -> Partial:
        return execute_partial(plan, self.source)


def backend() -> MemBackend:
    src = MemSource()
    for host, region, base in (("a", "eu", 0.0), ("b", "eu", 10.0), ("c", "us", 20.0)):
        tags = {"host": host, "region": region}
        src.add("db", "cpu", tags, "usage", FieldType.FLOAT, [0, S, 2 * S, 3 * S],
                [base, base + 1, base + 2, base + 3])  # fmt: skip
        src.add("db", "cpu", tags, "state", FieldType.STRING, [0], [f"ok-{host}"])
    src.add("db", "cpu2", {"host": "a"}, "usage", FieldType.INTEGER, [0], [7])
    src.add("db", "disk", {"host": "a", "path": "/"}, "free", FieldType.INTEGER, [0], [1])
    src.add("other", "m", {}, "v", FieldType.BOOLEAN, [5], [True])
    return MemBackend(src)


def run(q: str, db: str | None = "db", now: int = 100 * S) -> list[dict[str, Any]]:
    b = backend()

    async def go() -> list[dict[str, Any]]:
        out = []
        for stmt in parse_query(q):
            try:
                out.append(await execute_statement(stmt, db, b, now))
            except QueryError as exc:
                out.append({"error": exc.message})
        return out

    return asyncio.run(go())


def test_aggregate_group_by_tag_and_time() -> None:
    (r,) = run("SELECT mean(usage), max(usage) AS peak FROM cpu WHERE time >= 0 AND time < 4s "
               "GROUP BY time(2s), region")  # fmt: skip
    assert r == {
        "series": [
            {"name": "cpu", "tags": {"region": "eu"}, "columns": ["time", "mean", "peak"],
             "values": [[0, 5.5, 11.0], [2 * S, 7.5, 13.0]]},
            {"name": "cpu", "tags": {"region": "us"}, "columns": ["time", "mean", "peak"],
             "values": [[0, 20.5, 21.0], [2 * S, 22.5, 23.0]]},
        ]
    }  # fmt: skip


def test_group_by_star_regex_sources_and_offset() -> None:
    (r,) = run("SELECT count(usage) FROM /^cpu/ GROUP BY *")
    assert [(s["name"], s["tags"], s["values"]) for s in r["series"]] == [
        ("cpu", {"host": "a", "region": "eu"}, [[0, 4]]),
        ("cpu", {"host": "b", "region": "eu"}, [[0, 4]]),
        ("cpu", {"host": "c", "region": "us"}, [[0, 4]]),
        ("cpu2", {"host": "a"}, [[0, 1]]),
    ]
    (r,) = run("SELECT sum(usage) FROM cpu WHERE host = 'a' AND time >= 0 AND time < 4s "
               "GROUP BY time(2s, 1s) fill(none)")  # fmt: skip
    assert r["series"][0]["values"] == [[-S, 0.0], [S, 3.0], [3 * S, 3.0]]


def test_raw_select_merges_series_and_selects_tags() -> None:
    (r,) = run("SELECT usage, host FROM cpu WHERE region = 'eu' AND time <= 1s")
    assert r == {
        "series": [
            {"name": "cpu", "columns": ["time", "usage", "host"],
             "values": [[0, 0.0, "a"], [0, 10.0, "b"], [S, 1.0, "a"], [S, 11.0, "b"]]}
        ]
    }  # fmt: skip
    (r,) = run("SELECT * FROM cpu WHERE host = 'c' AND time = 0")
    assert r["series"][0]["columns"] == ["time", "host", "region", "state", "usage"]
    assert r["series"][0]["values"] == [[0, "c", "us", "ok-c", 20.0]]
    (r,) = run("SELECT * FROM cpu WHERE time = 0 GROUP BY host LIMIT 1")
    assert r["series"][0]["tags"] == {"host": "a"}
    assert r["series"][0]["columns"] == ["time", "region", "state", "usage"]
    (r,) = run("SELECT * FROM cpu WHERE time = 0 GROUP BY * LIMIT 1")
    assert r["series"][0]["columns"] == ["time", "state", "usage"]
    (r,) = run("SELECT state FROM cpu WHERE state =~ /b$/")
    assert r["series"][0]["values"] == [[0, "ok-b"]]
    (r,) = run("SELECT usage FROM cpu GROUP BY host SLIMIT 1 SOFFSET 1 LIMIT 1 OFFSET 2")
    assert [(s["tags"], s["values"]) for s in r["series"]] == [({"host": "b"}, [[2 * S, 12.0]])]


def test_show_statements_shapes() -> None:
    r = run(
        "SHOW DATABASES; SHOW MEASUREMENTS; SHOW MEASUREMENTS WHERE path = '/'; "
        "SHOW TAG KEYS; SHOW TAG VALUES FROM cpu WITH KEY =~ /o/ WHERE region = 'us'; "
        "SHOW FIELD KEYS FROM cpu; SHOW SERIES FROM cpu WHERE host != 'a'; "
        "SHOW TAG VALUES WITH KEY != host; SHOW RETENTION POLICIES"
    )
    assert r[0] == {"series": [{"name": "databases", "columns": ["name"],
                                "values": [["db"], ["other"]]}]}  # fmt: skip
    assert r[1]["series"][0]["values"] == [["cpu"], ["cpu2"], ["disk"]]
    assert r[2]["series"][0]["values"] == [["disk"]]
    assert [(s["name"], s["values"]) for s in r[3]["series"]] == [
        ("cpu", [["host"], ["region"]]),
        ("cpu2", [["host"]]),
        ("disk", [["host"], ["path"]]),
    ]
    assert r[4] == {"series": [{"name": "cpu", "columns": ["key", "value"],
                                "values": [["host", "c"], ["region", "us"]]}]}  # fmt: skip
    assert r[5]["series"][0] == {
        "name": "cpu",
        "columns": ["fieldKey", "fieldType"],
        "values": [["state", "string"], ["usage", "float"]],
    }
    keys = [["cpu,host=b,region=eu"], ["cpu,host=c,region=us"]]
    assert r[6] == {"series": [{"columns": ["key"], "values": keys}]}
    assert [s["name"] for s in r[7]["series"]] == ["cpu", "disk"]
    assert r[7]["series"][1]["values"] == [["path", "/"]]
    assert r[8]["series"][0]["values"] == [["autogen", "0s", "168h0m0s", 1, True]]


def test_planning_errors_are_clear() -> None:
    cases = {
        "SELECT usage FROM cpu": "database name required",
        "SELECT mean(state) FROM cpu": "mean() is not defined for string fields",
        "SELECT mean(usage) FROM cpu GROUP BY time(1s)": "lower limit",
        "SELECT mean(usage), usage FROM cpu": "mixing aggregate and non-aggregate",
        "SELECT usage + 1 FROM cpu": "arithmetic and literals in SELECT are not supported yet",
        "SELECT percentile(usage) FROM cpu": "invalid number of arguments for percentile",
        "SELECT top(usage, host, 2) FROM cpu": "tag arguments are not supported",
        "SELECT derivative(mean(usage)) FROM cpu": "requires a GROUP BY time() interval",
        "SELECT derivative(usage) FROM cpu WHERE time > 0 GROUP BY time(1s)":
            "aggregate function required",
        "SELECT usage FROM cpu WHERE host = 'a' OR usage > 1": "OR between tag and field",
        # OR of mixed sides or of time conditions: refused, not answered as an AND (these
        # answered nothing, or the intersection of the ranges)
        "SELECT usage FROM cpu WHERE (host = 'a' AND usage > 1) OR (host = 'b' AND usage > 2)":
            "OR between tag and field",
        "SELECT usage FROM cpu WHERE (host = 'a' AND time > 1) OR (host = 'b' AND time > 2)":
            "time conditions cannot be combined with OR",
        "SELECT usage FROM cpu WHERE time < 10 OR time > 20": "time conditions cannot be",
        "SELECT usage FROM cpu WHERE (host = 'a' AND time > 1) OR host = 'b'":
            "time conditions cannot be combined with OR",
        "SELECT usage FROM cpu WHERE host > 'a'": "can only be compared with",
        "SELECT usage FROM cpu WHERE host =~ /(/": "invalid regular expression",
        "CREATE DATABASE x": "statement not supported here: CREATE DATABASE",
        "DROP SERIES FROM cpu WHERE time > 0": "doesn't support time in WHERE clause",
        "CREATE RETENTION POLICY p ON db DURATION 1m REPLICATION 1": "at least 1h0m0s",
    }  # fmt: skip
    for q, message in cases.items():
        (r,) = run(q, db=None if "database name" in message else "db")
        assert message in r.get("error", ""), (q, r)
    (r,) = run("SELECT usage FROM cpu", db="nope")
    assert r == {"error": "database not found: nope"}
    (r,) = run("SELECT usage FROM nothing")
    assert r == {}
