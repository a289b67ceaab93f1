"""The block cache gives back exactly what was put in, whatever form it keeps it in (regular
timestamps as (first, step, count), integers narrowed), and stays within its capacity."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from node.engine.cache import BlockCache
from node.engine.columns import time_slice

I64 = st.integers(-(2**63), 2**63 - 1)


@st.composite
def blocks(draw: st.DrawFn) -> tuple[np.ndarray, np.ndarray]:
    n = draw(st.integers(0, 40))
    if draw(st.booleans()):  # regular, possibly wrapping around int64
        first = draw(I64)
        step = draw(st.one_of(st.integers(-(2**62) + 1, 2**62 - 1), st.integers(1, 10**10)))
        with np.errstate(over="ignore"):
            ts = np.int64(first) + np.arange(n, dtype=np.int64) * np.int64(step)
    else:
        ts = draw(hnp.arrays(np.int64, n, elements=I64))
    dtype = draw(st.sampled_from([np.int64, np.uint64, np.float64, np.bool_]))
    if dtype == np.int64:
        bound = draw(st.sampled_from([100, 2**15, 2**31, 2**63 - 1]))
        values = draw(hnp.arrays(np.int64, n, elements=st.integers(-bound, bound)))
    elif dtype == np.uint64:
        values = draw(hnp.arrays(np.uint64, n, elements=st.integers(0, 2**64 - 1)))
    else:
        values = draw(hnp.arrays(dtype, n))
    return ts, values


@settings(max_examples=300, deadline=None)
@given(blocks())
def test_get_returns_exactly_what_was_put(block: tuple[np.ndarray, np.ndarray]) -> None:
    ts, values = block
    cache = BlockCache(1 << 20)
    cache.put((1, 0), ts.copy(), values.copy())
    got = cache.get((1, 0))
    assert got is not None
    assert got[0].dtype == np.int64 and np.array_equal(got[0], ts)
    assert got[1].dtype == values.dtype
    assert np.array_equal(got[1], values, equal_nan=values.dtype.kind == "f")


@st.composite
def cuts(draw: st.DrawFn, ts: np.ndarray) -> tuple[int, int]:
    """A [start, end) near the block's times: on, between, before and after them."""
    near = [int(t) + d for t in ts[:6].tolist() + ts[-6:].tolist() for d in (-1, 0, 1)]
    bound = st.one_of(I64, st.sampled_from(near)) if near else I64
    return draw(bound), draw(bound)


@settings(max_examples=400, deadline=None)
@given(st.data(), blocks(), st.booleans())
def test_get_range_is_time_slice_of_get(
    data: st.DataObject, block: tuple[np.ndarray, np.ndarray], increasing: bool
) -> None:
    """The query read path's cut of a cached block (arithmetic on regular timestamps) is the
    general path's: the rebuilt block, cut by two searches. Any block: sorted and unique as
    the format has them, or not (then both search the same unsorted array)."""
    ts, values = block
    if increasing:
        order = np.unique(ts, return_index=True)[1]
        ts, values = ts[order], values[order]
    start, end = data.draw(cuts(ts))
    cache = BlockCache(1 << 20)
    cache.put((1, 0), ts.copy(), values.copy())
    whole = cache.get((1, 0))
    got = cache.get_range((1, 0), start, end)
    assert whole is not None and got is not None
    want = time_slice(whole[0], whole[1], start, end)
    assert got[0].dtype == want[0].dtype and np.array_equal(got[0], want[0])
    assert got[1].dtype == want[1].dtype
    assert np.array_equal(got[1], want[1], equal_nan=values.dtype.kind == "f")
    assert cache.get_range((2, 0), start, end) is None


def test_regular_integer_blocks_are_kept_small_and_capacity_holds() -> None:
    cache = BlockCache(200_000)
    ts = 1_000 + 10 * np.arange(4096, dtype=np.int64)
    values = np.arange(4096, dtype=np.int64) % 100
    cache.put((1, 0), ts, values)
    assert cache.stats()["bytes"] < 4096 + 1024  # one byte per value, no timestamp array
    for i in range(100):
        cache.put((2, i), ts, values * 1_000_000_000)  # 4 bytes per value
    assert cache.stats()["bytes"] <= 200_000
    assert cache.get((2, 99)) is not None and cache.get((2, 0)) is None
