"""node/lastquery.py answers last()-only plans exactly like the general executor reading
storage: with a cold cache (newest blocks only), a warm one, a warmed-up one, several series
per group, several tables, partitions and memtables, overwrites and deletes."""

from __future__ import annotations

import tempfile
import threading
from dataclasses import replace

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from node.engine.deletes import DeleteRequest
from node.engine.engine import Engine, EngineOptions
from node.engine.lastcache import LastValueCache
from node.lastquery import LastReader, answer_last, is_last_only, warm
from node.query import EngineSource, execute_partial
from pulsar_cluster.batch import Column, FieldType, WriteBatch
from pulsar_cluster.errors import LimitExceededError
from pulsar_cluster.query.finish import Finish, OutColumn, finalize
from pulsar_cluster.query.partial import Partial
from pulsar_cluster.query.plan import MAX_TIME, MIN_TIME, ColumnSpec, Limits, Plan
from pulsar_cluster.series import make_series_key

HOSTS = ["a", "b", "c", "d"]
FIELDS = {"i": FieldType.INTEGER, "f": FieldType.FLOAT, "s": FieldType.STRING}
PARTITION = 100  # small partitions: writes spread over several


def _values(name: str, raw: list[int]) -> np.ndarray:
    if name == "i":
        return np.array(raw, dtype=np.int64)
    if name == "f":
        return np.array(raw, dtype=np.float64) / 4
    out = np.empty(len(raw), dtype=object)
    out[:] = [f"v{x}" for x in raw]
    return out


WRITE = st.tuples(
    st.just("write"),
    st.sampled_from(HOSTS),
    st.sampled_from(["x", "y"]),  # a second tag: two series per host
    st.lists(st.sampled_from(sorted(FIELDS)), min_size=1, max_size=3, unique=True),
    st.lists(st.tuples(st.integers(0, 450), st.integers(-5, 5)), min_size=1, max_size=5),
)
DELETE = st.tuples(st.just("delete"), st.sampled_from(HOSTS), st.integers(0, 450))
FLUSH = st.tuples(st.just("flush"))
QUERY = st.tuples(st.just("query"), st.integers(0, 400), st.sampled_from(["host", "all"]))
OPS = st.lists(st.one_of(WRITE, WRITE, DELETE, FLUSH, QUERY, QUERY), min_size=1, max_size=16)


def _plan(start: int, group: str, fields: tuple[str, ...] = ("f", "i", "s")) -> Plan:
    return Plan(
        kind="select",
        database="db",
        measurement="m",
        start=start,
        end=MAX_TIME,
        columns=tuple(ColumnSpec(f, "last") for f in fields),
        group_by=("host",) if group == "host" else None,
    )


def _finish(plan: Plan) -> Finish:
    return Finish(columns=[OutColumn(f"last_{c.field}", i) for i, c in enumerate(plan.columns)])


def _write(engine: Engine, cache: LastValueCache, op: tuple) -> None:  # type: ignore[type-arg]
    _, host, other, names, pts = op
    ts = np.array([p[0] for p in pts], dtype=np.int64)
    raw = [p[1] for p in pts]
    batch = WriteBatch("db")
    key = make_series_key("m", {"host": host, "k": other})
    batch.series[key] = {n: Column(FIELDS[n], ts, _values(n, raw)) for n in names}
    engine.apply(batch)
    cache.observe(batch)


