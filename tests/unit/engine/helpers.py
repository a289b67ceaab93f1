"""Shared helpers for engine tests: batches from plain dicts, and a naive reference model."""

from __future__ import annotations

import numpy as np

from node.engine.engine import Engine
from node.engine.index import storage_key
from pulsar_cluster.batch import Column, FieldType, WriteBatch
from pulsar_cluster.series import make_series_key

__all__ = ["batch_of", "read_all", "DB"]

DB = "db"
I64_MIN = int(np.iinfo(np.int64).min)
I64_MAX = int(np.iinfo(np.int64).max)


def batch_of(
    points: list[tuple[str, str, int, float]], database: str = DB, measurement: str = "cpu"
) -> WriteBatch:
    """(host, field, ts, value) points as a float batch; order and duplicates kept."""
    batch = WriteBatch(database)
    grouped: dict[tuple[str, str], tuple[list[int], list[float]]] = {}
    for host, name, ts, value in points:
        acc = grouped.setdefault((host, name), ([], []))
        acc[0].append(ts)
        acc[1].append(value)
    for (host, name), (tss, vals) in grouped.items():
        key = make_series_key(measurement, {"host": host})
        batch.series.setdefault(key, {})[name] = Column(
            FieldType.FLOAT, np.array(tss, dtype=np.int64), np.array(vals, dtype=np.float64)
        )
    return batch


def read_all(
    engine: Engine, database: str = DB, measurement: str = "cpu"
) -> dict[tuple[str, str, int], float]:
    """Every point the engine returns, as {(host, field, ts): value}."""
    out: dict[tuple[str, str, int], float] = {}
    for key, fields in engine.scan(database, measurement, {}, None, I64_MIN, I64_MAX):
        host = key.split(b"\x00")[2].decode()
        for name, data in fields.items():
            assert np.all(np.diff(data.timestamps) > 0), "timestamps must be sorted and unique"
            for ts, value in zip(data.timestamps.tolist(), data.values.tolist(), strict=True):
                out[(host, name, ts)] = value
    return out


def skey(host: str, database: str = DB, measurement: str = "cpu") -> bytes:
    return storage_key(database, make_series_key(measurement, {"host": host}))
