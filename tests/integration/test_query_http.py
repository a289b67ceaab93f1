"""Queries over HTTP on a real `pulsar standalone` process: the native JSON API and InfluxQL
`/query` in InfluxDB 1.x's JSON shape, including what Grafana's InfluxDB data source sends."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.support.processes import ServerProcess

S = 1_000_000_000
T0 = 1_767_225_600 * S  # 2026-01-01T00:00:00Z
HOSTS = ["h1", "h2", "h3"]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    proc = ServerProcess(Path(tmp_path_factory.mktemp("query")) / "data").start()
    try:
        # 3 hosts x 60 points, one per second from T0; usage = host number * 100 + second
        lines = [
            f"cpu,host={h},region={'eu' if h != 'h3' else 'us'} usage={i * 100 + s}.5,n={s}i "
            f"{T0 + s * S}"
            for i, h in enumerate(HOSTS, 1)
            for s in range(60)
        ]
        lines.append(f"mem,host=h1 free=10i {T0}")
        r = httpx.post(f"{proc.url}/write", params={"db": "tele"}, content="\n".join(lines))
        assert r.status_code == 204, r.text
        # recent points for now()-relative queries
        now = time.time_ns()
        recent = "\n".join(f"live,host=h{i % 2} v={i} {now - (60 - i) * S}" for i in range(60))
        assert (
            httpx.post(f"{proc.url}/write", params={"db": "tele"}, content=recent).status_code
            == 204
        )
        yield proc
    finally:
        proc.stop()


def influx(server: ServerProcess, q: str, **params: str) -> httpx.Response:
    return httpx.get(f"{server.url}/query", params={"q": q, **params}, timeout=30)


def native(server: ServerProcess, **body: object) -> httpx.Response:
    return httpx.post(f"{server.url}/api/v1/query", json=body, timeout=30)


def test_grafana_data_source_queries(server: ServerProcess) -> None:
    r = influx(server, "SHOW MEASUREMENTS LIMIT 100", db="tele")
    assert r.status_code == 200
    assert r.json() == {
        "results": [
            {
                "statement_id": 0,
                "series": [
                    {
                        "name": "measurements",
                        "columns": ["name"],
                        "values": [["cpu"], ["live"], ["mem"]],
                    }
                ],
            }
        ]
    }
    r = influx(server, 'SHOW TAG KEYS FROM "cpu"', db="tele")
    assert r.json()["results"][0]["series"] == [
        {"name": "cpu", "columns": ["tagKey"], "values": [["host"], ["region"]]}
    ]
    r = influx(server, 'SHOW TAG VALUES FROM "cpu" WITH KEY = "host"', db="tele")
    assert r.json()["results"][0]["series"] == [
        {"name": "cpu", "columns": ["key", "value"], "values": [["host", h] for h in HOSTS]}
    ]
    r = influx(server, "SHOW FIELD KEYS", db="tele")
    assert r.json()["results"][0]["series"][0] == {
        "name": "cpu",
        "columns": ["fieldKey", "fieldType"],
        "values": [["n", "integer"], ["usage", "float"]],
    }
    q = (
        'SELECT mean("v") FROM "live" WHERE ("host" =~ /^h1$/) AND time >= now() - 1h and '
        'time <= now() GROUP BY time(10s), "host" fill(null)'
    )
    r = influx(server, q, db="tele", epoch="ms")
    body = r.json()
    series = body["results"][0]["series"]
    assert [s["tags"] for s in series] == [{"host": "h1"}]
    assert series[0]["columns"] == ["time", "mean"]
    values = series[0]["values"]
    assert len(values) in (360, 361)  # every 10 s window of the hour, null where empty
    assert all(isinstance(t, int) and t % 10_000 == 0 for t, _ in values)
    assert sum(1 for _, v in values if v is not None) in (6, 7)
    # POST with a form body, as newer Grafana versions send it
    r = httpx.post(
        f"{server.url}/query",
        data={"q": q, "db": "tele", "epoch": "ms"},
        timeout=30,
    )
    assert r.status_code == 200 and r.json()["results"][0]["series"][0]["tags"] == {"host": "h1"}


def test_select_shapes_and_epochs(server: ServerProcess) -> None:
    q = (
        f"SELECT max(usage), count(usage) FROM cpu WHERE time >= {T0} AND time < {T0 + 60 * S} "
        "GROUP BY time(30s), host"
    )
    r = influx(server, q, db="tele", epoch="s")
    series = r.json()["results"][0]["series"]
    assert series[0] == {
        "name": "cpu",
        "tags": {"host": "h1"},
        "columns": ["time", "max", "count"],
        "values": [[T0 // S, 129.5, 30], [T0 // S + 30, 159.5, 30]],
    }
    assert [s["tags"]["host"] for s in series] == HOSTS
    r = influx(server, f"SELECT usage FROM cpu WHERE host = 'h2' AND time = {T0 + S}", db="tele")
    assert r.json()["results"][0]["series"] == [
        {"name": "cpu", "columns": ["time", "usage"], "values": [["2026-01-01T00:00:01Z", 201.5]]}
    ]
    for epoch, div in (
        ("ns", 1),
        ("u", 1000),
        ("ms", 10**6),
        ("s", S),
        ("m", 60 * S),
        ("h", 3600 * S),
    ):
        r = influx(
            server,
            f"SELECT usage FROM cpu WHERE host = 'h2' AND time = {T0 + S}",
            db="tele",
            epoch=epoch,
        )
        assert r.json()["results"][0]["series"][0]["values"][0][0] == (T0 + S) // div
    # raw, ORDER BY time DESC, LIMIT, field predicate, selector time, top
    r = influx(
        server,
        "SELECT usage FROM cpu WHERE host = 'h1' AND usage < 120 ORDER BY time DESC LIMIT 2; "
        "SELECT max(usage) FROM cpu WHERE region = 'eu'; "
        "SELECT top(usage, 2) FROM cpu; SELECT * FROM mem",
        db="tele",
        epoch="s",
    )
    res = r.json()["results"]
    assert res[0]["series"][0]["values"] == [[T0 // S + 19, 119.5], [T0 // S + 18, 118.5]]
    assert res[1]["series"][0]["values"] == [[T0 // S + 59, 259.5]]
    assert res[2]["series"][0]["values"] == [[T0 // S + 58, 358.5], [T0 // S + 59, 359.5]]
    r = influx(server, "SELECT last(*) FROM cpu GROUP BY host; SELECT mean(*) FROM mem", db="tele")
    res2 = r.json()["results"]
    assert res2[0]["series"][0] == {
        "name": "cpu",
        "tags": {"host": "h1"},
        "columns": ["time", "last_n", "last_usage"],
        "values": [["1970-01-01T00:00:00Z", 59, 159.5]],
    }
    assert res2[1]["series"][0]["columns"] == ["time", "mean_free"]
    assert res[3]["series"][0] == {
        "name": "mem",
        "columns": ["time", "free", "host"],
        "values": [[T0 // S, 10, "h1"]],
    }


def test_errors_in_results_and_status(server: ServerProcess) -> None:
    r = influx(
        server,
        "SHOW DATABASES; DROP RETENTION POLICY autogen ON tele; SELECT nope(usage) FROM cpu",
        db="tele",
    )
    assert r.status_code == 200
    res = r.json()["results"]
    assert res[0]["series"][0] == {"name": "databases", "columns": ["name"], "values": [["tele"]]}
    assert res[1]["statement_id"] == 1 and "DROP RETENTION POLICY" in res[1]["error"]
    assert res[2]["error"] == "undefined function nope()"
    r = influx(server, "SELECT usage FROM", db="tele")
    assert r.status_code == 400 and r.json()["error"].startswith("error parsing query: found EOF")
    assert influx(server, "").status_code == 400
    r = influx(server, "SELECT usage FROM cpu")
    assert r.json()["results"][0]["error"] == "database name required"
    r = influx(server, "SELECT usage FROM cpu", db="nosuch")
    assert r.json()["results"][0]["error"] == "database not found: nosuch"
    r = influx(server, "DROP SERIES FROM cpu WHERE time > 0; DELETE WHERE v > 1", db="tele")
    assert [x["error"] for x in r.json()["results"]] == [
        "DROP SERIES doesn't support time in WHERE clause",
        "fields not supported in WHERE clause during deletion",
    ]
    # a limit: too many windows is a 4xx, in InfluxDB's shape
    r = influx(server, "SELECT count(usage) FROM cpu WHERE time >= 0 GROUP BY time(1ns)", db="tele")
    assert r.status_code == 422 and "windows" in r.json()["results"][0]["error"]


def test_native_aggregates(server: ServerProcess) -> None:
    r = native(
        server, db="tele", measurement="cpu", fields=["usage"], aggregate="mean", every="30s",
        start=T0, end=T0 + 60 * S, group_by=["region"], where="host IN ('h1', 'h3')",
    )  # fmt: skip
    assert r.status_code == 200, r.text
    assert r.json() == {
        "series": [
            {"name": "cpu", "tags": {"region": "eu"}, "columns": ["time", "usage"],
             "values": [[T0, 115.0], [T0 + 30 * S, 145.0]]},
            {"name": "cpu", "tags": {"region": "us"}, "columns": ["time", "usage"],
             "values": [[T0, 315.0], [T0 + 30 * S, 345.0]]},
        ]
    }  # fmt: skip
    r = native(server, db="tele", measurement="cpu", aggregate="percentile_50",
               start="2026-01-01T00:00:00Z", end=T0 + 10 * S, where="host = 'h1'")  # fmt: skip
    assert r.json()["series"][0]["columns"] == ["time", "n", "usage"]
    assert r.json()["series"][0]["values"] == [[T0, 4.0, 104.5]]
    r = native(server, db="tele", measurement="cpu", fields=["usage"], aggregate="count",
               group_by=["*"], start=T0, end=T0 + 60 * S)  # fmt: skip
    assert [(x["tags"]["host"], x["values"]) for x in r.json()["series"]] == [
        (h, [[T0, 60]]) for h in HOSTS
    ]
    r = native(server, db="tele", measurement="cpu", fields=["usage"], aggregate="rate",
               where="host = 'h1' AND region =~ /^e/", start=T0, end=T0 + 60 * S)  # fmt: skip
    assert r.json()["series"][0]["values"] == [[T0, 1.0]]
    r = native(server, db="tele", measurement="cpu", fields=["usage"], aggregate="max", every="20s",
               start=T0 - 20 * S, end=T0 + 20 * S, where="host = 'h1'", fill=0)  # fmt: skip
    assert r.json()["series"][0]["values"] == [[T0 - 20 * S, 0], [T0, 119.5]]
    for bad, message in (
        ({"aggregate": "nope"}, "unsupported aggregate 'nope'"),
        ({"every": "1m"}, "'every' needs an 'aggregate'"),
        ({"where": "host = "}, "error parsing query"),
        ({"where": "host =~ /(/"}, "invalid regular expression"),
        ({"colour": "red"}, "unsupported query keys: colour"),
        ({"aggregate": "sum", "fields": ["usage"], "every": "1ns", "start": 0}, "windows"),
    ):
        r = native(server, db="tele", measurement="cpu", **bad)
        assert r.status_code in (400, 422) and message in r.json()["error"], (bad, r.text)
    paths = httpx.get(f"{server.url}/openapi.json").json()["paths"]
    assert "/query" in paths and "requestBody" in paths["/api/v1/query"]["post"]


def test_delete_removes_points_of_matching_series(server: ServerProcess) -> None:
    lines = "\n".join(f"del,host=h{i % 3} v={i} {T0 + i * S}" for i in range(30))
    assert (
        httpx.post(f"{server.url}/write", params={"db": "tele"}, content=lines).status_code == 204
    )
    q = f"DELETE FROM del WHERE (host = 'h0' OR host =~ /2/) AND time >= {T0 + 10 * S}"
    r = influx(server, q, db="tele")
    assert r.json() == {"results": [{"statement_id": 0}]}
    r = influx(server, "SELECT count(v) FROM del GROUP BY host", db="tele")
    counts = {s["tags"]["host"]: s["values"][0][1] for s in r.json()["results"][0]["series"]}
    assert counts == {"h0": 4, "h1": 10, "h2": 3}
    r = influx(server, "SHOW TAG VALUES FROM del WITH KEY = host", db="tele")
    assert len(r.json()["results"][0]["series"][0]["values"]) == 3  # series stay in the index


def test_influxdb_python_client_reads(server: ServerProcess) -> None:
    from influxdb import InfluxDBClient  # the real InfluxDB 1.x client library

    client = InfluxDBClient(host="127.0.0.1", port=server.port, database="tele", timeout=30)
    try:
        assert {"name": "tele"} in client.get_list_database()
        assert {"name": "cpu"} in client.get_list_measurements()
        rs = client.query(
            f"SELECT max(usage) FROM cpu WHERE time >= {T0} AND time < {T0 + 60 * S} "
            "GROUP BY time(1m), host",
            epoch="s",
        )
        points = {tags["host"]: list(rs.get_points(tags=tags)) for _, tags in rs.keys()}  # noqa: SIM118 - ResultSet.keys(), not a dict
        assert points["h2"] == [{"time": T0 // S, "max": 259.5}]
        rs = client.query("SELECT usage FROM cpu WHERE host = 'h3' LIMIT 1")
        assert list(rs.get_points()) == [{"time": "2026-01-01T00:00:00Z", "usage": 300.5}]
    finally:
        client.close()
