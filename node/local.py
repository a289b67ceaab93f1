"""An in-process storage node: one engine, replication factor 1 (`pulsar standalone`).

Implements pulsar_cluster.nodeapi.StorageBackend. Engine calls block (fsync, file reads), so they
run in worker threads; concurrent writes share WAL fsyncs through the engine's group commit.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator
from typing import Any

from node import ddl
from node.background import BackgroundWorker
from node.backup import CheckpointStore, stream_file
from node.engine.engine import Engine, EngineOptions
from node.inline import is_cheap_meta, small_select_series
from node.lastquery import CacheWarmer
from node.query import EngineSource, execute_delete, execute_partial
from node.reads import scan_series, select_series
from node.shardstats import shard_document
from pulsar_cluster.batch import WriteBatch
from pulsar_cluster.cachestats import (
    caches_selected,
    check_cache_name,
    node_document,
    rollup_selected,
)
from pulsar_cluster.catalogop import CatalogOp
from pulsar_cluster.nodeapi import ScanRequest, SeriesData, TagMatcher
from pulsar_cluster.query.partial import Partial
from pulsar_cluster.query.plan import Plan

__all__ = ["LocalNode"]


class LocalNode:
    def __init__(self, data_dir: str, options: EngineOptions | None = None) -> None:
        self.engine = Engine(data_dir, options)
        self.last_cache = self.engine.last_values  # kept by the engine's write path
        self._warmer = CacheWarmer(self.engine, self.last_cache)  # node/lastquery.py
        self._warmer.start()
        self._worker = BackgroundWorker(self.engine)
        self._worker.start()
        self.checkpoints = CheckpointStore(os.path.join(data_dir, "backup-checkpoints"))

    async def write(self, batch: WriteBatch) -> None:
        await asyncio.to_thread(self._write, batch)

    def _write(self, batch: WriteBatch) -> None:
        self.engine.apply(batch)

    async def scan(self, request: ScanRequest) -> list[SeriesData]:
        return await asyncio.to_thread(self._scan, request)

    def _scan(self, request: ScanRequest) -> list[SeriesData]:
        return scan_series(self.engine, request)

    async def select_series(
        self,
        database: str,
        measurement: str,
        matchers: list[TagMatcher],
        start: int,
        end: int,
        fields: list[str] | None = None,
    ) -> list[SeriesData]:
        for matcher in matchers:
            matcher.compiled()  # re.error here, in the caller, before any work
        return await asyncio.to_thread(
            select_series, self.engine, database, measurement, matchers, start, end, fields
        )

    async def query(self, plan: Plan) -> Partial:
        partial = self.answer_now(plan)
        if partial is not None:
            return partial
        return await asyncio.to_thread(self._query, plan)

    def answer_now(self, plan: Plan) -> Partial | None:
        """The answer of a plan cheap enough to compute on the calling thread (the event loop:
        well below a millisecond, less than a hop to a worker thread and back), else None:
        answer it with `query`. Cheap plans are index look-ups (pulsar_cluster.query.run's
        Catalog asks this first) and small selects (`_small_select`); run_select asks too, and
        spares such a query the timeout, which could not interrupt it anyway."""
        if is_cheap_meta(plan):
            return self._query(plan)
        source = EngineSource(self.engine)
        series = self._small_select(plan, source)
        if series is None:
            return None
        return execute_partial(plan, source, self.last_cache, series)

    def tag_keys_now(self, database: str, measurement: str) -> list[str]:
        """The measurement's tag keys, read from the index now (pulsar_cluster.query.run's
        Catalog asks this on every select, instead of a meta plan): never stale."""
        return self.engine.tag_keys(database, measurement)

    def _small_select(self, plan: Plan, source: EngineSource) -> list[bytes] | None:
        """The series `plan` reads when it is small enough for the event loop (node/inline.py:
        a time-bounded select of equalities over at most INLINE_SERIES_FIELD_HOURS series x
        fields x hours), else None."""
        found = small_select_series(plan, [source])
        return None if found is None else found[0]

    def _query(self, plan: Plan) -> Partial:
        return execute_partial(plan, EngineSource(self.engine), self.last_cache)

    async def delete(self, plan: Plan) -> None:
        await asyncio.to_thread(self._delete, plan)

    def _delete(self, plan: Plan) -> None:
        execute_delete(plan, self.engine)

    async def catalog(self, op: CatalogOp) -> None:
        await asyncio.to_thread(self.engine.catalog, op)

    async def drop_database(self, database: str) -> None:
        await asyncio.to_thread(ddl.drop_database, self.engine, database)

    async def drop_series(self, plan: Plan) -> None:
        await asyncio.to_thread(ddl.drop_series, self.engine, plan)

    async def databases(self) -> list[str]:
        return self.engine.databases()

    async def measurements(self, database: str) -> list[str]:
        return self.engine.measurements(database)

    async def flush(self) -> None:
        await asyncio.to_thread(self.engine.flush)

    async def compact(self) -> None:
        """Flush, then merge every partition into one table (drops overwritten/deleted)."""
        await asyncio.to_thread(self._compact)

    def _compact(self) -> None:
        self.engine.flush()
        self.engine.compact(full=True)

    async def status(self) -> dict[str, Any]:
        return await asyncio.to_thread(self.engine.status)

    async def ready(self) -> bool:
        return True

    # --- backup (docs/format/backup.md): the one engine is shard 0 ------------------------------

    async def backup_checkpoint(self, prefer: dict[int, str]) -> dict[str, Any]:
        made = await asyncio.to_thread(self.checkpoints.create, {0: self.engine})
        shard = made["shards"]["0"]
        shard.update(node=None, checkpoint=made["checkpoint"])
        return {
            "mode": "standalone",
            "shard_count": 1,
            "replication_factor": 1,
            "shard_map": None,
            "created_ns": made["created_ns"],
            "shards": {"0": shard},
        }

    def backup_stream(
        self, node: str | None, checkpoint: str, shard: int, path: str
    ) -> AsyncIterator[bytes]:
        return stream_file(self.checkpoints.file_path(checkpoint, shard, path))

    async def backup_release(self, checkpoints: list[tuple[str | None, str]]) -> int:
        return sum([self.checkpoints.release(cid) for _, cid in checkpoints])

    def shard_metrics(self) -> dict[str, dict[str, Any]]:
        """The engine as shard "0" for the storage metrics (pulsar_cluster/storagemetrics.py)."""
        return {"0": shard_document(self.engine, self.last_cache)}

    async def caches(self) -> dict[str, Any]:
        """Cache statistics (pulsar_cluster/cachestats.py): one node, "local", one shard."""
        shard = {
            "block_cache": self.engine.block_cache_stats(),
            "last_value_cache": self.last_cache.stats(),
            "rollup_cache": self.engine.rollups.stats(),
        }
        node = node_document({"0": shard})
        return {"mode": "standalone", "nodes": {"local": node}, "totals": node["totals"]}

    async def clear_caches(self, cache: str = "all") -> None:
        """Empty the block cache, the last-value cache or both (answers stay the same)."""
        block, last = caches_selected(check_cache_name(cache))
        if block:
            self.engine.clear_block_cache()
        if last:
            self.last_cache.clear()
        if rollup_selected(cache):
            self.engine.rollups.clear()

    async def close(self) -> None:
        await asyncio.to_thread(self._warmer.stop)
        self._worker.stop()
        await asyncio.to_thread(self.engine.close)
