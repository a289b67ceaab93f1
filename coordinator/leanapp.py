"""FastAPI without the per-request layers that provably do nothing for our HTTP requests.

For every request FastAPI's `__call__` asks its OpenTelemetry instrumentation whether it is on,
then Starlette's `__call__` runs the middleware stack, whose outer layers are
`ServerErrorMiddleware` (a 500 for an unhandled exception), `ExceptionTelemetryMiddleware`
and `AppBodyLimitMiddleware`, and only then our middlewares (request log, metrics, auth,
DirectRoutes). Those five steps cost about 70 K instructions per request (valgrind, in process),
a twentieth of a small query; three of them have nothing to do in our configuration:

- the instrumentation is off (`telemetry` all False in coordinator/app.py), so FastAPI's
  `__call__` always takes the plain path, and `ExceptionTelemetryMiddleware` only records
  exceptions for a request the instrumentation started (`"fastapi.telemetry"` in the scope);
- `AppBodyLimitMiddleware` passes every request through unless the app has a `max_body_size`
  (ours has none: bodies are bounded by coordinator/body.py) or a parent application put its
  limit in the scope.

`LeanFastAPI.__call__` therefore runs an HTTP request through a second chain that starts at a
copy of the stack's `ServerErrorMiddleware` whose inner app is the stack's first user
middleware, when all of this holds for that request: telemetry off in the app's
configuration, no `max_body_size`, no `root_path`, and neither a body limit nor a telemetry
record of a parent application in the scope. Anything else (lifespan, websockets, another
configuration) takes FastAPI's own path. If FastAPI's stack ever has another shape, the
second chain is not built and every request takes FastAPI's path.
"""

from __future__ import annotations

import copy
from typing import Any

from fastapi import FastAPI
from fastapi._body_limit import AppBodyLimitMiddleware
from fastapi.telemetry._asgi import ExceptionTelemetryMiddleware
from starlette.middleware.body_limit import MAX_BODY_SIZE_SCOPE_KEY
from starlette.middleware.errors import ServerErrorMiddleware

__all__ = ["LeanFastAPI", "lean_chain"]

_TELEMETRY_SCOPE_KEY = "fastapi.telemetry"


def lean_chain(stack: Any) -> Any | None:
    """The stack without its telemetry and body-limit layers, or None if it has another shape.

    Expected: ServerErrorMiddleware -> ExceptionTelemetryMiddleware -> AppBodyLimitMiddleware
    (without a limit: its `app` is the next layer itself) -> the user middlewares.
    """
    if not isinstance(stack, ServerErrorMiddleware):
        return None
    telemetry = stack.app
    if not isinstance(telemetry, ExceptionTelemetryMiddleware):
        return None
    body_limit = telemetry.app
    if not isinstance(body_limit, AppBodyLimitMiddleware):
        return None
    lean = copy.copy(stack)  # the same handler and debug setting, another inner app
    lean.app = body_limit.app
    return lean


class LeanFastAPI(FastAPI):
    """A FastAPI application whose HTTP requests skip the passthrough layers (module doc)."""

    _lean_stack: Any = None

    def build_middleware_stack(self) -> Any:
        stack = super().build_middleware_stack()
        self._lean_stack = lean_chain(stack) if self.max_body_size is None else None
        return stack

    def _telemetry_off(self) -> bool:
        config = self._telemetry
        return not (config["tracing"] or config["metrics"] or config["logs"])

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if (
            scope["type"] == "http"
            and not self.root_path
            and MAX_BODY_SIZE_SCOPE_KEY not in scope
            and _TELEMETRY_SCOPE_KEY not in scope
            and self._telemetry_off()
        ):
            if self.middleware_stack is None:
                self.middleware_stack = self.build_middleware_stack()
            lean = self._lean_stack
            if lean is not None:
                scope["app"] = self  # as Starlette's __call__
                await lean(scope, receive, send)
                return
        await super().__call__(scope, receive, send)
