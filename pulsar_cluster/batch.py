"""The columnar write batch: the one shape in which points travel down the stack.

A request is parsed once into a `WriteBatch`: for each series, for each field, a `Column` of
parallel numpy arrays (timestamps, values). Grouping by series happens once, in the parser;
everything below (routing, Raft, WAL, memtable) handles whole arrays, never one Python object
per point.

Contract: arrays in a Column are owned by the batch and must not be mutated after the batch is
built; they are not sorted and may hold duplicate timestamps (last one wins).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from enum import IntEnum

import numpy as np

from pulsar_cluster.errors import BadRequestError

__all__ = ["FieldType", "Column", "WriteBatch", "BatchBuilder", "TypeConflictError", "numpy_dtype"]


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


@dataclass(frozen=True, slots=True)
class Column:
    """Values of one field of one series: `timestamps[i]` (int64 ns) goes with `values[i]`."""

    type: FieldType
    timestamps: np.ndarray
    values: np.ndarray

    def __len__(self) -> int:
        return len(self.timestamps)


@dataclass(slots=True)
class WriteBatch:
    """Points of one database, grouped by series key, then by field name."""

    database: str
    series: dict[bytes, dict[str, Column]] = field(default_factory=dict)

    def value_count(self) -> int:
        return sum(len(col) for fields in self.series.values() for col in fields.values())

    def point_count(self) -> int:
        """Distinct (series, timestamp) pairs: what InfluxDB calls points."""
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
        return bool(self.series)


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
