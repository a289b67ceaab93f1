"""The rollup cache: exact partial-aggregate states of time windows, per series and field.

An aggregate over GROUP BY time(every) reduces each series' points to one state row per window
(pulsar_cluster/query/states.py). Every window's row depends only on the points of that series
and field inside the window, clipped to the query's time range. Repeated and sliding dashboard
queries read the same windows again and again; VictoriaMetrics keeps such results in its
"rollup result cache". This cache does the same, exactly:

- An entry is keyed by (series storage key, field, state kind, window width, window phase) and
  holds, for a set of windows, the clipped bounds [lo, hi) each was computed over and its state
  row (or "no points"). A query may use a window only when its own clipped bounds are equal, so
  a window cut by one query's range is never served to a query that reads more of it.
- Invalidation is precise and synchronous with writes: the engine calls `written` under its
  write lock for every batch it inserts, and every cached window of a written series that meets
  the batch's time range is dropped. Deletes, drops, catalog changes and snapshot restores clear
  everything (`clear`). Compaction and flushes change no answer and keep the cache.
- Fills cannot race writes: a query `begin`s its series (under the cache lock) before it takes
  the read view; a write of such a series after that records a newer stamp, and `store` refuses
  a fill whose series was written after its `begin`. So a fill never holds data older than the
  newest write (the read view may miss a write that went to a memtable created after it).

What the query executor does with it (node/query.py): only for bounded ranges of one time
chunk, GROUP BY time(), no field predicate, no retention floor on the series, and kinds with at
most one row per window (KINDS_CACHED). Everything else takes the ordinary path.

Memory: LRU over entries, bounded by `capacity_bytes` (array bytes plus a per-entry estimate);
0 disables the cache (every call is then a no-op returning a miss). Thread-safe.
"""

from __future__ import annotations

import itertools
import threading
from collections import OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np

__all__ = ["RollupCache", "RollupWindows", "KINDS_CACHED", "EntryKey", "signature_of"]

#: State kinds with at most one row per window (a row per window is what an entry stores).
KINDS_CACHED = frozenset(
    ("count", "sum", "mean", "min", "max", "first", "last", "spread", "stddev", "firstlast")
)
#: (series storage key, field, state kind name, every ns, window phase ns)
EntryKey = tuple[bytes, str, str, int, int]
#: Estimate of the Python objects of one entry (dict slot, dataclass, array headers, memo).
_ENTRY_OVERHEAD = 1024


@dataclass(frozen=True, slots=True)
class RollupWindows:
    """The windows of one query: start times (absolute ns), and bounds clipped to its range."""

    every: int
    phase: int  # window start modulo every: windows of another phase never mix
    origin: int  # the query's window origin: its "w" = (window start - origin) // every
    starts: np.ndarray  # int64, ascending, consecutive windows
    lo: np.ndarray  # int64: max(window start, query start)
    hi: np.ndarray  # int64: min(window end, query end)

    #: Equal for two queries with exactly the same windows, bounds and origin (`signature_of`).
    signature: tuple[int, ...]

    def part(self, i0: int, i1: int) -> RollupWindows:
        """Windows i0..i1 (inclusive) of these, with the same origin."""
        starts, lo, hi = self.starts[i0 : i1 + 1], self.lo[i0 : i1 + 1], self.hi[i0 : i1 + 1]
        sig = signature_of(self.origin, starts, lo, hi)
        return RollupWindows(self.every, self.phase, self.origin, starts, lo, hi, sig)


def signature_of(
    origin: int, starts: np.ndarray, lo: np.ndarray, hi: np.ndarray
) -> tuple[int, ...]:
    return (origin, int(starts[0]), len(starts), int(lo[0]), int(hi[-1]))


class _Entry:
    __slots__ = ("cols", "has", "hi", "lo", "memo", "memo_sig", "size", "starts")

    def __init__(
        self,
        starts: np.ndarray,
        lo: np.ndarray,
        hi: np.ndarray,
        has: np.ndarray,
        cols: dict[str, np.ndarray],
    ) -> None:
        self.starts = starts
        self.lo = lo
        self.hi = hi
        self.has = has
        self.cols = cols
        self.memo_sig: tuple[int, ...] | None = None
        self.memo: dict[str, np.ndarray] | None = None
        self.size = _ENTRY_OVERHEAD + starts.nbytes * 3 + has.nbytes + _cols_bytes(cols)


