"""An in-process storage node: one engine, replication factor 1 (`pulsar standalone`).

Implements pulsar_cluster.nodeapi.StorageBackend. Engine calls block (fsync, file reads), so they
run in worker threads; concurrent writes share WAL fsyncs through the engine's group commit.
"""

from __future__ import annotations

import asyncio
from typing import Any

from node.background import BackgroundWorker
from node.engine.engine import Engine, EngineOptions
from node.lastcache import LastValueCache
from node.query import EngineSource, execute_delete, execute_partial, is_cheap_meta
from node.reads import scan_series, select_series
from pulsar_cluster.batch import WriteBatch
from pulsar_cluster.nodeapi import ScanRequest, SeriesData, TagMatcher
from pulsar_cluster.query.conditions import TRUE, resolve_series
from pulsar_cluster.query.partial import Partial
from pulsar_cluster.query.plan import MAX_TIME, MIN_TIME, Plan

__all__ = ["LocalNode", "INLINE_SERIES_FIELD_HOURS"]

#: Selects estimated to read at most this many series x fields x hours run on the event loop
#: instead of a worker thread. At one point per 10 s that is about 6,000 points, a few hundred
#: microseconds of reading and reducing (bench/bench_query.py, single-groupby-1-1-1: 1 x 1 x 1);
#: the hop to a thread and back costs about 50-100 us and, on a busy machine, a wait for the
#: GIL. Anything bigger still runs in a thread, so the loop never stalls on a large query.
INLINE_SERIES_FIELD_HOURS = 16
_NS_PER_HOUR = 3_600_000_000_000


def _equalities_only(expr: Any) -> bool:
    """A tag predicate of `and`/`or` over `tag = value` comparisons only."""
    if not isinstance(expr, list) or not expr:
        return False
    if expr[0] == "cmp":
        return len(expr) == 4 and expr[2] == "="
    if expr[0] in ("and", "or"):
        return all(_equalities_only(e) for e in expr[1:])
    return False


class LocalNode:
    def __init__(self, data_dir: str, options: EngineOptions | None = None) -> None:
        self.engine = Engine(data_dir, options)
        self.last_cache = LastValueCache()
        self._worker = BackgroundWorker(self.engine)
        self._worker.start()

    async def write(self, batch: WriteBatch) -> None:
        await asyncio.to_thread(self._write, batch)

    def _write(self, batch: WriteBatch) -> None:
        self.engine.apply(batch)
        self.last_cache.observe(batch)

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
        if is_cheap_meta(plan) or self._small_select(plan):
            return self._query(plan)  # well below a millisecond: a thread hop would cost more
        return await asyncio.to_thread(self._query, plan)

    def _small_select(self, plan: Plan) -> bool:
        """Whether `plan` reads at most INLINE_SERIES_FIELD_HOURS series x fields x hours:
        a time-bounded select whose tag predicate uses only equalities (resolved here through
        the index in microseconds; regexes could scan many tag values on the event loop)."""
        if plan.kind != "select" or plan.start == MIN_TIME or plan.end == MAX_TIME:
            return False
        hours = max(1, -(-(plan.end - plan.start) // _NS_PER_HOUR))
        fields = len({c.field for c in plan.columns})
        if plan.tags == TRUE or not _equalities_only(plan.tags) or fields == 0:
            return False
        if hours * fields > INLINE_SERIES_FIELD_HOURS:
            return False
        series = resolve_series(
            plan.tags, EngineSource(self.engine), plan.database, plan.measurement
        )
        return len(series) * fields * hours <= INLINE_SERIES_FIELD_HOURS

    def _query(self, plan: Plan) -> Partial:
        return execute_partial(plan, EngineSource(self.engine), self.last_cache)

    async def delete(self, plan: Plan) -> None:
        await asyncio.to_thread(self._delete, plan)

    def _delete(self, plan: Plan) -> None:
        self.last_cache.clear()  # in-flight reads may not fill it with what is being deleted
        try:
            execute_delete(plan, self.engine)
        finally:
            self.last_cache.clear()

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

    async def close(self) -> None:
        self._worker.stop()
        await asyncio.to_thread(self.engine.close)
