"""The batched aggregate scan (node/scanbatch.py) gives the partial of the per-series executor.

Random series on a real engine (small blocks and partitions, several flushes whose time ranges
overlap: overwrites across tables, points left in the memtable, deletes, compaction, regular and
irregular timestamps, ties for min/max, narrow and wide integers), random plans (every batched
aggregate over an integer and a float field, window lengths and offsets, ranges clipped inside
blocks, every GROUP BY form): the partial, state by state, dtype by dtype, and its encoding are
those of node/query.py's per-series path.
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterator

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from node import queryrollups, scanbatch
from node.engine.deletes import DeleteRequest
from node.engine.engine import Engine, EngineOptions, RetentionPolicy
from node.query import EngineSource, execute_partial
from node.querybudget import Budget
from node.scanbatch import BATCH_FNS, execute_batched
from pulsar_cluster.batch import Column, FieldType, WriteBatch
from pulsar_cluster.errors import LimitExceededError
from pulsar_cluster.query.conditions import resolve_series
from pulsar_cluster.query.partial import Partial, encode_partial
from pulsar_cluster.query.plan import ColumnSpec, Limits, Plan
from pulsar_cluster.series import make_series_key

HOSTS = ["h0", "h1", "h2", "h3", "h4"]


@pytest.fixture(autouse=True, scope="module")
def _small_plans_batched_and_cached() -> Iterator[None]:
    """The plans here read a few series and windows: let them take the batched path and the
    rollup cache, which the production bounds (MIN_BATCH_SERIES, MIN_CACHED_WINDOWS) keep
    small plans away from."""
    saved = (scanbatch.MIN_BATCH_SERIES, queryrollups.MIN_CACHED_WINDOWS)
    scanbatch.MIN_BATCH_SERIES, queryrollups.MIN_CACHED_WINDOWS = 1, 0
    yield
    scanbatch.MIN_BATCH_SERIES, queryrollups.MIN_CACHED_WINDOWS = saved


class PerSeries(EngineSource):
    """The engine source without the batched read: node/query.py's per-series path."""

    read_field_batch = None  # type: ignore[assignment]


@st.composite
def times(draw: st.DrawFn) -> np.ndarray:
    if draw(st.booleans()):  # evenly spaced: the batched path's arithmetic
        first = draw(st.integers(-20, 900))
        step = draw(st.sampled_from([1, 3, 10, 25]))
        n = draw(st.integers(0, 40))
        return np.arange(n, dtype=np.int64) * step + first
    found = draw(st.lists(st.integers(-20, 1000), max_size=30, unique=True))
    return np.array(sorted(found), dtype=np.int64)


@st.composite
def values(draw: st.DrawFn, n: int, kind: str) -> np.ndarray:
    wide = draw(st.booleans())
    ints = st.integers(-(2**40), 2**40) if wide else st.integers(-3, 3)  # ties, narrow ints
    xs = draw(st.lists(ints, min_size=n, max_size=n))
    if kind == "i":
        return np.array(xs, dtype=np.int64)
    return np.array(xs, dtype=np.float64) / 4


@st.composite
def rounds(draw: st.DrawFn) -> list[tuple[WriteBatch, str]]:
    """Write batches, each followed by "flush", "compact", "delete:<host>:<lo>:<hi>" or ""."""
    out = []
    for _ in range(draw(st.integers(1, 4))):
        batch = WriteBatch("db")
        for i, host in enumerate(draw(st.lists(st.sampled_from(HOSTS), unique=True, max_size=5))):
            key = make_series_key("cpu", {"host": host, "region": f"r{i % 2}"})
            cols = {}
            for name, kind in (("i", "i"), ("f", "f")):
                if draw(st.integers(0, 4)) == 0:
                    continue
                ts = draw(times())
                ftype = FieldType.INTEGER if kind == "i" else FieldType.FLOAT
                cols[name] = Column(ftype, ts, draw(values(len(ts), kind)))
            if cols:
                batch.series[key] = cols
        after = draw(
            st.sampled_from(["flush", "flush", "", "compact"])
            | st.builds(
                lambda h, lo, w: f"delete:{h}:{lo}:{lo + w}",
                st.sampled_from(HOSTS),
                st.integers(-20, 1000),
                st.integers(1, 300),
            )
        )
        out.append((batch, after))
    return out


PLANS = st.tuples(
    st.lists(
        st.tuples(st.sampled_from(sorted(BATCH_FNS)), st.sampled_from(["i", "f"])),
        min_size=1,
        max_size=3,
    ),
    st.sampled_from([1, 7, 50, 1000]),
    st.sampled_from([0, 3]),
    st.integers(-30, 1000),
    st.integers(1, 1100),
    st.sampled_from([(), ("host",), ("region",), None]),
)


