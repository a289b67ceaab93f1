"""Remote read refuses (422) an answer above its sample budget, in-process on a real LocalNode."""

from __future__ import annotations

from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from coordinator.api import prometheus
from coordinator.app import create_app
from node.engine.engine import EngineOptions
from node.local import LocalNode
from pulsar_cluster.prometheus import remote_pb2
from pulsar_cluster.prometheus.remote import snappy_encode


def read_body(name: str) -> bytes:
    req = remote_pb2.ReadRequest()
    q = req.queries.add(start_timestamp_ms=0, end_timestamp_ms=10_000)
    q.matchers.add(type=0, name="__name__", value=name)
    return snappy_encode(req.SerializeToString())


def test_sample_budget(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    node = LocalNode(str(tmp_path / "d"), EngineOptions(fsync="never"))
    with TestClient(create_app(node)) as client:
        lines = "\n".join(f"m,h=h{i % 3} value={i} {i * 1_000_000}" for i in range(30))
        assert client.post("/write", params={"db": "prometheus"}, content=lines).status_code == 204
        monkeypatch.setattr(prometheus, "MAX_READ_SAMPLES", 30)
        ok = client.post("/api/v1/prom/read", content=read_body("m"))
        assert ok.status_code == 200
        monkeypatch.setattr(prometheus, "MAX_READ_SAMPLES", 29)
        over = client.post("/api/v1/prom/read", content=read_body("m"))
        assert over.status_code == 422 and "exceeds 29 samples" in over.json()["error"]
