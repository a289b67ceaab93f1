"""The columnar write batch: the one shape in which points travel down the stack.

A request is parsed once into a `WriteBatch`: for each series, for each field, a `Column` of
parallel numpy arrays (timestamps, values). Grouping by series happens once, in the parser;
everything below (routing, Raft, WAL, memtable) handles whole arrays, never one Python object
per point.

Contract: arrays in a Column are owned by the batch and must not be mutated after the batch is
built; they are not sorted and may hold duplicate timestamps (last one wins).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from enum import IntEnum

import numpy as np

from pulsar_cluster.errors import BadRequestError

__all__ = [
    "FieldType",
    "Column",
    "SeriesTable",
    "WriteBatch",
    "BatchBuilder",
    "TypeConflictError",
    "numpy_dtype",
]


class FieldType(IntEnum):
    """Field value types. The numbers are on disk and on the wire: never reuse one."""

    FLOAT = 1
    INTEGER = 2
    UNSIGNED = 3
    BOOLEAN = 4
    STRING = 5

    @property
    def label(self) -> str:
        return _LABELS[self]


_LABELS = {
    FieldType.FLOAT: "float",
    FieldType.INTEGER: "integer",
    FieldType.UNSIGNED: "unsigned",
    FieldType.BOOLEAN: "boolean",
    FieldType.STRING: "string",
}

_DTYPES: dict[FieldType, np.dtype] = {
    FieldType.FLOAT: np.dtype(np.float64),
    FieldType.INTEGER: np.dtype(np.int64),
    FieldType.UNSIGNED: np.dtype(np.uint64),
    FieldType.BOOLEAN: np.dtype(np.bool_),
    FieldType.STRING: np.dtype(object),
}


def numpy_dtype(field_type: FieldType) -> np.dtype:
    return _DTYPES[field_type]


class Column:
    """Values of one field of one series: `timestamps[i]` (int64 ns) goes with `values[i]`.

    A plain slotted class rather than a dataclass: parsers create one per series and field of
    every request, and a frozen dataclass's __init__ costs several times more.
    """

    __slots__ = ("timestamps", "type", "values")

    def __init__(self, type: FieldType, timestamps: np.ndarray, values: np.ndarray) -> None:
        self.type = type
        self.timestamps = timestamps
        self.values = values

    def __len__(self) -> int:
        return len(self.timestamps)

    def __repr__(self) -> str:
        return f"Column({self.type.name}, {len(self.timestamps)} points)"


@dataclass(slots=True)
class SeriesTable:
    """A batch as one table: rows grouped by series, one array per field.

    Rows of series `keys[i]` are `offsets[i]:offsets[i + 1]` (in arrival order, so the later of
    two equal timestamps wins). Every row has every field. This is what the vectorised parser
    produces and what the codec writes; it costs O(fields) Python operations per batch instead
    of O(series x fields).
    """

    keys: list[bytes]
    offsets: np.ndarray  # int64[len(keys) + 1]
    timestamps: np.ndarray  # int64[rows]
    fields: list[tuple[str, FieldType, np.ndarray]]  # (name, type, values[rows])

    @property
    def rows(self) -> int:
        return len(self.timestamps)

    def slice_series(self, lo: int, hi: int) -> SeriesTable:
        """The table of series lo..hi-1 (views, no copies)."""
        r0, r1 = int(self.offsets[lo]), int(self.offsets[hi])
        return SeriesTable(
            self.keys[lo:hi],
            self.offsets[lo : hi + 1] - r0,
            self.timestamps[r0:r1],
            [(name, ftype, values[r0:r1]) for name, ftype, values in self.fields],
        )

    def take_series(self, indices: np.ndarray) -> SeriesTable:
        """The table of the series at `indices` (in that order), rows gathered with numpy."""
        counts = (self.offsets[1:] - self.offsets[:-1])[indices]
        offsets = np.zeros(len(indices) + 1, dtype=np.int64)
        np.cumsum(counts, out=offsets[1:])
        # Row numbers: for each chosen series its run offsets[i] .. offsets[i+1]-1.
        starts = self.offsets[:-1][indices]
        rows = np.arange(int(offsets[-1]), dtype=np.int64) + np.repeat(
            starts - offsets[:-1], counts
        )
        keys = [self.keys[i] for i in indices.tolist()]
        fields = [(name, ftype, values[rows]) for name, ftype, values in self.fields]
        return SeriesTable(keys, offsets, self.timestamps[rows], fields)

    def to_series(self) -> dict[bytes, dict[str, Column]]:
        out: dict[bytes, dict[str, Column]] = {}
        bounds = self.offsets.tolist()
        for i, key in enumerate(self.keys):
            lo, hi = bounds[i], bounds[i + 1]
            ts = self.timestamps[lo:hi]
            out[key] = {
                name: Column(ftype, ts, values[lo:hi]) for name, ftype, values in self.fields
            }
        return out


class WriteBatch:
    """Points of one database, grouped by series key, then by field name.

    Built either from per-series columns (`series`) or from a `SeriesTable`; in the second case
    `series` is materialised on first access. Mutating `series` after that is allowed: `table`
    is then ignored by every consumer (see `table_if_current`).
    """

    __slots__ = ("_series", "database", "encoded", "table")

    def __init__(
        self,
        database: str,
        series: dict[bytes, dict[str, Column]] | None = None,
        *,
        table: SeriesTable | None = None,
    ) -> None:
        self.database = database
        self.table = table
        self._series = series if series is not None or table is not None else {}
        #: The batch's wire encoding when it was decoded from one (pulsar_cluster.batchcodec),
        #: reused by encode_batch while the table is current.
        self.encoded: bytes | None = None

    @property
    def series(self) -> dict[bytes, dict[str, Column]]:
        if self._series is None:
            assert self.table is not None
            self._series = self.table.to_series()
        return self._series

    @series.setter
    def series(self, value: dict[bytes, dict[str, Column]]) -> None:
        self._series = value
        self.table = None
        self.encoded = None

    def table_if_current(self) -> SeriesTable | None:
        """The table, if `series` was never materialised (so it cannot have been mutated)."""
        return self.table if self._series is None else None

    def value_count(self) -> int:
        table = self.table_if_current()
        if table is not None:
            return table.rows * len(table.fields)
        return sum(len(col) for fields in self.series.values() for col in fields.values())

    def point_count(self) -> int:
        """Distinct (series, timestamp) pairs: what InfluxDB calls points (rows, for a table)."""
        table = self.table_if_current()
        if table is not None:
            return table.rows
        total = 0
        for fields in self.series.values():
            columns = list(fields.values())
            if len(columns) == 1 or all(c.timestamps is columns[0].timestamps for c in columns):
                total += len(columns[0])
            else:
                total += len(np.unique(np.concatenate([c.timestamps for c in columns])))
        return total

    def columns(self) -> Iterator[tuple[bytes, str, Column]]:
        for key, fields in self.series.items():
            for name, col in fields.items():
                yield key, name, col

    def __bool__(self) -> bool:
        table = self.table_if_current()
        if table is not None:
            return table.rows > 0
        return bool(self.series)

    def __repr__(self) -> str:
        return f"WriteBatch({self.database!r}, {self.value_count()} values)"


def partition_batch(batch: WriteBatch, group_of: Callable[[bytes], int]) -> dict[int, WriteBatch]:
    """Split a batch by a function of the series key (e.g. its shard), keeping every point.

    A table batch is split with numpy row gathers (O(groups x fields) Python work); a
    per-series batch by moving its column dicts.
    """
    table = batch.table_if_current()
    if table is None:
        parts: dict[int, WriteBatch] = {}
        for key, fields in batch.series.items():
            group = group_of(key)
            part = parts.get(group)
            if part is None:
                part = parts[group] = WriteBatch(batch.database)
            part.series[key] = fields
        return parts
    groups = np.fromiter(map(group_of, table.keys), dtype=np.int64, count=len(table.keys))
    distinct = np.unique(groups)
    if len(distinct) == 1:
        return {int(distinct[0]): batch}
    return {
        int(g): WriteBatch(batch.database, table=table.take_series(np.flatnonzero(groups == g)))
        for g in distinct
    }


class TypeConflictError(BadRequestError):
    """Two values of one field of one series, in one request, have different types."""


class _FieldAccumulator:
    __slots__ = ("timestamps", "type", "values")

    def __init__(self, field_type: FieldType) -> None:
        self.type = field_type
        self.timestamps: list[int] = []
        self.values: list[object] = []


class BatchBuilder:
    """Accumulates points of one request, then converts each field to numpy once."""

    def __init__(self, database: str) -> None:
        self.database = database
        self._series: dict[bytes, dict[str, _FieldAccumulator]] = {}

    def add(self, key: bytes, name: str, field_type: FieldType, ts: int, value: object) -> None:
        fields = self._series.get(key)
        if fields is None:
            fields = self._series[key] = {}
        acc = fields.get(name)
        if acc is None:
            acc = fields[name] = _FieldAccumulator(field_type)
        elif acc.type is not field_type:
            raise TypeConflictError(
                f"field '{name}' is {acc.type.label} earlier in this request and "
                f"{field_type.label} here"
            )
        acc.timestamps.append(ts)
        acc.values.append(value)

    def build(self) -> WriteBatch:
        batch = WriteBatch(self.database)
        for key, fields in self._series.items():
            shared_ts: np.ndarray | None = None
            shared_src: list[int] | None = None
            columns: dict[str, Column] = {}
            for name, acc in fields.items():
                # Fields written on every line of a series share one timestamp array.
                if shared_src is not None and acc.timestamps == shared_src:
                    ts = shared_ts
                else:
                    ts = np.array(acc.timestamps, dtype=np.int64)
                    shared_ts, shared_src = ts, acc.timestamps
                values = np.array(acc.values, dtype=_DTYPES[acc.type])
                if acc.type is FieldType.STRING:
                    values = _object_array(acc.values)
                columns[name] = Column(acc.type, ts, values)  # type: ignore[arg-type]
            batch.series[key] = columns
        return batch


def _object_array(items: list[object]) -> np.ndarray:
    out = np.empty(len(items), dtype=object)
    out[:] = items
    return out
