"""coordinator/metrics.py: the in-flight gauge counts the requests being served (scraped while
one runs: 1; after answers and failures: 0), and requests are counted and timed per route."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from prometheus_client import generate_latest

from coordinator.metrics import CoordinatorMetrics, MetricsMiddleware


def _call(app: Any, path: str) -> None:
    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        return None

    scope = {"type": "http", "method": "GET", "path": path, "headers": []}
    asyncio.run(app(scope, receive, send))


def test_in_flight_counts_requests_being_served() -> None:
    metrics = CoordinatorMetrics()
    during: list[bytes] = []

    async def inner(scope: Any, receive: Any, send: Any) -> None:
        during.append(generate_latest(metrics.registry))
        if scope["path"] == "/raise":
            raise RuntimeError("boom")
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    app = MetricsMiddleware(inner, metrics)
    _call(app, "/ok")
    with pytest.raises(RuntimeError, match="boom"):
        _call(app, "/raise")
    assert all(b"\npulsar_http_requests_in_flight 1.0\n" in text for text in during)
    after = generate_latest(metrics.registry)
    assert b"\npulsar_http_requests_in_flight 0.0\n" in after
    get = metrics.registry.get_sample_value
    labels = {"route": "unmatched", "method": "GET"}
    assert get("pulsar_http_requests_total", {**labels, "status": "200"}) == 1.0
    assert get("pulsar_http_requests_total", {**labels, "status": "500"}) == 1.0
    assert get("pulsar_http_request_duration_seconds_count", {"route": "unmatched"}) == 2.0
