"""The narrow interface between a coordinator and the storage behind it.

The coordinator reaches data only through `StorageBackend`. Today `node.local.LocalNode` (one
in-process engine, replication factor 1) implements it; a remote node client and a
Raft-replicated shard router implement the same protocol, so the coordinator does not change
when storage becomes distributed.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

from pulsar_cluster.batch import Column, WriteBatch
from pulsar_cluster.query.partial import Partial
from pulsar_cluster.query.plan import Plan

__all__ = ["ScanRequest", "SeriesData", "StorageBackend"]


@dataclass(frozen=True, slots=True)
class ScanRequest:
    """Raw points of one measurement: series whose tags include `tags`, in [start, end)."""

    database: str
    measurement: str
    start: int
    end: int
    tags: dict[str, str] = field(default_factory=dict)
    fields: list[str] | None = None  # None: every field


@dataclass(frozen=True, slots=True)
class SeriesData:
    key: bytes  # series key (pulsar_cluster/series.py)
    columns: dict[str, Column]


class StorageBackend(Protocol):
    """What a coordinator needs from storage. All methods are safe to call concurrently.

    `write` returns only when the batch is durable (per the fsync policy) and visible to reads;
    it applies all of the batch or none of it.
    """

    async def write(self, batch: WriteBatch) -> None: ...

    async def scan(self, request: ScanRequest) -> list[SeriesData]: ...

    async def query(self, plan: Plan) -> Partial:
        """The partial result of `plan` over every shard this backend covers, merged.

        A distributed backend sends `encode_plan(plan)` to one replica of each shard that can
        hold matching series (pulsar_cluster.query.partial, docs/format/partials.md) and merges
        the decoded partials with `merge(plan, partials)`. Raises QueryError for a plan that
        cannot run, LimitExceededError when the plan's limits are exceeded.
        """
        ...

    async def databases(self) -> list[str]: ...

    async def measurements(self, database: str) -> list[str]: ...

    async def flush(self) -> None: ...

    async def status(self) -> dict[str, Any]: ...

    async def ready(self) -> bool: ...

    async def close(self) -> None: ...
