"""Write endpoints: native JSON, InfluxDB line protocol v1 (`/write`) and v2 (`/api/v2/write`).

The two InfluxDB endpoints answer exactly as InfluxDB does, because client libraries parse the
answers (docs/api.md, "Compatibility"):

- success: 204, empty body (also for an empty v1 body, as InfluxDB 1.x);
- v1 failure (InfluxDB 1.x `httpd.Handler.httpError`): `{"error": "<message>"}`, the message
  also in the `X-Influxdb-Error` header (first 1024 bytes); a line protocol error reads
  `unable to parse '<line>': <reason>` as InfluxDB's parser words it, and we add the 1-based
  line number (` (line N)` and `"line": N`), which InfluxDB does not give;
- v2 failure (InfluxDB 2.x `kit/platform/errors`): `{"code": "<code>", "message": "<message>"}`
  with the code also in `X-Platform-Error-Code`; codes: invalid (400), request too large (413),
  unsupported media type (415), too many requests (429), unavailable (503), internal error.

Unlike InfluxDB, a request is all-or-nothing: one bad line rejects the whole body and nothing of
it is written (InfluxDB writes the good lines and reports a partial write).
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import Any

from fastapi import APIRouter, Query, Request, Response

from coordinator.api.ops import VERSION_HEADERS
from coordinator.body import read_body
from coordinator.state import AppState, ORJSONResponse, app_state
from pulsar_cluster.batch import WriteBatch
from pulsar_cluster.errors import (
    BadRequestError,
    LimitExceededError,
    LineProtocolError,
    OverloadedError,
    PulsarError,
    UnsupportedMediaTypeError,
)
from pulsar_cluster.lineprotocol import (
    V1_PRECISIONS,
    V2_PRECISIONS,
)

__all__ = ["router", "ingest", "parse_or_reject", "database_of_bucket", "checked_database"]

router = APIRouter(tags=["write"])

#: Longest excerpt of a bad line quoted back in an error message.
_MAX_LINE_SHOWN = 1024

#: InfluxDB 2.x error codes by HTTP status (kit/platform/errors: ErrorCodeToStatusCode).
_V2_CODES = {
    400: "invalid",
    401: "unauthorized",
    403: "forbidden",
    404: "not found",
    405: "method not allowed",
    413: "request too large",
    415: "unsupported media type",
    422: "unprocessable entity",
    429: "too many requests",
    503: "unavailable",
}


async def parse_or_reject(
    state: AppState, reason: str, parse: Callable[..., Awaitable[WriteBatch]], *args: Any
) -> WriteBatch:
    """Parse (in a worker process or thread); count a rejection by `reason` when it is bad."""
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
    return Response(status_code=204, headers=VERSION_HEADERS)


@router.post(
    "/api/v1/write",
    status_code=204,
    summary='Write points as JSON (one point or {"points": [...]})',
)
async def write_json(request: Request, db: str | None = Query(None)) -> Response:
    state = app_state(request)
    body = await read_body(request, state.settings.max_body_bytes)
    database = checked_database(db or state.settings.default_database)
    batch = await parse_or_reject(
        state, "bad_json", state.parser.parse_json, body, database, time.time_ns()
    )
    return await ingest(state, batch, "json", len(body))


# --- InfluxDB ------------------------------------------------------------------------------------


def checked_database(name: str) -> str:
    """A database name as given; 400 if it cannot be one (NUL separates names in keys)."""
    if not name:
        raise BadRequestError("database name must not be empty")
    if "\x00" in name:
        raise BadRequestError("database name must not contain NUL")
    return name


def database_of_bucket(bucket: str) -> str:
    """InfluxDB 1.8's mapping of a v2 bucket: `db/rp` and `db` both name database `db`."""
    database = bucket.split("/", 1)[0]
    if not database:
        raise BadRequestError(f"invalid bucket '{bucket}': use 'database' or 'database/rp'")
    return checked_database(database)


def _header_safe(text: str) -> str:
    """A header value: one line, at most 1024 bytes, UTF-8 bytes carried as Go's server does."""
    one_line = text.replace("\r", " ").replace("\n", " ")
    return one_line.encode()[:1024].decode("latin-1")


def _influx_message(exc: PulsarError) -> str:
    if isinstance(exc, LineProtocolError):
        shown = (exc.line_text or b"")[:_MAX_LINE_SHOWN].decode("utf-8", "replace")
        return f"unable to parse '{shown}': {exc.reason} (line {exc.line_number})"
    return exc.message


def _error_headers(exc: PulsarError) -> dict[str, str]:
    headers = dict(VERSION_HEADERS)
    if isinstance(exc, OverloadedError):
        headers["Retry-After"] = str(max(1, round(exc.retry_after_s)))
    return headers


