"""The query read path (SSTable.read_range: cached blocks cut before they are rebuilt, regular
timestamps cut by arithmetic; read_field without a merge for a field held by one source)
returns exactly a reference model's points for any [start, end): regular and irregular times,
overwrites across tables and the memtable, deletes, a retention floor, integer and float
fields, empty ranges, cold (decoded from the file) and warm (from the block cache) reads."""

from __future__ import annotations

import tempfile

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from node.engine.engine import DeleteRequest, Engine, EngineOptions, RetentionPolicy
from node.engine.index import storage_key
from pulsar_cluster.batch import Column, FieldType, WriteBatch
from pulsar_cluster.series import make_series_key

KEY = make_series_key("cpu", {"host": "a"})
SKEY = storage_key("db", KEY)

# A run of points: (first time, step, count, value offset); regular runs make regular blocks.
run_st = st.tuples(st.integers(0, 400), st.integers(1, 7), st.integers(1, 40), st.integers(0, 50))
op_st = st.one_of(
    st.tuples(st.just("run"), run_st),
    st.tuples(st.just("points"), st.lists(st.integers(0, 500), min_size=1, max_size=10)),
    st.tuples(st.just("flush")),
    st.tuples(st.just("delete"), st.integers(0, 500), st.integers(1, 80)),
)


def _batch(name: str, kind: FieldType, ts: list[int], values: list[int]) -> WriteBatch:
    batch = WriteBatch("db")
    dtype = np.int64 if kind is FieldType.INTEGER else np.float64
    x = np.array(values, dtype) if dtype == np.int64 else np.array(values, dtype) / 4
    column = Column(kind, np.array(ts, np.int64), x)
    batch.series[KEY] = {name: column}
    return batch


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    ops=st.lists(op_st, min_size=1, max_size=12),
    kind=st.sampled_from([FieldType.INTEGER, FieldType.FLOAT]),
    floor=st.one_of(st.none(), st.integers(0, 500)),
    ranges=st.lists(st.tuples(st.integers(-10, 520), st.integers(0, 120)), min_size=1, max_size=6),
)
def test_read_field_cuts_match_the_model(ops, kind, floor, ranges) -> None:
    now = 1000
    retention = {} if floor is None else {"db": RetentionPolicy(duration_ns=now - floor)}
    options = EngineOptions(
        partition_ns=200, block_points=8, retention=retention, clock=lambda: now
    )
    model: dict[int, float] = {}
    with tempfile.TemporaryDirectory() as tmp:
        engine = Engine(tmp, options)
        try:
            for op in ops:
                if op[0] == "run":
                    first, step, count, offset = op[1]
                    ts = [first + step * i for i in range(count)]
                    values = [offset + i for i in range(count)]
                elif op[0] == "points":
                    ts = op[1]
                    values = [t % 17 for t in ts]
                elif op[0] == "flush":
                    engine.flush()
                    continue
                else:
                    _, lo, length = op
                    engine.delete(DeleteRequest("db", "cpu", lo, lo + length, {"host": "a"}))
                    model = {t: v for t, v in model.items() if not lo <= t < lo + length}
                    continue
                engine.apply(_batch("f", kind, ts, values))
                scale = 1 if kind is FieldType.INTEGER else 4
                model.update(
                    (t, v / scale if scale > 1 else v) for t, v in zip(ts, values, strict=True)
                )
            lowest = -(2**63) if floor is None else floor
            for start, length in ranges:
                end = start + length
                want = sorted((t, v) for t, v in model.items() if max(start, lowest) <= t < end)
                for _ in range(2):  # cold, then from the block cache
                    got = engine.read_field(SKEY, "f", start, end)
                    if got is None:  # no source of the field overlaps the range
                        assert want == []
                        continue
                    assert got.timestamps.dtype == np.int64
                    if not want:  # an empty answer's value type is not specified
                        assert len(got.values) == 0 and len(got.timestamps) == 0
                        continue
                    assert got.values.dtype == (
                        np.int64 if kind is FieldType.INTEGER else np.float64
                    )
                    pairs = list(zip(got.timestamps.tolist(), got.values.tolist(), strict=True))
                    assert pairs == want
        finally:
            engine.close()
