"""/query served by DirectRoutes: the same answers, headers, metrics labels, request ids, admin
auth and error handling as through FastAPI's router; other methods and paths take the router."""

from __future__ import annotations

from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from coordinator.app import create_app
from coordinator.directroutes import DirectRoutes
from node.engine.engine import EngineOptions
from node.local import LocalNode
from pulsar_cluster.errors import BadRequestError


@pytest.fixture
def client(tmp_path: Path):  # type: ignore[no-untyped-def]
    node = LocalNode(str(tmp_path), EngineOptions(fsync="never"))
    with TestClient(create_app(node)) as c:
        lines = "\n".join(f"m,host=h{i % 2} v={i} {i}" for i in range(6))
        assert c.post("/write", params={"db": "d"}, content=lines).status_code == 204
        yield c


def test_query_answers_directly_with_headers_ids_and_metrics(client: TestClient) -> None:
    r = client.get(
        "/query",
        params={"db": "d", "q": "SELECT max(v) FROM m GROUP BY host", "epoch": "ns"},
        headers={"X-Request-ID": "abc-1"},
    )
    assert r.status_code == 200
    assert r.headers["x-request-id"] == "abc-1"
    assert r.headers["x-influxdb-version"]  # the endpoint's own headers
    series = r.json()["results"][0]["series"]
    assert [(s["tags"]["host"], s["values"]) for s in series] == [
        ("h0", [[4, 4]]),
        ("h1", [[5, 5]]),
    ]
    form = client.post("/query", data={"db": "d", "q": "SELECT count(v) FROM m"})
    assert form.json()["results"][0]["series"][0]["values"][0][1] == 6
    metrics = client.get("/metrics").text
    assert 'pulsar_http_requests_total{method="GET",route="/query",status="200"} 1.0' in metrics
    assert 'pulsar_http_requests_total{method="POST",route="/query",status="200"} 1.0' in metrics


def test_errors_keep_their_status_and_shape(client: TestClient) -> None:
    r = client.get("/query", params={"db": "d", "q": "SELEC"})
    assert r.status_code == 400 and r.json()["error"].startswith("error parsing query")
    r = client.get("/query", params={"db": "d", "q": "SELECT v FROM m", "epoch": "x"})
    assert r.status_code == 400 and "invalid epoch" in r.json()["error"]  # PulsarError handler
    r = client.get("/query", params={"q": "SELECT v FROM m", "consistency": "bad"})
    assert r.status_code == 400 and "invalid consistency" in r.json()["error"]
    # methods the route does not take: the router answers, as before
    assert client.put("/query").status_code == 405
    assert client.head("/query", params={"db": "d", "q": "SHOW DATABASES"}).status_code == 405


def test_unexpected_errors_are_500s_from_the_server_error_middleware(tmp_path: Path) -> None:
    node = LocalNode(str(tmp_path), EngineOptions(fsync="never"))

    async def broken(_: object) -> None:
        raise RuntimeError("boom")

    app = create_app(node)
    with TestClient(app, raise_server_exceptions=False) as c:
        direct = app.middleware_stack
        while direct is not None and not isinstance(direct, DirectRoutes):
            direct = getattr(direct, "app", None)
        assert direct is not None
        # The routes are the module's, shared by every app of the process: put them back.
        saved = [(route, route.endpoint) for route in direct._table.values()]
        try:
            for route, _ in saved:
                route.endpoint = broken
            r = c.get("/query", params={"q": "SHOW DATABASES"})
        finally:
            for route, endpoint in saved:
                route.endpoint = endpoint
        assert r.status_code == 500 and r.text == "Internal Server Error"


def test_routes_with_parameters_are_refused() -> None:
    from fastapi import APIRouter

    router = APIRouter()

    @router.get("/x")
    async def x(q: str) -> dict[str, str]:
        return {"q": q}

    with pytest.raises(ValueError, match="declares parameters"):
        DirectRoutes(None, None, list(router.routes))
    assert BadRequestError("x").status_code == 400


def test_direct_call_sets_the_scope_keys_route_matches_sets(tmp_path: Path) -> None:
    from coordinator.api import influxql

    seen: list[dict[str, object]] = []

    async def record(request: object) -> None:
        seen.append(dict(request.scope))  # type: ignore[attr-defined]
        raise BadRequestError("recorded")

    app = create_app(LocalNode(str(tmp_path), EngineOptions(fsync="never")))
    saved = [(route, route.endpoint) for route in influxql.router.routes]
    try:
        for route, _ in saved:
            route.endpoint = record
        with TestClient(app) as c:
            assert c.get("/query", params={"q": "x"}).status_code == 400
    finally:
        for route, endpoint in saved:
            route.endpoint = endpoint
    scope = seen[0]
    route = scope["route"]
    fresh = {k: v for k, v in scope.items() if k not in ("endpoint", "path_params", "route")}
    match, child = route.matches(fresh)  # type: ignore[attr-defined]
    assert match.name == "FULL"
    child["endpoint"] = record  # the router reads the endpoint the route has at that time
    assert [(k, scope[k]) for k in child] == list(child.items())
    assert list(scope)[-3:] == list(child)  # added in the same order
