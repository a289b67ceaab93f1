"""The rollup cache itself: precise invalidation, refused racing fills, bounded memory, stats."""

from __future__ import annotations

import numpy as np

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
