"""Data definition and read consistency on a 3-node Raft cluster of real processes.

CREATE DATABASE, retention policies, DROP SERIES / MEASUREMENT / DATABASE are Raft commands on
every shard group: every replica ends with the same registry, index and points, also after a
kill -9 restart and a full compaction. `consistency=any` reads followers: it answers while two
of the three nodes (hence every shard's quorum) are down, where `leader` cannot.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.support.cluster import Cluster

S = 1_000_000_000
T0 = 1_767_225_600 * S
OK = {"results": [{"statement_id": 0}]}
HOSTS = [f"h{i}" for i in range(12)]


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    c = Cluster(Path(tmp_path_factory.mktemp("ddl-cluster")), shard_deadline_s=3.0)
    try:
        c.start()
        yield c
    finally:
        c.stop()


def q(cluster: Cluster, text: str, db: str | None = None, **params: str) -> dict:  # type: ignore[type-arg]
    params = {"q": text, **params}
    if db:
        params["db"] = db
    r = httpx.post(f"{cluster.url}/query", params=params, timeout=30)
    assert r.status_code == 200, r.text
    return r.json()  # type: ignore[no-any-return]


def values(answer: dict) -> list:  # type: ignore[type-arg]
    (result,) = answer["results"]
    assert "error" not in result, result
    return [row for s in result.get("series", []) for row in s.get("values", [])]


def node_databases(cluster: Cluster, i: int) -> list[str]:
    return cluster.node_get(i, "/v1/databases")["databases"]  # type: ignore[no-any-return]


def count_usage(cluster: Cluster, consistency: str) -> httpx.Response:
    body = {
        "db": "tele",
        "measurement": "cpu",
        "fields": ["usage"],
        "aggregate": "count",
        "consistency": consistency,
    }
    return httpx.post(f"{cluster.url}/api/v1/query", json=body, timeout=30)


def test_ddl_is_replicated_to_every_replica(cluster: Cluster) -> None:
    assert q(cluster, "CREATE DATABASE empty WITH DURATION 30d") == OK
    assert values(q(cluster, "SHOW DATABASES")) == [["empty"]]
    for i in range(cluster.n):  # every node, every shard replica holds the registry
        assert node_databases(cluster, i) == ["empty"]
    assert values(q(cluster, "SHOW RETENTION POLICIES ON empty")) == [
        ["autogen", "720h0m0s", "24h0m0s", 1, True]
    ]
    assert q(cluster, "ALTER RETENTION POLICY autogen ON empty DURATION INF") == OK
    assert values(q(cluster, "SHOW RETENTION POLICIES ON empty")) == [
        ["autogen", "0s", "168h0m0s", 1, True]
    ]

    lines = [f"cpu,host={h} usage={i}.5 {T0 + i * S}" for h in HOSTS for i in range(20)]
    lines += [f"mem,host={h} free=1i {T0}" for h in HOSTS]
    r = httpx.post(f"{cluster.url}/write", params={"db": "tele"}, content="\n".join(lines))
    assert r.status_code == 204, r.text
    r = httpx.post(f"{cluster.url}/write", params={"db": "other"}, content=f"x v=1 {T0}")
    assert r.status_code == 204, r.text
    httpx.post(f"{cluster.url}/api/v1/admin/flush", params={"wait": "true"}, timeout=60)

    assert q(cluster, "DROP SERIES FROM cpu WHERE host = 'h1' OR host =~ /^h1[01]$/", "tele") == OK
    assert q(cluster, "DROP MEASUREMENT mem", db="tele") == OK
    assert q(cluster, "DROP DATABASE other") == OK
    kept = sorted(set(HOSTS) - {"h1", "h10", "h11"})

    def check() -> None:
        assert values(q(cluster, "SHOW DATABASES")) == [["empty"], ["tele"]]
        assert values(q(cluster, "SHOW MEASUREMENTS", db="tele")) == [["cpu"]]
        shown = values(q(cluster, "SHOW TAG VALUES FROM cpu WITH KEY = host", db="tele"))
        assert shown == [["host", h] for h in kept]
        assert values(q(cluster, "SHOW SERIES", db="tele")) == [[f"cpu,host={h}"] for h in kept]
        r = count_usage(cluster, "leader")
        assert r.status_code == 200, r.text
        assert r.json()["series"][0]["values"][0][1] == 20 * len(kept)
        for i in range(cluster.n):
            assert node_databases(cluster, i) == ["empty", "tele"]
            assert cluster.node_get(i, "/v1/measurements?db=tele")["measurements"] == ["cpu"]
        for shard in range(cluster.shards):
            sums = cluster.checksums(shard)
            assert len({s["checksum"] for s in sums.values()}) == 1, sums

    check()
    r = httpx.post(f"{cluster.url}/api/v1/admin/compact", params={"wait": "true"}, timeout=120)
    assert r.status_code == 200, r.text
    cluster.kill("node-1")  # kill -9: its engines replay WAL and Raft journal at start
    cluster.start_node(1)
    cluster.wait_ready()
    check()


def test_consistency_any_reads_followers(cluster: Cluster) -> None:
    expected = count_usage(cluster, "leader").json()["series"][0]["values"][0][1]
    for shard in range(cluster.shards):  # every replica has applied everything
        sums = cluster.checksums(shard)
        assert len({s["checksum"] for s in sums.values()}) == 1, sums
    r = httpx.get(f"{cluster.url}/query", params={"q": "SHOW DATABASES", "consistency": "x"})
    assert r.status_code == 400 and "consistency" in r.json()["error"]
    # Two of three nodes down: no shard has a quorum, hence no leader that may answer.
    cluster.kill("node-1")
    cluster.kill("node-2")
    r = count_usage(cluster, "any")
    assert r.status_code == 200, r.text
    assert r.json()["series"][0]["values"][0][1] == expected
    answer = q(cluster, "SELECT count(usage) FROM cpu", db="tele", consistency="any")
    assert values(answer)[0][1] == expected
    r = count_usage(cluster, "leader")
    assert r.status_code == 503, r.text
