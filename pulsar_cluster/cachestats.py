"""Cache statistics documents: what `GET /api/v1/admin/caches` answers (docs/api.md).

A node describes each shard replica's caches as

    {"block_cache": {"entries", "bytes", "capacity_bytes", "hits", "misses"},
     "last_value_cache": {"entries", "bytes", "max_entries", "hits", "misses"} | null,
     "rollup_cache": {"entries", "bytes", "capacity_bytes", "hits", "misses", "invalidations"}}

(null: that cache is not used there; cluster nodes have no last-value cache today). Hits and
misses count since the process started (a clear does not reset them, so rates stay monotonic
for Prometheus); entries and bytes are the current content. This module only adds documents up:
the coordinator totals nodes, a node totals its shards.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

__all__ = [
    "CACHE_NAMES",
    "check_cache_name",
    "caches_selected",
    "rollup_selected",
    "total_caches",
    "node_document",
]

#: Caches an admin request may name (`cache=` of POST /api/v1/admin/caches/clear).
CACHE_NAMES = ("block", "last_value", "rollup")


def check_cache_name(name: str) -> str:
    """`all` or one of CACHE_NAMES; ValueError naming the choices otherwise."""
    if name != "all" and name not in CACHE_NAMES:
        raise ValueError(f"unknown cache '{name}': use all, {', '.join(CACHE_NAMES)}")
    return name


def caches_selected(name: str) -> tuple[bool, bool]:
    """(block cache?, last-value cache?) selected by a checked cache name."""
    return name in ("all", "block"), name in ("all", "last_value")


def rollup_selected(name: str) -> bool:
    """Whether a checked cache name selects the rollup cache (node/engine/rollups.py)."""
    return name in ("all", "rollup")


def _add(total: dict[str, Any] | None, part: dict[str, Any] | None) -> dict[str, Any] | None:
    if part is None:
        return total
    out = dict(total or {})
    for key, value in part.items():
        if isinstance(value, int | float) and not isinstance(value, bool):
            out[key] = out.get(key, 0) + value
    return out


def total_caches(parts: Iterable[dict[str, Any]]) -> dict[str, Any]:
    """The sum of per-shard (or per-node totals) cache documents, with a hit ratio each."""
    block: dict[str, Any] | None = None
    last: dict[str, Any] | None = None
    rollup: dict[str, Any] | None = None
    for part in parts:
        block = _add(block, part.get("block_cache"))
        last = _add(last, part.get("last_value_cache"))
        rollup = _add(rollup, part.get("rollup_cache"))
    for doc in (block, last, rollup):
        if doc is not None:
            lookups = doc.get("hits", 0) + doc.get("misses", 0)
            doc["hit_ratio"] = round(doc.get("hits", 0) / lookups, 4) if lookups else None
    return {"block_cache": block, "last_value_cache": last, "rollup_cache": rollup}


def node_document(shards: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """One node's answer: its shards' caches and their total."""
    return {"shards": shards, "totals": total_caches(shards.values())}