def _plan(spec: tuple) -> Plan:
    cols, every, offset, start, width, group_by = spec
    return Plan(
        kind="select",
        database="db",
        measurement="cpu",
        start=start,
        end=start + width,
        columns=tuple(ColumnSpec(f, fn) for fn, f in cols),
        every=every,
        offset=offset % every,
        group_by=group_by,
    )


def _load(engine: Engine, writes: list[tuple[WriteBatch, str]]) -> None:
    for batch, after in writes:
        if batch.series:
            engine.apply(batch)
        if after == "flush":
            engine.flush()
        elif after == "compact":
            engine.flush()
            engine.compact(full=True)
        elif after.startswith("delete:"):
            _, host, lo, hi = after.split(":")
            engine.delete(DeleteRequest("db", "cpu", int(lo), int(hi), {"host": host}))


def assert_same(got: Partial, want: Partial, points: bool = True) -> None:
    """Equal partials; `points=False` for one answered from the rollup cache (no points read)."""
    assert list(got.groups) == list(want.groups)
    for key, states in want.groups.items():
        for g, w in zip(got.groups[key], states, strict=True):
            assert list(g) == list(w)
            for name in w:
                assert g[name].dtype == w[name].dtype, (key, name)
                assert np.array_equal(g[name], w[name], equal_nan=True), (key, name)
    assert got.series_touched == want.series_touched
    if points:
        assert got.points_scanned == want.points_scanned
        assert encode_partial(got) == encode_partial(want)


@settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(writes=rounds(), specs=st.lists(PLANS, min_size=1, max_size=4))
def test_batched_scan_gives_the_per_series_partial(writes, specs) -> None:
    options = EngineOptions(fsync="never", block_points=5, partition_ns=300, rollup_cache_bytes=0)
    with tempfile.TemporaryDirectory() as tmp:
        engine = Engine(tmp, options)
        try:
            _load(engine, writes)
            for spec in specs:
                plan = _plan(spec)
                want = execute_partial(plan, PerSeries(engine))
                source = EngineSource(engine)
                skeys = sorted(resolve_series(plan.tags, source, "db", "cpu"))
                got = execute_batched(plan, source, skeys, Budget(plan))
                assert got is not None  # one type per field: the batched path applies
                assert_same(got, want)
                assert_same(execute_partial(plan, EngineSource(engine)), want)
        finally:
            engine.close()


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(
    writes=rounds(),
    specs=st.lists(PLANS, min_size=1, max_size=3),
    keep=st.sampled_from([0, 400]),
)
def test_batched_scan_fills_the_rollup_cache_with_the_per_series_states(
    writes, specs, keep
) -> None:
    """A range not seen before is read batched and fills the rollup cache; the next query
    answers from the cache; both equal the per-series path (which fills it the same way).
    With a retention floor (at 600) inside the data, series and ranges below it are read,
    never cached."""
    policy = {"db": RetentionPolicy(keep)} if keep else {}
    options = EngineOptions(
        fsync="never", block_points=5, partition_ns=300, retention=policy, clock=lambda: 1000
    )
    with tempfile.TemporaryDirectory() as tmp:
        engine = Engine(tmp, options)
        try:
            _load(engine, writes)
            for spec in specs:
                plan = _plan(spec)
                engine.rollups.clear()
                first = execute_partial(plan, EngineSource(engine))  # batched, fills
                again = execute_partial(plan, EngineSource(engine))  # from the cache
                engine.rollups.clear()
                want = execute_partial(plan, PerSeries(engine))  # per series, fills
                assert_same(first, want)
                assert_same(again, want, points=False)
                assert_same(execute_partial(plan, EngineSource(engine)), want, points=False)
        finally:
            engine.close()


def _hundred_points_per_host(tmp: str, fields: tuple[str, ...]) -> Engine:
    """An engine (blocks of 10 points, no rollup cache) with 100 points every 10 ns per host
    and field, flushed."""
    engine = Engine(tmp, EngineOptions(fsync="never", block_points=10, rollup_cache_bytes=0))
    batch = WriteBatch("db")
    for host in HOSTS:
        ts = np.arange(100, dtype=np.int64) * 10
        col = Column(FieldType.INTEGER, ts, np.arange(100, dtype=np.int64))
        batch.series[make_series_key("cpu", {"host": host})] = {f: col for f in fields}
    engine.apply(batch)
    engine.flush()
    return engine