@settings(max_examples=60, deadline=None)
@given(ops=OPS)
def test_answer_last_equals_the_general_executor(ops) -> None:  # type: ignore[no-untyped-def]
    with tempfile.TemporaryDirectory() as d:
        engine = Engine(d, EngineOptions(fsync="never", partition_ns=PARTITION))
        cache = LastValueCache()
        try:
            for op in ops:
                if op[0] == "write":
                    _write(engine, cache, op)
                elif op[0] == "delete":
                    cache.clear()
                    engine.delete(DeleteRequest("db", "m", op[2], MAX_TIME, tags={"host": op[1]}))
                    cache.clear()
                elif op[0] == "flush":
                    engine.flush()
                else:
                    plan = _plan(op[1] or MIN_TIME, op[2])
                    finish = _finish(plan)
                    stored = finalize(plan, finish, execute_partial(plan, EngineSource(engine)))
                    for _ in range(2):  # cold (or partly cached), then from the cache
                        fast = answer_last(plan, EngineSource(engine), cache)
                        assert fast is not None
                        assert finalize(plan, finish, fast) == stored
                        # the per-group form (merge, wire, federation) answers the same
                        per_group = Partial(fast.groups, series_touched=fast.series_touched)
                        assert finalize(plan, finish, per_group) == stored
                        generic = execute_partial(plan, EngineSource(engine))
                        assert sorted(per_group.groups) == sorted(generic.groups)
                    one = _plan(op[1] or MIN_TIME, op[2], ("s",))
                    fast = answer_last(one, EngineSource(engine), cache)
                    assert fast is not None
                    assert finalize(one, _finish(one), fast) == finalize(
                        one, _finish(one), execute_partial(one, EngineSource(engine))
                    )
            # The warm-up stores exactly what storage answers.
            fresh = LastValueCache()
            warm(engine, fresh, threading.Event(), 10_000)
            plan = _plan(MIN_TIME, "all")
            answer = answer_last(plan, EngineSource(engine), fresh)
            assert answer is not None
            assert fresh.hits == len(fresh)  # every warmed entry answered; misses hold no data
            stored = execute_partial(plan, EngineSource(engine))
            assert finalize(plan, _finish(plan), answer) == finalize(plan, _finish(plan), stored)
        finally:
            engine.close()


def test_newest_block_read_falls_back_when_tombstones_hide_it() -> None:
    with tempfile.TemporaryDirectory() as d:
        engine = Engine(d, EngineOptions(fsync="never", partition_ns=PARTITION))
        try:
            key = make_series_key("m", {"host": "a"})
            batch = WriteBatch("db")
            ts = np.array([10, 150, 250], dtype=np.int64)
            batch.series[key] = {"f": Column(FieldType.FLOAT, ts, np.array([1.0, 2.0, 3.0]))}
            engine.apply(batch)
            engine.flush()
            skey = b"db\x00" + key
            reader = LastReader(engine)
            assert reader.newest_time(skey, "f") == 250
            points: list[int] = []
            got = reader.read_last(skey, "f", points.append)
            assert got is not None and (got[0], got[1][-1]) == (250, 3.0)
            assert sum(points) == 1  # only the newest partition's block was read
            engine.delete(DeleteRequest("db", "m", 200, MAX_TIME, tags={"host": "a"}))
            got = LastReader(engine).read_last(skey, "f", points.append)
            assert got is not None and (got[0], got[1][-1]) == (150, 2.0)
            assert LastReader(engine).read_last(skey, "nope", points.append) is None
        finally:
            engine.close()


