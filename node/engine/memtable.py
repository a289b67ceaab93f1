"""The memtable: recent writes per series and field, as lists of numpy chunks.

A write appends whole arrays (one chunk per column per batch), never single points. Chunks are
merged (sorted, last write wins) when read or flushed, so writes stay O(1) per column; a field
that collects many chunks (small batches) has its newest similar-sized chunks merged in place
(`_collapse`), so memory and read cost stay O(log n) chunks per field.

Size bound: `bytes` estimates the memory held (16 bytes per numeric point, more for strings,
plus a per-chunk overhead); the engine freezes the memtable when it passes `memtable_bytes`.

Table batches (pulsar_cluster.batch.SeriesTable, what the vectorised parser produces) are kept
whole on arrival (`insert_table`: O(1)) and folded into the per-series chunks later, all pending
tables in one vectorised pass (`_absorb`), before anything reads the per-series structure. A
request of 1000 series x 10 fields thus costs one list append instead of 10,000 chunk appends;
the split per series and field happens once per read or flush, over many requests at a time.
Arrival order is kept: a per-series insert first absorbs what is pending, and absorbed rows
keep their request order, so the later of two equal timestamps still wins.

Thread safety: writers (`insert*`, `delete`) are called under the engine's write lock;
`_absorb` may also run from a reader, so every change of the per-series structure happens
under the memtable's own lock. Readers take a copy of a field's chunk list and merge outside
any lock. A memtable that has been made immutable is never written again.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator

import numpy as np

from node.engine.columns import merge_last_wins
from pulsar_cluster.batch import Column, FieldType, SeriesTable, numpy_dtype

__all__ = ["Memtable"]

_STRING_BYTES_ESTIMATE = 48  # per value: a small str object plus its pointer
#: Per chunk: two ndarray headers (~112 B each) and the tuple and list slot holding them. Small
#: batches would otherwise let the real memory run far past `memtable_bytes`.
_CHUNK_OVERHEAD = 300
#: A field with more chunks than this gets its newest chunks merged (`_collapse`): many
#: small batches (one point per series each) must not leave one array pair per point.
_MAX_CHUNKS = 16


class _FieldBuffer:
    __slots__ = ("chunks", "clean", "type")

    def __init__(self, field_type: FieldType) -> None:
        self.type = field_type
        self.chunks: list[tuple[np.ndarray, np.ndarray]] = []
        #: True while `chunks` is one chunk known to be sorted with unique timestamps (what an
        #: absorb produces): reads and flushes then skip merge_last_wins.
        self.clean = False


class Memtable:
    def __init__(self, seq: int = 0) -> None:
        #: Order of this memtable among flushes: its tables get this seq (docs/format/sstable.md).
        self.seq = seq
        self._series: dict[bytes, dict[str, _FieldBuffer]] = {}
        # Table batches not yet split per series: (storage-key prefix, table), arrival order.
        self._pending: list[tuple[bytes, SeriesTable]] = []
        self._lock = threading.Lock()
        self.bytes = 0
        self.points = 0
        self.min_index = 0  # first and last write index held; 0 when empty
        self.max_index = 0

    def __len__(self) -> int:
        return self.points

    def insert(self, skey: bytes, name: str, column: Column) -> None:
        with self._lock:
            self._absorb_locked()
            self._insert_locked(skey, name, column)

    def _insert_locked(self, skey: bytes, name: str, column: Column) -> None:
        fields = self._series.get(skey)
        if fields is None:
            fields = self._series[skey] = {}
        buf = fields.get(name)
        if buf is None:
            buf = fields[name] = _FieldBuffer(column.type)
        buf.chunks.append((column.timestamps, column.values))
        buf.clean = False
        n = len(column.timestamps)
        width = _STRING_BYTES_ESTIMATE if column.type is FieldType.STRING else 8
        self.bytes += n * (8 + width) + _CHUNK_OVERHEAD
        self.points += n

    def insert_series(self, skey: bytes, columns: dict[str, Column]) -> int:
        """Insert every column of one series (the hot path: one call per series of a batch).

        Returns the number of points inserted.
        """
        with self._lock:
            self._absorb_locked()
            return self._insert_series_locked(skey, columns)

    def _insert_series_locked(self, skey: bytes, columns: dict[str, Column]) -> int:
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
            buf.clean = False
            if len(buf.chunks) > _MAX_CHUNKS:
                self._collapse(buf)
            n = len(ts)
            points += n
            width = _STRING_BYTES_ESTIMATE if column.type is FieldType.STRING else 8
            nbytes += n * (8 + width) + _CHUNK_OVERHEAD
        self.bytes += nbytes
        self.points += points
        return points

    def insert_table(self, prefix: bytes, table: SeriesTable) -> int:
        """Keep a table batch whole; its series are `prefix + key`. Returns points inserted."""
        points = table.rows * len(table.fields)
        nbytes = 0
        for _, field_type, _values in table.fields:
            width = _STRING_BYTES_ESTIMATE if field_type is FieldType.STRING else 8
            nbytes += table.rows * (8 + width)
        with self._lock:  # counters too: a reader's _absorb may _collapse concurrently
            self._pending.append((prefix, table))
            self.bytes += nbytes + _CHUNK_OVERHEAD * len(table.keys)
            self.points += points
        return points

    def _absorb(self) -> None:
        if self._pending:
            with self._lock:
                self._absorb_locked()

    def _absorb_locked(self) -> None:
        """Split every pending table into per-series chunks, all tables in one pass per field
        layout: rows are concatenated, stably sorted by series, and each series receives one
        chunk per field (in arrival order, so the last write still wins)."""
        if not self._pending:
            return
        pending, self._pending = self._pending, []
        # Tables with the same fields (the common case: one client, one schema) are folded
        # together; a change of layout starts a new group, keeping arrival order per series.
        group: list[tuple[bytes, SeriesTable]] = []
        for item in pending:
            if group and _layout(group[0][1]) != _layout(item[1]):
                self._absorb_group(group)
                group = []
            group.append(item)
        self._absorb_group(group)

    def _absorb_group(self, group: list[tuple[bytes, SeriesTable]]) -> None:
        index: dict[bytes, int] = {}
        series_of_rows: list[np.ndarray] = []
        for prefix, table in group:
            ids = np.fromiter(
                (index.setdefault(prefix + key, len(index)) for key in table.keys),
                dtype=np.int64,
                count=len(table.keys),
            )
            series_of_rows.append(np.repeat(ids, np.diff(table.offsets)))
        rows_series = np.concatenate(series_of_rows)
        all_ts = np.concatenate([t.timestamps for _, t in group])
        # Sort rows by (series, time), both sorts stable so that equal (series, time) rows
        # stay in arrival order: then each series' chunk is sorted, and keeping the last row
        # of every run of equal times (last write wins) makes it unique too, so reads and the
        # flush need no per-field merge. Time first: traffic is nearly time-ordered (batches
        # from concurrent clients arrive a little out of order), which the stable sort (a
        # merge sort) handles in about linear time.
        by_time = np.argsort(all_ts, kind="stable")
        order = by_time[np.argsort(rows_series[by_time], kind="stable")]
        sorted_series = rows_series[order]
        ts = all_ts[order]
        if len(ts) > 1:
            keep = np.ones(len(ts), dtype=bool)
            keep[:-1] = (ts[1:] != ts[:-1]) | (sorted_series[1:] != sorted_series[:-1])
            if not keep.all():
                order = order[keep]
                sorted_series = sorted_series[keep]
                ts = ts[keep]
                self._forget_rows(group[0][1], int(len(keep) - np.count_nonzero(keep)))
        bounds = np.searchsorted(sorted_series, np.arange(len(index) + 1)).tolist()
        layout = group[0][1].fields
        columns = [
            (name, ftype, np.concatenate([t.fields[j][2] for _, t in group])[order])
            for j, (name, ftype, _) in enumerate(layout)
        ]
        for skey, i in index.items():
            lo, hi = bounds[i], bounds[i + 1]
            fields = self._series.get(skey)
            if fields is None:
                fields = self._series[skey] = {}
            chunk_ts = ts[lo:hi]
            for name, ftype, values in columns:
                buf = fields.get(name)
                if buf is None:
                    buf = fields[name] = _FieldBuffer(ftype)
                buf.clean = not buf.chunks
                buf.chunks.append((chunk_ts, values[lo:hi]))
                if len(buf.chunks) > _MAX_CHUNKS:
                    self._collapse(buf)

    def _forget_rows(self, table: SeriesTable, rows: int) -> None:
        """Take `rows` overwritten rows of `table`'s layout out of the size counters."""
        for _, field_type, _values in table.fields:
            width = _STRING_BYTES_ESTIMATE if field_type is FieldType.STRING else 8
            self.bytes -= rows * (8 + width)
            self.points -= rows

    def _collapse(self, buf: _FieldBuffer) -> None:
        """Merge the newest run of similar-sized chunks into one (size-tiered, k-way).

        A chunk joins the run unless it is more than twice the run's largest, so chunk sizes
        grow geometrically: each point is copied O(log n) times, about one merge call per
        `_MAX_CHUNKS / 2` inserts, and a field keeps O(log n) chunks. A new list replaces the
        old one, so a reader holding the old list is not disturbed. Called under the write lock.
        """
        chunks = list(buf.chunks)
        run = 0
        largest = 0
        for ts, _ in reversed(chunks):
            n = len(ts)
            if run >= 2 and n > 2 * max(largest, 1):
                break
            run += 1
            largest = max(largest, n)
        before = sum(len(c[0]) for c in chunks[-run:])
        merged = merge_last_wins(chunks[-run:])
        buf.chunks = [*chunks[:-run], merged]
        buf.clean = len(buf.chunks) == 1  # merge_last_wins output is sorted and unique
        width = _STRING_BYTES_ESTIMATE if buf.type is FieldType.STRING else 8
        self.bytes -= (run - 1) * _CHUNK_OVERHEAD + (before - len(merged[0])) * (8 + width)
        self.points -= before - len(merged[0])

    def note_index(self, index: int) -> None:
        if not self.min_index:
            self.min_index = index
        self.max_index = max(self.max_index, index)

    def delete(self, skeys: frozenset[bytes], start: int, end: int) -> int:
        """Drop the points of `skeys` in [start, end) (a delete); returns points removed.

        Only the active memtable is edited (under the write lock). Chunks are replaced, never
        mutated, so a reader holding the old chunk list still sees a consistent old state.
        """
        with self._lock:
            self._absorb_locked()
            return self._delete_locked(skeys, start, end)

    def _delete_locked(self, skeys: frozenset[bytes], start: int, end: int) -> int:
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
                buf.clean = False
        self.points -= removed
        return removed

    def drop_series(self, skeys: frozenset[bytes]) -> int:
        """Forget `skeys` entirely (DROP): points and field types; returns points removed.

        Unlike `delete`, a later write may give a dropped field another type. Only the active
        memtable is edited (under the write lock); readers holding a chunk list keep it.
        """
        with self._lock:
            self._absorb_locked()
            removed = 0
            for skey in skeys:
                fields = self._series.pop(skey, None)
                if fields is not None:
                    removed += sum(len(ts) for buf in fields.values() for ts, _ in buf.chunks)
            self.points -= removed
            return removed

    def field_types(self, skey: bytes) -> dict[str, FieldType]:
        self._absorb()
        fields = self._series.get(skey)
        return {} if fields is None else {n: b.type for n, b in fields.items()}

    def read(self, skey: bytes, name: str) -> tuple[FieldType, np.ndarray, np.ndarray] | None:
        """Merged (type, sorted ts, values) of one field, or None."""
        self._absorb()
        fields = self._series.get(skey)
        if fields is None:
            return None
        buf = fields.get(name)
        if buf is None:
            return None
        chunks = list(buf.chunks)
        if not chunks:  # every point deleted
            return buf.type, np.empty(0, np.int64), np.empty(0, numpy_dtype(buf.type))
        ts, values = chunks[0] if buf.clean and len(chunks) == 1 else merge_last_wins(chunks)
        return buf.type, ts, values

    def series_keys(self) -> list[bytes]:
        self._absorb()
        return list(self._series)

    def fields_of(self, skey: bytes) -> list[str]:
        self._absorb()
        fields = self._series.get(skey)
        return [] if fields is None else list(fields)

    def sorted_items(self) -> Iterator[tuple[bytes, str, FieldType, np.ndarray, np.ndarray]]:
        """Every field, merged, in (series key, field) order: what a flush writes."""
        self._absorb()
        for skey in sorted(self._series):
            fields = self._series[skey]
            for name in sorted(fields):
                buf = fields[name]
                chunks = list(buf.chunks)
                if not chunks:
                    continue
                if buf.clean and len(chunks) == 1:
                    ts, values = chunks[0]
                else:
                    ts, values = merge_last_wins(chunks)
                yield skey, name, buf.type, ts, values


def _layout(table: SeriesTable) -> list[tuple[str, FieldType]]:
    return [(name, ftype) for name, ftype, _ in table.fields]
