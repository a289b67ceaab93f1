"""The rollup cache (node/engine/rollups.py) never changes an answer.

Random operation sequences against a real engine (writes with duplicates and overwrites,
flushes into overlapping tables, data left in the memtable, deletes, a retention floor) with
random GROUP BY time() queries: every query's partial with the cache on equals, array for
array and dtype for dtype, the partial with the cache off (the per-series path), and count/max
equal a numpy reference over the model of the data (last write wins, deletes). The same query
runs twice, so the second one is answered from the cache.
"""

from __future__ import annotations

import contextlib
import tempfile
from collections.abc import Iterator
from dataclasses import replace
from typing import Any

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from node import queryrollups
from node.engine.deletes import DeleteRequest
from node.engine.engine import Engine, EngineOptions, RetentionPolicy
from node.query import EngineSource, execute_partial
from pulsar_cluster.batch import Column, FieldType, WriteBatch
from pulsar_cluster.query.partial import Partial
from pulsar_cluster.query.plan import ColumnSpec, Plan
from pulsar_cluster.series import make_series_key

HOSTS = ["h0", "h1", "h2", "h3"]
FNS = ["count", "sum", "mean", "min", "max", "first", "last", "spread", "stddev", "delta"]
T_MAX = 400

WRITE = st.tuples(
    st.just("write"),
    st.lists(st.sampled_from(HOSTS), min_size=1, max_size=4, unique=True),
    st.lists(st.tuples(st.integers(0, T_MAX - 1), st.integers(-20, 20)), min_size=1, max_size=30),
)
DELETE = st.tuples(
    st.just("delete"),
    st.lists(st.sampled_from(HOSTS), min_size=1, max_size=2, unique=True),
    st.tuples(st.integers(0, T_MAX - 1), st.integers(1, 120)),
)
QUERY = st.tuples(
    st.just("query"),
    st.lists(st.sampled_from(FNS), min_size=1, max_size=2),
    st.tuples(
        st.integers(0, T_MAX - 1),  # start
        st.integers(1, T_MAX),  # length
        st.sampled_from([7, 25, 50, 100]),  # every
        st.integers(0, 30),  # offset
        st.sampled_from([None, (), ("g",)]),  # group by: series, all, tag g
    ),
)
OPS = st.lists(
    st.one_of(WRITE, DELETE, QUERY, st.just(("flush",))),
    min_size=1,
    max_size=14,
)


def _tags(host: str) -> dict[str, str]:
    return {"host": host, "g": "a" if host in ("h0", "h1") else "b"}


def _same(a: Partial, b: Partial) -> None:
    assert a.groups.keys() == b.groups.keys()
    for key, states in a.groups.items():
        for sa, sb in zip(states, b.groups[key], strict=True):
            assert sa.keys() == sb.keys()
            for k in sa:
                assert sa[k].dtype == sb[k].dtype, (key, k)
                assert np.array_equal(sa[k], sb[k], equal_nan=sa[k].dtype.kind == "f"), (key, k)


def _check(engine: Engine, plan: Plan) -> list[Partial]:
    """Run `plan` twice with the cache (the second may hit) and once without; all equal."""
    with _small_plans_cached():
        cached = [execute_partial(plan, EngineSource(engine)) for _ in range(2)]
    capacity = engine.rollups.capacity_bytes
    engine.rollups.capacity_bytes = 0  # the per-series path
    try:
        plain = execute_partial(plan, EngineSource(engine))
    finally:
        engine.rollups.capacity_bytes = capacity
    for got in cached:
        _same(got, plain)
    return cached


@contextlib.contextmanager
def _small_plans_cached() -> Iterator[None]:
    """These plans are small (a few series and windows): let them use the cache."""
    saved = queryrollups.MIN_CACHED_WINDOWS
    queryrollups.MIN_CACHED_WINDOWS = 0
    try:
        yield
    finally:
        queryrollups.MIN_CACHED_WINDOWS = saved


