"""The standalone server as a user runs it: a real `pulsar standalone` process over HTTP."""

from __future__ import annotations

import gzip
import signal
import threading
from pathlib import Path

import httpx
import pytest

from tests.support.processes import ServerProcess

T0 = 1_767_225_600_000_000_000  # 2026-01-01T00:00:00Z


@pytest.fixture
def server(tmp_path: Path):
    proc = ServerProcess(tmp_path / "data").start()
    yield proc
    proc.stop()


def query(url: str, **body: object) -> dict:
    r = httpx.post(f"{url}/api/v1/query", json=body, timeout=10)
    assert r.status_code == 200, r.text
    return r.json()


def test_write_both_apis_and_query_back_exactly(server: ServerProcess) -> None:
    lines = (
        f'cpu,host=h1,region=eu usage=12.5,n=3i,ok=true,note="a \\"q\\"" {T0}\n'
        f'cpu,host=h1,region=eu usage=13.5,n=4i,ok=false,note="b" {T0 + 10**10}\n'
    )
    r = httpx.post(f"{server.url}/write", params={"db": "t"}, content=lines)
    assert r.status_code == 204, r.text
    r = httpx.post(
        f"{server.url}/api/v2/write",
        params={"bucket": "t", "org": "o", "precision": "s"},
        content=f"cpu,host=h2 usage=1.25 {T0 // 10**9}\n",
    )
    assert r.status_code == 204, r.text
    r = httpx.post(
        f"{server.url}/api/v1/write",
        params={"db": "t"},
        json={
            "points": [
                {
                    "measurement": "cpu",
                    "tags": {"host": "h3"},
                    "fields": {"usage": 7, "x": 0.5},
                    "timestamp": "2026-01-01T00:00:20Z",
                },
            ]
        },
    )
    assert r.status_code == 204, r.text

    out = query(server.url, db="t", measurement="cpu", where="host = 'h1'")
    assert out["series"] == [
        {
            "name": "cpu",
            "tags": {"host": "h1", "region": "eu"},
            "columns": ["time", "n", "note", "ok", "usage"],
            "values": [[T0, 3, 'a "q"', True, 12.5], [T0 + 10**10, 4, "b", False, 13.5]],
        }
    ]
    out = query(server.url, db="t", measurement="cpu", where="host = 'h2'")
    assert out["series"][0]["values"] == [[T0, 1.25]]
    out = query(server.url, db="t", measurement="cpu", where="host = 'h3'", fields=["usage"])
    assert out["series"][0]["values"] == [[T0 + 2 * 10**10, 7]]
    # Time range: start inclusive, end exclusive.
    out = query(
        server.url,
        db="t",
        measurement="cpu",
        where="host = 'h1'",
        start=T0 + 1,
        end=T0 + 10**10 + 1,
    )
    assert [row[0] for row in out["series"][0]["values"]] == [T0 + 10**10]


def test_gzip_body_and_overwrite_last_write_wins(server: ServerProcess) -> None:
    body = gzip.compress(f"m,k=v f=1 {T0}\nm,k=v f=2 {T0}\n".encode())
    r = httpx.post(
        f"{server.url}/write",
        params={"db": "g"},
        content=body,
        headers={"Content-Encoding": "gzip"},
    )
    assert r.status_code == 204, r.text
    assert query(server.url, db="g", measurement="m")["series"][0]["values"] == [[T0, 2.0]]


def test_bad_request_names_the_line_and_writes_nothing(server: ServerProcess) -> None:
    body = f"m,k=v f=1 {T0}\nm,k=v f= {T0}\n"
    r = httpx.post(f"{server.url}/write", params={"db": "bad"}, content=body)
    assert r.status_code == 400
    assert r.json()["line"] == 2 and "line 2" in r.json()["error"]
    assert query(server.url, db="bad", measurement="m")["series"] == []
    # Field type conflict against stored data: 400 naming the field, nothing written.
    assert (
        httpx.post(
            f"{server.url}/write", params={"db": "bad"}, content=f"m,k=v f=1 {T0}"
        ).status_code
        == 204
    )
    r = httpx.post(
        f"{server.url}/write", params={"db": "bad"}, content=f"m,k=w f=5 {T0}\nm,k=v f=2i {T0 + 1}"
    )
    assert r.status_code == 400 and "'f'" in r.json()["error"]
    assert query(server.url, db="bad", measurement="m", where="k = 'w'")["series"] == []


