"""merge_last_wins against a dict-based reference (property test)."""

from __future__ import annotations

import numpy as np
from hypothesis import given
from hypothesis import strategies as st

from node.engine.columns import merge_last_wins, time_slice

part_st = st.lists(st.tuples(st.integers(-20, 20), st.integers(0, 1000)), max_size=15)


@given(parts=st.lists(part_st, min_size=1, max_size=5), sort_parts=st.booleans())
def test_merge_last_wins_matches_reference(parts, sort_parts):
    if sort_parts:  # exercise the no-sort fast path: disjoint ascending parts
        flat = sorted({t for p in parts for t, _ in p})
        chunks = np.array_split(np.array(flat, dtype=np.int64), len(parts))
        parts = [[(int(t), int(t) * 3) for t in c] for c in chunks]
    reference: dict[int, int] = {}
    for p in parts:
        for t, v in p:
            reference[t] = v
    arrays = [
        (np.array([t for t, _ in p], dtype=np.int64), np.array([v for _, v in p], dtype=np.int64))
        for p in parts
    ]
    ts, values = merge_last_wins(arrays)
    assert ts.tolist() == sorted(reference)
    assert values.tolist() == [reference[t] for t in sorted(reference)]


@given(
    ts=st.lists(st.integers(-50, 50), unique=True), lo=st.integers(-60, 60), n=st.integers(0, 60)
)
def test_time_slice(ts, lo, n):
    arr = np.array(sorted(ts), dtype=np.int64)
    got, vals = time_slice(arr, arr * 2, lo, lo + n)
    assert got.tolist() == [t for t in sorted(ts) if lo <= t < lo + n]
    assert vals.tolist() == [2 * t for t in got.tolist()]
