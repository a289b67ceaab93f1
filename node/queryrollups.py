"""How the node's query executor uses the engine's rollup cache (node/engine/rollups.py).

`plan_windows(plan)` says whether a plan may use the cache at all and, if so, its windows;
`cached_states` answers one series from the cache or returns None; `remember` stores what the
ordinary path computed for a series. The answers are the same with and without the cache
(tests/unit/query/test_rollup_query.py compares both on random data, writes and deletes).

A plan qualifies when it is an aggregate select with GROUP BY time() over a bounded range read in
one time chunk (node/query.py CHUNK_NS: a window's state must not depend on how the range was
cut), without a field predicate, whose every column keeps at most one state row per window, and
whose window count stays below MAX_WINDOWS, and that reads at least MIN_CACHED_WINDOWS windows
in all (series x windows). A series qualifies when its retention floor is at
or below the query's start (the floor moves with the clock; windows above it never change).
"""

from __future__ import annotations

import numpy as np

from node.engine.rollups import KINDS_CACHED, EntryKey, RollupCache, RollupWindows, signature_of
from pulsar_cluster.query.plan import MAX_TIME, MIN_TIME, Plan, window_origin
from pulsar_cluster.query.states import KINDS, State, kind_for

__all__ = [
    "plan_windows",
    "cached_states",
    "splice",
    "remember",
    "MAX_WINDOWS",
    "MIN_CACHED_WINDOWS",
    "entry_keys",
]

#: Above this many windows per series a cache look-up (a few array comparisons of that length
#: per series) costs about as much as reducing the points again.
MAX_WINDOWS = 100_000
#: Below this many series x windows a plan skips the cache. Looking up, filling and storing
#: cost more than they save on a small read: TSBS single-groupby-1-1-1 (1 series x 60 windows,
#: each query a new host and hour) ran 10 % fewer instructions per request without the cache
#: (valgrind, 900 queries), and repeating a small query is no faster with it.
MIN_CACHED_WINDOWS = 1000
#: Bytes of one cached window of one column (start, bounds, flag, up to four state values).
_WINDOW_BYTES = 3 * 8 + 1 + 4 * 8


def plan_windows(plan: Plan, chunks: int, series: int, capacity_bytes: int) -> RollupWindows | None:
    """The plan's windows when it may use the rollup cache, else None (also when the entries
    the query would fill take more than half the cache: storing them would only evict)."""
    every = plan.every
    if (
        plan.kind != "select"
        or every <= 0
        or plan.fields_where is not None
        or plan.start == MIN_TIME
        or plan.end == MAX_TIME
        or chunks != 1
        or not plan.columns
    ):
        return None
    w0 = window_origin(plan)
    n = (plan.end - 1 - w0) // every + 1
    # The window count first: it turns away small plans (most of them) before the columns.
    if not 0 < n <= MAX_WINDOWS or series * n < MIN_CACHED_WINDOWS:
        return None
    if any(c.fn not in KINDS or KINDS[c.fn].name not in KINDS_CACHED for c in plan.columns):
        return None
    if series * len(plan.columns) * n * _WINDOW_BYTES > capacity_bytes // 2:
        return None
    starts = w0 + every * np.arange(n, dtype=np.int64)
    lo = np.maximum(starts, plan.start)
    hi = np.minimum(starts + every, plan.end)
    return RollupWindows(every, w0 % every, w0, starts, lo, hi, signature_of(w0, starts, lo, hi))


def entry_keys(plan: Plan, skey: bytes, windows: RollupWindows) -> list[EntryKey]:
    return [
        (skey, c.field, kind_for(c.fn).name, windows.every, windows.phase) for c in plan.columns
    ]


def cached_states(
    cache: RollupCache, keys: list[EntryKey], windows: RollupWindows
) -> tuple[list[State], tuple[int, int] | None] | None:
    """What the cache has for one series, one entry per plan column: None (read it all);
    (states, None): every window of every column (the answer); (states, (i0, i1)): windows
    i0..i1 must be read, `states` holds the cached rows of the others (`splice` joins them)."""
    out = []
    missing: np.ndarray | None = None
    for key in keys:
        found = cache.lookup(key, windows)
        if found is None:
            return None
        mask, state = found
        if mask is not None:
            missing = ~mask if missing is None else missing | ~mask
        out.append(state)
    if missing is None:
        return out, None
    where = np.flatnonzero(missing)
    return out, (int(where[0]), int(where[-1]))


def splice(cached: list[State], read: list[State], i0: int, i1: int) -> list[State]:
    """Per column: the cached rows of windows before i0 and after i1 around the rows read for
    windows i0..i1 (rows of one series, by window: the same rows a full read gives)."""
    out = []
    for old, new in zip(cached, read, strict=True):
        if not old:
            out.append(new)
            continue
        w = old["w"]  # ascending: the rows around the span are two slices
        a = int(np.searchsorted(w, i0))
        b = int(np.searchsorted(w, i1, side="right"))
        if not new:
            if a == b:
                out.append(old)
            else:
                out.append({k: np.concatenate((v[:a], v[b:])) for k, v in old.items()})
        elif a == 0 and b == len(w):
            out.append(new)
        else:
            out.append({k: np.concatenate((v[:a], new[k], v[b:])) for k, v in old.items()})
    return out


def remember(
    cache: RollupCache,
    keys: list[EntryKey],
    windows: RollupWindows,
    states: list[State],
    token: tuple[int, int],
) -> None:
    for key, state in zip(keys, states, strict=True):
        cache.store(key, windows, state, token)
