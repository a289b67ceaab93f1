"""The block cache gives back exactly what was put in, whatever form it keeps it in (regular
timestamps as (first, step, count), integers narrowed), and stays within its capacity."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from node.engine.cache import BlockCache

I64 = st.integers(-(2**63), 2**63 - 1)


@st.composite
def blocks(draw: st.DrawFn) -> tuple[np.ndarray, np.ndarray]:
    n = draw(st.integers(0, 40))
    if draw(st.booleans()):  # regular, possibly wrapping around int64
        first, step = draw(I64), draw(st.integers(-(2**62) + 1, 2**62 - 1))
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
