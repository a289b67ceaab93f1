"""Status documents of shard replicas for the storage metrics (pulsar_cluster/storagemetrics.py)."""

from __future__ import annotations

from typing import Any

from node.engine.engine import Engine
from node.engine.lastcache import LastValueCache

__all__ = ["shard_document"]


def shard_document(
    engine: Engine, last_cache: LastValueCache | None = None, raft: dict[str, Any] | None = None
) -> dict[str, Any]:
    return {
        "engine": engine.status(),
        "points_written": engine.stats.points_written,
        "partitions": engine.partition_stats(),
        "block_cache": engine.block_cache_stats(),
        "last_value_cache": None if last_cache is None else last_cache.stats(),
        "rollup_cache": engine.rollups.stats(),
        "raft": raft,
    }
