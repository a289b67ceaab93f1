"""Deletes: the delete request (a WAL record payload) and the tombstone rules reads apply.

A delete names a database, a measurement, a tag filter (or explicit series keys) and a time
range [start, end). It is resolved to the series that exist when it is applied (deterministic on
every replica: they hold the same data at the same Raft index), recorded as a `Tombstone` in the
manifest, and applied (1) at once to the active memtable and (2) at read time to every older
memtable and table, until compaction rewrites those tables without the points.

A DROP (SERIES, MEASUREMENT, DATABASE) is a delete with `drop` set: besides the points, the
series leave the index (and the tombstone says so, for the next open); a drop with neither
`measurement` nor `series` is DROP DATABASE: every series of the database, and its registry
entry.

WAL payload (record type DELETE, docs/format/wal.md): UTF-8 JSON
`{"database": str, "measurement": str, "tags": {str: str}, "start": int, "end": int,
"series": [hex of series key, ...] | null, "drop": bool}` (`drop` absent: false).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

import numpy as np
import orjson

from node.engine.manifest import Tombstone
from pulsar_cluster.errors import BadRequestError

__all__ = ["DeleteRequest", "applicable", "apply_tombstones", "overlaps"]


@dataclass(frozen=True, slots=True)
class DeleteRequest:
    database: str
    measurement: str
    start: int
    end: int
    tags: dict[str, str] = field(default_factory=dict)
    #: Explicit series keys (pulsar_cluster/series.py) instead of measurement + tags.
    series: tuple[bytes, ...] | None = None
    #: DROP: the series leave the index too (see the module doc).
    drop: bool = False

    @property
    def whole_database(self) -> bool:
        return self.drop and self.series is None and not self.measurement

    def validate(self) -> None:
        if not self.database:
            raise BadRequestError("delete: database is required")
        if self.series is None and not self.measurement and not self.drop:
            raise BadRequestError("delete: measurement (or explicit series) is required")
        if self.start >= self.end:
            raise BadRequestError(f"delete: empty time range [{self.start}, {self.end})")

    def encode(self) -> bytes:
        return orjson.dumps(
            {
                "database": self.database,
                "measurement": self.measurement,
                "tags": self.tags,
                "start": self.start,
                "end": self.end,
                "series": None if self.series is None else [s.hex() for s in self.series],
                "drop": self.drop,
            }
        )

    @classmethod
    def decode(cls, payload: bytes) -> DeleteRequest:
        obj = orjson.loads(payload)
        series = obj.get("series")
        return cls(
            str(obj["database"]),
            str(obj["measurement"]),
            int(obj["start"]),
            int(obj["end"]),
            {str(k): str(v) for k, v in obj["tags"].items()},
            None if series is None else tuple(bytes.fromhex(s) for s in series),
            bool(obj.get("drop", False)),
        )


def overlaps(t: Tombstone, min_time: int, max_time: int) -> bool:
    """Does the tombstone's range meet the closed interval [min_time, max_time]?"""
    return t.start <= max_time and t.end > min_time


def applicable(
    tombstones: Iterable[Tombstone],
    database: str,
    seq: int,
    deletes_applied: int,
    min_time: int,
    max_time: int,
) -> list[Tombstone]:
    """Tombstones that still remove data from a source (table or memtable) of `seq`."""
    return [
        t
        for t in tombstones
        if t.seq > seq
        and t.id > deletes_applied
        and t.database == database
        and overlaps(t, min_time, max_time)
    ]


def apply_tombstones(
    skey: bytes, ts: np.ndarray, values: np.ndarray, tombstones: list[Tombstone]
) -> tuple[np.ndarray, np.ndarray]:
    """The points of one series field that survive the tombstones (vectorised per tombstone)."""
    keep: np.ndarray | None = None
    for t in tombstones:
        if not len(ts) or not t.covers(skey):
            continue
        if t.start > ts[-1] or t.end <= ts[0]:
            continue
        dead = (ts >= t.start) & (ts < t.end)
        keep = ~dead if keep is None else keep & ~dead
    if keep is None:
        return ts, values
    return ts[keep], values[keep]
