"""Per-shard storage metrics from real engines (no server): names, labels and values."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from node.engine.engine import Engine
from node.engine.lastcache import LastValueCache
from node.shardstats import shard_document
from pulsar_cluster.batch import Column, FieldType, WriteBatch
from pulsar_cluster.storagemetrics import StorageCollector, metric_names

DAY = 86_400 * 10**9


def _batch(day: int, n: int) -> WriteBatch:
    ts = np.arange(n, dtype=np.int64) + day * DAY
    col = Column(FieldType.FLOAT, ts, np.arange(n, dtype=np.float64))
    return WriteBatch("db", {b"cpu,host=a": {"v": col}})


def test_metrics_per_shard_and_partition(tmp_path: Path) -> None:
    engines = {str(i): Engine(str(tmp_path / str(i))) for i in range(2)}
    try:
        for day in (0, 1):
            engines["1"].apply(_batch(day, 100))
            engines["1"].flush()
        engines["1"].apply(_batch(1, 50))
        engines["1"].flush()
        engines["1"].compact(full=True)
        last = LastValueCache()
        raft = {"role": "leader", "term": 3, "commit_index": 9, "last_applied": 8, "log_entries": 4}

        def source() -> dict:
            return {
                "0": shard_document(engines["0"], last, raft),
                "1": shard_document(engines["1"]),
            }

        registry = CollectorRegistry()
        registry.register(StorageCollector(source))
        families = {
            f.name: f for f in text_string_to_metric_families(generate_latest(registry).decode())
        }
    finally:
        for engine in engines.values():
            engine.close()
    exported = {s.name for f in families.values() for s in f.samples}
    assert exported <= metric_names()
    tables = {
        (s.labels["shard"], s.labels["partition"]): s.value
        for s in families["pulsar_engine_sstables"].samples
    }
    assert tables == {("1", "1970-01-01T00:00:00Z"): 1, ("1", "1970-01-02T00:00:00Z"): 1}
    comp = {s.labels["shard"]: s.value for s in families["pulsar_engine_compactions"].samples}
    assert comp == {"0": 0, "1": 1}  # day 1 had two tables, merged once
    read = families["pulsar_engine_compaction_read_bytes"].samples[1].value
    assert read > families["pulsar_engine_compaction_written_bytes"].samples[1].value > 0
    points = {s.labels["shard"]: s.value for s in families["pulsar_engine_points_written"].samples}
    assert points == {"0": 0, "1": 250}
    # Raft state only where there is Raft; the last-value cache only where one is used.
    assert [s.labels for s in families["pulsar_raft_term"].samples] == [{"shard": "0"}]
    roles = {s.labels["role"]: s.value for s in families["pulsar_raft_role"].samples}
    assert roles == {"follower": 0, "candidate": 0, "leader": 1}
    assert [s.labels["shard"] for s in families["pulsar_last_value_cache_entries"].samples] == ["0"]
