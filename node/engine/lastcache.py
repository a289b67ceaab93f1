"""The last-value cache: the latest point of each (series, field), for `last()` over all time.

TSBS's lastpoint (`SELECT last(*) FROM cpu GROUP BY hostname`) would otherwise read every point
of every series. Entries are filled by a query that read a series field to its end and kept
current by the write path; they are never guessed:

- `observe(batch)` (by the engine, under its write lock, for every batch it applies) moves an
  existing entry forward when the batch holds a point at or after it (same time: the new value
  wins, as in storage); it never creates entries, since a batch does not know whether storage
  holds later points;
- `store` (after a read to the end of time) is refused when a write touched the series or the
  cache was cleared since the reader took its `token`, so a read that raced a write never
  installs an older point;
- the engine `clear`s everything when it applies a delete, a drop, a catalog change or a
  snapshot restore (bumping the epoch, so fills begun before are refused); retention is checked
  by the reader (an entry older than the series' retention horizon is not used).

The engine owns it (`Engine.last_values`), so every shard replica has one kept by the same code:
`pulsar standalone` and each cluster replica, whose writes, deletes and DDL all reach the
engine through the Raft apply path; a replica moved away drops it with its engine.
node/lastquery.py reads it in bulk (`tokens`, `get_many`, `store_many`) for last()-only
queries and warms it at start-up.

Thread safety: every method takes the one lock; values are copies, never views of blocks.
"""

from __future__ import annotations

import threading
from typing import Any

import numpy as np

from pulsar_cluster.batch import WriteBatch
from pulsar_cluster.series import SEP

__all__ = ["LastValueCache", "Entry"]

Entry = tuple[int, np.ndarray]  # (time, one-element values array of the field's dtype)

#: Estimated bytes of one entry besides its key and value bytes: dict slot, tuples, array header
#: (sys.getsizeof of an entry's objects on CPython 3.11: about 150 bytes with a short key).
_ENTRY_OVERHEAD = 120


class LastValueCache:
    def __init__(self, max_entries: int = 1_000_000) -> None:
        #: Bound on memory: about 150 bytes per entry.
        self.max_entries = max_entries
        self._lock = threading.Lock()
        self._entries: dict[tuple[bytes, str], Entry] = {}
        self._writes: dict[bytes, int] = {}  # storage key -> writes seen (for `token`)
        self._cached_series: set[bytes] = set()  # storage keys with at least one entry
        self._epoch = 0  # bumped by clear()
        self.bytes = 0  # estimated memory of the entries (_entry_bytes)
        self.hits = 0
        self.misses = 0

    def __len__(self) -> int:
        return len(self._entries)

    def token(self, skey: bytes) -> tuple[int, int]:
        """Take before reading a series; hand to `store` after."""
        with self._lock:
            return self._epoch, self._writes.get(skey, 0)

    def get(self, skey: bytes, name: str) -> Entry | None:
        with self._lock:
            entry = self._entries.get((skey, name))
            if entry is None:
                self.misses += 1
            else:
                self.hits += 1
            return entry

    def store(
        self, skey: bytes, name: str, token: tuple[int, int], t: int, values: np.ndarray
    ) -> None:
        """Record (t, values[-1]) as the last point of the field, read to the end of time."""
        with self._lock:
            if token != (self._epoch, self._writes.get(skey, 0)):
                return  # a write or a delete happened during the read: the read may be stale
            current = self._entries.get((skey, name))
            if current is not None and current[0] > t:
                return
            if current is None and len(self._entries) >= self.max_entries:
                return
            value = values[-1:].copy()
            if current is None:
                self.bytes += _entry_bytes(skey, name, value)
            self._entries[(skey, name)] = (t, value)
            self._cached_series.add(skey)

    def tokens(self, skeys: list[bytes]) -> tuple[int, list[int]]:
        """`token` of many series at once (one lock): (epoch, writes seen per series)."""
        with self._lock:
            writes = self._writes
            return self._epoch, [writes.get(k, 0) for k in skeys]

    def get_many(
        self, skeys: list[bytes], names: list[str], count: bool = True
    ) -> list[list[Entry | None]]:
        """`get` of every (series, field) pair at once (one lock): rows by series. `count`:
        whether the look-ups count as hits and misses (not for the warm-up's own checks)."""
        with self._lock:
            entries = self._entries
            out = [[entries.get((k, n)) for n in names] for k in skeys]
            if not count:
                return out
            hits = sum(e is not None for row in out for e in row)
            self.hits += hits
            self.misses += len(skeys) * len(names) - hits
            return out

    def store_many(
        self,
        skeys: list[bytes],
        token: tuple[int, list[int]],
        items: list[tuple[int, str, int, np.ndarray]],
    ) -> None:
        """`store` of many read results at once: items (series index into `skeys`, field, time,
        one-element values array); `token` from `tokens(skeys)` taken before the read."""
        epoch, writes = token
        with self._lock:
            if epoch != self._epoch:
                return
            for i, name, t, value in items:
                skey = skeys[i]
                if writes[i] != self._writes.get(skey, 0):
                    continue
                current = self._entries.get((skey, name))
                if current is not None and current[0] > t:
                    continue
                if current is None:
                    if len(self._entries) >= self.max_entries:
                        continue
                    self.bytes += _entry_bytes(skey, name, value)
                self._entries[(skey, name)] = (t, value)
                self._cached_series.add(skey)

    def observe(self, batch: WriteBatch) -> None:
        db = batch.database.encode()
        table = batch.table_if_current()
        with self._lock:
            if table is not None:
                # A table batch is not split per series here: only series with cached
                # entries are looked at, so ingestion without lastpoint queries stays O(series).
                bounds = table.offsets.tolist()
                for i, key in enumerate(table.keys):
                    skey = db + SEP + key
                    self._writes[skey] = self._writes.get(skey, 0) + 1
                    if skey not in self._cached_series:
                        continue
                    lo, hi = bounds[i], bounds[i + 1]
                    ts = table.timestamps[lo:hi]
                    for name, _, values in table.fields:
                        self._observe_column(skey, name, ts, values[lo:hi])
                return
            for key, fields in batch.series.items():
                skey = db + SEP + key
                self._writes[skey] = self._writes.get(skey, 0) + 1
                for name, col in fields.items():
                    self._observe_column(skey, name, col.timestamps, col.values)

    def _observe_column(self, skey: bytes, name: str, ts: np.ndarray, values: np.ndarray) -> None:
        current = self._entries.get((skey, name))
        if current is None or not len(ts):
            return
        t = int(ts.max())
        if t < current[0]:
            return
        i = len(ts) - 1 - int(np.argmax(ts[::-1] == t))  # the last write at t wins
        self._entries[(skey, name)] = (t, np.asarray(values[i : i + 1]).copy())

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()
            self._cached_series.clear()
            self.bytes = 0
            self._epoch += 1

    def stats(self) -> dict[str, Any]:
        with self._lock:
            return {
                "entries": len(self._entries),
                "bytes": self.bytes,
                "max_entries": self.max_entries,
                "hits": self.hits,
                "misses": self.misses,
            }


def _entry_bytes(skey: bytes, name: str, value: np.ndarray) -> int:
    """Estimated bytes of one entry; a string value counts its length (an object array holds a
    pointer to a str). Replacing an entry's value later does not change the estimate."""
    extra = len(value[0]) if value.dtype == object and isinstance(value[0], str) else 0
    return _ENTRY_OVERHEAD + len(skey) + len(name) + value.nbytes + extra
