"""`--query-max-points` over HTTP on a real `pulsar standalone`: an unbounded raw query over a
big series is a 422 in both APIs' shapes, while a narrow one still answers."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.support.processes import ServerProcess

MS = 1_000_000
T0 = 1_767_225_600_000 * MS
POINTS = 60_000


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    data = Path(tmp_path_factory.mktemp("limits")) / "data"
    proc = ServerProcess(data, extra_args=["--query-max-points", "5000"]).start()
    try:
        body = "\n".join(f"m,host=a v={i} {T0 + i * MS}" for i in range(POINTS))
        r = httpx.post(f"{proc.url}/write", params={"db": "d"}, content=body, timeout=60)
        assert r.status_code == 204, r.text
        r = httpx.post(f"{proc.url}/api/v1/admin/flush", params={"wait": "true"}, timeout=60)
        assert r.status_code == 200, r.text
        yield proc
    finally:
        proc.stop()


def test_unbounded_raw_query_is_refused(server: ServerProcess) -> None:
    r = httpx.get(f"{server.url}/query", params={"q": "SELECT * FROM m", "db": "d"}, timeout=30)
    assert r.status_code == 422, r.text
    assert "more than 5000 points" in r.json()["results"][0]["error"]
    r = httpx.post(f"{server.url}/api/v1/query", json={"db": "d", "measurement": "m"}, timeout=30)
    assert r.status_code == 422, r.text
    assert r.json()["limit"] == "max_points"


def test_narrow_query_answers(server: ServerProcess) -> None:
    q = f"SELECT v FROM m WHERE time >= {T0} AND time < {T0 + 1000 * MS}"
    r = httpx.get(f"{server.url}/query", params={"q": q, "db": "d", "epoch": "ms"}, timeout=30)
    assert r.status_code == 200, r.text
    rows = r.json()["results"][0]["series"][0]["values"]
    assert len(rows) == 1000 and rows[0] == [T0 // MS, 0]
