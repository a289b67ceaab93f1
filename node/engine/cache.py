"""A size-bounded LRU cache of decoded blocks, shared by every table of an engine.

Keys are (table instance id, block offset): instance ids are never reused, so a table replaced
by compaction (or a restore) can never serve stale blocks; its entries simply age out. Cached
arrays are made read-only, because every reader gets the same objects.
"""

from __future__ import annotations

import threading
from collections import OrderedDict

import numpy as np

__all__ = ["BlockCache"]

#: Per-entry overhead estimate (tuple, two array headers, dict slot) added to the array bytes.
_ENTRY_OVERHEAD = 256
#: Per-value estimate for string blocks (object arrays): pointer plus a small str object.
_STRING_VALUE_BYTES = 56


class BlockCache:
    def __init__(self, capacity_bytes: int) -> None:
        self.capacity_bytes = capacity_bytes
        self._lock = threading.Lock()
        self._entries: OrderedDict[tuple[int, int], tuple[np.ndarray, np.ndarray, int]] = (
            OrderedDict()
        )
        self.bytes = 0
        self.hits = 0
        self.misses = 0

    def get(self, key: tuple[int, int]) -> tuple[np.ndarray, np.ndarray] | None:
        with self._lock:
            entry = self._entries.get(key)
            if entry is None:
                self.misses += 1
                return None
            self._entries.move_to_end(key)
            self.hits += 1
            return entry[0], entry[1]

    def put(self, key: tuple[int, int], ts: np.ndarray, values: np.ndarray) -> None:
        if values.dtype == object:
            size = ts.nbytes + len(values) * _STRING_VALUE_BYTES + _ENTRY_OVERHEAD
        else:
            size = ts.nbytes + values.nbytes + _ENTRY_OVERHEAD
        if size > self.capacity_bytes:
            return
        ts.flags.writeable = False
        if values.dtype != object:
            values.flags.writeable = False
        with self._lock:
            old = self._entries.pop(key, None)
            if old is not None:
                self.bytes -= old[2]
            self._entries[key] = (ts, values, size)
            self.bytes += size
            while self.bytes > self.capacity_bytes:
                _, evicted = self._entries.popitem(last=False)
                self.bytes -= evicted[2]

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