def _reference(model: dict[str, dict[int, Any]], plan: Plan, floor: int) -> dict[str, Any]:
    """count and max per (host, window) of the model, for plans grouped by series."""
    out: dict[str, Any] = {}
    w0 = (plan.start - plan.offset) // plan.every * plan.every + plan.offset
    for host, points in model.items():
        rows: dict[int, list[int]] = {}
        for t, v in points.items():
            if max(plan.start, floor) <= t < plan.end:
                rows.setdefault((t - w0) // plan.every, []).append(v)
        if rows:
            out[host] = {w: (len(vs), max(vs)) for w, vs in sorted(rows.items())}
    return out


@settings(max_examples=100, deadline=None, suppress_health_check=list(HealthCheck))
@given(OPS, st.sampled_from([float, int]), st.booleans())
def test_cache_answers_like_the_per_series_path(ops: list, kind: type, retention: bool) -> None:
    now = 10_000
    floor = 150 if retention else None
    options = EngineOptions(
        fsync="never",
        block_points=5,  # many blocks per series: block pruning at window edges matters
        clock=lambda: now,
        retention={"db": RetentionPolicy(now - 150)} if retention else {},
    )
    with tempfile.TemporaryDirectory() as tmp:
        engine = Engine(tmp, options)
        model: dict[str, dict[int, Any]] = {}
        ftype = FieldType.FLOAT if kind is float else FieldType.INTEGER
        try:
            plans: list[Plan] = []
            for op in ops:
                for earlier in plans[-6:]:  # a stale cached window shows up in a repeated query
                    _check(engine, earlier)
                if op[0] == "write":
                    batch = WriteBatch("db")
                    for host in op[1]:
                        ts = np.array([p[0] for p in op[2]], dtype=np.int64)
                        vs = np.array([p[1] for p in op[2]], dtype=kind)
                        if kind is float:
                            vs = vs / 3.0  # sums that depend on the order of addition
                        batch.series[make_series_key("cpu", _tags(host))] = {
                            "v": Column(ftype, ts, vs)
                        }
                        for t, v in zip(ts.tolist(), vs.tolist(), strict=True):
                            model.setdefault(host, {})[t] = v  # last write wins
                    engine.apply(batch)
                elif op[0] == "delete":
                    lo, length = op[2]
                    keys = tuple(make_series_key("cpu", _tags(h)) for h in op[1])
                    engine.delete(DeleteRequest("db", "cpu", lo, lo + length, series=keys))
                    for h in op[1]:
                        for t in [t for t in model.get(h, {}) if lo <= t < lo + length]:
                            del model[h][t]
                elif op[0] == "flush":
                    engine.flush()
                else:
                    fns, (start, length, every, offset, group_by) = op[1], op[2]
                    plan = Plan(
                        kind="select",
                        database="db",
                        measurement="cpu",
                        start=start,
                        end=start + length,
                        columns=tuple(ColumnSpec("v", fn) for fn in fns),
                        every=every,
                        offset=offset,
                        group_by=group_by,
                    )
                    plans.append(plan)
                    cached = _check(engine, plan)
                    # Sliding the range shares the inner windows: partial hits.
                    for d0, d1 in ((0, every // 2 + 1), (every, every), (-every // 3, 0)):
                        if start + d0 < start + length + d1:
                            moved = replace(plan, start=start + d0, end=start + length + d1)
                            plans.append(moved)
                            _check(engine, moved)
                    if group_by is None:
                        want = _reference(model, plan, floor if floor is not None else -(2**62))
                        got_ref = {}
                        for key, states in cached[1].groups.items():
                            host = dict(key)["host"]
                            for fn, s in zip(fns, states, strict=True):
                                if fn == "count" and len(s["w"]):
                                    got_ref.setdefault(host, {}).update(
                                        {
                                            w: n
                                            for w, n in zip(
                                                s["w"].tolist(), s["n"].tolist(), strict=True
                                            )
                                        }
                                    )
                        assert got_ref == {
                            h: {w: c for w, (c, _) in rows.items()}
                            for h, rows in want.items()
                            if "count" in fns
                        }
            assert engine.rollups.stats()["bytes"] >= 0
        finally:
            engine.close(flush=False)


def test_written_series_read_only_their_missing_windows(tmp_path: Any) -> None:
    """A write into the middle of one series' cached windows: the next run of the query answers
    that series from its other cached windows plus a read of the written window (the probe
    series, h0, is untouched), and equals the per-series path."""
    engine = Engine(str(tmp_path), EngineOptions(fsync="never", block_points=8))
    try:
        batch = WriteBatch("db")
        ts = np.arange(0, 400, 3, dtype=np.int64)
        for i, host in enumerate(HOSTS):
            vals = (ts * (i + 1)) % 17 / 7.0
            batch.series[make_series_key("cpu", _tags(host))] = {
                "v": Column(FieldType.FLOAT, ts, vals)
            }
        engine.apply(batch)
        engine.flush()
        plan = Plan(
            kind="select",
            database="db",
            measurement="cpu",
            start=5,
            end=390,
            columns=(ColumnSpec("v", "mean"), ColumnSpec("v", "max")),
            every=50,
            group_by=None,
        )
        _check(engine, plan)
        write = WriteBatch("db")
        write.series[make_series_key("cpu", _tags("h1"))] = {
            "v": Column(FieldType.FLOAT, np.array([151, 152], np.int64), np.array([99.5, -3.25]))
        }
        engine.apply(write)
        before = engine.rollups.stats()["partial_hits"]
        _check(engine, plan)
        assert engine.rollups.stats()["partial_hits"] > before  # h1 took the partial path
    finally:
        engine.close(flush=False)


def _sixty_windows() -> Plan:
    return Plan(
        kind="select",
        database="db",
        measurement="cpu",
        start=0,
        end=600,
        columns=(ColumnSpec("v", "max"),),
        every=10,
        group_by=None,
    )


def test_small_plans_skip_the_cache() -> None:
    plan = _sixty_windows()
    capacity = 32 << 20
    assert queryrollups.plan_windows(plan, 1, 1, capacity) is None
    assert queryrollups.plan_windows(plan, 1, 16, capacity) is None  # 960 series x windows
    assert queryrollups.plan_windows(plan, 1, 17, capacity) is not None
    with _small_plans_cached():
        assert queryrollups.plan_windows(plan, 1, 1, capacity) is not None


def test_few_series_take_the_per_series_path() -> None:
    from node.scanbatch import MIN_BATCH_SERIES, batch_applies

    plan = _sixty_windows()
    assert not batch_applies(plan, 1, 1)
    assert not batch_applies(plan, 1, MIN_BATCH_SERIES - 1)
    assert batch_applies(plan, 1, MIN_BATCH_SERIES)
