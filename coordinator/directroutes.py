"""Hot endpoints served without FastAPI's router and request handler: a pure ASGI middleware.

A small query spends most of its time outside the query engine: Starlette's router tries every
route's regex in turn, and FastAPI's request handler solves (empty) dependencies, wraps the
endpoint and checks its answer. For an endpoint that takes only the `Request` and returns a
`Response` none of that does anything, so `DirectRoutes` calls such endpoints itself when the
path and method match exactly (measured with bench/cpu_query.py: about a tenth of the server CPU
of single-groupby-1-1-1).

What stays the same for a direct call:
- the outer middlewares (request log, metrics, admin auth, tracing) run as before: this one is
  the innermost user middleware;
- `scope["route"]`, `scope["endpoint"]` and `scope["path_params"]` are set as the router sets
  them, so metrics and spans are labelled with the route's template;
- exceptions go through the app's own exception handlers (the `PulsarError` handler of
  coordinator/app.py, FastAPI's HTTPException handler); anything else propagates to Starlette's
  ServerErrorMiddleware (a 500), as it does from the router;
- the route stays registered, so OpenAPI documents it and other methods (HEAD) and a non-empty
  `root_path` take the normal path.
"""

from __future__ import annotations

import inspect
from typing import Any

from starlette.requests import Request
from starlette.routing import Match

__all__ = ["DirectRoutes"]

#: The scope key under which FastAPI's routers keep their routing context (fastapi/routing.py)
_FASTAPI_SCOPE_KEY = "fastapi"


class DirectRoutes:
    """Serves requests whose (method, path) is one of `routes`' directly.

    `routes` are APIRoutes of routers included without prefix or dependencies, each with an
    endpoint that takes just the Request; `app_ref` is the FastAPI application, whose exception
    handlers answer what the endpoints raise.
    """

    def __init__(self, app: Any, app_ref: Any, routes: list[Any]) -> None:
        self.app = app
        self._app_ref = app_ref
        self._table: dict[tuple[str, str], Any] = {}
        for route in routes:
            dependant = route.dependant
            # Only endpoints that declare nothing but the Request: nothing to solve or check.
            if dependant.dependencies or dependant.query_params or dependant.body_params:
                raise ValueError(f"route {route.path} declares parameters: not servable directly")
            for method in route.methods or ():
                if method != "HEAD":
                    self._table[(method, route.path)] = route

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http" or scope.get("root_path"):
            await self.app(scope, receive, send)
            return
        route = self._table.get((scope["method"], scope["path"]))
        if route is None:
            await self.app(scope, receive, send)
            return
        if _FASTAPI_SCOPE_KEY in scope or "path_params" in scope:
            # routed here by a parent application: let the route apply its context
            match, child_scope = route.matches(scope)
            if match is not Match.FULL:  # pragma: no cover - the table holds exact paths only
                await self.app(scope, receive, send)
                return
            scope.update(child_scope)
        else:
            # What route.matches() answers for an exact, parameterless path and a scope no
            # router has seen, without its regex match and route-context look-ups.
            scope["endpoint"] = route.endpoint
            scope["path_params"] = {}
            scope["route"] = route
        request = Request(scope, receive)
        try:
            response = await route.endpoint(request)
        except Exception as exc:
            handler = self._handler_for(exc)
            if handler is None:
                raise
            response = handler(request, exc)
            if inspect.isawaitable(response):
                response = await response
        await response(scope, receive, send)

    def _handler_for(self, exc: Exception) -> Any:
        handlers = self._app_ref.exception_handlers
        for cls in type(exc).__mro__:
            if cls in handlers:
                return handlers[cls]
        return None
