"""A size-bounded LRU cache of decoded blocks, shared by every table of an engine.

Keys are (table instance id, block offset): instance ids are never reused, so a table replaced
by compaction (or a restore) can never serve stale blocks; its entries simply age out.

Blocks are kept compact, because what decides whether a scan decodes at all is whether its
blocks fit: timestamps at a regular interval (almost every block of scraped or sampled data)
are kept as (first, step, count), and integer values in the narrowest integer type that holds
them (TSBS-like percentages: one byte instead of eight). A hit rebuilds the arrays (a few
microseconds for a block of 4096 points, against about 37 us to decode it), so a 64 MB cache
holds about 8 times as many such blocks: the 2000 blocks of one field of the 1000-host TSBS
data set take 9 MB instead of 70 MB (more than the whole cache, which then missed every time).
Other blocks (floats, irregular timestamps, strings) are kept as they are, read-only, shared by
every reader.
"""

from __future__ import annotations

import threading
from collections import OrderedDict

import numpy as np

from node.engine.codecs.integers import MAX_REGULAR_STEP, regular_sequence

__all__ = ["BlockCache", "Compact", "compact", "cut", "expand", "regular_times", "time_range"]

#: Per-entry overhead estimate (tuple, two array headers, dict slot) added to the array bytes.
_ENTRY_OVERHEAD = 256
#: Per-value estimate for string blocks (object arrays): pointer plus a small str object.
_STRING_VALUE_BYTES = 56


_NARROW = {
    "i": (np.int8, np.int16, np.int32),
    "u": (np.uint8, np.uint16, np.uint32),
}
#: Regular timestamps: (first, step, count) instead of the array.
_Times = np.ndarray | tuple[int, int, int]
#: Narrowed integer values: (array, the type to widen back to).
_Values = np.ndarray | tuple[np.ndarray, np.dtype]


def _compact_times(ts: _Times) -> _Times:
    if isinstance(ts, tuple):  # decoded as regular (encoding.decode_block_compact)
        return ts
    n = len(ts)
    if n < 3 or ts.dtype != np.int64:
        return ts
    step = int(ts[1]) - int(ts[0])
    # Differences taken with wrapping int64 arithmetic, like the rebuild: exact either way.
    if -MAX_REGULAR_STEP < step < MAX_REGULAR_STEP and bool(
        np.all(ts[1:] - ts[:-1] == np.int64(step))
    ):
        return (int(ts[0]), step, n)
    return ts


def _compact_values(values: np.ndarray) -> _Values:
    kind = values.dtype.kind
    if kind not in _NARROW or values.itemsize != 8 or not len(values):
        return values
    lo, hi = int(values.min()), int(values.max())
    for t in _NARROW[kind]:
        info = np.iinfo(t)
        if info.min <= lo and hi <= info.max:
            return (values.astype(t), values.dtype)
    return values


#: A block as the cache keeps it: (times, values), each compact or a plain array.
Compact = tuple[_Times, _Values]


def compact(times: _Times, values: np.ndarray) -> Compact:
    """A decoded block (timestamps as an array or already as (first, step, count)) in the form
    the cache keeps. Arrays kept as they are go to every reader: they are made read-only."""
    stored_times = _compact_times(times)
    stored_values = _compact_values(values)
    if not isinstance(stored_times, tuple):
        stored_times.flags.writeable = False
    if not isinstance(stored_values, tuple) and stored_values.dtype != object:
        stored_values.flags.writeable = False
    return stored_times, stored_values


def expand(stored: Compact) -> tuple[np.ndarray, np.ndarray]:
    """The (timestamps, values) arrays of a compact block."""
    return _times(stored[0]), _values(stored[1])


def cut(stored: Compact, start: int, end: int) -> tuple[np.ndarray, np.ndarray]:
    """The points with start <= t < end of a compact block, building only those (`time_range`):
    `expand` and columns.time_slice in one."""
    lo, hi, ts = time_range(stored[0], start, end)
    values = stored[1]
    if isinstance(values, tuple):
        return ts, values[0][lo:hi].astype(values[1])
    return ts, values[lo:hi]


def regular_times(ts: np.ndarray) -> tuple[int, int, int] | None:
    """(first, step, count) of timestamps at a regular, increasing interval, else None."""
    stored = _compact_times(ts)
    if isinstance(stored, tuple) and stored[1] > 0:
        return stored
    return None


def _times(stored: _Times) -> np.ndarray:
    if isinstance(stored, tuple):
        return regular_sequence(*stored)
    return stored


_INT64_MAX = 2**63 - 1


