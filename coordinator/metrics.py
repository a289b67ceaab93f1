"""Prometheus metrics of a coordinator process, and the ASGI middleware that records them.

Each app has its own registry (several apps may live in one test process).
"""

from __future__ import annotations

import time
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

__all__ = ["CoordinatorMetrics", "MetricsMiddleware", "RequestMetrics"]


class CoordinatorMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.requests = Counter(
            "pulsar_http_requests",
            "HTTP requests by route, method and status",
            ["route", "method", "status"],
            registry=r,
        )
        self.latency = Histogram(
            "pulsar_http_request_duration_seconds",
            "HTTP request latency by route",
            ["route"],
            registry=r,
            buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 10),
        )
        self.in_flight = Gauge(
            "pulsar_http_requests_in_flight", "Requests being served", registry=r
        )
        #: Requests in flight, counted by MetricsMiddleware in the event loop's thread; the
        #: gauge reads it when scraped, rather than two locked updates per request.
        self.in_flight_count = 0
        self.in_flight.set_function(lambda: self.in_flight_count)
        self.points_written = Counter(
            "pulsar_points_written", "Points acknowledged", ["protocol"], registry=r
        )
        self.values_written = Counter(
            "pulsar_values_written", "Field values acknowledged", ["protocol"], registry=r
        )
        self.bytes_received = Counter(
            "pulsar_write_bytes_received",
            "Write request body bytes (after gunzip)",
            ["protocol"],
            registry=r,
        )
        self.write_rejections = Counter(
            "pulsar_write_rejections", "Rejected write requests by reason", ["reason"], registry=r
        )
        self.storage = Gauge(
            "pulsar_storage", "Storage engine state (see the 'stat' label)", ["stat"], registry=r
        )


class RequestMetrics:
    """The per-request HTTP metrics of a CoordinatorMetrics: requests in flight, and each
    answered request counted and timed by its route template, method and status.

    Used by MetricsMiddleware, or by the request log middleware, which tracks the status and
    time of each request anyway (coordinator/app.py: one layer and send wrapper fewer)."""

    def __init__(self, metrics: CoordinatorMetrics) -> None:
        self.metrics = metrics
        # (route, method, status) -> (latency child, count child): `labels()` takes a lock and
        # builds the label tuple on every call; routes x methods x statuses are few.
        self._children: dict[tuple[str, str, str], tuple[Any, Any]] = {}

    def started(self) -> None:
        self.metrics.in_flight_count += 1

    def finished(self, scope: Any, status: int, elapsed_s: float) -> None:
        """After `started()`: the request of `scope` (its route set by the router or
        DirectRoutes) answered `status` after `elapsed_s` (500: it raised before answering)."""
        metrics = self.metrics
        metrics.in_flight_count -= 1
        name = getattr(scope.get("route"), "path", "unmatched")
        key = (name, scope["method"], str(status))
        children = self._children.get(key)
        if children is None:
            children = (metrics.latency.labels(name), metrics.requests.labels(*key))
            self._children[key] = children
        children[0].observe(elapsed_s)
        children[1].inc()


class MetricsMiddleware:
    """Pure ASGI middleware: counts and times every HTTP request by its route template."""

    def __init__(self, app: Any, metrics: CoordinatorMetrics) -> None:
        self.app = app
        self.metrics = metrics
        self._record = RequestMetrics(metrics)

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        status = {"code": 500}

        async def send_wrapper(message: Any) -> None:
            if message["type"] == "http.response.start":
                status["code"] = message["status"]
            await send(message)

        started = time.perf_counter()
        self._record.started()
        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            self._record.finished(scope, status["code"], time.perf_counter() - started)
