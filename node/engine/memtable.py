"""The memtable: recent writes per series and field, as lists of numpy chunks.

A write appends whole arrays (one chunk per column per batch), never single points. Chunks are
merged (sorted, last write wins) when read or flushed, so writes stay O(1) per column.

Thread safety: `insert` is called under the engine's write lock; readers take `snapshot` of a
field's chunk lists (a copy of two short lists) and merge outside any lock. A memtable that has
been made immutable is never written again.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from node.engine.columns import merge_last_wins
from pulsar_cluster.batch import Column, FieldType, numpy_dtype

__all__ = ["Memtable"]

_STRING_BYTES_ESTIMATE = 48  # per value: a small str object plus its pointer
#: Per chunk: two ndarray headers (~112 B each) and the tuple and list slot holding them. Small
#: batches would otherwise let the real memory run far past `memtable_bytes`.
_CHUNK_OVERHEAD = 300


class _FieldBuffer:
    __slots__ = ("chunks", "type")

    def __init__(self, field_type: FieldType) -> None:
        self.type = field_type
        self.chunks: list[tuple[np.ndarray, np.ndarray]] = []


class Memtable:
    def __init__(self, seq: int = 0) -> None:
        #: Order of this memtable among flushes: its tables get this seq (docs/format/sstable.md).
        self.seq = seq
        self._series: dict[bytes, dict[str, _FieldBuffer]] = {}
        self.bytes = 0
        self.points = 0
        self.min_index = 0  # first and last write index held; 0 when empty
        self.max_index = 0

    def __len__(self) -> int:
        return self.points

    def insert(self, skey: bytes, name: str, column: Column) -> None:
        fields = self._series.get(skey)
        if fields is None:
            fields = self._series[skey] = {}
        buf = fields.get(name)
        if buf is None:
            buf = fields[name] = _FieldBuffer(column.type)
        buf.chunks.append((column.timestamps, column.values))
        n = len(column.timestamps)
        width = _STRING_BYTES_ESTIMATE if column.type is FieldType.STRING else 8
        self.bytes += n * (8 + width) + _CHUNK_OVERHEAD
        self.points += n

    def insert_series(self, skey: bytes, columns: dict[str, Column]) -> int:
        """Insert every column of one series (the hot path: one call per series of a batch).

        Returns the number of points inserted.
        """
        fields = self._series.get(skey)
        if fields is None:
            fields = self._series[skey] = {}
        points = 0
        nbytes = 0
        for name, column in columns.items():
            buf = fields.get(name)
            if buf is None:
                buf = fields[name] = _FieldBuffer(column.type)
            ts = column.timestamps
            buf.chunks.append((ts, column.values))
            n = len(ts)
            points += n
            width = _STRING_BYTES_ESTIMATE if column.type is FieldType.STRING else 8
            nbytes += n * (8 + width) + _CHUNK_OVERHEAD
        self.bytes += nbytes
        self.points += points
        return points

    def note_index(self, index: int) -> None:
        if not self.min_index:
            self.min_index = index
        self.max_index = max(self.max_index, index)

    def delete(self, skeys: frozenset[bytes], start: int, end: int) -> int:
        """Drop the points of `skeys` in [start, end) (a delete); returns points removed.

        Only the active memtable is edited (under the write lock). Chunks are replaced, never
        mutated, so a reader holding the old chunk list still sees a consistent old state.
        """
        removed = 0
        for skey in skeys:
            fields = self._series.get(skey)
            if fields is None:
                continue
            for buf in fields.values():
                new_chunks = []
                for ts, values in buf.chunks:
                    keep = (ts < start) | (ts >= end)
                    dropped = len(ts) - int(np.count_nonzero(keep))
                    removed += dropped
                    if not dropped:
                        new_chunks.append((ts, values))
                    elif dropped < len(ts):
                        new_chunks.append((ts[keep], values[keep]))
                buf.chunks = new_chunks
        self.points -= removed
        return removed

    def field_types(self, skey: bytes) -> dict[str, FieldType]:
        fields = self._series.get(skey)
        return {} if fields is None else {n: b.type for n, b in fields.items()}

    def read(self, skey: bytes, name: str) -> tuple[FieldType, np.ndarray, np.ndarray] | None:
        """Merged (type, sorted ts, values) of one field, or None."""
        fields = self._series.get(skey)
        if fields is None:
            return None
        buf = fields.get(name)
        if buf is None:
            return None
        chunks = list(buf.chunks)
        if not chunks:  # every point deleted
            return buf.type, np.empty(0, np.int64), np.empty(0, numpy_dtype(buf.type))
        ts, values = merge_last_wins(chunks)
        return buf.type, ts, values

    def series_keys(self) -> list[bytes]:
        return list(self._series)

    def fields_of(self, skey: bytes) -> list[str]:
        fields = self._series.get(skey)
        return [] if fields is None else list(fields)

    def sorted_items(self) -> Iterator[tuple[bytes, str, FieldType, np.ndarray, np.ndarray]]:
        """Every field, merged, in (series key, field) order: what a flush writes."""
        for skey in sorted(self._series):
            fields = self._series[skey]
            for name in sorted(fields):
                buf = fields[name]
                if not buf.chunks:
                    continue
                ts, values = merge_last_wins(list(buf.chunks))
                yield skey, name, buf.type, ts, values