def time_range(stored: _Times, start: int, end: int) -> tuple[int, int, np.ndarray]:
    """(lo, hi, times[lo:hi]) for the stored timestamps (sorted, unique: the block format's
    rule) with start <= t < end. Regular timestamps are cut by arithmetic and only the cut is
    built: a one-hour read of a 4096-point block makes 360 values, without a search."""
    if isinstance(stored, tuple):
        first, step, n = stored
        if step > 0 and first + (n - 1) * step <= _INT64_MAX:
            # lo = the first i with first + i * step >= start (ceiling division), clamped.
            lo = 0 if start <= first else min(n, (start - first + step - 1) // step)
            hi = 0 if end <= first else min(n, (end - first + step - 1) // step)
            hi = max(hi, lo)
            return lo, hi, np.arange(first + lo * step, first + hi * step, step, dtype=np.int64)
        stored = _times(stored)
    lo = int(stored.searchsorted(start))
    hi = int(stored.searchsorted(end))
    return lo, hi, stored[lo:hi]


def _values(stored: _Values) -> np.ndarray:
    if isinstance(stored, tuple):
        return stored[0].astype(stored[1])
    return stored


def _nbytes(stored: _Times | _Values) -> int:
    if isinstance(stored, tuple):
        return stored[0].nbytes if isinstance(stored[0], np.ndarray) else 24
    if stored.dtype == object:
        return len(stored) * _STRING_VALUE_BYTES
    return stored.nbytes


class BlockCache:
    def __init__(self, capacity_bytes: int) -> None:
        self.capacity_bytes = capacity_bytes
        self._lock = threading.Lock()
        self._entries: OrderedDict[tuple[int, int], tuple[_Times, _Values, int]] = OrderedDict()
        self.bytes = 0
        self.hits = 0
        self.misses = 0

    def get(self, key: tuple[int, int]) -> tuple[np.ndarray, np.ndarray] | None:
        found = self.get_compact(key)
        return None if found is None else expand(found)

    def get_range(
        self, key: tuple[int, int], start: int, end: int
    ) -> tuple[np.ndarray, np.ndarray] | None:
        """The points with start <= t < end of a cached block, or None on a miss: `get` and
        columns.time_slice in one, rebuilding only the points in range (`cut`)."""
        found = self.get_compact(key)
        return None if found is None else cut(found, start, end)

    def get_compact(self, key: tuple[int, int]) -> Compact | None:
        """The block as stored, without rebuilding its arrays (node/engine/batchread.py reads
        regular timestamps as (first, step, count) and narrowed integers as they are)."""
        with self._lock:
            entry = self._entries.get(key)
            if entry is None:
                self.misses += 1
                return None
            self._entries.move_to_end(key)
            self.hits += 1
        return entry[0], entry[1]

    def get_compact_many(self, keys: list[tuple[int, int]]) -> list[Compact | None]:
        """`get_compact` of many blocks under one lock acquisition."""
        out: list[Compact | None] = []
        entries = self._entries
        with self._lock:
            for key in keys:
                entry = entries.get(key)
                if entry is None:
                    out.append(None)
                    continue
                entries.move_to_end(key)
                out.append((entry[0], entry[1]))
            hits = len(keys) - out.count(None)
            self.hits += hits
            self.misses += len(keys) - hits
        return out

    def put(self, key: tuple[int, int], times: _Times, values: np.ndarray) -> Compact:
        """Keep a decoded block (timestamps as an array or as (first, step, count)); returns
        it as kept (`compact`), also when it is not kept because it is larger than the whole
        cache; as given when the cache is off (capacity 0)."""
        if self.capacity_bytes <= 0:
            return times, values  # a reader's own copy: nothing to narrow or protect
        stored = compact(times, values)
        size = _nbytes(stored[0]) + _nbytes(stored[1]) + _ENTRY_OVERHEAD
        if size > self.capacity_bytes:
            return stored
        with self._lock:
            old = self._entries.pop(key, None)
            if old is not None:
                self.bytes -= old[2]
            self._entries[key] = (stored[0], stored[1], size)
            self.bytes += size
            while self.bytes > self.capacity_bytes:
                _, evicted = self._entries.popitem(last=False)
                self.bytes -= evicted[2]
        return stored

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()
            self.bytes = 0

    def stats(self) -> dict[str, int]:
        """Counters since the engine opened (hits, misses) and the current content."""
        with self._lock:
            return {
                "entries": len(self._entries),
                "bytes": self.bytes,
                "capacity_bytes": self.capacity_bytes,
                "hits": self.hits,
                "misses": self.misses,
            }

    def __len__(self) -> int:
        return len(self._entries)
