"""Admin endpoints under /api/v1/admin."""

from __future__ import annotations

import asyncio

from fastapi import APIRouter, Query, Request, Response

from coordinator.state import ORJSONResponse, app_state

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