def test_batched_scan_counts_points_against_the_limit() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        engine = _hundred_points_per_host(tmp, ("i",))
        try:
            cols = (ColumnSpec("i", "mean"),)
            ok = Plan(kind="select", database="db", measurement="cpu", start=0, end=1000,
                      columns=cols, every=100, limits=Limits(max_points=500))  # fmt: skip
            assert execute_partial(ok, EngineSource(engine)).points_scanned == 500
            over = Plan(kind="select", database="db", measurement="cpu", start=0, end=1000,
                        columns=cols, every=100, limits=Limits(max_points=499))  # fmt: skip
            try:
                execute_partial(over, EngineSource(engine))
            except LimitExceededError as exc:
                assert exc.details["limit"] == "max_points"
            else:
                raise AssertionError("the point limit was not enforced")
        finally:
            engine.close()


def test_mixed_field_types_fall_back_to_the_per_series_path() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        engine = Engine(tmp, EngineOptions(fsync="never", rollup_cache_bytes=0))
        try:
            batch = WriteBatch("db")
            ts = np.arange(5, dtype=np.int64)
            batch.series[make_series_key("cpu", {"host": "a"})] = {
                "v": Column(FieldType.INTEGER, ts, np.arange(5, dtype=np.int64))
            }
            batch.series[make_series_key("cpu", {"host": "b"})] = {
                "v": Column(FieldType.FLOAT, ts, np.arange(5, dtype=np.float64))
            }
            engine.apply(batch)
            plan = Plan(kind="select", database="db", measurement="cpu", start=0, end=10,
                        columns=(ColumnSpec("v", "max"),), every=2, group_by=None)  # fmt: skip
            source = EngineSource(engine)
            skeys = sorted(resolve_series(plan.tags, source, "db", "cpu"))
            budget = Budget(plan)
            assert execute_batched(plan, source, skeys, budget) is None
            assert budget.points == 0
            assert_same(
                execute_partial(plan, EngineSource(engine)),
                execute_partial(plan, PerSeries(engine)),
            )
        finally:
            engine.close()


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    hosts=st.integers(1, 5),
    fns=st.lists(st.sampled_from(sorted(BATCH_FNS)), min_size=1, max_size=3),
    every=st.sampled_from([10, 30, 60]),
    start=st.sampled_from([0, 5, 60]),
    group_by=st.sampled_from([("host",), None, ()]),
)
def test_hosts_with_the_same_timestamps(hosts, fns, every, start, group_by) -> None:
    """TSBS's shape (every host at the same regular times, one group per host or one for
    all): the states are views of one array per column."""
    options = EngineOptions(fsync="never", block_points=16, rollup_cache_bytes=0)
    with tempfile.TemporaryDirectory() as tmp:
        engine = Engine(tmp, options)
        try:
            batch = WriteBatch("db")
            rng = np.random.default_rng(hosts)
            for h in range(hosts):
                ts = np.arange(60, dtype=np.int64) * 10
                col = Column(FieldType.INTEGER, ts, rng.integers(0, 100, 60).astype(np.int64))
                batch.series[make_series_key("cpu", {"host": f"h{h}"})] = {"i": col}
            engine.apply(batch)
            engine.flush()
            plan = Plan(kind="select", database="db", measurement="cpu", start=start,
                        end=start + 360, columns=tuple(ColumnSpec("i", fn) for fn in fns),
                        every=every, group_by=group_by)  # fmt: skip
            want = execute_partial(plan, PerSeries(engine))
            for _ in range(2):  # blocks decoded, then from the block cache (narrow integers)
                assert_same(execute_partial(plan, EngineSource(engine)), want)
        finally:
            engine.close()


def test_a_batch_above_its_point_bound_goes_to_the_per_series_path(monkeypatch) -> None:
    from node import scanbatch

    with tempfile.TemporaryDirectory() as tmp:
        engine = _hundred_points_per_host(tmp, ("i", "j"))
        try:
            plan = Plan(kind="select", database="db", measurement="cpu", start=0, end=1000,
                        columns=(ColumnSpec("i", "mean"), ColumnSpec("j", "max")),
                        every=100, group_by=None)  # fmt: skip
            source = EngineSource(engine)
            skeys = sorted(resolve_series(plan.tags, source, "db", "cpu"))
            assert execute_batched(plan, source, skeys, Budget(plan)) is not None
            # i fits, i and j together do not (500 points each).
            monkeypatch.setattr(scanbatch, "BATCH_MAX_POINTS", 700)
            budget = Budget(plan)
            assert execute_batched(plan, source, skeys, budget) is None
            assert budget.points == 0
            want = execute_partial(plan, PerSeries(engine))
            assert_same(execute_partial(plan, EngineSource(engine)), want)
            assert want.points_scanned == 1000
        finally:
            engine.close()
