"""Prometheus metrics of the storage engines of one process, per shard replica.

Collected at scrape time from plain status documents (no state of its own, so a shard that goes
away simply stops being reported). A node process registers it with its shards' documents
(node/server.py); `pulsar standalone` registers it too, with its one engine as shard "0", so one
dashboard serves both. Names and labels are part of the operations contract: the Grafana
dashboard and the alerts (deploy/) use them, docs/operations.md lists them.

A shard document (built by node/shardstats.py):

    {"engine": Engine.status(), "points_written": int,
     "partitions": [(database, partition start ns, tables, bytes), ...],
     "block_cache": {...}, "last_value_cache": {...} | None,    (pulsar_cluster/cachestats.py)
     "raft": {"role", "term", "commit_index", "last_applied", "log_entries"} | None}
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterator
from typing import Any

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

__all__ = ["StorageCollector", "ShardSource", "ROLES", "metric_names"]

ShardSource = Callable[[], dict[str, dict[str, Any]]]
ROLES = ("follower", "candidate", "leader")

# (metric name, help, key in the status document); one line each, for reading
# ruff: noqa: E501
_ENGINE_GAUGES = (
    ("pulsar_engine_memtable_bytes", "Bytes in the active memtable", "memtable_bytes"),
    ("pulsar_engine_immutable_memtables", "Sealed memtables waiting for flush", "immutable_memtables"),
    ("pulsar_engine_wal_bytes", "Bytes of WAL segments on disk", "wal_bytes"),
    ("pulsar_engine_series", "Series in the index", "series"),
    ("pulsar_engine_tombstones", "Pending delete tombstones", "tombstones"),
    ("pulsar_engine_last_applied_index", "Last Raft index the engine applied", "last_index"),
)  # fmt: skip
_ENGINE_COUNTERS = (
    ("pulsar_engine_flushes", "Memtable flushes to SSTables", "flushes"),
    ("pulsar_engine_compactions", "Compaction runs (merges of tables)", "compactions"),
    ("pulsar_engine_compaction_read_bytes", "Bytes of tables merged away", "compaction_bytes_read"),
    ("pulsar_engine_compaction_written_bytes", "Bytes of tables compaction wrote", "compaction_bytes_written"),
)  # fmt: skip
_CACHES = (
    ("pulsar_block_cache", "block_cache"),
    ("pulsar_last_value_cache", "last_value_cache"),
    ("pulsar_rollup_cache", "rollup_cache"),
)
_RAFT = (
    ("pulsar_raft_term", "Raft term of the shard's group on this node", "term"),
    ("pulsar_raft_commit_index", "Raft commit index of the shard's group on this node", "commit_index"),
    ("pulsar_raft_applied_index", "last Raft index applied to this node's engine replica", "last_applied"),
    ("pulsar_raft_log_entries", "Entries in the shard's Raft log on this node", "log_entries"),
)  # fmt: skip


def _partition_label(start_ns: int) -> str:
    """A partition by the UTC start of its time range, e.g. 2026-01-01T00:00:00Z."""
    when = dt.datetime.fromtimestamp(start_ns / 1e9, tz=dt.UTC)
    return when.strftime("%Y-%m-%dT%H:%M:%SZ")


class StorageCollector(Collector):
    def __init__(self, source: ShardSource) -> None:
        self._source = source

    def describe(self) -> list[Metric]:
        return list(self._families({}))

    def collect(self) -> Iterator[Metric]:
        yield from self._families(self._source())

    def _families(self, shards: dict[str, dict[str, Any]]) -> Iterator[Metric]:
        s = ["shard"]
        for name, text, key in _ENGINE_GAUGES:
            g = GaugeMetricFamily(name, text, labels=s)
            for shard, doc in shards.items():
                g.add_metric([shard], doc["engine"][key])
            yield g
        for name, text, key in _ENGINE_COUNTERS:
            c = CounterMetricFamily(name, text, labels=s)
            for shard, doc in shards.items():
                c.add_metric([shard], doc["engine"][key])
            yield c
        c = CounterMetricFamily("pulsar_engine_points_written", "Points applied", labels=s)
        for shard, doc in shards.items():
            c.add_metric([shard], doc["points_written"])
        yield c
        labels = ["shard", "database", "partition"]
        tables = GaugeMetricFamily(
            "pulsar_engine_sstables", "SSTables per partition", labels=labels
        )
        size = GaugeMetricFamily(
            "pulsar_engine_sstable_bytes", "SSTable bytes per partition", labels=labels
        )
        for shard, doc in shards.items():
            for database, start, count, nbytes in doc["partitions"]:
                values = [shard, database, _partition_label(start)]
                tables.add_metric(values, count)
                size.add_metric(values, nbytes)
        yield tables
        yield size
        for prefix, key in _CACHES:
            what = key.replace("_", " ")
            hits = CounterMetricFamily(f"{prefix}_hits", f"Lookups the {what} answered", labels=s)
            misses = CounterMetricFamily(f"{prefix}_misses", f"Lookups the {what} missed", labels=s)
            nbytes = GaugeMetricFamily(
                f"{prefix}_bytes", f"Estimated bytes in the {what}", labels=s
            )
            entries = GaugeMetricFamily(f"{prefix}_entries", f"Entries in the {what}", labels=s)
            for shard, doc in shards.items():
                stats = doc.get(key)
                if stats is None:
                    continue  # not used in this process (cluster nodes: no last-value cache)
                hits.add_metric([shard], stats["hits"])
                misses.add_metric([shard], stats["misses"])
                nbytes.add_metric([shard], stats["bytes"])
                entries.add_metric([shard], stats["entries"])
            yield from (hits, misses, nbytes, entries)
        leader = GaugeMetricFamily(
            "pulsar_raft_is_leader", "1 if this node leads the shard's Raft group", labels=s
        )
        role = GaugeMetricFamily(
            "pulsar_raft_role",
            "1 for the shard's current Raft role on this node",
            labels=["shard", "role"],
        )
        raft = [(GaugeMetricFamily(name, text, labels=s), key) for name, text, key in _RAFT]
        for shard, doc in shards.items():
            st = doc.get("raft")
            if st is None:
                continue  # standalone: no Raft
            leader.add_metric([shard], 1 if st["role"] == "leader" else 0)
            for r in ROLES:
                role.add_metric([shard, r], 1 if st["role"] == r else 0)
            for family, key in raft:
                family.add_metric([shard], st[key])
        yield leader
        yield role
        yield from (family for family, _ in raft)


def metric_names() -> set[str]:
    """Every sample name the collector can export (tests check dashboards against these)."""
    names: set[str] = set()
    for family in StorageCollector(dict).describe():
        suffixes = ["_total"] if family.type == "counter" else [""]
        names.update(family.name + suffix for suffix in suffixes)
    return names
