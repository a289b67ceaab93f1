"""The narrow interface between a coordinator and the storage behind it.

The coordinator reaches data only through `StorageBackend`. Today `node.local.LocalNode` (one
in-process engine, replication factor 1) implements it; a remote node client and a
Raft-replicated shard router implement the same protocol, so the coordinator does not change
when storage becomes distributed.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

from pulsar_cluster.batch import Column, WriteBatch
from pulsar_cluster.catalogop import CatalogOp
from pulsar_cluster.query.partial import Partial
from pulsar_cluster.query.plan import Plan

__all__ = ["ScanRequest", "SeriesData", "TagMatcher", "StorageBackend"]


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


@dataclass(frozen=True, slots=True)
class TagMatcher:
    """A Prometheus label matcher on one tag: `=`, `!=`, `=~`, `!~`.

    Prometheus semantics: a missing tag reads as the empty string, and a regex must match the
    whole value (anchored, as Prometheus's `^(?s:re)$`: `.` matches a newline too). `name`
    "__name__" is not special here: the measurement is chosen by the caller.
    """

    name: str
    op: Literal["=", "!=", "=~", "!~"]
    value: str

    def compiled(self) -> re.Pattern[str] | None:
        """The regex (for =~ and !~), used with fullmatch; re.error if it does not compile."""
        if self.op in ("=~", "!~"):
            return re.compile(f"(?:{self.value})", re.DOTALL)
        return None

    def matches(self, tags: dict[str, str], pattern: re.Pattern[str] | None = None) -> bool:
        got = tags.get(self.name, "")
        if self.op == "=":
            return got == self.value
        if self.op == "!=":
            return got != self.value
        rx = pattern if pattern is not None else self.compiled()
        found = rx is not None and rx.fullmatch(got) is not None
        return found if self.op == "=~" else not found


class StorageBackend(Protocol):
    """What a coordinator needs from storage. All methods are safe to call concurrently.

    `write` returns only when the batch is durable (per the fsync policy) and visible to reads;
    it applies all of the batch or none of it.
    """

    async def write(self, batch: WriteBatch) -> None: ...

    async def scan(self, request: ScanRequest) -> list[SeriesData]: ...

    async def select_series(
        self,
        database: str,
        measurement: str,
        matchers: list[TagMatcher],
        start: int,
        end: int,
        fields: list[str] | None = None,
    ) -> list[SeriesData]:
        """Raw points in [start, end) of the measurement's series whose tags satisfy every
        matcher (regex selection for Prometheus remote_read). re.error for a bad regex."""

    async def query(self, plan: Plan) -> Partial:
        """The partial result of `plan` over every shard this backend covers, merged.

        A distributed backend sends `encode_plan(plan)` to one replica of each shard that can
        hold matching series (pulsar_cluster.query.partial, docs/format/partials.md) and merges
        the decoded partials with `merge(plan, partials)`. Raises QueryError for a plan that
        cannot run, LimitExceededError when the plan's limits are exceeded.
        """
        ...

    async def delete(self, plan: Plan) -> None:
        """Delete the points of the series matching a `kind="delete"` plan in [start, end).

        The series stay in the index (InfluxQL DELETE, not DROP SERIES). Returns when the delete
        is durable; a replicated backend proposes `encode_plan(plan)` through each shard's log so
        every replica resolves the same series at the same index.
        """
        ...

    async def catalog(self, op: CatalogOp) -> None:
        """Apply a database registry change (CREATE DATABASE, retention policy) everywhere;
        returns when durable. A replicated backend proposes it on every shard group."""
        ...

    async def drop_database(self, database: str) -> None:
        """Remove the database everywhere: registry entry, series, points. Durable on return."""
        ...

    async def drop_series(self, plan: Plan) -> None:
        """Drop the series matching a `kind="delete"` plan over all time (DROP SERIES,
        DROP MEASUREMENT): the index forgets them and their points are gone."""
        ...

    async def databases(self) -> list[str]: ...

    async def measurements(self, database: str) -> list[str]: ...

    async def flush(self) -> None: ...

    async def compact(self) -> None:
        """Full compaction of every shard this backend reaches; returns when done."""
        ...

    async def status(self) -> dict[str, Any]: ...

    async def caches(self) -> dict[str, Any]:
        """Cache statistics per node and shard, and their totals (pulsar_cluster/cachestats)."""
        ...

    async def clear_caches(self, cache: str = "all") -> None:
        """Empty the named caches ("all", "block", "last_value") everywhere; ValueError
        (standalone) or BadRequestError for an unknown name."""
        ...

    async def ready(self) -> bool: ...

    async def close(self) -> None: ...
