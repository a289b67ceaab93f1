"""Child process of test_engine_crash.py: writes deterministic batches and reports each ack.

Usage: python engine_crash_child.py DIR FIRST_BATCH

Runs the engine with fsync=always, tiny memtables and an aggressive compaction policy, with the
real background worker, so that a SIGKILL from the parent lands during writes, flushes and
compactions. Operation i is a write batch, or every 15th a delete. After it returns, the child
writes "i\\n" to stdout (unbuffered): from then on operation i is acknowledged and must survive.
"""

from __future__ import annotations

import os
import sys

import numpy as np

from node.background import BackgroundWorker
from node.engine.engine import DeleteRequest, Engine, EngineOptions
from pulsar_cluster.batch import Column, FieldType, WriteBatch
from pulsar_cluster.series import make_series_key

HOSTS = 4
TS_RANGE = 400  # few distinct timestamps: many overwrites across flushes and partitions


def crash_options() -> EngineOptions:
    return EngineOptions(
        fsync="always",
        memtable_bytes=16 * 1024,
        partition_ns=100,
        block_points=64,
        compaction_trigger=2,
        max_immutable_memtables=64,
        max_tables_per_partition=10_000,
    )


def batch_points(i: int) -> dict[int, tuple[np.ndarray, np.ndarray]]:
    """Batch i: per host, unique timestamps and values that encode (i, host, ts)."""
    rng = np.random.default_rng(i)
    out = {}
    for h in range(HOSTS):
        ts = np.unique(rng.integers(0, TS_RANGE, size=int(rng.integers(5, 40))))
        out[h] = (ts.astype(np.int64), (i * 1_000_000 + h * 1_000 + ts).astype(np.float64))
    return out


def delete_of(i: int) -> DeleteRequest | None:
    """Every 15th operation is a delete of one host's time range instead of a batch."""
    if i % 15 != 14:
        return None
    rng = np.random.default_rng(10**6 + i)
    start = int(rng.integers(0, TS_RANGE))
    host = str(int(rng.integers(0, HOSTS)))
    return DeleteRequest("db", "m", start, start + int(rng.integers(1, 150)), {"host": host})


def make_batch(i: int) -> WriteBatch:
    batch = WriteBatch("db")
    for h, (ts, values) in batch_points(i).items():
        key = make_series_key("m", {"host": str(h)})
        batch.series[key] = {"v": Column(FieldType.FLOAT, ts, values)}
    return batch


def main() -> None:
    directory, first = sys.argv[1], int(sys.argv[2])
    engine = Engine(directory, crash_options())
    worker = BackgroundWorker(engine, poll_s=0.01)
    worker.start()
    i = first
    while True:  # ends by SIGKILL from the parent (which bounds it in time)
        delete = delete_of(i)
        if delete is not None:
            engine.delete(delete)
        else:
            engine.apply(make_batch(i))
        os.write(1, f"{i}\n".encode())
        i += 1


if __name__ == "__main__":
    main()
