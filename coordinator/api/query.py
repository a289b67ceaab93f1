"""Query endpoints: the native JSON query."""

from __future__ import annotations

import asyncio

import orjson
from fastapi import APIRouter, Request, Response

from coordinator.state import ORJSONResponse, app_state
from pulsar_cluster.errors import BadRequestError
from pulsar_cluster.query.native import parse_native_query
from pulsar_cluster.query.results import raw_series_rows

__all__ = ["router"]

router = APIRouter(tags=["query"])


@router.post("/api/v1/query", summary="Native JSON query")
async def query_native(request: Request) -> Response:
    state = app_state(request)
    try:
        doc = orjson.loads(await request.body())
    except orjson.JSONDecodeError as exc:
        raise BadRequestError(f"invalid JSON: {exc}") from None
    query = parse_native_query(doc)
    series = await state.backend.scan(query.scan)
    rows = await asyncio.to_thread(raw_series_rows, series, query.limit)
    return ORJSONResponse({"series": rows})
