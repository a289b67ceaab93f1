"""The rollup cache itself: precise invalidation, refused racing fills, bounded memory, stats."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from node.engine.rollups import RollupCache, RollupWindows, signature_of


def _windows(start: int, end: int, every: int = 10) -> RollupWindows:
    w0 = start // every * every
    n = (end - 1 - w0) // every + 1
    starts = w0 + every * np.arange(n, dtype=np.int64)
    lo, hi = np.maximum(starts, start), np.minimum(starts + every, end)
    return RollupWindows(every, w0 % every, w0, starts, lo, hi, signature_of(w0, starts, lo, hi))


def _state(n: int) -> dict[str, np.ndarray]:
    return {"w": np.arange(n, dtype=np.int64), "s": np.arange(n, dtype=np.float64) + 0.5}


KEY = (b"db\x00cpu", "v", "sum", 10, 0)


def test_hit_after_store_and_shift_of_origin() -> None:
    cache = RollupCache(1 << 20)
    win = _windows(0, 50)
    token = cache.begin([KEY[0]])
    cache.store(KEY, win, _state(5), token)
    cache.end([KEY[0]])
    got = cache.get(KEY, win)
    assert got is not None and np.array_equal(got["s"], _state(5)["s"])
    # A query over windows 2..4 only: same windows, "w" relative to its own origin.
    part = _windows(20, 50)
    got = cache.get(KEY, part)
    assert got is not None
    assert got["w"].tolist() == [0, 1, 2] and got["s"].tolist() == [2.5, 3.5, 4.5]
    # A query cutting window 4 differently may not use it: a partial hit of windows 2 and 3.
    assert cache.get(KEY, _windows(20, 45)) is None
    found = cache.lookup(KEY, _windows(20, 45))
    assert found is not None and found[0] is not None
    assert found[0].tolist() == [True, True, False] and found[1]["w"].tolist() == [0, 1]
    assert cache.lookup(KEY, _windows(100, 120)) is None  # nothing of it cached
    stats = cache.stats()
    assert (stats["hits"], stats["partial_hits"], stats["misses"]) == (2, 2, 1)


def test_write_drops_exactly_the_windows_it_meets() -> None:
    cache = RollupCache(1 << 20)
    win = _windows(0, 50)
    cache.store(KEY, win, _state(5), cache.begin([KEY[0]]))
    cache.end([KEY[0]])
    cache.written([KEY[0]], 21, 25)  # inside window 2
    assert cache.get(KEY, win) is None
    assert cache.get(KEY, _windows(0, 20)) is not None
    assert cache.get(KEY, _windows(30, 50)) is not None
    cache.written([b"db\x00other"], 0, 100)  # another series: nothing dropped
    assert cache.get(KEY, _windows(30, 50)) is not None
    assert cache.stats()["invalidations"] == 1


def test_fill_racing_a_write_is_refused() -> None:
    cache = RollupCache(1 << 20)
    win = _windows(0, 50)
    token = cache.begin([KEY[0]])
    cache.written([KEY[0]], 1000, 1000)  # even outside the windows: the view may be older
    cache.store(KEY, win, _state(5), token)
    cache.end([KEY[0]])
    assert cache.get(KEY, win) is None
    token = cache.begin([KEY[0]])
    cache.clear()
    cache.store(KEY, win, _state(5), token)
    assert cache.get(KEY, win) is None


def test_memory_is_bounded_and_zero_disables() -> None:
    cache = RollupCache(20_000)
    win = _windows(0, 500)
    for i in range(50):
        key = (f"s{i}".encode(), "v", "sum", 10, 0)
        cache.store(key, win, _state(50), cache.begin([key[0]]))
        cache.end([key[0]])
    stats = cache.stats()
    assert 0 < stats["bytes"] <= 20_000 and stats["entries"] < 50
    off = RollupCache(0)
    assert not off.enabled
    off.store(KEY, win, _state(50), off.begin([KEY[0]]))
    assert off.get(KEY, win) is None and off.stats()["entries"] == 0


@settings(max_examples=60, deadline=None)
@given(
    rows=st.lists(st.lists(st.integers(0, 4), unique=True, max_size=5), min_size=1, max_size=6),
    before=st.lists(st.tuples(st.integers(0, 5), st.integers(0, 40)), max_size=4),
    written=st.lists(st.integers(0, 5), max_size=2),
    query=st.tuples(st.integers(0, 20), st.integers(30, 60)),
)
def test_store_many_stores_what_store_stores(rows, before, written, query) -> None:
    """store_many (a batched scan's fill) leaves the cache as one store per series does:
    new entries, refills of entries stored before, refused fills of series written since."""
    win = _windows(0, 50)
    keys = [(b"db\x00cpu,h=%d" % i, "v", "sum", 10, 0) for i in range(len(rows))]
    states = []
    for i, ws in enumerate(rows):
        w = np.array(sorted(ws), dtype=np.int64)
        states.append({"w": w, "s": w * 1.5 + i} if len(w) else {})
    caches = [RollupCache(1 << 20), RollupCache(1 << 20)]
    for cache in caches:
        for i, start in before:  # entries already there, over other windows
            if i < len(keys):
                t = cache.begin([keys[i][0]])
                cache.store(keys[i], _windows(start, start + 20), _state(2), t)
                cache.end([keys[i][0]])
    tokens = [cache.begin([k[0] for k in keys]) for cache in caches]
    for cache in caches:
        cache.written([keys[i][0] for i in written if i < len(keys)], 0, 5)
    for key, state in zip(keys, states, strict=True):
        caches[0].store(key, win, state, tokens[0])
    w = [x["w"] for x in states if x]
    s = [x["s"] for x in states if x]
    merged = {"w": np.concatenate(w), "s": np.concatenate(s)} if w else {}
    bounds = [0, *np.cumsum([len(x.get("w", ())) for x in states]).tolist()]
    caches[1].store_many(keys, win, merged, bounds, tokens[1])
    probe = _windows(*query)
    for key in keys:
        for q in (win, probe):
            a, b = caches[0].lookup(key, q), caches[1].lookup(key, q)
            assert (a is None) == (b is None)
            if a is not None and b is not None:
                assert (a[0] is None) == (b[0] is None)
                if a[0] is not None:
                    assert np.array_equal(a[0], b[0])
                assert a[1].keys() == b[1].keys()
                for k in a[1]:
                    assert a[1][k].dtype == b[1][k].dtype
                    assert np.array_equal(a[1][k], b[1][k])
    assert caches[0].bytes == caches[1].bytes
