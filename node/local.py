"""An in-process storage node: one engine, replication factor 1 (`pulsar standalone`).

Implements pulsar_cluster.nodeapi.StorageBackend. Engine calls block (fsync, file reads), so they
run in worker threads; concurrent writes share WAL fsyncs through the engine's group commit.
"""

from __future__ import annotations

import asyncio
from typing import Any

from node.background import BackgroundWorker
from node.engine.engine import Engine, EngineOptions
from node.query import EngineSource, execute_partial
from pulsar_cluster.batch import Column, WriteBatch
from pulsar_cluster.nodeapi import ScanRequest, SeriesData
from pulsar_cluster.query.partial import Partial
from pulsar_cluster.query.plan import Plan

__all__ = ["LocalNode"]


class LocalNode:
    def __init__(self, data_dir: str, options: EngineOptions | None = None) -> None:
        self.engine = Engine(data_dir, options)
        self._worker = BackgroundWorker(self.engine)
        self._worker.start()

    async def write(self, batch: WriteBatch) -> None:
        await asyncio.to_thread(self.engine.apply, batch)

    async def scan(self, request: ScanRequest) -> list[SeriesData]:
        return await asyncio.to_thread(self._scan, request)

    def _scan(self, request: ScanRequest) -> list[SeriesData]:
        out = []
        for key, fields in self.engine.scan(
            request.database,
            request.measurement,
            request.tags,
            request.fields,
            request.start,
            request.end,
        ):
            columns = {n: Column(d.type, d.timestamps, d.values) for n, d in fields.items()}
            out.append(SeriesData(key, columns))
        return out

    async def query(self, plan: Plan) -> Partial:
        return await asyncio.to_thread(self._query, plan)

    def _query(self, plan: Plan) -> Partial:
        return execute_partial(plan, EngineSource(self.engine))

    async def databases(self) -> list[str]:
        return self.engine.databases()

    async def measurements(self, database: str) -> list[str]:
        return self.engine.measurements(database)

    async def flush(self) -> None:
        await asyncio.to_thread(self.engine.flush)

    async def status(self) -> dict[str, Any]:
        return await asyncio.to_thread(self.engine.status)

    async def ready(self) -> bool:
        return True

    async def close(self) -> None:
        self._worker.stop()
        await asyncio.to_thread(self.engine.close)
