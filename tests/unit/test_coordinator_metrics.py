"""coordinator/metrics.py: the in-flight gauge counts the requests being served (scraped while
one runs: 1; after answers and failures: 0), and requests are counted and timed per route;
the same whether MetricsMiddleware or the request log middleware (as coordinator/app.py wires
it) records them."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from prometheus_client import generate_latest

from coordinator.metrics import CoordinatorMetrics, MetricsMiddleware, RequestMetrics
from coordinator.requestlog import RequestLogMiddleware


class _Route:
    path = "/things/{id}"


def _call(app: Any, path: str) -> None:
    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        return None

    scope = {"type": "http", "method": "GET", "path": path, "headers": [], "client": None}
    asyncio.run(app(scope, receive, send))


def _with_metrics_middleware(inner: Any, metrics: CoordinatorMetrics) -> Any:
    return MetricsMiddleware(inner, metrics)


def _with_request_log(inner: Any, metrics: CoordinatorMetrics) -> Any:
    return RequestLogMiddleware(inner, access_log=lambda: False, metrics=RequestMetrics(metrics))


@pytest.mark.parametrize("wrap", [_with_metrics_middleware, _with_request_log])
def test_requests_are_counted_timed_and_in_flight(wrap: Any) -> None:
    metrics = CoordinatorMetrics()
    during: list[bytes] = []

    async def inner(scope: Any, receive: Any, send: Any) -> None:
        during.append(generate_latest(metrics.registry))
        if scope["path"] == "/raise":
            raise RuntimeError("boom")
        if scope["path"] == "/routed":
            scope["route"] = _Route()  # as the router or DirectRoutes sets it
        status = 404 if scope["path"] == "/missing" else 200
        await send({"type": "http.response.start", "status": status, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    app = wrap(inner, metrics)
    for path in ("/ok", "/missing", "/routed", "/routed"):
        _call(app, path)
    with pytest.raises(RuntimeError, match="boom"):
        _call(app, "/raise")
    assert all(b"\npulsar_http_requests_in_flight 1.0\n" in text for text in during)
    assert b"\npulsar_http_requests_in_flight 0.0\n" in generate_latest(metrics.registry)
    get = metrics.registry.get_sample_value
    unmatched = {"route": "unmatched", "method": "GET"}
    assert get("pulsar_http_requests_total", {**unmatched, "status": "200"}) == 1.0
    assert get("pulsar_http_requests_total", {**unmatched, "status": "404"}) == 1.0
    assert get("pulsar_http_requests_total", {**unmatched, "status": "500"}) == 1.0
    routed = {"route": "/things/{id}", "method": "GET", "status": "200"}
    assert get("pulsar_http_requests_total", routed) == 2.0
    assert get("pulsar_http_request_duration_seconds_count", {"route": "unmatched"}) == 3.0
    assert get("pulsar_http_request_duration_seconds_count", {"route": "/things/{id}"}) == 2.0
    assert get("pulsar_http_request_duration_seconds_sum", {"route": "unmatched"}) > 0
