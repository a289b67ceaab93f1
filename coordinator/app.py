"""The coordinator's FastAPI application: the public HTTP API of DESIGN.md.

`create_app(backend)` wires the routers of coordinator/api/ to a StorageBackend
(pulsar_cluster.nodeapi); the app holds no data of its own. Errors are PulsarError subclasses,
turned into JSON `{"error": ...}` with their status code by the one handler below.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request, Response

from coordinator.api import admin, backup, influxql, internal, ops, prometheus, query, write
from coordinator.auth import AdminAuthMiddleware
from coordinator.directroutes import DirectRoutes
from coordinator.federation import Federation
from coordinator.leanapp import LeanFastAPI
from coordinator.metrics import CoordinatorMetrics, RequestMetrics
from coordinator.parsepool import ParsePool
from coordinator.requestlog import RequestLogMiddleware
from coordinator.state import AppState, CoordinatorSettings, ORJSONResponse
from pulsar_cluster import __version__
from pulsar_cluster.errors import OverloadedError, PulsarError
from pulsar_cluster.logs import get_logger
from pulsar_cluster.nodeapi import StorageBackend

__all__ = ["create_app", "CoordinatorSettings"]

log = get_logger(__name__)


def create_app(backend: StorageBackend, settings: CoordinatorSettings | None = None) -> FastAPI:
    settings = settings or CoordinatorSettings()
    state = AppState(
        backend,
        settings,
        CoordinatorMetrics(),
        ParsePool(settings.parse_workers),
        Federation(settings.cluster_name, settings.remote_clusters),
    )

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        yield
        # Graceful stop: uvicorn has finished in-flight requests; flush and close storage.
        state.parser.close()
        await state.federation.close()
        await backend.close()
        log.info("storage_closed")

    # LeanFastAPI: FastAPI minus the layers that do nothing here (coordinator/leanapp.py)
    app = LeanFastAPI(
        title="PulsarDB",
        version=__version__,
        description="Distributed time-series database: write, query and operate.",
        lifespan=lifespan,
        default_response_class=ORJSONResponse,
        # FastAPI's own OpenTelemetry instrumentation off: once anything installs a global
        # tracer provider (`opentelemetry-instrument`, the OTel operator's auto-instrumentation)
        # it records every request's `url.query`, InfluxDB clients' `u=`/`p=` credentials
        # included. Our spans never hold query strings (pulsar_cluster/tracing.py, --tracing).
        # Off, it also skips three provider look-ups per request.
        telemetry={"tracing": False, "metrics": False, "logs": False},
    )
    app.state.pulsar = state
    # innermost: the hot query endpoints skip the router, inside auth, metrics and logging
    app.add_middleware(DirectRoutes, app_ref=app, routes=list(influxql.router.routes))
    # Read per request: a configuration reload may change the token (coordinator/reloading.py).
    app.add_middleware(AdminAuthMiddleware, token=lambda: state.settings.admin_token)
    # outermost: logs every answer (or, access log off, every failure) with its request id,
    # and records the request metrics (coordinator/metrics.py) from the same status and time
    app.add_middleware(
        RequestLogMiddleware,
        access_log=lambda: state.settings.access_log,
        metrics=RequestMetrics(state.metrics),
    )

    @app.exception_handler(PulsarError)
    async def pulsar_error(_: Request, exc: PulsarError) -> Response:
        headers = {}
        if isinstance(exc, OverloadedError):
            headers["Retry-After"] = str(max(1, round(exc.retry_after_s)))
            state.metrics.write_rejections.labels("overloaded").inc()
        return ORJSONResponse(exc.to_dict(), status_code=exc.status_code, headers=headers)

    for module in (write, prometheus, query, influxql, internal, ops, admin, backup):
        app.include_router(module.router)
    return app
