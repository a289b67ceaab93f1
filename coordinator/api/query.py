"""Query endpoint: the native JSON query (`POST /api/v1/query`, schema in docs/api.md)."""

from __future__ import annotations

import time
from typing import Any

import orjson
from fastapi import APIRouter, Request, Response

from coordinator.body import read_body
from coordinator.consistency import with_consistency
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
        "clusters": {
            "type": "array",
            "items": {"type": "string"},
            "description": "federation: cluster names, this cluster's name, or '*' for all",
        },
        "federation": {
            "enum": ["strict", "partial"],
            "description": "strict: any failed cluster fails the query; partial: answer "
            "without it and list it in missing_clusters",
        },
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
    clusters, mode = _federation_keys(doc)
    query = parse_native_query(doc, now)
    local = with_consistency(state.backend, query.consistency)
    backend, federated = state.federation.backend(local, clusters, mode)
    spec = query.spec
    answer: dict[str, Any] = {"series": []}
    if query.needs_fields:
        fields = await Catalog(backend, state.settings.query_limits).field_keys(
            spec.database, spec.measurement
        )
        spec.items = aggregate_items(doc, fields, spec.every) if fields else []
    if not query.needs_fields or spec.items:
        plan, finish = compile_select(spec, now, state.settings.query_limits)
        answer["series"] = await run_select(backend, plan, finish)
    if federated is not None and federated.missing:
        answer["missing_clusters"] = federated.missing
    return ORJSONResponse(answer)


def _federation_keys(doc: Any) -> tuple[list[str] | None, str | None]:
    """Take `clusters` and `federation` out of the query document (the planner ignores them)."""
    if not isinstance(doc, dict):
        return None, None
    clusters = doc.pop("clusters", None)
    mode = doc.pop("federation", None)
    if clusters is not None and (
        not isinstance(clusters, list) or not all(isinstance(c, str) and c for c in clusters)
    ):
        raise BadRequestError("'clusters' must be a list of cluster names")
    if mode is not None and not isinstance(mode, str):
        raise BadRequestError("'federation' must be 'strict' or 'partial'")
    return clusters, mode
