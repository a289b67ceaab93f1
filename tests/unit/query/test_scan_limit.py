"""The points-read limit is checked block by block while reading, before a block is decoded:
a huge raw query is refused after about `max_points` points worth of blocks, never after
materialising whole series (counted as blocks decoded: block cache misses)."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from node.engine.engine import Engine, EngineOptions
from node.query import EngineSource, execute_partial
from pulsar_cluster.batch import Column, FieldType, WriteBatch
from pulsar_cluster.errors import LimitExceededError
from pulsar_cluster.query.plan import ColumnSpec, Limits, Plan
from pulsar_cluster.series import make_series_key

BLOCK = 1000
POINTS = 200_000  # one series, 200 blocks


@pytest.fixture()
def engine(tmp_path):  # type: ignore[no-untyped-def]
    e = Engine(str(tmp_path), EngineOptions(block_points=BLOCK, block_cache_bytes=1 << 30))
    ts = np.arange(POINTS, dtype=np.int64) * 1_000_000  # 1 ms apart: one partition
    batch = WriteBatch("db", {})
    key = make_series_key("m", {"host": "a"})
    batch.series[key] = {"v": Column(FieldType.FLOAT, ts, np.arange(POINTS, dtype=np.float64))}
    e.apply(batch)
    e.flush()
    yield e
    e.close(flush=False)


def decoded(e: Engine) -> int:
    return int(e.status()["block_cache_misses"])  # type: ignore[call-overload]


RAW = Plan(kind="raw", database="db", measurement="m")


def test_huge_raw_query_is_refused_before_reading_everything(engine: Engine) -> None:
    before = decoded(engine)
    plan = replace(RAW, limits=Limits(max_points=10 * BLOCK))
    with pytest.raises(LimitExceededError) as info:
        execute_partial(plan, EngineSource(engine))
    assert info.value.status_code == 422
    assert "more than 10000 points" in info.value.message
    # 10 blocks fit the budget; the 11th is refused from its index entry, not decoded
    assert decoded(engine) - before == 10


def test_within_the_limit_everything_is_read(engine: Engine) -> None:
    before = decoded(engine)
    partial = execute_partial(replace(RAW, limits=Limits(max_points=POINTS)), EngineSource(engine))
    ((block,),) = partial.raw.values()
    assert len(block.t) == POINTS and partial.points_scanned == POINTS
    assert decoded(engine) - before == POINTS // BLOCK


def test_aggregates_are_bounded_the_same_way(engine: Engine) -> None:
    before = decoded(engine)
    plan = Plan(
        kind="select",
        database="db",
        measurement="m",
        columns=(ColumnSpec("v", "count"),),
        limits=Limits(max_points=5 * BLOCK),
    )
    with pytest.raises(LimitExceededError):
        execute_partial(plan, EngineSource(engine))
    assert decoded(engine) - before == 5