def _cols_bytes(cols: dict[str, np.ndarray]) -> int:
    # object (string) columns: pointer plus a small str object per value
    return sum(c.nbytes if c.dtype != object else 64 * len(c) for c in cols.values())


def _frozen(state: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Cached arrays are shared by every query that hits them: read-only, like cached blocks."""
    for arr in state.values():
        arr.flags.writeable = False
    return state


class RollupCache:
    def __init__(self, capacity_bytes: int) -> None:
        self.capacity_bytes = max(0, capacity_bytes)
        self._lock = threading.Lock()
        self._entries: OrderedDict[EntryKey, _Entry] = OrderedDict()
        self._by_series: dict[bytes, set[EntryKey]] = {}
        # Fill protection: series being read by queries (count of queries), and the stamp of
        # the last write of such a series.
        self._stamps = itertools.count(1)
        self._pending: dict[bytes, int] = {}
        self._written: dict[bytes, int] = {}
        self._epoch = 0  # bumped by clear: fills begun before it are refused
        self.bytes = 0
        self.hits = 0
        self.partial_hits = 0
        self.misses = 0
        self.invalidations = 0

    @property
    def enabled(self) -> bool:
        return self.capacity_bytes > 0

    @property
    def active(self) -> bool:
        """Whether a write can matter: something is cached or being filled. Read without the
        lock (a query registers under it before taking its view, which waits for the write
        lock: a write that saw nothing registered is in that view)."""
        return bool(self._by_series or self._pending)

    # --- the query side ------------------------------------------------------------------------

    def begin(self, skeys: Iterable[bytes]) -> tuple[int, int]:
        """Register series a query is about to read; returns the token `store` needs. Call
        before taking the read view, and `end` with the same keys when done."""
        with self._lock:
            pending = self._pending
            for k in skeys:
                pending[k] = pending.get(k, 0) + 1
            return self._epoch, next(self._stamps)

    def end(self, skeys: Iterable[bytes]) -> None:
        with self._lock:
            pending, written = self._pending, self._written
            for k in skeys:
                n = pending.get(k, 0) - 1
                if n > 0:
                    pending[k] = n
                else:
                    pending.pop(k, None)
                    written.pop(k, None)

    def get(self, key: EntryKey, windows: RollupWindows) -> dict[str, np.ndarray] | None:
        """The state of the series over `windows` (its "w" relative to windows.origin; {}
        when no window has points), or None unless every window is cached with equal bounds."""
        found = self.lookup(key, windows)
        if found is None or found[0] is not None:
            return None
        return found[1]

    def lookup(
        self, key: EntryKey, windows: RollupWindows
    ) -> tuple[np.ndarray | None, dict[str, np.ndarray]] | None:
        """What the cache has of the series over `windows`: None when no window is there;
        (None, state) when all are (a hit); (mask, state) when only the windows in `mask` are
        (a partial hit: `state` holds their rows). "w" is relative to windows.origin."""
        if not self.capacity_bytes:
            return None
        with self._lock:
            entry = self._entries.get(key)
            if entry is None:
                self.misses += 1
                return None
            sig = windows.signature
            if entry.memo_sig == sig:
                self._entries.move_to_end(key)
                self.hits += 1
                return None, dict(entry.memo) if entry.memo else {}
            size = len(entry.starts)
            pos = np.minimum(np.searchsorted(entry.starts, windows.starts), size - 1)
            ok = entry.starts[pos] == windows.starts
            ok &= entry.lo[pos] == windows.lo
            ok &= entry.hi[pos] == windows.hi
            if not ok.any():
                self.misses += 1
                return None
            sel = pos[ok & entry.has[pos]]
            if not len(sel):
                state: dict[str, np.ndarray] = {}
            else:
                w = (entry.starts[sel] - windows.origin) // windows.every
                state = _frozen({"w": w, **{k: c[sel] for k, c in entry.cols.items()}})
            self._entries.move_to_end(key)
            if not ok.all():
                self.partial_hits += 1
                return ok, state
            entry.memo_sig, entry.memo = sig, state
            self.hits += 1
            return None, dict(state)

    def store(
        self,
        key: EntryKey,
        windows: RollupWindows,
        state: dict[str, np.ndarray],
        token: tuple[int, int],
    ) -> None:
        """Remember the state a query computed for one series over `windows` (rows for the
        windows with points, "w" relative to windows.origin). Refused when the series was
        written, or the cache cleared, since `begin` gave `token`."""
        if not self.capacity_bytes:
            return
        n = len(windows.starts)
        has = np.zeros(n, dtype=bool)
        cols: dict[str, np.ndarray] = {}
        if state:
            rows = state["w"] - (int(windows.starts[0]) - windows.origin) // windows.every
            has[rows] = True
            for k, col in state.items():
                if k == "w":
                    continue
                full = np.zeros(n, dtype=col.dtype)
                full[rows] = col
                cols[k] = full
        with self._lock:
            epoch, stamp = token
            if epoch != self._epoch or self._written.get(key[0], 0) > stamp:
                return
            old = self._entries.get(key)
            if old is not None and (old.cols.keys() == cols.keys() or not cols):
                self._refill(key, old, windows, has, cols)
                return
            old = self._entries.pop(key, None)
            if old is not None:
                self.bytes -= old.size
            # Copies: a query's windows are shared by all its series, and refills write in place.
            entry = _Entry(windows.starts.copy(), windows.lo.copy(), windows.hi.copy(), has, cols)
            entry.memo_sig, entry.memo = windows.signature, _frozen(dict(state)) if state else {}
            self._put(key, entry)

    def store_many(
        self,
        keys: list[EntryKey],
        windows: RollupWindows,
        state: dict[str, np.ndarray],
        bounds: list[int],
        token: tuple[int, int],
    ) -> None:
        """`store(keys[i], windows, rows bounds[i]:bounds[i + 1] of state, token)` for every
        i (an empty state where a series has no rows), with the windows of all series laid
        out at once: a batched scan (node/scanbatch.py) fills 1000 series in one call."""
        if not self.capacity_bytes or not keys:
            return
        n = len(windows.starts)
        count = len(keys)
        edges = np.asarray(bounds, dtype=np.int64)
        lens = edges[1:] - edges[:-1]
        has = np.zeros((count, n), dtype=bool)
        full: dict[str, np.ndarray] = {}
        if len(state.get("w", ())):
            series = np.repeat(np.arange(count), lens)
            rows = state["w"] - (int(windows.starts[0]) - windows.origin) // windows.every
            has[series, rows] = True
            for k, col in state.items():
                if k != "w":
                    full[k] = np.zeros((count, n), dtype=col.dtype)
                    full[k][series, rows] = col
        per_series = []
        for i in range(count):
            a, b = bounds[i], bounds[i + 1]
            if b > a:
                own = {k: v[a:b] for k, v in state.items()}
                cols = {k: v[i].copy() for k, v in full.items()}
            else:
                own, cols = {}, {}
            per_series.append((has[i].copy(), cols, own))
        with self._lock:
            epoch, stamp = token
            if epoch != self._epoch:
                return
            for key, (has_i, cols, own) in zip(keys, per_series, strict=True):
                if self._written.get(key[0], 0) > stamp:
                    continue
                old = self._entries.get(key)
                if old is not None and (old.cols.keys() == cols.keys() or not cols):
                    self._refill(key, old, windows, has_i, cols)
                    continue
                old = self._entries.pop(key, None)
                if old is not None:
                    self.bytes -= old.size
                entry = _Entry(
                    windows.starts.copy(), windows.lo.copy(), windows.hi.copy(), has_i, cols
                )
                entry.memo_sig, entry.memo = windows.signature, _frozen(dict(own)) if own else {}
                self._put(key, entry)

    def _refill(
        self,
        key: EntryKey,
        old: _Entry,
        windows: RollupWindows,
        has: np.ndarray,
        cols: dict[str, np.ndarray],
    ) -> None:
        """Lay newly computed windows over an entry (under the lock). A whole window is never
        replaced by one cut short by a query's range: sliding queries cut their last window
        at a different place each time, and would otherwise punch holes all over the entry.
        Windows the entry has are overwritten in place (states handed out are copies, never
        views of these arrays); new ones are merged in."""
        every = windows.every
        size = len(old.starts)
        pos = np.minimum(np.searchsorted(old.starts, windows.starts), size - 1)
        exists = old.starts[pos] == windows.starts
        new_whole = (windows.lo == windows.starts) & (windows.hi == windows.starts + every)
        old_whole = (old.lo[pos] == old.starts[pos]) & (old.hi[pos] == old.starts[pos] + every)
        write = exists & (new_whole | ~old_whole)
        at = pos[write]
        old.lo[at] = windows.lo[write]
        old.hi[at] = windows.hi[write]
        old.has[at] = has[write]
        for k, c in old.cols.items():
            c[at] = cols[k][write] if k in cols else 0
        old.memo_sig, old.memo = None, None
        add = ~exists
        if not add.any():
            self._entries.move_to_end(key)
            return
        starts = np.concatenate([old.starts, windows.starts[add]])
        order = np.argsort(starts, kind="stable")
        merged = {}
        for k, c in old.cols.items():
            extra = cols[k][add] if k in cols else np.zeros(int(add.sum()), dtype=c.dtype)
            merged[k] = np.concatenate([c, extra])[order]
        entry = _Entry(
            starts[order],
            np.concatenate([old.lo, windows.lo[add]])[order],
            np.concatenate([old.hi, windows.hi[add]])[order],
            np.concatenate([old.has, has[add]])[order],
            merged,
        )
        del self._entries[key]
        self.bytes -= old.size
        self._put(key, entry)

    def _put(self, key: EntryKey, entry: _Entry) -> None:
        if entry.size > self.capacity_bytes:
            self._by_series.get(key[0], set()).discard(key)
            return
        self._entries[key] = entry
        self._by_series.setdefault(key[0], set()).add(key)
        self.bytes += entry.size
        while self.bytes > self.capacity_bytes:
            old_key, old = self._entries.popitem(last=False)
            self.bytes -= old.size
            keys = self._by_series.get(old_key[0])
            if keys is not None:
                keys.discard(old_key)
                if not keys:
                    del self._by_series[old_key[0]]

    # --- the write side (called by the engine under its write lock) -----------------------------

    def written(self, skeys: Iterable[bytes], tmin: int, tmax: int) -> None:
        """Series `skeys` got points with times in [tmin, tmax]: drop their cached windows that
        meet that range and refuse fills of them begun before now."""
        if not self.active:
            return  # nothing cached, nothing being filled: the common case while ingesting
        with self._lock:
            by_series, pending = self._by_series, self._pending
            stamp = 0
            for skey in skeys:
                if skey in pending:
                    stamp = stamp or next(self._stamps)
                    self._written[skey] = stamp
                keys = by_series.get(skey)
                if keys is None:
                    continue
                for key in list(keys):
                    entry = self._entries.get(key)
                    if entry is None:
                        keys.discard(key)
                        continue
                    hit = (entry.lo <= tmax) & (entry.hi > tmin)
                    if not hit.any():
                        continue
                    self.invalidations += 1
                    self.bytes -= entry.size
                    keep = ~hit
                    if not keep.any():
                        del self._entries[key]
                        keys.discard(key)
                        continue
                    fresh = _Entry(
                        entry.starts[keep],
                        entry.lo[keep],
                        entry.hi[keep],
                        entry.has[keep],
                        {k: c[keep] for k, c in entry.cols.items()},
                    )
                    self._entries[key] = fresh
                    self.bytes += fresh.size
                if not keys:
                    del by_series[skey]

    def clear(self) -> None:
        """Forget everything (deletes, drops, catalog changes, restores); refuse fills begun
        before now."""
        with self._lock:
            self._entries.clear()
            self._by_series.clear()
            self._epoch += 1
            self.bytes = 0

    def stats(self) -> dict[str, int]:
        with self._lock:
            return {
                "entries": len(self._entries),
                "bytes": self.bytes,
                "capacity_bytes": self.capacity_bytes,
                "hits": self.hits,
                "partial_hits": self.partial_hits,
                "misses": self.misses,
                "invalidations": self.invalidations,
            }
