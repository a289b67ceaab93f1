"""GROUP BY time() ... LIMIT reads only the windows it returns (pulsar_cluster/query/
keepwindows.py, node/querykeep.py) and answers exactly as without that.

Random data sets in real engines (one or two shards: the coordinator merges their partials
after a trip through the wire form; writes with gaps, overwrites, deletes, data left in the
memtable, a field stored as an integer in some series and as a float in others) and random
InfluxQL statements (ASC/DESC, LIMIT/OFFSET, SLIMIT/SOFFSET, every fill, GROUP BY tags,
time(i, offset), ranges cut inside windows, no lower or upper bound, several aggregates,
transformations, top()): the answer with the pushdown equals, value for value and type for
type, the answer without it. Plus the traps named one by one.
"""

from __future__ import annotations

import asyncio
import contextlib
import tempfile
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from node import queryrollups
from node.engine.deletes import DeleteRequest
from node.engine.engine import Engine, EngineOptions
from node.query import EngineSource, execute_partial
from pulsar_cluster.batch import Column, FieldType, WriteBatch
from pulsar_cluster.errors import QueryError
from pulsar_cluster.query import keepwindows
from pulsar_cluster.query.influxql.parser import parse_query
from pulsar_cluster.query.influxql.planner import execute_statement
from pulsar_cluster.query.partial import (
    Partial,
    decode_partial,
    decode_plan,
    encode_partial,
    encode_plan,
    merge,
)
from pulsar_cluster.query.plan import Plan, plan_from_dict, plan_to_dict
from pulsar_cluster.series import make_series_key

HOSTS = ["h0", "h1", "h2", "h3", "h4"]
T_MAX = 400
NOW = 1000


def _tags(host: str) -> dict[str, str]:
    return {"host": host, "g": "a" if host in ("h0", "h1", "h4") else "b"}


class Shards:
    """Query backend over engines holding disjoint series: each runs the plan as decoded from
    its wire form, the partials are merged as the coordinator merges them. Records the plans."""

    def __init__(self, engines: list[Engine]) -> None:
        self.engines = engines
        self.plans: list[Plan] = []

    async def query(self, plan: Plan) -> Partial:
        self.plans.append(plan)
        wire = decode_plan(encode_plan(plan))
        parts = [
            decode_partial(encode_partial(execute_partial(wire, EngineSource(e))))
            for e in self.engines
        ]
        return merge(wire, parts)


@contextlib.contextmanager
def _pushdown(on: bool) -> Iterator[None]:
    saved = keepwindows.PUSHDOWN
    keepwindows.PUSHDOWN = on
    try:
        yield
    finally:
        keepwindows.PUSHDOWN = saved


@contextlib.contextmanager
def _small_plans_cached(on: bool) -> Iterator[None]:
    """Small plans through the rollup cache too (its partial hits with narrowed ranges)."""
    saved = queryrollups.MIN_CACHED_WINDOWS
    queryrollups.MIN_CACHED_WINDOWS = 0 if on else saved
    try:
        yield
    finally:
        queryrollups.MIN_CACHED_WINDOWS = saved


def _answer(backend: Shards, text: str, pushdown: bool) -> Any:
    async def go() -> Any:
        out = []
        for stmt in parse_query(text):
            try:
                out.append(await execute_statement(stmt, "db", backend, NOW))
            except QueryError as exc:
                out.append({"error": exc.message})
        return out

    with _pushdown(pushdown):
        return asyncio.run(go())


def _same(backend: Shards, text: str) -> bool:
    """The answer with and without the pushdown, compared by repr (5 and 5.0 differ);
    whether the pushdown applied."""
    before = len(backend.plans)
    plain = _answer(backend, text, False)
    assert all(p.keep is None for p in backend.plans[before:])
    before = len(backend.plans)
    pushed = _answer(backend, text, True)
    assert repr(pushed) == repr(plain), text
    return any(p.keep is not None for p in backend.plans[before:])


# --- random data and statements ------------------------------------------------------------------

WRITE = st.tuples(
    st.just("write"),
    st.lists(st.sampled_from(HOSTS), min_size=1, max_size=3, unique=True),
    st.lists(st.tuples(st.integers(0, T_MAX - 1), st.integers(-20, 20)), min_size=1, max_size=12),
)
DELETE = st.tuples(
    st.just("delete"),
    st.lists(st.sampled_from(HOSTS), min_size=1, max_size=2, unique=True),
    st.tuples(st.integers(0, T_MAX - 1), st.integers(1, 150)),
)
OPS = st.lists(st.one_of(WRITE, WRITE, DELETE, st.just(("flush",))), min_size=1, max_size=8)

