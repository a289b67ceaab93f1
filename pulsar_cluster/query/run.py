"""Running plans against a storage backend: fan out, merge, finalise.

`QueryBackend.query(plan)` answers one plan with the merged partial of every shard it covers
(node.local.LocalNode runs the node executor in a thread; a cluster router sends the encoded plan
to one replica per shard and merges the partials with pulsar_cluster.query.partial.merge).
`Catalog` answers the schema questions planning needs (which measurements match a regex, which
names are tags) with meta plans, so it works the same on one node and on a cluster.
"""

from __future__ import annotations

import asyncio
from typing import Any, Protocol

from pulsar_cluster.errors import LimitExceededError
from pulsar_cluster.query.columnar import group_count
from pulsar_cluster.query.finish import Finish, finalize
from pulsar_cluster.query.finishrows import ROW_WISE
from pulsar_cluster.query.partial import Partial
from pulsar_cluster.query.plan import MAX_TIME, MIN_TIME, Limits, Plan, window_origin
from pulsar_cluster.tagprobe import TagKeyCache

__all__ = [
    "QueryBackend",
    "Catalog",
    "run_select",
    "run_meta",
    "small_answer",
    "INLINE_ANSWER_ROWS",
]


class QueryBackend(Protocol):
    async def query(self, plan: Plan) -> Partial: ...


async def _with_timeout(plan: Plan, coro: Any) -> Any:
    # asyncio.timeout, not wait_for: no extra task and event-loop turn per query (a small
    # query answered on the loop would otherwise still pay for them).
    try:
        async with asyncio.timeout(plan.limits.timeout_ms / 1000.0):
            return await coro
    except TimeoutError:
        raise LimitExceededError(
            f"query exceeded its time limit of {plan.limits.timeout_ms} ms", limit="timeout_ms"
        ) from None


#: Answers of at most this many rows are finalised on the event loop: building them takes
#: tens of microseconds, less than a hop to a worker thread and back (measured with
#: bench/bench_query.py: single-groupby-1-1-1 answers 60 rows); larger ones go to a thread so
#: that a big answer never stalls other requests.
INLINE_ANSWER_ROWS = 1024


def small_answer(plan: Plan, partial: Partial) -> bool:
    """Whether the answer of `partial` has at most INLINE_ANSWER_ROWS rows (the bound
    finalize itself checks against max_rows, with every window filled)."""
    if plan.every == 0 and not partial.raw and all(c.fn in ROW_WISE for c in plan.columns):
        return group_count(partial) <= INLINE_ANSWER_ROWS  # at most one row per group
    if partial.raw:
        points = sum(len(b.t) for blocks in partial.raw.values() for b in blocks)
        if points > INLINE_ANSWER_ROWS:
            return False
    per_group = 1
    if plan.every > 0:
        if plan.start == MIN_TIME or plan.end == MAX_TIME:
            return False
        per_group = max(1, (plan.end - 1 - window_origin(plan)) // plan.every + 1)
    if group_count(partial) * per_group > INLINE_ANSWER_ROWS:
        return False  # every group counts at least per_group rows: no need to look at them
    rows = 0
    for states in partial.groups.values():
        rows += max([per_group, *(len(s.get("w", ())) for s in states)])
        if rows > INLINE_ANSWER_ROWS:
            return False
    return True


async def run_select(
    backend: QueryBackend,
    plan: Plan,
    finish: Finish,
    tag_probe: dict[str, bool] | None = None,
) -> list[dict[str, Any]]:
    """The answer series of a select plan. `tag_probe`: the names planned with cached tag
    keys, for the backend to check (pulsar_cluster/tagprobe.py; StaleTagKeysError)."""
    # A backend that answers small plans at once (an in-process node: LocalNode.answer_now)
    # does so without the query call's coroutine and timeout.
    answer_now = getattr(backend, "answer_now", None)
    partial = answer_now(plan) if answer_now is not None else None
    if partial is None:
        if tag_probe is None:
            query = backend.query(plan)
        else:  # only a backend with a tag_key_cache gets a probe (ClusterBackend)
            query = backend.query(plan, tag_probe=tag_probe)  # type: ignore[call-arg]
        partial = await _with_timeout(plan, query)
    if small_answer(plan, partial):
        return finalize(plan, finish, partial)
    return await asyncio.to_thread(finalize, plan, finish, partial)


async def run_meta(backend: QueryBackend, plan: Plan) -> dict[str, set[tuple[str, ...]]]:
    partial: Partial = await _with_timeout(plan, backend.query(plan))
    return partial.meta


class Catalog:
    """Schema look-ups for planning, cached for the life of one request."""

    def __init__(self, backend: QueryBackend, limits: Limits | None = None) -> None:
        self._backend = backend
        self._limits = limits or Limits()
        self._cache: dict[tuple[str, ...], Any] = {}

    async def _meta(self, database: str, meta: str, measurement: str = "") -> Any:
        key = (database, meta, measurement)
        if key not in self._cache:
            plan = Plan(
                kind="meta",
                database=database,
                measurement=measurement,
                meta=meta,
                limits=self._limits,
            )
            # A backend that can answer index look-ups at once (an in-process node) does so
            # without the query call's timeout and coroutines: a small query's every planning
            # step asks for the measurement's tag keys.
            answer_now = getattr(self._backend, "answer_now", None)
            partial = answer_now(plan) if answer_now is not None else None
            if partial is not None:
                self._cache[key] = partial.meta
            else:
                self._cache[key] = await run_meta(self._backend, plan)
        return self._cache[key]

    async def databases(self) -> list[str]:
        rows = await self._meta("", "databases")
        return sorted(r[0] for r in rows.get("", ()))

    async def measurements(self, database: str) -> list[str]:
        rows = await self._meta(database, "measurements")
        return sorted(r[0] for r in rows.get("", ()))

    async def tag_keys(self, database: str, measurement: str) -> set[str]:
        # A backend that reads its index in process (LocalNode.tag_keys_now) answers without a
        # meta plan: every select asks this, and the plan costs more than the look-up.
        tag_keys_now = getattr(self._backend, "tag_keys_now", None)
        if tag_keys_now is not None:
            return set(tag_keys_now(database, measurement))
        rows = await self._meta(database, "tag_keys", measurement)
        keys = {r[0] for r in rows.get(measurement, ())}
        cache: TagKeyCache | None = getattr(self._backend, "tag_key_cache", None)
        if cache is not None:
            cache.put(database, measurement, keys)
        return keys

    def forget_tag_keys(self, database: str, measurement: str) -> None:
        """Drop the cached tag keys of a measurement and this request's meta answer for them:
        the next `tag_keys` asks the nodes."""
        self._cache.pop((database, "tag_keys", measurement), None)
        cache: TagKeyCache | None = getattr(self._backend, "tag_key_cache", None)
        if cache is not None:
            cache.forget(database, measurement)

    async def field_keys(self, database: str, measurement: str) -> list[str]:
        rows = await self._meta(database, "field_keys", measurement)
        return sorted({r[0] for r in rows.get(measurement, ())})

    async def field_types(self, database: str, measurement: str) -> dict[str, set[str]]:
        """Field name -> its type labels (a field may have different types in two series)."""
        rows = await self._meta(database, "field_keys", measurement)
        out: dict[str, set[str]] = {}
        for name, label in rows.get(measurement, ()):
            out.setdefault(name, set()).add(label)
        return out
