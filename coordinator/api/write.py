"""Write endpoints: native JSON, InfluxDB line protocol v1 and v2."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import Any

from fastapi import APIRouter, Query, Request, Response

from coordinator.body import read_body
from coordinator.state import AppState, app_state
from pulsar_cluster.batch import WriteBatch
from pulsar_cluster.errors import BadRequestError

__all__ = ["router", "ingest"]

router = APIRouter(tags=["write"])


async def parse_or_reject(
    state: AppState, reason: str, parse: Callable[..., Awaitable[WriteBatch]], *args: Any
) -> WriteBatch:
    """Parse (in a worker); count a rejection by `reason` when the body is bad."""
    try:
        return await parse(*args)
    except BadRequestError:
        state.metrics.write_rejections.labels(reason).inc()
        raise


async def ingest(state: AppState, batch: WriteBatch, protocol: str, body_bytes: int) -> Response:
    """Write a parsed batch (durably) and account for it; 204 on success."""
    # Count before writing: a table batch counts in O(1) until storage materialises it.
    points, values = batch.point_count(), batch.value_count()
    if batch:
        await state.backend.write(batch)
    metrics = state.metrics
    metrics.bytes_received.labels(protocol).inc(body_bytes)
    metrics.points_written.labels(protocol).inc(points)
    metrics.values_written.labels(protocol).inc(values)
    return Response(status_code=204)


@router.post(
    "/api/v1/write",
    status_code=204,
    summary='Write points as JSON (one point or {"points": [...]})',
)
async def write_json(request: Request, db: str | None = Query(None)) -> Response:
    state = app_state(request)
    body = await read_body(request, state.settings.max_body_bytes)
    database = db or state.settings.default_database
    batch = await parse_or_reject(
        state, "bad_json", state.parser.parse_json, body, database, time.time_ns()
    )
    return await ingest(state, batch, "json", len(body))


async def write_lines(request: Request, db: str, precision: str) -> Response:
    state = app_state(request)
    body = await read_body(request, state.settings.max_body_bytes)
    batch = await parse_or_reject(
        state, "bad_line_protocol", state.parser.parse_lines, body, db, precision, time.time_ns()
    )
    return await ingest(state, batch, "line", len(body))


@router.post("/write", status_code=204, summary="InfluxDB 1.x line protocol write")
async def write_v1(
    request: Request,
    db: str = Query(..., description="database"),
    precision: str = Query("ns", description="ns, u, ms, s, m, h"),
    rp: str | None = Query(None, description="retention policy (accepted, not yet used)"),
) -> Response:
    return await write_lines(request, db, precision)


@router.post(
    "/api/v2/write", status_code=204, summary="InfluxDB 2.x line protocol write (bucket = database)"
)
async def write_v2(
    request: Request,
    bucket: str = Query(..., description="bucket: the database"),
    org: str | None = Query(None, description="organisation (accepted, ignored)"),
    precision: str = Query("ns", description="ns, us, ms, s"),
) -> Response:
    if not bucket:
        raise BadRequestError("bucket must not be empty")
    return await write_lines(request, bucket, precision)
