"""The last-value cache never changes an answer: after any sequence of writes (out of order,
overwrites at the same time), deletes and queries, `last()` with the cache equals `last()`
read from storage."""

from __future__ import annotations

import asyncio
import tempfile

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from node.engine.engine import EngineOptions, RetentionPolicy
from node.engine.lastcache import LastValueCache
from node.local import LocalNode
from node.query import EngineSource, execute_partial
from pulsar_cluster.batch import Column, FieldType, WriteBatch
from pulsar_cluster.query.finish import Finish, OutColumn, finalize
from pulsar_cluster.query.plan import MAX_TIME, MIN_TIME, ColumnSpec, Plan
from pulsar_cluster.series import make_series_key

HOSTS = ["a", "b", "c"]
WRITE = st.tuples(
    st.just("write"),
    st.sampled_from(HOSTS),
    st.lists(st.tuples(st.integers(0, 50), st.integers(-9, 9)), min_size=1, max_size=6),
)
DELETE = st.tuples(st.just("delete"), st.sampled_from(HOSTS), st.integers(0, 50))
QUERY = st.tuples(st.just("query"), st.integers(0, 40), st.booleans())
OPS = st.lists(st.one_of(WRITE, DELETE, QUERY, QUERY), min_size=1, max_size=14)


def last_plan(start: int) -> tuple[Plan, Finish]:
    plan = Plan(
        kind="select",
        database="db",
        measurement="m",
        start=start,
        end=MAX_TIME,
        columns=(ColumnSpec("v", "last"),),
        group_by=("host",),
    )
    return plan, Finish(columns=[OutColumn("last", 0)])


@settings(max_examples=40, deadline=None)
@given(ops=OPS)
def test_cached_last_equals_storage(ops) -> None:
    async def run() -> None:
        with tempfile.TemporaryDirectory() as d:
            node = LocalNode(d, EngineOptions(fsync="never"))
            try:
                for op in ops:
                    if op[0] == "write":
                        _, host, pts = op
                        batch = WriteBatch("db")
                        ts = np.array([p[0] for p in pts], dtype=np.int64)
                        vals = np.array([float(p[1]) for p in pts])
                        key = make_series_key("m", {"host": host})
                        batch.series[key] = {"v": Column(FieldType.FLOAT, ts, vals)}
                        await node.write(batch)
                    elif op[0] == "delete":
                        _, host, from_t = op
                        plan = Plan(
                            kind="delete", database="db", measurement="m", start=from_t,
                            end=MAX_TIME, tags=["cmp", "host", "=", host],
                        )  # fmt: skip
                        await node.delete(plan)
                    else:
                        _, start, flush = op
                        if flush:
                            await node.flush()
                        plan, finish = last_plan(start if start else MIN_TIME)
                        cached = finalize(plan, finish, await node.query(plan))
                        stored = finalize(
                            plan, finish, execute_partial(plan, EngineSource(node.engine))
                        )
                        assert cached == stored
                        again = finalize(plan, finish, await node.query(plan))
                        assert again == stored
            finally:
                await node.close()

    asyncio.run(run())


def test_store_refused_after_a_write_or_clear() -> None:
    cache = LastValueCache()
    skey = b"db\x00m\x00host\x00a"
    token = cache.token(skey)
    batch = WriteBatch("db")
    batch.series[b"m\x00host\x00a"] = {
        "v": Column(FieldType.FLOAT, np.array([5], np.int64), np.array([1.0]))
    }
    cache.observe(batch)  # a write raced the read: its result may be stale
    cache.store(skey, "v", token, 3, np.array([9.0]))
    assert cache.get(skey, "v") is None
    token = cache.token(skey)
    cache.store(skey, "v", token, 5, np.array([1.0]))
    assert cache.get(skey, "v")[0] == 5
    # observe moves an entry forward; the last of equal times wins; older points do not
    batch.series[b"m\x00host\x00a"] = {
        "v": Column(FieldType.FLOAT, np.array([7, 2, 7], np.int64), np.array([1.0, 2.0, 3.0]))
    }
    cache.observe(batch)
    t, v = cache.get(skey, "v")
    assert (t, v.tolist()) == (7, [3.0])
    token = cache.token(skey)
    cache.clear()
    cache.store(skey, "v", token, 9, np.array([0.0]))
    assert cache.get(skey, "v") is None and len(cache) == 0


def test_retention_hides_a_cached_last_point() -> None:
    clock = [1_000]
    options = EngineOptions(
        fsync="never", retention={"db": RetentionPolicy(500)}, clock=lambda: clock[0]
    )

    async def run() -> None:
        with tempfile.TemporaryDirectory() as d:
            node = LocalNode(d, options)
            try:
                batch = WriteBatch("db")
                batch.series[make_series_key("m", {"host": "a"})] = {
                    "v": Column(
                        FieldType.FLOAT, np.array([600, 700], np.int64), np.array([1.0, 2.0])
                    )
                }
                await node.write(batch)
                plan, finish = last_plan(MIN_TIME)
                assert finalize(plan, finish, await node.query(plan))[0]["values"] == [[700, 2.0]]
                assert finalize(plan, finish, await node.query(plan))[0]["values"] == [[700, 2.0]]
                assert node.last_cache.hits >= 1
                clock[0] = 1_300  # horizon 800: both points are past retention
                assert finalize(plan, finish, await node.query(plan)) == []
            finally:
                await node.close()

    asyncio.run(run())
