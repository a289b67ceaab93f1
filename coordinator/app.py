"""The coordinator's FastAPI application: the public HTTP API of DESIGN.md.

`create_app(backend)` wires routes to a StorageBackend (pulsar_cluster.nodeapi); the app holds
no data of its own. Parsing of write bodies runs in worker threads so that the event loop keeps
serving other requests.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

import orjson
from fastapi import FastAPI, Query, Request, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from coordinator.body import read_body
from coordinator.metrics import CoordinatorMetrics, MetricsMiddleware
from pulsar_cluster import __version__
from pulsar_cluster.batch import WriteBatch
from pulsar_cluster.errors import BadRequestError, OverloadedError, PulsarError
from pulsar_cluster.jsonpoints import parse_json_points
from pulsar_cluster.lineprotocol import parse_line_protocol
from pulsar_cluster.logs import get_logger
from pulsar_cluster.nodeapi import StorageBackend
from pulsar_cluster.query.native import parse_native_query
from pulsar_cluster.query.results import raw_series_rows

__all__ = ["create_app", "CoordinatorSettings"]

log = get_logger(__name__)


@dataclass(slots=True)
class CoordinatorSettings:
    #: Largest accepted write body, after gunzip (InfluxDB's default max-body-size is 25 MB).
    max_body_bytes: int = 25 * 1024 * 1024
    default_database: str = "default"


class ORJSONResponse(JSONResponse):
    def render(self, content: object) -> bytes:
        return orjson.dumps(content, option=orjson.OPT_SERIALIZE_NUMPY)


def create_app(backend: StorageBackend, settings: CoordinatorSettings | None = None) -> FastAPI:
    settings = settings or CoordinatorSettings()
    metrics = CoordinatorMetrics()

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        yield
        # Graceful stop: uvicorn has finished in-flight requests; flush and close storage.
        await backend.close()
        log.info("storage_closed")

    app = FastAPI(
        title="PulsarDB",
        version=__version__,
        description="Distributed time-series database: write, query and operate.",
        lifespan=lifespan,
        default_response_class=ORJSONResponse,
    )
    app.state.backend = backend
    app.state.metrics = metrics
    app.add_middleware(MetricsMiddleware, metrics=metrics)

    @app.exception_handler(PulsarError)
    async def pulsar_error(_: Request, exc: PulsarError) -> Response:
        headers = {}
        if isinstance(exc, OverloadedError):
            headers["Retry-After"] = str(max(1, round(exc.retry_after_s)))
            metrics.write_rejections.labels("overloaded").inc()
        return ORJSONResponse(exc.to_dict(), status_code=exc.status_code, headers=headers)

    async def ingest(batch: WriteBatch, protocol: str, body_bytes: int) -> Response:
        if batch:
            await backend.write(batch)
        metrics.bytes_received.labels(protocol).inc(body_bytes)
        metrics.points_written.labels(protocol).inc(batch.point_count())
        metrics.values_written.labels(protocol).inc(batch.value_count())
        return Response(status_code=204)

    async def parse_or_reject(reason: str, func, *args):  # type: ignore[no-untyped-def]
        try:
            return await asyncio.to_thread(func, *args)
        except BadRequestError:
            metrics.write_rejections.labels(reason).inc()
            raise

    # --- writes ------------------------------------------------------------------------------

    @app.post(
        "/api/v1/write",
        status_code=204,
        tags=["write"],
        summary='Write points as JSON (one point or {"points": [...]})',
    )
    async def write_json(request: Request, db: str = Query(settings.default_database)) -> Response:
        body = await read_body(request, settings.max_body_bytes)
        batch = await parse_or_reject("bad_json", parse_json_points, body, db)
        return await ingest(batch, "json", len(body))

    async def write_lines(request: Request, db: str, precision: str) -> Response:
        body = await read_body(request, settings.max_body_bytes)
        batch = await parse_or_reject("bad_line_protocol", parse_line_protocol, body, db, precision)
        return await ingest(batch, "line", len(body))

    @app.post("/write", status_code=204, tags=["write"], summary="InfluxDB 1.x line protocol write")
    async def write_v1(
        request: Request,
        db: str = Query(...),
        precision: str = Query("ns"),
        rp: str | None = Query(None),
    ) -> Response:
        return await write_lines(request, db, precision)

    @app.post(
        "/api/v2/write",
        status_code=204,
        tags=["write"],
        summary="InfluxDB 2.x line protocol write (bucket = database)",
    )
    async def write_v2(
        request: Request,
        bucket: str = Query(...),
        org: str | None = Query(None),
        precision: str = Query("ns"),
    ) -> Response:
        return await write_lines(request, bucket, precision)

    # --- queries -----------------------------------------------------------------------------

    @app.post("/api/v1/query", tags=["query"], summary="Native JSON query")
    async def query_native(request: Request) -> Response:
        try:
            doc = orjson.loads(await request.body())
        except orjson.JSONDecodeError as exc:
            raise BadRequestError(f"invalid JSON: {exc}") from None
        query = parse_native_query(doc)
        series = await backend.scan(query.scan)
        rows = await asyncio.to_thread(raw_series_rows, series, query.limit)
        return ORJSONResponse({"series": rows})

    # --- operations --------------------------------------------------------------------------

    version_headers = {
        "X-Influxdb-Version": "1.8.10-pulsardb-" + __version__,
        "X-Influxdb-Build": "OSS",
        "X-PulsarDB-Version": __version__,
    }

    @app.api_route("/ping", methods=["GET", "HEAD"], status_code=204, tags=["ops"])
    async def ping() -> Response:
        return Response(status_code=204, headers=version_headers)

    @app.get("/health", tags=["ops"], summary="Liveness: the process serves HTTP")
    async def health() -> Response:
        return ORJSONResponse({"name": "pulsardb", "status": "pass", "version": __version__})

    @app.get("/ready", tags=["ops"], summary="Readiness: storage accepts reads and writes")
    async def ready() -> Response:
        if await backend.ready():
            return ORJSONResponse({"status": "ready"})
        return ORJSONResponse({"status": "not ready"}, status_code=503)

    @app.get("/metrics", tags=["ops"], summary="Prometheus metrics")
    async def prometheus_metrics() -> Response:
        status = await backend.status()
        for key, value in status.items():
            if isinstance(value, int | float) and not isinstance(value, bool):
                metrics.storage.labels(key).set(value)
        return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)

    @app.post(
        "/api/v1/admin/flush",
        tags=["admin"],
        summary="Flush memtables to SSTables (wait=true: return when done)",
    )
    async def admin_flush(wait: bool = Query(True)) -> Response:
        if wait:
            await backend.flush()
        else:
            task = asyncio.create_task(backend.flush())
            app.state.background_flush = task
        return ORJSONResponse({"status": "done" if wait else "started"})

    @app.get("/api/v1/admin/status", tags=["admin"], summary="Storage status")
    async def admin_status() -> Response:
        return ORJSONResponse(await backend.status())

    return app
