"""Admin endpoints under /api/v1/admin."""

from __future__ import annotations

import asyncio
from typing import Any

from fastapi import APIRouter, Query, Request, Response

from coordinator.state import ORJSONResponse, app_state
from pulsar_cluster.cachestats import check_cache_name
from pulsar_cluster.errors import BadRequestError

__all__ = ["router"]

router = APIRouter(prefix="/api/v1/admin", tags=["admin"])


@router.post("/flush", summary="Flush memtables to SSTables on every shard")
async def admin_flush(request: Request, wait: bool = Query(True)) -> Response:
    backend = app_state(request).backend
    if not wait:
        # Keep a reference so the task is not garbage-collected before it finishes.
        request.app.state.pending_flush = asyncio.create_task(backend.flush())
        return ORJSONResponse({"status": "started"})
    await backend.flush()
    return ORJSONResponse({"status": "done"})


@router.post("/compact", summary="Full compaction of every shard")
async def admin_compact(request: Request, wait: bool = Query(True)) -> Response:
    """Merge each partition's tables into one, dropping overwritten and deleted points.

    With wait=true (the default) it returns when every shard is done; with wait=false it
    starts the compaction and returns at once.
    """
    backend = app_state(request).backend
    if not wait:
        request.app.state.pending_compact = asyncio.create_task(backend.compact())
        return ORJSONResponse({"status": "started"})
    await backend.compact()
    return ORJSONResponse({"status": "done"})


@router.get("/status", summary="Storage status")
async def admin_status(request: Request) -> Response:
    return ORJSONResponse(await app_state(request).backend.status())


@router.get("/federation", summary="Remote clusters of this coordinator and their health")
async def admin_federation(request: Request) -> Response:
    federation = app_state(request).federation
    return ORJSONResponse({"cluster": federation.local_name, "remotes": await federation.health()})


# --- membership (cluster mode only; docs/api.md, docs/operations.md) ---------------------------


def _cluster(request: Request) -> Any:
    backend = app_state(request).backend
    if not hasattr(backend, "membership"):
        raise BadRequestError("membership changes need a cluster (this is a standalone server)")
    return backend


@router.get("/nodes", summary="Nodes, their replicas and leaderships, moves in progress")
async def admin_nodes(request: Request) -> Response:
    return ORJSONResponse(await _cluster(request).nodes())


@router.get("/moves", summary="Replica moves in progress")
async def admin_moves(request: Request) -> Response:
    nodes = await _cluster(request).nodes()
    return ORJSONResponse({"map_version": nodes["map_version"], "moves": nodes["moves"]})


@router.post("/nodes/{node_id}/drain", summary="Move every replica off a node")
async def admin_drain(request: Request, node_id: str) -> Response:
    return ORJSONResponse(
        await _cluster(request).membership("POST", f"/v1/members/{node_id}/drain")
    )


@router.delete("/nodes/{node_id}", summary="Remove a drained node from the cluster")
async def admin_remove_node(request: Request, node_id: str) -> Response:
    return ORJSONResponse(await _cluster(request).membership("DELETE", f"/v1/members/{node_id}"))


@router.post("/rebalance", summary="Even out replicas and preferred leaders across nodes")
async def admin_rebalance(request: Request) -> Response:
    return ORJSONResponse(await _cluster(request).membership("POST", "/v1/rebalance"))


@router.get("/caches", summary="Block cache and last-value cache statistics per node and shard")
async def admin_caches(request: Request) -> Response:
    return ORJSONResponse(await app_state(request).backend.caches())


@router.post("/caches/clear", summary="Empty the caches on every node (answers do not change)")
async def admin_caches_clear(request: Request, cache: str = Query("all")) -> Response:
    """`cache`: all (default), block (decoded SSTable blocks) or last_value (last() cache)."""
    try:
        check_cache_name(cache)
    except ValueError as exc:
        raise BadRequestError(str(exc)) from None
    backend = app_state(request).backend
    await backend.clear_caches(cache)
    return ORJSONResponse({"status": "done", "cache": cache, **await backend.caches()})


@router.post("/reload", summary="Re-read the configuration file here and on every node")
async def admin_reload(request: Request) -> Response:
    """Like SIGHUP: applies the settings that can change at runtime, lists the changed ones that
    need a restart; a broken file keeps the old configuration (400 naming the reason). In a
    cluster every node reloads its own file too (`nodes`: each node's answer or error)."""
    reloader = getattr(request.app.state, "reloader", None)
    if reloader is None:
        raise BadRequestError("this server was not started from a configuration it can reload")
    result = reloader.reload("http")
    reload_nodes = getattr(app_state(request).backend, "reload_nodes", None)
    if reload_nodes is not None:  # a cluster backend: the nodes are processes of their own
        result["nodes"] = await reload_nodes()
    return ORJSONResponse(result)
