"""Query endpoint: the native JSON query (`POST /api/v1/query`, schema in docs/api.md)."""

from __future__ import annotations

import time
from typing import Any

import orjson
from fastapi import APIRouter, Request, Response

from coordinator.body import read_body
from coordinator.state import ORJSONResponse, app_state
from pulsar_cluster.errors import BadRequestError
from pulsar_cluster.query.compile import compile_select
from pulsar_cluster.query.native import aggregate_items, parse_native_query
from pulsar_cluster.query.run import Catalog, run_select

__all__ = ["router", "NATIVE_QUERY_SCHEMA"]

router = APIRouter(tags=["query"])

_TIME = {"oneOf": [{"type": "integer"}, {"type": "string", "format": "date-time"}]}
#: The request body as JSON Schema, shown in OpenAPI at /docs (the contract is docs/api.md).
NATIVE_QUERY_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["db", "measurement"],
    "additionalProperties": False,
    "properties": {
        "db": {"type": "string"},
        "measurement": {"type": "string"},
        "fields": {"type": "array", "items": {"type": "string"}, "description": "omit: all"},
        "where": {
            "type": "string",
            "description": "InfluxQL condition: tags =, !=, =~ /re/, !~ /re/, IN ('a','b'), "
            "AND, OR, parentheses; field comparisons; time bounds",
        },
        "start": {**_TIME, "description": "inclusive; int ns or RFC 3339"},
        "end": {**_TIME, "description": "exclusive; int ns or RFC 3339"},
        "aggregate": {
            "type": "string",
            "description": "count sum mean median min max first last spread stddev mode "
            "distinct integral rate delta derivative percentile_<p> top_<n> bottom_<n>; "
            "omit: raw points",
        },
        "every": {"oneOf": [{"type": "string"}, {"type": "integer"}], "description": "window"},
        "group_by": {"type": "array", "items": {"type": "string"}},
        "fill": {"oneOf": [{"enum": ["null", "none", "previous", "linear"]}, {"type": "number"}]},
        "limit": {"type": "integer", "minimum": 1, "description": "rows per series"},
        "offset": {"type": "integer", "minimum": 0},
        "slimit": {"type": "integer", "minimum": 1},
        "order": {"enum": ["asc", "desc"]},
        "consistency": {"enum": ["leader", "any"]},
    },
}


@router.post(
    "/api/v1/query",
    summary="Native JSON query",
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": NATIVE_QUERY_SCHEMA}},
        }
    },
)
async def query_native(request: Request) -> Response:
    state = app_state(request)
    body = await read_body(request, state.settings.max_body_bytes)
    try:
        doc = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise BadRequestError(f"invalid JSON: {exc}") from None
    now = time.time_ns()
    query = parse_native_query(doc, now)
    spec = query.spec
    if query.needs_fields:
        fields = await Catalog(state.backend).field_keys(spec.database, spec.measurement)
        if not fields:
            return ORJSONResponse({"series": []})
        spec.items = aggregate_items(doc, fields, spec.every)
    plan, finish = compile_select(spec, now)
    series = await run_select(state.backend, plan, finish)
    return ORJSONResponse({"series": series})
