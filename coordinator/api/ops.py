"""Operational endpoints: ping, health, readiness, Prometheus metrics."""

from __future__ import annotations

import asyncio

from fastapi import APIRouter, Request, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from coordinator.state import ORJSONResponse, app_state
from pulsar_cluster import __version__

__all__ = ["router", "VERSION_HEADERS"]

router = APIRouter(tags=["ops"])

#: The InfluxDB release whose HTTP API we speak: 1.8 serves both the 1.x API and the 2.x
#: compatibility endpoints (/api/v2/write, /health), which is exactly our surface. Clients
#: (influxdb-python, influxdb-client's ping()/version(), Grafana, Telegraf) read these headers;
#: InfluxDB sends them on every answer, we send them on /ping and on the write endpoints.
INFLUXDB_VERSION = "1.8.10"
VERSION_HEADERS = {
    "X-Influxdb-Version": INFLUXDB_VERSION,
    "X-Influxdb-Build": "OSS",
    "X-PulsarDB-Version": __version__,
}


@router.api_route(
    "/ping",
    methods=["GET", "HEAD"],
    status_code=204,
    summary="Ping: 204 with the InfluxDB version headers (?verbose=true: 200 with a body)",
)
async def ping(verbose: str | None = None) -> Response:
    if verbose not in (None, "", "0", "false"):
        # InfluxDB 1.x: `{"version": ...}` with 200 when verbose is set.
        return ORJSONResponse({"version": INFLUXDB_VERSION}, headers=VERSION_HEADERS)
    return Response(status_code=204, headers=VERSION_HEADERS)


@router.get("/health", summary="Liveness, in InfluxDB's /health shape")
async def health() -> Response:
    # The shape of InfluxDB 1.8/2.x /health (influxdb-client parses it into HealthCheck).
    return ORJSONResponse(
        {
            "name": "pulsardb",
            "message": "ready for queries and writes",
            "status": "pass",
            "checks": [],
            "version": __version__,
            "commit": "",
        },
        headers=VERSION_HEADERS,
    )


@router.get("/ready", summary="Readiness: storage accepts reads and writes")
async def ready(request: Request) -> Response:
    if await app_state(request).backend.ready():
        return ORJSONResponse({"status": "ready"})
    return ORJSONResponse({"status": "not ready"}, status_code=503)


@router.get("/metrics", summary="Prometheus metrics")
async def prometheus_metrics(request: Request) -> Response:
    state = app_state(request)
    status = await state.backend.status()
    for key, value in status.items():
        if isinstance(value, int | float) and not isinstance(value, bool):
            state.metrics.storage.labels(key).set(value)
    # In a thread: collectors may read engines under their locks (pulsar_cluster/storagemetrics).
    text = await asyncio.to_thread(generate_latest, state.metrics.registry)
    return Response(text, media_type=CONTENT_TYPE_LATEST)
