"""Engine.read_field_batch reads each series' points as Engine.read_field does.

Random series over small blocks and partitions, several flushes (overwrites across tables),
points left in the memtable, deletes, a retention floor, ranges clipped inside blocks: for every
series the batch's slice (values widened to the field's type, timestamps from the pieces) is
read_field's answer, and the block sizes `on_block` sees add up to read_field's.
"""

from __future__ import annotations

import tempfile

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from node.engine.deletes import DeleteRequest
from node.engine.engine import Engine, EngineOptions, RetentionPolicy
from node.engine.index import storage_key
from pulsar_cluster.batch import Column, FieldType, WriteBatch, numpy_dtype
from pulsar_cluster.series import make_series_key

HOSTS = ["a", "b", "c", "d"]


def _times_of(batch, offsets, i: int) -> np.ndarray:
    lo, hi = int(offsets[i]), int(offsets[i + 1])
    if batch.times is not None:
        return batch.times[lo:hi]
    starts = batch.piece_start
    out = []
    for j in range(len(starts)):
        a = int(starts[j])
        b = int(starts[j + 1]) if j + 1 < len(starts) else len(batch.values)
        if a >= lo and b <= hi and b > a:
            out.append(
                batch.piece_first[j] + np.arange(b - a, dtype=np.int64) * batch.piece_step[j]
            )
    return np.concatenate(out) if out else np.empty(0, np.int64)


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    writes=st.lists(
        st.tuples(
            st.lists(st.sampled_from(HOSTS), unique=True, min_size=1),
            st.booleans(),  # evenly spaced or random times
            st.integers(0, 500),
            st.sampled_from(["flush", "", "delete"]),
        ),
        min_size=1,
        max_size=4,
    ),
    start=st.integers(-10, 600),
    width=st.integers(1, 700),
    retention=st.sampled_from([0, 300]),
    seed=st.integers(0, 1000),
)
def test_batch_equals_read_field_per_series(writes, start, width, retention, seed) -> None:
    rng = np.random.default_rng(seed)
    policy = {"db": RetentionPolicy(retention)} if retention else {}
    options = EngineOptions(
        fsync="never", block_points=6, partition_ns=250, retention=policy, clock=lambda: 700
    )
    with tempfile.TemporaryDirectory() as tmp:
        engine = Engine(tmp, options)
        try:
            for hosts, regular, first, after in writes:
                batch = WriteBatch("db")
                for host in hosts:
                    if regular:
                        ts = first + 7 * np.arange(int(rng.integers(1, 40)), dtype=np.int64)
                    else:
                        ts = np.unique(rng.integers(0, 600, int(rng.integers(1, 30))))
                    vals = rng.integers(-5, 5, len(ts)).astype(np.int64)
                    key = make_series_key("cpu", {"host": host})
                    batch.series[key] = {"v": Column(FieldType.INTEGER, ts, vals)}
                engine.apply(batch)
                if after == "flush":
                    engine.flush()
                elif after == "delete":
                    lo = int(rng.integers(0, 500))
                    engine.delete(DeleteRequest("db", "cpu", lo, lo + 50, {"host": hosts[0]}))
            skeys = [storage_key("db", make_series_key("cpu", {"host": h})) for h in HOSTS]
            counted: list[int] = []
            batch = engine.read_field_batch(skeys, "v", start, start + width, None, counted.append)
            assert batch is not None
            want_points: list[int] = []
            for i, skey in enumerate(skeys):
                want = engine.read_field(skey, "v", start, start + width, None, want_points.append)
                lo, hi = int(batch.offsets[i]), int(batch.offsets[i + 1])
                got_v = batch.values[lo:hi].astype(numpy_dtype(FieldType.INTEGER))
                if want is None or not len(want.timestamps):
                    assert hi == lo
                    continue
                assert np.array_equal(got_v, want.values)
                assert np.array_equal(_times_of(batch, batch.offsets, i), want.timestamps)
            assert sum(counted) == sum(want_points)
        finally:
            engine.close()