def test_a_cold_cache_is_filled_whatever_the_newest_blocks_hold() -> None:
    """Each miss reads its field's newest block whole; those reads are counted as scanned but
    not refused by the point limit, so the first lastpoint query after writes into an empty
    cache answers (it was refused once the blocks held more than max_points in all, and
    refused again on every later query, since a refused query stores nothing). A whole-field
    read (tombstones hide the newest point) stays limited, and the time limit still holds."""
    with tempfile.TemporaryDirectory() as d:
        engine = Engine(d, EngineOptions(fsync="never"))
        try:
            batch = WriteBatch("db")
            ts = np.arange(50, dtype=np.int64)
            for host in HOSTS:
                key = make_series_key("m", {"host": host})
                batch.series[key] = {"f": Column(FieldType.FLOAT, ts, ts / 2)}
            engine.apply(batch)
            engine.flush()  # one block of 50 points per series
            small = Limits(max_points=20)
            plan = replace(_plan(MIN_TIME, "host", ("f",)), limits=small)
            cache = LastValueCache()
            got = answer_last(plan, EngineSource(engine), cache)
            assert got is not None and got.points_scanned == 50 * len(HOSTS)
            expected = execute_partial(_plan(MIN_TIME, "host", ("f",)), EngineSource(engine))
            assert finalize(plan, _finish(plan), got) == finalize(plan, _finish(plan), expected)
            assert len(cache) == len(HOSTS)
            # Tombstones hide every newest point: the whole-field reads are limited.
            engine.delete(DeleteRequest("db", "m", 40, MAX_TIME, tags={}))
            with pytest.raises(LimitExceededError, match="more than 20 points"):
                answer_last(plan, EngineSource(engine), LastValueCache())
            late = replace(plan, limits=Limits(timeout_ms=0))
            with pytest.raises(LimitExceededError, match="time limit"):
                answer_last(late, EngineSource(engine), LastValueCache())
        finally:
            engine.close()


def test_a_field_of_two_types_is_left_to_the_general_executor() -> None:
    with tempfile.TemporaryDirectory() as d:
        engine = Engine(d, EngineOptions(fsync="never"))
        try:
            batch = WriteBatch("db")
            one = np.array([5], dtype=np.int64)
            batch.series[make_series_key("m", {"host": "a"})] = {
                "v": Column(FieldType.INTEGER, one, np.array([7], dtype=np.int64))
            }
            batch.series[make_series_key("m", {"host": "b"})] = {
                "v": Column(FieldType.FLOAT, one, np.array([7.5]))
            }
            engine.apply(batch)
            plan = _plan(MIN_TIME, "all", ("v",))
            assert is_last_only(plan)
            assert answer_last(plan, EngineSource(engine), LastValueCache()) is None
            cache = LastValueCache()
            got = execute_partial(plan, EngineSource(engine), cache)  # general path, same answer
            assert finalize(plan, _finish(plan), got) == finalize(
                plan, _finish(plan), execute_partial(plan, EngineSource(engine))
            )
            assert not is_last_only(Plan("select", "db", "m", columns=(ColumnSpec("v", "max"),)))
            assert not is_last_only(
                Plan("select", "db", "m", end=10, columns=(ColumnSpec("v", "last"),))
            )
        finally:
            engine.close()


def test_a_source_made_before_a_flush_and_a_write_does_not_cache_an_older_point() -> None:
    """The general executor (a plan mixing last() with other aggregates) takes its cache
    tokens before the view it reads, so a view older than a flush and a write cannot store
    the point before the write (it would stay in the cache: the write was already seen)."""
    with tempfile.TemporaryDirectory() as d:
        engine = Engine(d, EngineOptions(fsync="never"))
        cache = LastValueCache()
        try:
            key = make_series_key("m", {"host": "a"})
            ts = np.array([10], dtype=np.int64)
            first = WriteBatch("db", {key: {"v": Column(FieldType.FLOAT, ts, np.array([1.0]))}})
            engine.apply(first)
            cache.observe(first)
            source = EngineSource(engine)  # its view: the memtable holding t=10 only
            engine.flush()
            later = np.array([20], dtype=np.int64)
            second = WriteBatch("db", {key: {"v": Column(FieldType.FLOAT, later, np.array([2.0]))}})
            engine.apply(second)
            cache.observe(second)  # no entry yet: nothing to move
            mixed = Plan(
                "select", "db", "m", columns=(ColumnSpec("v", "last"), ColumnSpec("v", "max"))
            )
            execute_partial(mixed, source, cache)
            plan = _plan(MIN_TIME, "all", ("v",))
            got = finalize(plan, _finish(plan), execute_partial(plan, EngineSource(engine), cache))
            assert got[0]["values"] == [[20, 2.0]]
        finally:
            engine.close()