AGGS = ["count", "sum", "mean", "min", "max", "first", "last", "spread", "median", "stddev"]
AGG = st.tuples(st.sampled_from(AGGS), st.sampled_from(["v", "v", "m"])).map(
    lambda a: f"{a[0]}({a[1]})"
)
ITEM = st.one_of(
    AGG,
    AGG,
    AGG,
    st.sampled_from(["percentile(v, 50)", "derivative(max(v))", "difference(mean(v))",
                     "cumulative_sum(sum(v))", "moving_average(max(v), 2)"]),
)  # fmt: skip
# Mostly shapes the pushdown takes (a bound, a LIMIT, fill(null) or a value), the others too.
STATEMENT = st.fixed_dictionaries(
    {
        "items": st.one_of(
            st.lists(AGG, min_size=1, max_size=3, unique=True).map(", ".join),
            st.lists(AGG, min_size=1, max_size=3, unique=True).map(", ".join),
            st.lists(ITEM, min_size=1, max_size=3, unique=True).map(", ".join),
            st.just("top(v, 2)"),
        ),
        "lower": st.one_of(st.integers(-30, T_MAX - 50), st.integers(-30, T_MAX), st.none()),
        "upper": st.one_of(st.none(), st.integers(1, T_MAX + 30)),
        "where": st.sampled_from(["", "", "", " AND host != 'h2'", " AND v > 0"]),
        "every": st.sampled_from([7, 25, 50, 100]),
        "offset": st.one_of(st.none(), st.integers(1, 60)),
        "by": st.sampled_from(["", ", g", ", *", ", host"]),
        "fill": st.one_of(
            st.sampled_from(["", " fill(null)", " fill(-1)"]),
            st.sampled_from([" fill(none)", " fill(previous)", " fill(linear)"]),
        ),
        "desc": st.booleans(),
        "limit": st.one_of(st.integers(1, 4), st.integers(0, 8)),
        "offset_rows": st.one_of(st.just(0), st.integers(0, 8)),
        "slimit": st.one_of(st.just(0), st.integers(0, 3)),
        "soffset": st.one_of(st.just(0), st.integers(0, 2)),
    }
)


def _statement(s: dict[str, Any]) -> str:
    cond = []
    if s["lower"] is not None:
        cond.append(f"time >= {s['lower']}")
    if s["upper"] is not None:
        cond.append(f"time < {s['upper']}")
    where = " AND ".join(cond) or "host =~ /./"
    every = f"{s['every']}ns" + (f", {s['offset']}ns" if s["offset"] is not None else "")
    text = f"SELECT {s['items']} FROM cpu WHERE {where}{s['where']} GROUP BY time({every})"
    text += s["by"] + s["fill"]
    if s["desc"]:
        text += " ORDER BY time DESC"
    if s["limit"]:
        text += f" LIMIT {s['limit']}"
    if s["offset_rows"]:
        text += f" OFFSET {s['offset_rows']}"
    if s["slimit"]:
        text += f" SLIMIT {s['slimit']}"
    if s["soffset"]:
        text += f" SOFFSET {s['soffset']}"
    return text


def _engines(tmp: str, shards: int, block_points: int) -> list[Engine]:
    options = EngineOptions(fsync="never", block_points=block_points, clock=lambda: NOW)
    return [Engine(f"{tmp}/{i}", options) for i in range(shards)]


def _shard_of(host: str, shards: int) -> int:
    # h0, h2, h4 on shard 0 and h1, h3 on shard 1: each shard holds integers and floats of "m"
    return int(host[1:]) % shards


def _apply(engines: list[Engine], ops: list[Any]) -> None:
    shards = len(engines)
    for op in ops:
        if op[0] == "write":
            per: list[WriteBatch] = [WriteBatch("db") for _ in engines]
            for host in op[1]:
                ts = np.array([p[0] for p in op[2]], dtype=np.int64)
                vs = np.array([p[1] for p in op[2]], dtype=np.int64)
                # "m" is an integer in h0, h1 and a float in the others (per series types)
                m = Column(FieldType.INTEGER, ts, vs) if host in ("h0", "h1") else None
                m = m or Column(FieldType.FLOAT, ts, vs / 4.0)
                per[_shard_of(host, shards)].series[make_series_key("cpu", _tags(host))] = {
                    "v": Column(FieldType.FLOAT, ts, vs / 3.0),
                    "m": m,
                }
            for engine, batch in zip(engines, per, strict=True):
                if batch.series:
                    engine.apply(batch)
        elif op[0] == "delete":
            lo, length = op[2]
            for engine in engines:
                keys = tuple(make_series_key("cpu", _tags(h)) for h in op[1])
                engine.delete(DeleteRequest("db", "cpu", lo, lo + length, series=keys))
        else:
            for engine in engines:
                engine.flush()


@settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck))
@given(
    OPS,
    st.lists(STATEMENT, min_size=1, max_size=6),
    st.sampled_from([1, 2]),
    st.booleans(),
)
def test_pushdown_answers_like_the_full_read(
    ops: list[Any], statements: list[dict[str, Any]], shards: int, cached: bool
) -> None:
    # Field "m" is typed per series; on two shards each shard holds both types, so every
    # shard sees the mix and reads every window (node/querykeep.py): a mix split along the
    # shards (integers on one, floats on another) is the documented case left out.
    with tempfile.TemporaryDirectory() as tmp, _small_plans_cached(cached):
        engines = _engines(tmp, shards, block_points=4)
        try:
            _apply(engines, ops)
            backend = Shards(engines)
            for s in statements:
                event("pushed down" if _same(backend, _statement(s)) else "every window")
        finally:
            for engine in engines:
                engine.close()


# --- the traps, one by one ---------------------------------------------------------------------


@pytest.fixture
def backend(tmp_path: Any) -> Iterator[Shards]:
    """h0 (group a) has points only in [0, 100); h1 (a) and h3 (b) throughout [0, 400), one
    every 10 ns; h2 (b) only in [300, 310), then deleted; h4 (a) only in the memtable at 395.
    Two shards."""
    engines = _engines(str(tmp_path), 2, block_points=8)
    ops: list[Any] = [
        ("write", ["h0"], [(t, t % 7) for t in range(0, 100, 10)]),
        ("write", ["h1", "h3"], [(t, t % 11) for t in range(0, 400, 10)]),
        ("write", ["h2"], [(300, 5), (305, 6)]),
        ("flush",),
        ("delete", ["h2"], (300, 10)),
        ("write", ["h4"], [(395, 9)]),
    ]
    _apply(engines, ops)
    yield Shards(engines)
    for engine in engines:
        engine.close()


def _q(tail: str, items: str = "max(v)", where: str = "time >= 0 AND time < 400") -> str:
    return f"SELECT {items} FROM cpu WHERE {where} GROUP BY time(50ns){tail}"


@pytest.mark.parametrize(
    "tail",
    [
        ", host ORDER BY time DESC LIMIT 2",  # h0: no point in the last two windows
        ", host fill(-1) ORDER BY time DESC LIMIT 2",
        ", host LIMIT 2 OFFSET 3",  # ASC with OFFSET: windows 3 and 4
        ", host ORDER BY time DESC LIMIT 3 OFFSET 2 SLIMIT 2 SOFFSET 1",
        ", g ORDER BY time DESC LIMIT 1",
        " ORDER BY time DESC LIMIT 5",  # TSBS's shape: one group
        ", * ORDER BY time DESC LIMIT 1 OFFSET 7",  # the first window only
        ", host ORDER BY time DESC LIMIT 2 OFFSET 8",  # past every window: no rows
    ],
)
def test_series_outside_the_kept_windows_still_answer(backend: Shards, tail: str) -> None:
    assert _same(backend, _q(tail)) == ("OFFSET 8" not in tail)


def test_a_series_only_outside_the_kept_windows_answers_nulls(backend: Shards) -> None:
    (r,) = _answer(backend, _q(", host ORDER BY time DESC LIMIT 2"), True)
    by_host = {s["tags"]["host"]: s["values"] for s in r["series"]}
    assert sorted(by_host) == ["h0", "h1", "h3", "h4"]  # not h2: its points are deleted
    assert by_host["h0"] == [[350, None], [300, None]]
    assert by_host["h4"] == [[350, 3.0], [300, None]]  # the memtable's point
    (r,) = _answer(backend, _q(", host ORDER BY time DESC LIMIT 2", "count(v)"), True)
    assert {s["tags"]["host"]: s["values"] for s in r["series"]}["h0"] == [[350, 0], [300, 0]]


@pytest.mark.parametrize(
    "text",
    [
        _q(", host fill(none) ORDER BY time DESC LIMIT 2"),
        _q(", host fill(previous) ORDER BY time DESC LIMIT 2"),
        _q(", host fill(linear) ORDER BY time DESC LIMIT 2"),
        _q(" ORDER BY time DESC LIMIT 2", "derivative(max(v))"),
        _q(" ORDER BY time DESC LIMIT 2", "moving_average(max(v), 3)"),
        _q(" ORDER BY time DESC LIMIT 2", "top(v, 2)"),
        _q(" ORDER BY time DESC LIMIT 2", where="time >= 0 AND time < 400 AND v > 1"),
        _q(" ORDER BY time DESC"),  # no LIMIT
        _q(" LIMIT 20"),  # every window anyway
    ],
)
def test_shapes_left_on_the_general_path(backend: Shards, text: str) -> None:
    assert _same(backend, text) is False


