"""Read consistency per query: `leader` (default) or `any` (docs/api.md).

`with_consistency(backend, level)` returns a view of the storage backend whose `query` passes
the level on to a backend that can choose replicas (coordinator.cluster.ClusterBackend: `any`
lets each shard be read from any replica, e.g. while its leader is being elected, at the price
of possibly missing the newest acknowledged writes). A standalone node has one copy: the level
changes nothing there. Everything else (deletes, DDL, status) is passed through untouched.
"""

from __future__ import annotations

from typing import Any

from pulsar_cluster.errors import BadRequestError
from pulsar_cluster.query.partial import Partial
from pulsar_cluster.query.plan import Plan

__all__ = ["CONSISTENCY_LEVELS", "with_consistency", "check_consistency"]

CONSISTENCY_LEVELS = ("leader", "any")


def check_consistency(value: str | None) -> str:
    """The level named by a request parameter (absent: leader); 400 for anything else."""
    if value is None or value == "":
        return "leader"
    if value not in CONSISTENCY_LEVELS:
        raise BadRequestError(f"invalid consistency '{value}': use leader or any")
    return value


class _ConsistentReads:
    __slots__ = ("_backend", "_consistency")

    def __init__(self, backend: Any, consistency: str) -> None:
        self._backend = backend
        self._consistency = consistency

    async def query(self, plan: Plan, **options: Any) -> Partial:
        # options: what else the backend's query takes (the tag-key probe, tagprobe.py)
        result: Partial = await self._backend.query(plan, consistency=self._consistency, **options)
        return result

    def __getattr__(self, name: str) -> Any:
        return getattr(self._backend, name)


def with_consistency(backend: Any, consistency: str) -> Any:
    """`backend` reading at `consistency`; itself when the level is the default or the backend
    has no replicas to choose from (it does not declare `supports_consistency`)."""
    if consistency == "leader" or not getattr(backend, "supports_consistency", False):
        return backend
    return _ConsistentReads(backend, consistency)
