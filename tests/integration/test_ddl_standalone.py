"""CREATE/DROP DATABASE, DROP SERIES/MEASUREMENT and retention policies over HTTP on a real
`pulsar standalone` process, in InfluxDB 1.x's answer shapes, across kill -9 restarts (WAL
replay) and after flush and full compaction (SSTables rewritten without the dropped series)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.support.processes import ServerProcess

S = 1_000_000_000
T0 = 1_767_225_600 * S  # 2026-01-01T00:00:00Z
OK = {"results": [{"statement_id": 0}]}


@pytest.fixture()
def server(tmp_path: Path) -> Iterator[ServerProcess]:
    proc = ServerProcess(tmp_path / "data").start()
    try:
        yield proc
    finally:
        proc.stop()


def q(server: ServerProcess, text: str, db: str | None = None) -> dict:  # type: ignore[type-arg]
    params = {"q": text, "epoch": "s"}
    if db:
        params["db"] = db
    r = httpx.post(f"{server.url}/query", params=params, timeout=30)
    assert r.status_code == 200, r.text
    return r.json()  # type: ignore[no-any-return]


def values(answer: dict, i: int = 0) -> list:  # type: ignore[type-arg]
    result = answer["results"][i]
    assert "error" not in result, result
    return [row for s in result.get("series", []) for row in s.get("values", [])]


def write(server: ServerProcess, db: str, lines: list[str]) -> None:
    r = httpx.post(f"{server.url}/write", params={"db": db}, content="\n".join(lines), timeout=30)
    assert r.status_code == 204, r.text


def restart(server: ServerProcess) -> None:
    server.kill()  # SIGKILL: nothing flushed at exit; the WAL must replay the drops too
    server.start()


def admin(server: ServerProcess, action: str) -> None:
    r = httpx.post(f"{server.url}/api/v1/admin/{action}", params={"wait": "true"}, timeout=60)
    assert r.status_code == 200, r.text


def test_databases_and_retention_policies(server: ServerProcess) -> None:
    assert q(server, "SHOW DATABASES")["results"][0]["series"] == [
        {"name": "databases", "columns": ["name"]}  # InfluxDB omits empty values
    ]
    assert q(server, "CREATE DATABASE empty") == OK
    assert q(server, "CREATE DATABASE empty") == OK  # InfluxDB: idempotent
    assert values(q(server, "SHOW DATABASES")) == [["empty"]]
    assert q(server, "SHOW RETENTION POLICIES ON empty") == {
        "results": [
            {
                "statement_id": 0,
                "series": [
                    {
                        "columns": [
                            "name",
                            "duration",
                            "shardGroupDuration",
                            "replicaN",
                            "default",
                        ],
                        "values": [["autogen", "0s", "168h0m0s", 1, True]],
                    }
                ],
            }
        ]
    }
    text = "CREATE RETENTION POLICY week ON empty DURATION 7d REPLICATION 1 DEFAULT"
    assert q(server, text) == OK
    assert values(q(server, "SHOW RETENTION POLICIES", db="empty")) == [
        ["week", "168h0m0s", "24h0m0s", 1, True]
    ]
    assert q(server, "ALTER RETENTION POLICY week ON empty DURATION 30d") == OK
    errors = {
        "ALTER RETENTION POLICY nope ON empty DURATION 1d": "retention policy not found: nope",
        "CREATE RETENTION POLICY two ON empty DURATION 1d REPLICATION 1": "one retention policy",
        "CREATE RETENTION POLICY p ON missing DURATION 1d REPLICATION 1 DEFAULT": (
            "database not found: missing"
        ),
        "SHOW RETENTION POLICIES ON missing": "database not found: missing",
        "CREATE DATABASE empty WITH DURATION 2h": "conflicts with an existing policy",
        "DROP RETENTION POLICY week ON empty": "DROP RETENTION POLICY",
    }
    for text, message in errors.items():
        (result,) = q(server, text)["results"]
        assert message in result.get("error", ""), (text, result)
    # a parse error is a 400 with InfluxDB's wording
    r = httpx.get(f"{server.url}/query", params={"q": "CREATE RETENTION POLICY p ON x"})
    assert r.status_code == 400 and "expected DURATION" in r.json()["error"]

    # CREATE DATABASE ... WITH DURATION maps onto the engine's retention at once
    assert q(server, "CREATE DATABASE recent WITH DURATION 1h NAME hour") == OK
    now = time.time_ns()
    write(server, "recent", [f"m v=1 {now - 3 * 3600 * S}", f"m v=2 {now - 60 * S}"])
    assert [r[1] for r in values(q(server, "SELECT v FROM m", db="recent"))] == [2]

    restart(server)
    assert values(q(server, "SHOW DATABASES")) == [["empty"], ["recent"]]
    assert values(q(server, "SHOW RETENTION POLICIES ON empty")) == [
        ["week", "720h0m0s", "24h0m0s", 1, True]
    ]
    assert values(q(server, "SHOW RETENTION POLICIES ON recent")) == [
        ["hour", "1h0m0s", "1h0m0s", 1, True]
    ]
    assert [r[1] for r in values(q(server, "SELECT v FROM m", db="recent"))] == [2]
    # INF: keep forever again; the old point comes back (retention hides, until dropped)
    assert q(server, "ALTER RETENTION POLICY hour ON recent DURATION INF") == OK
    assert len(values(q(server, "SELECT v FROM m", db="recent"))) == 2


def _load(server: ServerProcess) -> None:
    lines = [
        f"cpu,host={h},dc={dc} usage={i}.5,n={i}i {T0 + i * S}"
        for h, dc in (("h1", "a"), ("h2", "a"), ("h3", "b"))
        for i in range(50)
    ]
    lines += [f"mem,host=h1 free={i}i {T0 + i * S}" for i in range(10)]
    write(server, "tele", lines)
    write(server, "other", [f"x v={i} {T0 + i * S}" for i in range(10)])


def _check_dropped(server: ServerProcess) -> None:
    series = values(q(server, "SHOW SERIES", db="tele"))
    assert series == [["cpu,dc=a,host=h2"], ["cpu,dc=b,host=h3"]]
    assert values(q(server, "SHOW TAG VALUES FROM cpu WITH KEY = host", db="tele")) == [
        ["host", "h2"],
        ["host", "h3"],
    ]
    assert values(q(server, "SHOW MEASUREMENTS", db="tele")) == [["cpu"]]
    answer = q(server, "SELECT count(usage) FROM cpu GROUP BY host", db="tele")
    assert [s["tags"]["host"] for s in answer["results"][0]["series"]] == ["h2", "h3"]
    assert values(q(server, "SELECT * FROM cpu WHERE host = 'h1'", db="tele")) == []
    assert values(q(server, "SHOW DATABASES")) == [["tele"]]
    (result,) = q(server, "SELECT v FROM x", db="other")["results"]
    assert result["error"] == "database not found: other"


@pytest.mark.parametrize("flushed", [False, True], ids=["in-memtable", "in-sstables"])
def test_drops_survive_restart_and_compaction(server: ServerProcess, flushed: bool) -> None:
    _load(server)
    if flushed:
        admin(server, "flush")
    assert q(server, "DROP SERIES FROM cpu WHERE host = 'h1'", db="tele") == OK
    assert q(server, "DROP MEASUREMENT mem", db="tele") == OK
    assert q(server, "DROP DATABASE other") == OK
    assert q(server, "DROP DATABASE other") == OK  # InfluxDB: dropping twice is fine
    (result,) = q(server, "DROP SERIES FROM cpu WHERE host = 'h1'", db="nosuch")["results"]
    assert result["error"] == "database not found: nosuch"
    _check_dropped(server)
    restart(server)  # WAL replay (and, flushed, the tables) must not bring anything back
    _check_dropped(server)
    admin(server, "compact")
    restart(server)
    _check_dropped(server)
    # after the drop, writes recreate: a dropped field may even change its type
    write(server, "other", [f"x v=1i {T0}"])
    write(server, "tele", [f"cpu,host=h1,dc=a usage=7i {T0}"])
    assert values(q(server, "SELECT v FROM x", db="other")) == [[T0 // S, 1]]
    assert values(q(server, "SELECT usage FROM cpu WHERE host = 'h1'", db="tele")) == [[T0 // S, 7]]
    restart(server)
    assert values(q(server, "SELECT v FROM x", db="other")) == [[T0 // S, 1]]
    assert values(q(server, "SHOW FIELD KEYS FROM x", db="other")) == [["v", "integer"]]


def test_influxdb_v1_client_library_manages_databases(server: ServerProcess) -> None:
    """The `influxdb` client's database, retention-policy and series calls, unchanged."""
    from influxdb import InfluxDBClient
    from influxdb.exceptions import InfluxDBClientError

    client = InfluxDBClient(host="127.0.0.1", port=server.port, timeout=10)
    try:
        client.create_database("lib db")
        assert {"name": "lib db"} in client.get_list_database()
        client.create_retention_policy("two_days", "2d", 1, database="lib db", default=True)
        assert client.get_list_retention_policies("lib db") == [
            {
                "name": "two_days",
                "duration": "48h0m0s",
                "shardGroupDuration": "24h0m0s",
                "replicaN": 1,
                "default": True,
            }
        ]
        client.alter_retention_policy("two_days", database="lib db", duration="INF")
        assert client.get_list_retention_policies("lib db")[0]["duration"] == "0s"
        now = time.time_ns()
        client.write_points(
            [
                {"measurement": "cpu", "tags": {"host": h}, "time": now, "fields": {"v": 1.0}}
                for h in ("a", "b")
            ]
            + [{"measurement": "mem", "tags": {"host": "a"}, "time": now, "fields": {"v": 2}}],
            database="lib db",
            time_precision="n",
        )
        client.delete_series(database="lib db", measurement="cpu", tags={"host": "a"})
        series = client.query("SHOW SERIES", database="lib db").get_points()
        assert [p["key"] for p in series] == ["cpu,host=b", "mem,host=a"]
        client.switch_database("lib db")
        client.drop_measurement("mem")
        measurements = client.get_list_measurements()
        assert measurements == [{"name": "cpu"}]
        with pytest.raises(InfluxDBClientError, match="DROP RETENTION POLICY"):
            client.drop_retention_policy("two_days", database="lib db")
        client.drop_database("lib db")
        assert client.get_list_database() == []
    finally:
        client.close()