def v1_error(exc: PulsarError) -> Response:
    """InfluxDB 1.x's error answer for `exc`."""
    if isinstance(exc, LimitExceededError) and exc.status_code == 413:
        message = "Request Entity Too Large"  # Go's http.StatusText(413), as InfluxDB sends
    else:
        message = _influx_message(exc)
    body: dict[str, Any] = {"error": message}
    if isinstance(exc, LineProtocolError):
        body["line"] = exc.line_number
    elif isinstance(exc, LimitExceededError):
        body.update(exc.details)
    headers = _error_headers(exc)
    headers["X-Influxdb-Error"] = _header_safe(message)
    return ORJSONResponse(body, status_code=exc.status_code, headers=headers)


def v2_error(exc: PulsarError) -> Response:
    """InfluxDB 2.x's error answer for `exc`."""
    code = _V2_CODES.get(exc.status_code, "internal error")
    if isinstance(exc, LimitExceededError) and exc.status_code == 413:
        message = "unable to read data: points batch is too large"
    elif exc.message.startswith("invalid gzip body"):
        message = f"unable to read data: {exc.message}"
    else:
        message = _influx_message(exc)
    body: dict[str, Any] = {"code": code, "message": message}
    if isinstance(exc, LineProtocolError):
        body["line"] = exc.line_number
    headers = _error_headers(exc)
    headers["X-Platform-Error-Code"] = code
    return ORJSONResponse(body, status_code=exc.status_code, headers=headers)


#: Content-Types that say the body is another protocol. Everything else is accepted on the line
#: protocol endpoints, as InfluxDB does: clients send text/plain, application/octet-stream,
#: and curl's default application/x-www-form-urlencoded.
_NOT_LINE_PROTOCOL = frozenset(("application/json", "application/x-protobuf"))


def _check_line_protocol_type(request: Request) -> None:
    media = request.headers.get("content-type", "").partition(";")[0].strip().lower()
    if media in _NOT_LINE_PROTOCOL:
        raise UnsupportedMediaTypeError(
            f"Content-Type '{media}' is not line protocol: send text/plain (JSON points go to "
            "/api/v1/write, Prometheus remote write to /api/v1/prom/write)"
        )


async def _write_lines(request: Request, database: str, precision: str, v2: bool) -> Response:
    state = app_state(request)
    _check_line_protocol_type(request)
    body = await read_body(request, state.settings.max_body_bytes)
    if v2 and not body.strip():
        raise BadRequestError("writing requires points")
    batch = await parse_or_reject(
        state,
        "bad_line_protocol",
        state.parser.parse_lines,
        body,
        database,
        precision,
        time.time_ns(),
    )
    return await ingest(state, batch, "line", len(body))


@router.post("/write", status_code=204, summary="InfluxDB 1.x line protocol write")
async def write_v1(
    request: Request,
    db: str | None = Query(None, description="database (created on first write)"),
    precision: str = Query("ns", description="n/ns, u/us, ms, s, m, h"),
    rp: str | None = Query(None, description="retention policy: accepted; data goes to `db`"),
    u: str | None = Query(None, description="user: accepted, not checked (no auth yet)"),
    p: str | None = Query(None, description="password: accepted, not checked"),
    consistency: str | None = Query(None, description="accepted; writes always need a quorum"),
) -> Response:
    try:
        if not db:
            raise BadRequestError("database is required")
        if precision and precision not in V1_PRECISIONS:
            raise BadRequestError(f'invalid precision "{precision}" (use n, u, ms, s, m or h)')
        return await _write_lines(request, checked_database(db), precision or "ns", v2=False)
    except PulsarError as exc:
        if isinstance(exc, OverloadedError):
            app_state(request).metrics.write_rejections.labels("overloaded").inc()
        return v1_error(exc)


@router.post(
    "/api/v2/write",
    status_code=204,
    summary="InfluxDB 2.x line protocol write (bucket = database, or database/rp)",
)
async def write_v2(
    request: Request,
    bucket: str | None = Query(None, description="bucket: 'database' or 'database/rp'"),
    org: str | None = Query(None, description="organisation: accepted, ignored"),
    orgID: str | None = Query(None, description="organisation id: accepted, ignored"),  # noqa: N803
    precision: str = Query("ns", description="ns, us, ms, s"),
) -> Response:
    try:
        if not bucket:
            raise BadRequestError("bucket is required")
        precision = precision or "ns"  # an empty precision means ns, as in InfluxDB 2.x
        if precision not in V2_PRECISIONS:
            raise BadRequestError("invalid precision; valid precision units are ns, us, ms, and s")
        return await _write_lines(request, database_of_bucket(bucket), precision, v2=True)
    except PulsarError as exc:
        if isinstance(exc, OverloadedError):
            app_state(request).metrics.write_rejections.labels("overloaded").inc()
        return v2_error(exc)