@pytest.mark.parametrize(
    "text",
    [
        _q(" ORDER BY time DESC LIMIT 2", "max(v), min(v), count(m), mean(m)"),
        _q(", host ORDER BY time DESC LIMIT 2", "first(v), last(m), spread(v)"),
        _q(", host ORDER BY time DESC LIMIT 3", where="time >= 7 AND time < 333"),  # cut windows
        "SELECT max(v) FROM cpu WHERE time >= 13 GROUP BY time(50ns, 20ns), host "
        "ORDER BY time DESC LIMIT 2",  # no upper bound: now
        "SELECT max(v) FROM cpu WHERE time >= 0 AND time < 400 GROUP BY time(30ns, 7ns) "
        "LIMIT 3 OFFSET 1",
        _q(", host ORDER BY time DESC LIMIT 2", "median(v), percentile(v, 90), stddev(v)"),
    ],
)
def test_other_shapes_pushed_down(backend: Shards, text: str) -> None:
    assert _same(backend, text) is True


def test_no_lower_bound_is_refused_either_way(backend: Shards) -> None:
    text = "SELECT max(v) FROM cpu WHERE time < 400 GROUP BY time(50ns) ORDER BY time DESC LIMIT 2"
    assert _same(backend, text) is False
    assert "lower limit" in _answer(backend, text, True)[0]["error"]


def test_a_mixed_field_type_reads_every_window(tmp_path: Any) -> None:
    """One shard, "m" an integer in h0 (a point late) and a float in h4 (a point early): the
    full read answers a float for h0's window of the group; so does the pushdown, which sees
    the two types and reads everything."""
    (engine,) = _engines(str(tmp_path), 1, block_points=8)
    _apply([engine], [("write", ["h0"], [(390, 8)]), ("write", ["h4"], [(10, 4)])])
    b = Shards([engine])
    text = _q(" ORDER BY time DESC LIMIT 1", "max(m)")
    assert _same(b, text) is True  # a keep was sent; the node ignored it
    (r,) = _answer(b, text, True)
    assert r["series"][0]["values"] == [[350, 8.0]]
    engine.close()


def test_plan_wire_form_keeps_or_omits_keep() -> None:
    plan = Plan(kind="select", database="db", measurement="cpu", start=0, end=10, every=2)
    body = plan_to_dict(plan)
    assert "kw" not in body  # encodings from before the key look the same
    assert plan_from_dict(body).keep is None
    kept = Plan(
        kind="select", database="db", measurement="cpu", start=0, end=10, every=2, keep=(3, 5)
    )
    assert plan_from_dict(plan_to_dict(kept)).keep == (3, 5)
    assert decode_plan(encode_plan(kept)) == kept
    for bad in ([5, 3], [-1, 2], [1], "x", [1, 2, 3]):
        with pytest.raises(QueryError):
            plan_from_dict({**body, "kw": bad})


@given(
    st.integers(1, 50),
    st.integers(0, 60),
    st.integers(0, 60),
    st.booleans(),
)
def test_kept_windows_are_the_ones_limit_returns(
    nwin: int, limit: int, offset: int, desc: bool
) -> None:
    from pulsar_cluster.query.compile import Item

    got = keepwindows.kept_windows([Item("v", "max")], "null", False, desc, limit, offset, nwin)
    rows = list(range(nwin))
    if desc:
        rows.reverse()
    want = sorted(rows[offset:][:limit]) if limit else rows
    if got is None:
        assert not limit or not want or want == list(range(nwin))
    else:
        assert list(range(*got)) == want


def test_a_column_without_rows_on_every_shard_merges(tmp_path: Any) -> None:
    """merge() of a group whose column has no row on any shard gives an empty state, as a
    shard sends it (it gave {} and finalize failed with KeyError 'w'); presence-only groups
    of the pushdown are such groups."""
    engines = _engines(str(tmp_path), 2, block_points=8)
    _apply(engines, [("write", ["h0", "h1"], [(1, 3), (2, 6)])])
    only_w = WriteBatch("db")
    only_w.series[make_series_key("cpu", {"host": "x"})] = {
        "w": Column(FieldType.FLOAT, np.array([50], np.int64), np.array([1.0]))
    }
    engines[0].apply(only_w)  # outside the range: field w has no point in it anywhere
    text = "SELECT max(v), max(w) FROM cpu WHERE time >= 0 AND time < 10 GROUP BY time(5ns)"
    (r,) = _answer(Shards(engines), text, False)
    assert r["series"][0]["values"] == [[0, 2.0, None], [5, None, None]]
    for engine in engines:
        engine.close()
