"""coordinator/requestlog.py: request ids (echoed, generated, sanitised) and their log binding."""

from __future__ import annotations

import asyncio
import re
import warnings
from pathlib import Path
from typing import Any

import pytest
import structlog
from hypothesis import given
from hypothesis import strategies as st

from coordinator.app import create_app
from coordinator.requestlog import RequestLogMiddleware, access_log_enabled, request_id_from
from node.local import LocalNode

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from starlette.testclient import TestClient

SAFE = re.compile(r"[A-Za-z0-9._:\-]{1,128}")


@given(st.binary(max_size=200) | st.none())
def test_request_id_is_always_safe_to_log_and_echo(header: bytes | None) -> None:
    rid = request_id_from(header)
    assert SAFE.fullmatch(rid)
    if header is not None and SAFE.fullmatch(header.decode("latin-1")):
        assert rid == header.decode()
    else:
        assert re.fullmatch(r"[0-9a-f]{32}", rid)


@given(st.from_regex(SAFE, fullmatch=True))
def test_safe_client_ids_are_kept(rid: str) -> None:
    assert request_id_from(rid.encode()) == rid


def test_ids_are_echoed_generated_and_logged(tmp_path: Path) -> None:
    app = create_app(LocalNode(str(tmp_path)))
    with TestClient(app) as client, structlog.testing.capture_logs() as logs:
        r = client.get("/api/v1/admin/status", headers={"X-Request-ID": "trace-42:a.b"})
        assert r.headers["x-request-id"] == "trace-42:a.b"
        bad = client.get("/ping", headers={"X-Request-ID": "two words"})
        generated = bad.headers["x-request-id"]
        assert re.fullmatch(r"[0-9a-f]{32}", generated)
        other = client.get("/ping").headers["x-request-id"]
        assert other != generated, "every request gets its own id"
        failed = client.post("/api/v1/query?secret=x", content=b"not json")
        assert failed.status_code == 400
    events = [e for e in logs if e["event"] == "http_request"]
    first = next(e for e in events if e["request_id"] == "trace-42:a.b")
    assert first["method"] == "GET" and first["path"] == "/api/v1/admin/status"
    # TestClient's peer "testclient" is not loopback: the denied admin call is logged too
    assert first["status"] == 403 and first["duration_ms"] >= 0 and first["bytes_out"] > 0
    assert first["log_level"] == "info"
    probe = next(e for e in events if e["request_id"] == generated)
    assert probe["log_level"] == "debug", "probe traffic stays out of info logs"
    query = next(e for e in events if e["path"] == "/api/v1/query")
    assert query["status"] == 400 and "secret" not in str(query), "no query strings in logs"


async def _answer_by_path(scope: Any, receive: Any, send: Any) -> None:
    """An ASGI app answering the status its path names (/200, /404, /503); /raise raises."""
    if scope["path"] == "/raise":
        raise RuntimeError("boom")
    await send({"type": "http.response.start", "status": int(scope["path"][1:]), "headers": []})
    await send({"type": "http.response.body", "body": b"x"})


def _call(app: Any, path: str) -> list[dict[str, Any]]:
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {"type": "http", "method": "GET", "path": path, "headers": [], "client": None}
    asyncio.run(app(scope, receive, send))
    return sent


def test_access_log_off_logs_only_failures_and_is_read_per_request() -> None:
    enabled = [False]
    app = RequestLogMiddleware(_answer_by_path, access_log=lambda: enabled[0])
    with structlog.testing.capture_logs() as logs:
        ok = _call(app, "/200")
        _call(app, "/404")
        _call(app, "/503")
        with pytest.raises(RuntimeError, match="boom"):
            _call(app, "/raise")
        enabled[0] = True  # a configuration reload turns it back on
        _call(app, "/200")
    # the id is still assigned and echoed with the access log off
    assert any(name == b"x-request-id" for name, _ in ok[0]["headers"])
    logged = [
        (e["path"], e["status"], e["log_level"]) for e in logs if e["event"] == "http_request"
    ]
    assert logged == [("/503", 503, "warning"), ("/raise", 500, "error"), ("/200", 200, "info")]


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("on", True),
        ("OFF", False),
        (" true ", True),
        ("false", False),
        (True, True),
        (False, False),
    ],
)
def test_access_log_values(value: object, expected: bool) -> None:
    assert access_log_enabled(value) is expected


def test_access_log_refuses_other_values() -> None:
    with pytest.raises(ValueError, match="invalid access_log 'sometimes': use on or off"):
        access_log_enabled("sometimes")


def test_request_id_is_bound_while_the_request_runs_and_only_then() -> None:
    seen: list[dict[str, Any]] = []

    async def inner(scope: Any, receive: Any, send: Any) -> None:
        seen.append(structlog.contextvars.get_contextvars())
        if scope["path"] == "/raise":
            raise RuntimeError("boom")
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    app = RequestLogMiddleware(inner, access_log=lambda: False)
    structlog.contextvars.clear_contextvars()
    sent = _call(app, "/200")
    with pytest.raises(RuntimeError, match="boom"):
        _call(app, "/raise")
    echoed = dict(sent[0]["headers"])[b"x-request-id"].decode()
    assert seen[0] == {"request_id": echoed}
    assert set(seen[1]) == {"request_id"} and seen[1]["request_id"] != echoed
    assert structlog.contextvars.get_contextvars() == {}  # reset after success and failure
