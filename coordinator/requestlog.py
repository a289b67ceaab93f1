"""Structured request logging with request ids: a pure ASGI middleware.

Every HTTP request gets an id: the client's `X-Request-ID` when it is a safe token (1-128 of
[A-Za-z0-9._:-], so a header cannot forge log lines), else a new random one. The id is
- returned in the response's `X-Request-ID` header,
- bound in structlog's context variables while the request runs, so every log event of the
  request (and of tasks it starts) carries `request_id`,
- logged with one `http_request` event per request: method, path (never the query string: it
  may hold credentials, e.g. InfluxDB's `u=`/`p=`), status, duration_ms, bytes_out, client.
Probe and scrape traffic (/health, /ready, /metrics, /ping) is logged at debug level unless it
fails; 5xx answers at warning level.

The access log can be turned off (`--access-log off`, InfluxDB's `[http] log-enabled = false`):
then only failed requests (5xx, or an exception) are logged; ids are still assigned, echoed and
bound, so the log lines a request does emit still carry its id. The line costs about 4 % of a
small query's instructions (counted by valgrind on a real server), plus its
write to the log.
"""

from __future__ import annotations

import random
import re
import time
from collections.abc import Callable
from typing import Any

import structlog

from coordinator.metrics import RequestMetrics
from pulsar_cluster.logs import get_logger

__all__ = [
    "REQUEST_ID_HEADER",
    "ACCESS_LOG_CHOICES",
    "access_log_enabled",
    "request_id_from",
    "RequestLogMiddleware",
]

REQUEST_ID_HEADER = b"x-request-id"
_SAFE_ID = re.compile(r"[A-Za-z0-9._:\-]{1,128}")
_QUIET_PATHS = frozenset({"/health", "/ready", "/metrics", "/ping"})

log = get_logger("pulsar.http")


def _request_id_var() -> Any:
    """structlog's context variable behind `bind_contextvars(request_id=...)`.

    Setting and resetting it directly is what bind_contextvars/reset_contextvars do, without
    their keyword dicts and name formatting on every request."""
    token = structlog.contextvars.bind_contextvars(request_id=None)["request_id"]
    token.var.reset(token)
    return token.var


#: Values of `--access-log` (the TOML file may also say true/false).
ACCESS_LOG_CHOICES = ("on", "off")


def access_log_enabled(value: object) -> bool:
    """`--access-log` / `access_log` as a bool; ValueError naming the value otherwise."""
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("on", "true"):
        return True
    if text in ("off", "false"):
        return False
    raise ValueError(f"invalid access_log {value!r}: use on or off")


def request_id_from(header: bytes | None) -> str:
    """The client's id when it is safe to log and echo, else a new random one."""
    if header is not None:
        try:
            text = header.decode("ascii")
        except UnicodeDecodeError:
            text = ""
        if _SAFE_ID.fullmatch(text):
            return text
    # 128 random bits as 32 hex digits, like a uuid4's hex. An id must be unique, not secret:
    # the process's PRNG (reseeded in forked children) spares a getrandom() call per request.
    return f"{random.getrandbits(128):032x}"


class RequestLogMiddleware:
    """`access_log()` is read per request (a configuration reload may change it); when it is
    False, requests that succeed (status below 500) are not logged.

    With `metrics` it also records each request's metrics (coordinator/metrics.py), from the
    status and time it tracks for the log line anyway: what MetricsMiddleware would record one
    layer further in, without that layer's frame, send wrapper and clock reads."""

    def __init__(
        self,
        app: Any,
        access_log: Callable[[], bool] = lambda: True,
        metrics: RequestMetrics | None = None,
    ) -> None:
        self.app = app
        self._access_log = access_log
        self._metrics = metrics
        self._id_var = _request_id_var()

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        incoming = None
        for name, value in scope.get("headers", []):
            if name == REQUEST_ID_HEADER:
                incoming = value
                break
        request_id = request_id_from(incoming)
        outcome = {"status": 500, "bytes_out": 0}

        async def send_with_id(message: Any) -> None:
            if message["type"] == "http.response.start":
                outcome["status"] = message["status"]
                headers = [h for h in message.get("headers", []) if h[0] != REQUEST_ID_HEADER]
                headers.append((REQUEST_ID_HEADER, request_id.encode()))
                message = {**message, "headers": headers}
            elif message["type"] == "http.response.body":
                outcome["bytes_out"] += len(message.get("body", b""))
            await send(message)

        metrics = self._metrics
        started = time.perf_counter()
        if metrics is not None:
            metrics.started()
        error: str | None = None
        # bind + reset by token: bound_contextvars() copies the whole context on every request
        token = self._id_var.set(request_id)
        try:
            await self.app(scope, receive, send_with_id)
        except BaseException as exc:
            error = repr(exc)
            raise
        finally:
            elapsed_s = time.perf_counter() - started
            if metrics is not None:
                metrics.finished(scope, outcome["status"], elapsed_s)
            if error is not None or outcome["status"] >= 500 or self._access_log():
                self._log(scope, request_id, outcome, elapsed_s, error)
            self._id_var.reset(token)

    @staticmethod
    def _log(
        scope: Any, request_id: str, outcome: dict[str, int], elapsed_s: float, error: str | None
    ) -> None:
        status = outcome["status"]
        path = scope.get("path", "")
        client = scope.get("client")
        fields = {
            "request_id": request_id,
            "method": scope.get("method"),
            "path": path,
            "status": status,
            "duration_ms": round(elapsed_s * 1000, 3),
            "bytes_out": outcome["bytes_out"],
            "client": f"{client[0]}:{client[1]}" if client else None,
        }
        if error is not None:
            log.error("http_request", error=error, **fields)
        elif status >= 500:
            log.warning("http_request", **fields)
        elif path in _QUIET_PATHS and status < 400:
            log.debug("http_request", **fields)
        else:
            log.info("http_request", **fields)
