"""The query endpoints in process (real engine, FastAPI app): configured limits answer 422."""

from __future__ import annotations

from pathlib import Path

from fastapi.testclient import TestClient

from coordinator.app import create_app
from coordinator.state import CoordinatorSettings
from node.engine.engine import EngineOptions
from node.local import LocalNode
from pulsar_cluster.query.plan import Limits


def test_configured_limits_answer_422(tmp_path: Path) -> None:
    node = LocalNode(str(tmp_path), EngineOptions(fsync="never"))
    settings = CoordinatorSettings(query_limits=Limits(max_points=10, max_rows=3))
    with TestClient(create_app(node, settings)) as client:
        lines = "\n".join(f"m,host=h{i % 2} v={i} {i}" for i in range(20))
        assert client.post("/write", params={"db": "d"}, content=lines).status_code == 204
        r = client.post("/api/v1/query", json={"db": "d", "measurement": "m", "aggregate": "sum"})
        assert r.status_code == 422 and r.json()["limit"] == "max_points"
        r = client.get("/query", params={"db": "d", "q": "SELECT v FROM m"})
        assert r.status_code == 422
        assert r.json()["results"][0]["error"].startswith("query reads more than 10 points")
        r = client.get("/query", params={"db": "d", "q": "SELECT v FROM m WHERE time < 8"})
        assert (
            r.status_code == 422 and "more than the limit of 3" in r.json()["results"][0]["error"]
        )
        r = client.get("/query", params={"db": "d", "q": "SELECT v FROM m WHERE time < 3"})
        assert r.status_code == 200 and len(r.json()["results"][0]["series"][0]["values"]) == 3
