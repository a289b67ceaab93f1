"""Operational endpoints: ping, health, readiness, Prometheus metrics."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from coordinator.state import ORJSONResponse, app_state
from pulsar_cluster import __version__

__all__ = ["router", "VERSION_HEADERS"]

router = APIRouter(tags=["ops"])

#: InfluxDB clients read these headers from /ping to learn the server version.
VERSION_HEADERS = {
    "X-Influxdb-Version": "1.8.10",
    "X-Influxdb-Build": "OSS",
    "X-PulsarDB-Version": __version__,
}


@router.api_route("/ping", methods=["GET", "HEAD"], status_code=204, summary="Ping (204)")
async def ping() -> Response:
    return Response(status_code=204, headers=VERSION_HEADERS)


@router.get("/health", summary="Liveness: the process serves HTTP")
async def health() -> Response:
    return ORJSONResponse(
        {
            "name": "pulsardb",
            "message": "ready for queries and writes",
            "status": "pass",
            "version": __version__,
        }
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
    return Response(generate_latest(state.metrics.registry), media_type=CONTENT_TYPE_LATEST)
