"""Raw selections (InfluxQL `SELECT fields|* ... WHERE <field predicate>`) against a naive
row-by-row reference: series with gaps in their fields, several series per answer, predicates
on selected and unselected fields. The node evaluates the predicate before reading the other
fields, and the answer is built column by column; neither may change a row."""

from __future__ import annotations

import asyncio
import operator
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from node.query import execute_partial
from pulsar_cluster.batch import FieldType
from pulsar_cluster.errors import QueryError
from pulsar_cluster.query.influxql.parser import parse_query
from pulsar_cluster.query.influxql.planner import execute_statement
from pulsar_cluster.query.partial import Partial
from pulsar_cluster.query.plan import Plan
from tests.unit.query.memsource import MemSource

FIELDS = ("a", "b", "c")
HOSTS = ("h0", "h1", "h2")
POINTS = st.dictionaries(st.integers(0, 30), st.integers(-5, 5), max_size=12)
SERIES = st.dictionaries(
    st.sampled_from(HOSTS), st.fixed_dictionaries({f: POINTS for f in FIELDS}), min_size=1
)
CMP = st.tuples(
    st.sampled_from(FIELDS), st.sampled_from([">", ">=", "<", "=", "!="]), st.integers(-3, 3)
)
PREDICATE = st.recursive(
    CMP, lambda inner: st.tuples(st.sampled_from(["AND", "OR"]), inner, inner), max_leaves=3
)
SELECTION = st.sampled_from(["*", "a", "b, c", "c, a"])
_OPS = {">": operator.gt, ">=": operator.ge, "<": operator.lt, "=": operator.eq}
_OPS["!="] = operator.ne


class MemBackend:
    def __init__(self, source: MemSource) -> None:
        self.source = source

    async def query(self, plan: Plan) -> Partial:
        return execute_partial(plan, self.source)


def text_of(pred: Any) -> str:
    if pred[0] in ("AND", "OR"):
        return f"({text_of(pred[1])} {pred[0]} {text_of(pred[2])})"
    return f"{pred[0]} {pred[1]} {pred[2]}"


def holds(pred: Any, point: dict[str, int]) -> bool:
    if pred[0] == "AND":
        return holds(pred[1], point) and holds(pred[2], point)
    if pred[0] == "OR":
        return holds(pred[1], point) or holds(pred[2], point)
    name, op, literal = pred
    return name in point and _OPS[op](point[name], literal)


def reference(series: dict[str, dict[str, dict[int, int]]], selection: str, pred: Any) -> Any:
    """InfluxDB's rows: one per time where a selected field has a value and the predicate holds,
    tags as columns for `*` (one series `cpu`, rows ordered by time, then by series key)."""
    matched: dict[str, list[int]] = {}
    for host, data in series.items():
        own = [f for f in FIELDS if data[f]] if selection == "*" else None
        wanted = own if own is not None else [f.strip() for f in selection.split(",")]
        times = sorted({t for f in wanted for t in data[f]})
        hits = [t for t in times if holds(pred, {f: data[f][t] for f in FIELDS if t in data[f]})]
        if hits:
            matched[host] = hits
    if selection == "*":  # the fields of the series that answer rows
        fields = [f for f in FIELDS if any(series[h][f] for h in matched)]
    else:
        fields = [f.strip() for f in selection.split(",")]
    rows = []
    for host in sorted(matched):
        data = series[host]
        for t in matched[host]:
            values = [data[f].get(t) for f in fields]
            rows.append([t, *values, host] if selection == "*" else [t, *values])
    rows.sort(key=lambda r: r[0])  # stable: series order within one time
    columns = ["time", *fields, "host"] if selection == "*" else ["time", *fields]
    if not rows:
        return {}
    return {"series": [{"name": "cpu", "columns": columns, "values": rows}]}


def run(series: dict[str, dict[str, dict[int, int]]], q: str) -> Any:
    src = MemSource()
    for host, fields in series.items():
        for name, points in fields.items():
            if not points:
                continue
            times = sorted(points)
            src.add("db", "cpu", {"host": host}, name, FieldType.INTEGER, times,
                    [points[t] for t in times])  # fmt: skip
    backend = MemBackend(src)
    (stmt,) = parse_query(q)
    try:
        return asyncio.run(execute_statement(stmt, "db", backend, 10**12))
    except QueryError as exc:  # no series stored at all: no database either
        assert "database not found" in exc.message
        return {}


@settings(max_examples=150, deadline=None)
@given(series=SERIES, selection=SELECTION, pred=PREDICATE)
def test_raw_selection_with_field_predicate_matches_the_reference(series, selection, pred) -> None:
    q = f"SELECT {selection} FROM cpu WHERE {text_of(pred)} AND time >= 0 AND time < 100"
    got = run(series, q)
    want = reference(series, selection, pred)
    if not want:
        assert not got.get("series")
    else:
        assert got == want


def test_a_series_without_a_match_reads_only_the_predicate_field() -> None:
    src = MemSource()
    src.add("db", "cpu", {"host": "h"}, "a", FieldType.INTEGER, [1, 2], [1, 2])
    src.add("db", "cpu", {"host": "h"}, "b", FieldType.INTEGER, [1, 2], [5, 6])
    reads: list[str] = []
    original = src.read_field

    def counting(skey: bytes, name: str, *args: Any, **kwargs: Any) -> Any:
        reads.append(name)
        return original(skey, name, *args, **kwargs)

    src.read_field = counting  # type: ignore[method-assign]
    (stmt,) = parse_query("SELECT * FROM cpu WHERE a > 5 AND time >= 0 AND time < 10")
    assert asyncio.run(execute_statement(stmt, "db", MemBackend(src), 10**12)) == {}
    assert reads == ["a"]
