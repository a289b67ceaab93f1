"""LeanFastAPI (coordinator/leanapp.py): HTTP requests through its short chain send exactly the
ASGI messages FastAPI's own path sends (answers, errors, 404s, the 500 of an unhandled
exception, which still propagates), and requests it cannot prove the short chain right for
(a body limit or telemetry record of a parent app, root_path, telemetry on, another stack
shape) take FastAPI's path."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI
from starlette.middleware.body_limit import MAX_BODY_SIZE_SCOPE_KEY

from coordinator.app import create_app
from coordinator.leanapp import LeanFastAPI, lean_chain
from node.engine.engine import EngineOptions
from node.local import LocalNode


def _scope(
    method: str, path: str, query: bytes = b"", headers: tuple[Any, ...] = (), **extra: Any
) -> dict[str, Any]:
    return {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "root_path": "",
        "query_string": query,
        "headers": [(b"host", b"127.0.0.1"), (b"x-request-id", b"fixed-id"), *headers],
        "client": ("127.0.0.1", 50000),
        "server": ("127.0.0.1", 8086),
        **extra,
    }


async def _call(app: Any, scope: dict[str, Any], body: bytes = b"") -> list[dict[str, Any]]:
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": body, "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    try:
        await app(scope, receive, send)
    except RuntimeError as exc:  # an unhandled exception propagates after the 500
        sent.append({"raised": repr(exc)})
    return sent


def _both(app: LeanFastAPI, scope: dict[str, Any], body: bytes = b"") -> list[dict[str, Any]]:
    """The messages of the short chain and of FastAPI's own path; asserts they are equal."""
    lean = asyncio.run(_call(app, dict(scope), body))
    full = asyncio.run(_call(lambda s, r, w: FastAPI.__call__(app, s, r, w), dict(scope), body))
    assert lean == full
    return lean


@pytest.fixture
def app(tmp_path: Path) -> LeanFastAPI:
    node = LocalNode(str(tmp_path), EngineOptions(fsync="never"))
    app = create_app(node)
    assert isinstance(app, LeanFastAPI)
    lines = "\n".join(f"m,host=h{i % 2} v={i} {i}" for i in range(6)).encode()
    sent = asyncio.run(_call(app, _scope("POST", "/write", b"db=d"), lines))
    assert sent[0]["status"] == 204
    return app


def test_short_chain_answers_as_fastapi(app: LeanFastAPI) -> None:
    lean, calls = app._lean_stack, []
    assert lean is not None  # built with the stack by the first request

    async def counted(scope: Any, receive: Any, send: Any) -> None:
        calls.append(scope["path"])
        await lean(scope, receive, send)

    app._lean_stack = counted
    ok = _both(app, _scope("GET", "/query", b"db=d&q=SELECT+max(v)+FROM+m+GROUP+BY+host"))
    assert ok[0]["status"] == 200 and b'"series"' in ok[1]["body"]
    assert calls == ["/query"]  # the short chain answered the first of the two
    assert _both(app, _scope("GET", "/query", b"db=d&q=SELEC"))[0]["status"] == 400
    assert _both(app, _scope("GET", "/query", b"q=SHOW+DATABASES&epoch=x"))[0]["status"] == 400
    assert _both(app, _scope("GET", "/nowhere"))[0]["status"] == 404
    assert _both(app, _scope("PUT", "/query"))[0]["status"] == 405
    assert _both(app, _scope("GET", "/ping"))[0]["status"] == 204
    form = _both(
        app,
        _scope(
            "POST", "/query", headers=((b"content-type", b"application/x-www-form-urlencoded"),)
        ),
        b"db=d&q=SELECT+count(v)+FROM+m",
    )
    assert form[0]["status"] == 200


def test_unhandled_exception_is_a_500_and_propagates(app: LeanFastAPI) -> None:
    def boom(*_: Any) -> None:
        raise RuntimeError("boom")

    app.state.pulsar.federation.backend = boom  # type: ignore[method-assign]
    sent = _both(app, _scope("GET", "/query", b"q=SHOW+DATABASES"))
    assert sent[0]["status"] == 500 and sent[1]["body"] == b"Internal Server Error"
    assert sent[-1] == {"raised": "RuntimeError('boom')"}


def test_requests_it_cannot_vouch_for_take_fastapis_path(app: LeanFastAPI) -> None:
    asyncio.run(_call(app, _scope("GET", "/ping")))  # builds the stack

    async def refuse(*_: Any) -> None:
        raise AssertionError("the short chain must not serve this request")

    app._lean_stack = refuse
    for extra in ({MAX_BODY_SIZE_SCOPE_KEY: 10}, {"fastapi.telemetry": object()}):
        assert asyncio.run(_call(app, _scope("GET", "/ping", **extra)))[0]["status"] == 204
    app.root_path = "/p"
    assert asyncio.run(_call(app, _scope("GET", "/p/ping")))[0]["status"] == 204
    app.root_path = ""
    app._telemetry["logs"] = True  # telemetry on: FastAPI decides per request
    assert asyncio.run(_call(app, _scope("GET", "/ping")))[0]["status"] == 204


def test_other_stack_shapes_get_no_short_chain() -> None:
    assert lean_chain(object()) is None
    limited = LeanFastAPI(max_body_size=100)
    limited.middleware_stack = limited.build_middleware_stack()
    assert limited._lean_stack is None
    plain = LeanFastAPI()
    assert lean_chain(plain.build_middleware_stack()) is not None
