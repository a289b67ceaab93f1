"""Optional OpenTelemetry tracing: coordinator -> node spans joined by W3C `traceparent`.

Off by default. `--tracing console|otlp` (env PULSAR_TRACING) on `pulsar standalone`,
`pulsar coordinator` and `pulsar node` turns it on; it needs the install extra
`pulsardb[tracing]` (opentelemetry-sdk and the OTLP/HTTP exporter). Without the extra the
server refuses `--tracing` with a message saying so; with tracing off nothing of OpenTelemetry
is imported, and the hooks below cost one attribute check per call.

- `console`: every finished span as one JSON line on stdout (SimpleSpanProcessor: written at
  once; for debugging and tests).
- `otlp`: OTLP over HTTP/protobuf, batched; the exporter reads the standard OTEL_* variables
  (OTEL_EXPORTER_OTLP_ENDPOINT, OTEL_EXPORTER_OTLP_TRACES_ENDPOINT, OTEL_EXPORTER_OTLP_HEADERS,
  ...). OTEL_SERVICE_NAME and OTEL_RESOURCE_ATTRIBUTES are honoured in both modes;
  OTEL_TRACES_SAMPLER(_ARG) chooses the sampler (default: parent-based, always on).

Spans: `TracingMiddleware` makes one SERVER span per HTTP request (named `METHOD /route/template`),
continuing the caller's trace when a `traceparent` header arrives; `client_span` makes a CLIENT
span per node call (pulsar_cluster/nodeclient.py) and returns the headers that carry its
context to the node, whose middleware continues the trace.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from typing import Any

__all__ = [
    "TRACING_MODES",
    "add_tracing_flag",
    "TracingUnavailableError",
    "tracing_available",
    "configure_tracing",
    "shutdown_tracing",
    "client_span",
    "TracingMiddleware",
]

TRACING_MODES = ("off", "console", "otlp")
_REQUEST_ID = b"x-request-id"
_INSTALL_HINT = "pip install 'pulsardb[tracing]'"


def add_tracing_flag(p: Any) -> None:
    p.add_argument(
        "--tracing",
        choices=TRACING_MODES,
        default="off",
        help="OpenTelemetry tracing: off (default), console (spans as JSON lines on stdout) or "
        "otlp (OTEL_EXPORTER_OTLP_* variables); needs pulsardb[tracing]",
    )


class TracingUnavailableError(RuntimeError):
    """Tracing was asked for but the `tracing` extra is not installed."""


class _State:
    tracer: Any = None  # an opentelemetry Tracer once configured; None: tracing off
    provider: Any = None


def tracing_available() -> str | None:
    """None when the extra is installed, else why not (the import error)."""
    try:
        import opentelemetry.exporter.otlp.proto.http.trace_exporter
        import opentelemetry.sdk.trace  # noqa: F401
    except ImportError as exc:
        return f"{exc} ({_INSTALL_HINT})"
    return None


def configure_tracing(mode: str, service_name: str, instance: str | None = None) -> bool:
    """Install the tracer of this process; False for mode "off". TracingUnavailableError when
    the extra is missing, ValueError for an unknown mode."""
    if mode not in TRACING_MODES:
        raise ValueError(f"unknown tracing mode '{mode}': use {', '.join(TRACING_MODES)}")
    if mode == "off":
        return False
    missing = tracing_available()
    if missing is not None:
        raise TracingUnavailableError(f"--tracing {mode} needs the tracing extra: {missing}")
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import (
        BatchSpanProcessor,
        ConsoleSpanExporter,
        SimpleSpanProcessor,
    )

    attributes = {"service.name": os.environ.get("OTEL_SERVICE_NAME") or service_name}
    if instance:
        attributes["service.instance.id"] = instance
    # Resource.create merges OTEL_RESOURCE_ATTRIBUTES (and OTEL_SERVICE_NAME) from the env.
    provider = TracerProvider(resource=Resource.create(attributes))
    if mode == "console":
        exporter = ConsoleSpanExporter(formatter=lambda span: span.to_json(indent=None) + "\n")
        provider.add_span_processor(SimpleSpanProcessor(exporter))
    else:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    # Not installed as the global provider, on purpose: FastAPI's built-in instrumentation
    # would then add its own request spans, whose `url.query` attribute would carry InfluxDB's
    # `u=`/`p=` credentials. Our spans never record query strings (as coordinator/requestlog).
    _State.provider = provider
    _State.tracer = provider.get_tracer("pulsardb")
    return True


def shutdown_tracing() -> None:
    """Export what is buffered and stop (also done at interpreter exit by the SDK)."""
    if _State.provider is not None:
        _State.provider.shutdown()
    _State.provider = None
    _State.tracer = None


@contextlib.contextmanager
def _client_span(name: str, url: str) -> Iterator[dict[str, str]]:
    from opentelemetry import propagate, trace

    with _State.tracer.start_as_current_span(
        name, kind=trace.SpanKind.CLIENT, attributes={"server.address": url}
    ) as span:
        carrier: dict[str, str] = {}
        propagate.inject(carrier)
        try:
            yield carrier
        except BaseException as exc:
            span.set_status(trace.Status(trace.StatusCode.ERROR, str(exc)[:200]))
            raise


def client_span(name: str, url: str) -> contextlib.AbstractContextManager[dict[str, str]]:
    """A CLIENT span around one outgoing call; yields the headers to send (traceparent, ...),
    or an empty dict when tracing is off."""
    if _State.tracer is None:
        return contextlib.nullcontext({})
    return _client_span(name, url)


class TracingMiddleware:
    """Pure ASGI middleware: a SERVER span per HTTP request, continuing an incoming trace."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        tracer = _State.tracer
        if scope["type"] != "http" or tracer is None:
            await self.app(scope, receive, send)
            return
        from opentelemetry import propagate, trace

        carrier = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope.get("headers", [])}
        parent = propagate.extract(carrier)
        method = scope.get("method", "")
        status = {"code": 500}
        request_id: list[str] = []

        async def send_status(message: Any) -> None:
            if message["type"] == "http.response.start":
                status["code"] = message["status"]
                # The id coordinator/requestlog.py logs the request with: traces <-> logs.
                request_id.extend(
                    v.decode("latin-1") for k, v in message.get("headers", []) if k == _REQUEST_ID
                )
            await send(message)

        with tracer.start_as_current_span(
            f"{method} {scope.get('path', '')}",
            context=parent,
            kind=trace.SpanKind.SERVER,
            attributes={"http.request.method": method, "url.path": scope.get("path", "")},
        ) as span:
            try:
                await self.app(scope, receive, send_status)
            finally:
                route = getattr(scope.get("route"), "path", None)
                if route:  # the template, not the path: one span name per endpoint
                    span.update_name(f"{method} {route}")
                    span.set_attribute("http.route", route)
                span.set_attribute("http.response.status_code", status["code"])
                if request_id:
                    span.set_attribute("pulsar.request_id", request_id[0])
                if status["code"] >= 500:
                    span.set_status(trace.Status(trace.StatusCode.ERROR))
