"""The memtable against a dict: many small inserts (chunk collapsing), deletes, size estimate."""

from __future__ import annotations

import numpy as np
from hypothesis import given
from hypothesis import strategies as st

from node.engine.memtable import Memtable
from pulsar_cluster.batch import Column, FieldType

chunk_st = st.lists(st.tuples(st.integers(0, 60), st.integers(0, 99)), min_size=1, max_size=6)


@given(
    chunks=st.lists(chunk_st, max_size=120),
    delete=st.none() | st.tuples(st.integers(0, 60), st.integers(1, 30)),
)
def test_many_small_inserts_merge_last_write_wins(chunks, delete):
    mem = Memtable(seq=1)
    model: dict[int, int] = {}
    for i, chunk in enumerate(chunks):
        ts = np.array([t for t, _ in chunk], dtype=np.int64)
        values = np.array([v for _, v in chunk], dtype=np.int64)
        mem.insert_series(b"k", {"f": Column(FieldType.INTEGER, ts, values)})
        for t, v in chunk:
            model[t] = v
        if delete is not None and i == len(chunks) // 2:
            lo, n = delete
            mem.delete(frozenset([b"k"]), lo, lo + n)
            model = {t: v for t, v in model.items() if not lo <= t < lo + n}
        assert len(mem._series[b"k"]["f"].chunks) <= 16
    got = mem.read(b"k", "f")
    if not chunks:
        assert got is None
        return
    assert got is not None
    _, ts, values = got
    assert ts.tolist() == sorted(model)
    assert values.tolist() == [model[t] for t in sorted(model)]
    assert mem.points >= len(model)
    assert mem.bytes > 0


def test_one_point_batches_keep_few_chunks_and_a_small_estimate():
    mem = Memtable()
    for t in range(10_000):
        col = Column(FieldType.FLOAT, np.array([t], dtype=np.int64), np.array([1.0]))
        mem.insert_series(b"k", {"f": col})
    assert len(mem._series[b"k"]["f"].chunks) <= 16
    assert mem.bytes < 10_000 * 16 + 16 * 300  # points plus a few chunks, not 10k chunks
