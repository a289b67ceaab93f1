"""The InfluxDB 1.x query endpoint: `GET|POST /query?db=&q=&epoch=` (InfluxQL subset).

Answers in InfluxDB's JSON shape: `{"results": [{"statement_id": i, "series": [...]}]}`, a
failed statement as `{"statement_id": i, "error": "..."}` (later statements still run, as in
InfluxDB). A query that does not parse is a 400 `{"error": "error parsing query: ..."}`. A
statement that exceeds a query limit makes the response status that limit's 4xx, with the same
body shape. Times are RFC 3339 strings, or integers in the `epoch` unit (ns, u, µ, ms, s, m, h).
"""

from __future__ import annotations

import time
from typing import Any
from urllib.parse import parse_qs

from fastapi import APIRouter, Request, Response

from coordinator.api.ops import VERSION_HEADERS
from coordinator.body import read_body
from coordinator.consistency import check_consistency, with_consistency
from coordinator.jsonresponse import PrebuiltJSONResponse, raw_headers
from coordinator.querystring import parse_query_string
from coordinator.state import app_state
from pulsar_cluster.errors import BadRequestError, LimitExceededError, PulsarError, QueryError
from pulsar_cluster.query.influxql.parser import parse_query
from pulsar_cluster.query.influxql.planner import execute_statement
from pulsar_cluster.timeutil import TIME_UNITS, format_rfc3339, format_rfc3339_many

__all__ = ["router", "format_times", "EPOCH_UNITS"]

router = APIRouter(tags=["query"])

EPOCH_UNITS = TIME_UNITS

#: InfluxDB's version headers on every answer, encoded once (coordinator/jsonresponse.py)
_HEADERS = raw_headers(VERSION_HEADERS)


#: Time columns of at least this many rows are formatted as RFC 3339 in one numpy pass
#: (timeutil.format_rfc3339_many); shorter ones value by value, below numpy's fixed cost.
_VECTOR_ROWS = 8


def format_times(series: list[dict[str, Any]], epoch: str | None) -> None:
    """Rewrite the time column in place: epoch integers or RFC 3339 strings."""
    divisor = EPOCH_UNITS[epoch] if epoch else 0
    if divisor == 1:
        return  # epoch=ns: the times are int ns already
    for s in series:
        if not s.get("columns") or s["columns"][0] != "time":
            continue
        rows = s["values"]
        if divisor:
            for row in rows:
                row[0] //= divisor
        elif len(rows) < _VECTOR_ROWS:
            for row in rows:
                row[0] = format_rfc3339(row[0])
        else:
            for row, text in zip(rows, format_rfc3339_many([r[0] for r in rows]), strict=True):
                row[0] = text


async def _params(request: Request) -> dict[str, str]:
    # The same as dict(request.query_params) (the last of repeated names wins), without
    # building Starlette's multidict on the way, and without a Python step per %-escape
    # (coordinator/querystring.py).
    params = parse_query_string(request.scope["query_string"])
    if request.method == "POST":
        ctype = request.headers.get("content-type", "")
        if ctype.startswith("application/x-www-form-urlencoded"):
            state = app_state(request)
            body = await read_body(request, state.settings.max_body_bytes)
            for key, values in parse_qs(body.decode("utf-8", "replace")).items():
                params.setdefault(key, values[-1])
    return params


def _query_parameter(name: str, description: str) -> dict[str, Any]:
    return {
        "name": name,
        "in": "query",
        "required": False,
        "schema": {"type": "string"},
        "description": description,
    }


# The parameters are read from request.query_params (and a form body) below; they are
# declared for OpenAPI here rather than as FastAPI parameters, which would validate them on
# every request (about a tenth of a small query's time) only for the handler to read them again.
_QUERY_PARAMETERS = [
    _query_parameter("q", "InfluxQL statements separated by ;"),
    _query_parameter("db", "database"),
    _query_parameter("epoch", "ns, u, ms, s, m, h; omit for RFC 3339"),
    _query_parameter("rp", "retention policy (accepted, ignored)"),
    _query_parameter("consistency", "leader (default) or any replica"),
]


@router.api_route(
    "/query",
    methods=["GET", "POST"],
    summary="InfluxQL query (InfluxDB 1.x compatible)",
    openapi_extra={"parameters": _QUERY_PARAMETERS},
)
async def query_influxql(request: Request) -> Response:
    state = app_state(request)
    params = await _params(request)
    text = params.get("q")
    database = params.get("db") or None
    epoch = params.get("epoch") or None
    if epoch is not None and epoch not in EPOCH_UNITS:
        raise BadRequestError(f"invalid epoch '{epoch}': use ns, u, ms, s, m or h")
    if not text or not text.strip():
        return PrebuiltJSONResponse({"error": 'missing required parameter "q"'}, 400, _HEADERS)
    try:
        statements = parse_query(text)
    except QueryError as exc:
        return PrebuiltJSONResponse({"error": exc.message}, 400, _HEADERS)
    now = time.time_ns()
    requested = [c.strip() for c in params.get("clusters", "").split(",") if c.strip()]
    try:
        local = with_consistency(state.backend, check_consistency(params.get("consistency")))
        backend, federated = state.federation.backend(
            local, requested or None, params.get("federation") or None
        )
    except BadRequestError as exc:
        return PrebuiltJSONResponse({"error": exc.message}, 400, _HEADERS)
    results: list[dict[str, Any]] = []
    status = 200
    for i, stmt in enumerate(statements):
        try:
            answer = await execute_statement(
                stmt, database, backend, now, state.settings.query_limits
            )
            format_times(answer.get("series", []), epoch)
            if federated is not None and federated.missing:
                answer["messages"] = [
                    {"level": "warning", "text": f"cluster '{m['cluster']}' missing: {m['error']}"}
                    for m in federated.missing
                ]
            results.append({"statement_id": i, **answer})
        except PulsarError as exc:
            if isinstance(exc, LimitExceededError):
                status = exc.status_code
            elif not isinstance(exc, BadRequestError):
                raise
            results.append({"statement_id": i, "error": exc.message})
    return PrebuiltJSONResponse({"results": results}, status, _HEADERS)