def test_operational_endpoints(server: ServerProcess) -> None:
    r = httpx.get(f"{server.url}/ping")
    assert r.status_code == 204 and r.headers["X-Influxdb-Version"]
    assert httpx.get(f"{server.url}/health").json()["status"] == "pass"
    assert httpx.get(f"{server.url}/ready").status_code == 200
    assert "/api/v1/query" in httpx.get(f"{server.url}/openapi.json").json()["paths"]
    assert httpx.get(f"{server.url}/docs").status_code == 200
    httpx.post(f"{server.url}/write", params={"db": "m"}, content=f"m f=1 {T0}")
    metrics = httpx.get(f"{server.url}/metrics").text
    assert 'pulsar_points_written_total{protocol="line"} 1.0' in metrics
    assert "pulsar_http_request_duration_seconds_bucket" in metrics


def test_sigkill_after_acknowledged_writes_loses_nothing(tmp_path: Path) -> None:
    """Concurrent writers, kill -9 mid-stream, restart: every acknowledged point is there."""
    server = ServerProcess(tmp_path / "data", extra_args=["--memtable-mb", "1"]).start()
    acknowledged: list[list[int]] = [[] for _ in range(4)]
    stop = threading.Event()

    def writer(wid: int) -> None:
        with httpx.Client(base_url=server.url, timeout=10) as client:
            for i in range(100_000):  # bounded; stopped by the kill long before
                if stop.is_set():
                    return
                lines = "\n".join(
                    f"w,writer={wid} seq={i}i,v={j} {T0 + i * 1000 + j}" for j in range(50)
                )
                try:
                    r = client.post("/write", params={"db": "crash"}, content=lines)
                except httpx.HTTPError:
                    return
                if r.status_code != 204:
                    return
                acknowledged[wid].append(i)

    threads = [threading.Thread(target=writer, args=(w,)) for w in range(4)]
    for t in threads:
        t.start()
    try:
        # Let enough batches through to cross several memtable flushes, then kill -9.
        deadline = threading.Event()
        for _ in range(300):
            if sum(len(a) for a in acknowledged) >= 400:
                break
            deadline.wait(0.05)
        assert server.kill(signal.SIGKILL) == -signal.SIGKILL
    finally:
        stop.set()
        for t in threads:
            t.join(timeout=30)
    assert sum(len(a) for a in acknowledged) > 0

    restarted = ServerProcess(tmp_path / "data", port=server.port).start()
    try:
        for wid, batches in enumerate(acknowledged):
            out = query(
                restarted.url, db="crash", measurement="w", where=f"writer = '{wid}'", fields=["v"]
            )
            times = {row[0] for row in out["series"][0]["values"]} if out["series"] else set()
            for i in batches:
                expected = {T0 + i * 1000 + j for j in range(50)}
                missing = expected - times
                assert not missing, f"writer {wid} batch {i}: {len(missing)} points lost"
    finally:
        restarted.stop()


def test_sigterm_shuts_down_gracefully_and_keeps_data(tmp_path: Path) -> None:
    server = ServerProcess(tmp_path / "data").start()
    assert (
        httpx.post(f"{server.url}/write", params={"db": "s"}, content=f"m f=1 {T0}").status_code
        == 204
    )
    assert server.kill(signal.SIGTERM) == 0
    # A clean stop flushes the memtable: the data is in an SSTable, the WAL holds nothing new.
    assert list((tmp_path / "data" / "sst").glob("*.sst"))
    again = ServerProcess(tmp_path / "data", port=server.port).start()
    try:
        assert query(again.url, db="s", measurement="m")["series"][0]["values"] == [[T0, 1.0]]
    finally:
        again.stop()


def test_retention_flag_hides_expired_data(tmp_path: Path) -> None:
    """`--retention db=1h`: points older than an hour are not returned; newer ones are."""
    import time

    server = ServerProcess(tmp_path / "data", extra_args=["--retention", "r=1h"]).start()
    try:
        now = time.time_ns()
        old, new = now - 2 * 3600 * 10**9, now - 60 * 10**9
        r = httpx.post(
            f"{server.url}/write", params={"db": "r"}, content=f"m f=1 {old}\nm f=2 {new}\n"
        )
        assert r.status_code == 204
        assert query(server.url, db="r", measurement="m")["series"][0]["values"] == [[new, 2.0]]
        # Another database keeps everything.
        httpx.post(f"{server.url}/write", params={"db": "keep"}, content=f"m f=1 {old}\n")
        assert query(server.url, db="keep", measurement="m")["series"][0]["values"] == [[old, 1.0]]
    finally:
        server.stop()
