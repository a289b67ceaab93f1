"""A 3-node Raft cluster of real processes: writes, queries, status, auth, convergence."""

from __future__ import annotations

import subprocess
from pathlib import Path

import httpx
import pytest

from tests.support.cluster import SECRET, Cluster
from tests.support.processes import pulsar_command, wait_until

T0 = 1_767_225_600_000_000_000


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory):
    c = Cluster(Path(tmp_path_factory.mktemp("cluster")))
    try:
        c.start()
        yield c
    finally:
        c.stop()


def test_writes_spread_over_shards_read_back_exactly(cluster: Cluster) -> None:
    lines = "".join(
        f"cpu,host=h{h} usage={h + i / 10},n={i}i {T0 + i * 10**9}\n"
        for h in range(40)
        for i in range(5)
    )
    r = httpx.post(f"{cluster.url}/write", params={"db": "t"}, content=lines, timeout=30)
    assert r.status_code == 204, r.text
    r = httpx.post(
        f"{cluster.url}/api/v1/query", json={"db": "t", "measurement": "cpu"}, timeout=30
    )
    assert r.status_code == 200, r.text
    series = r.json()["series"]
    assert len(series) == 40
    by_host = {s["tags"]["host"]: s for s in series}
    h7 = by_host["h7"]
    assert h7["columns"] == ["time", "n", "usage"]
    assert h7["values"] == [[T0 + i * 10**9, i, 7 + i / 10] for i in range(5)]
    # The 40 series landed on every shard, and every replica of a shard holds the same data.
    status = httpx.get(f"{cluster.url}/api/v1/admin/status", timeout=10).json()
    assert status["shards_without_leader"] == []
    for shard in range(cluster.shards):
        sums = cluster.checksums(shard)
        assert len({s["checksum"] for s in sums.values()}) == 1, sums
        assert next(iter(sums.values()))["values"] > 0


def test_type_conflict_is_rejected_and_writes_nothing(cluster: Cluster) -> None:
    r = httpx.post(f"{cluster.url}/write", params={"db": "c"}, content=f"m,k=a v=1i {T0}\n")
    assert r.status_code == 204, r.text
    r = httpx.post(
        f"{cluster.url}/write", params={"db": "c"}, content=f"m,k=a v=1.5 {T0 + 1}\n", timeout=30
    )
    assert r.status_code == 400, r.text
    assert "field type conflict" in r.json()["error"]
    out = httpx.post(f"{cluster.url}/api/v1/query", json={"db": "c", "measurement": "m"}).json()
    assert out["series"][0]["values"] == [[T0, 1]]


def test_status_names_leaders_terms_and_lag(cluster: Cluster) -> None:
    status = httpx.get(f"{cluster.url}/api/v1/admin/status", timeout=10).json()
    assert status["mode"] == "cluster"
    assert status["shard_count"] == cluster.shards
    assert set(status["nodes"]) == {"node-0", "node-1", "node-2"}
    assert all(n["state"] == "up" for n in status["nodes"].values())
    for shard in status["shards"]:
        assert shard["leader"] in status["nodes"]
        assert shard["term"] >= 1
        assert len(shard["replicas"]) == 3
        assert all(r["lag"] is not None for r in shard["replicas"].values())


def test_node_api_requires_the_cluster_token(cluster: Cluster) -> None:
    url = cluster.node_url(0)
    assert httpx.get(url + "/v1/map").status_code == 401
    wrong = {"Authorization": "Bearer not-" + SECRET}
    assert httpx.get(url + "/v1/map", headers=wrong).status_code == 401
    r = httpx.post(url + "/v1/shards/0/write", headers=wrong, content=b"x")
    assert r.status_code == 401

    def ready() -> bool:
        # Probes need no token. /ready is 503 for a moment whenever a replica sees no leader
        # (an election, a hand-over to the preferred replica), so it is polled: never 401.
        code = httpx.get(url + "/ready").status_code
        assert code in (200, 503), code
        return code == 200

    wait_until(ready, 20, 0.1, "/ready to answer 200 without a token")
    doc = cluster.node_get(0, "/v1/map")
    assert doc["shard_count"] == cluster.shards and doc["version"] == 1


def test_follower_answers_not_leader_with_a_hint(cluster: Cluster) -> None:
    leader = cluster.leader_of(0)
    follower = (leader + 1) % cluster.n
    r = httpx.post(
        cluster.node_url(follower) + "/v1/shards/0/write",
        headers=cluster.headers,
        content=b"",
        timeout=10,
    )
    assert r.status_code == 421, r.text
    body = r.json()
    assert body["shard"] == 0 and body["leader"] == f"node-{leader}" and body["map_version"] == 1
    r = httpx.post(
        cluster.node_url(leader) + "/v1/shards/0/write",
        headers=cluster.headers,
        content=b"garbage",
        timeout=10,
    )
    assert r.status_code == 400, r.text


def test_aggregates_merge_partials_from_every_shard(cluster: Cluster) -> None:
    lines = "".join(
        f"agg,host=h{h},dc=d{h % 2} v={i} {T0 + i * 10**9}\n" for h in range(30) for i in range(10)
    )
    r = httpx.post(f"{cluster.url}/write", params={"db": "a"}, content=lines, timeout=30)
    assert r.status_code == 204, r.text
    body = {"db": "a", "measurement": "agg", "fields": ["v"], "aggregate": "sum",
            "group_by": ["dc"]}  # fmt: skip
    r = httpx.post(f"{cluster.url}/api/v1/query", json=body, timeout=30)
    assert r.status_code == 200, r.text
    sums = {s["tags"]["dc"]: s["values"][0][1] for s in r.json()["series"]}
    assert sums == {"d0": 15 * 45, "d1": 15 * 45}
    body = {"db": "a", "measurement": "agg", "fields": ["v"], "aggregate": "count"}
    out = httpx.post(f"{cluster.url}/api/v1/query", json=body, timeout=30).json()
    assert out["series"][0]["values"][0][1] == 300
    r = httpx.get(f"{cluster.url}/query", params={"q": "SHOW DATABASES"}, timeout=30)
    assert r.status_code == 200, r.text
    assert ["a"] in r.json()["results"][0]["series"][0]["values"]
    r = httpx.post(f"{cluster.url}/api/v1/admin/compact", params={"wait": "true"}, timeout=120)
    assert r.status_code == 200, r.text
    out = httpx.post(f"{cluster.url}/api/v1/query", json=body, timeout=30).json()
    assert out["series"][0]["values"][0][1] == 300


def test_leaders_move_to_their_preferred_replicas(cluster: Cluster) -> None:
    """Placement makes shard s prefer node s mod 3; balancing hands leadership there."""

    def balanced() -> bool:
        status = httpx.get(f"{cluster.url}/api/v1/admin/status", timeout=10).json()
        return all(s["leader"] == f"node-{s['shard'] % cluster.n}" for s in status["shards"])

    wait_until(balanced, 30, 0.2, "leaders on their preferred replicas")


def test_node_metrics_carry_the_raft_gauges_the_alerts_use(cluster: Cluster) -> None:
    text = httpx.get(cluster.node_url(0) + "/metrics", timeout=10).text
    for name in ("is_leader", "term", "commit_index", "applied_index"):
        assert f'pulsar_raft_{name}{{shard="0"}}' in text, name


def test_admin_status_command_prints_leaders_terms_and_lag(cluster: Cluster) -> None:
    out = subprocess.run(
        [*pulsar_command(), "admin", "status", "--url", cluster.url],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert out.returncode == 0, out.stderr
    assert f"cluster: {cluster.shards} shards, replication factor 3" in out.stdout
    assert "node-0     up" in out.stdout
    shard_lines = [line for line in out.stdout.splitlines() if line[:1].isdigit()]
    assert len(shard_lines) == cluster.shards
    assert all("node-" in line and "lag" in line for line in shard_lines)


def test_every_replica_syncs_its_raft_journal(cluster: Cluster) -> None:
    """fsync=always: journals are fsynced before entries count (node/raft/durable.py)."""
    line = f"sync,h=a v=1i {T0}\n"
    assert httpx.post(f"{cluster.url}/write", params={"db": "s"}, content=line).status_code == 204
    for i in range(cluster.n):
        shards = cluster.node_get(i, "/v1/status")["shards"]
        assert all(s["journal_syncs"] > 0 for s in shards.values()), (i, shards)


def test_influxql_delete_is_replicated_to_every_replica(cluster: Cluster) -> None:
    lines = "".join(f"del,h=h{h} v={i}i {T0 + i}\n" for h in range(12) for i in range(4))
    assert httpx.post(f"{cluster.url}/write", params={"db": "d"}, content=lines).status_code == 204
    q = f"DELETE FROM del WHERE h = 'h3' AND time >= {T0 + 1} AND time < {T0 + 3}"
    r = httpx.post(f"{cluster.url}/query", params={"db": "d", "q": q}, timeout=30)
    assert r.status_code == 200, r.text
    assert "error" not in r.json()["results"][0], r.text
    out = httpx.post(
        f"{cluster.url}/api/v1/query",
        json={"db": "d", "measurement": "del", "where": "h = 'h3'"},
        timeout=30,
    ).json()
    assert [row[0] for row in out["series"][0]["values"]] == [T0, T0 + 3]
    for shard in range(cluster.shards):
        sums = cluster.checksums(shard)
        assert len({s["checksum"] for s in sums.values()}) == 1, sums


def test_node_merges_the_partials_of_the_shards_it_leads(cluster: Cluster) -> None:
    """POST /v1/query answers one partial for several shards, equal to merging the shards'
    own partials; a shard the node does not lead fails the whole call (421), which the
    coordinator answers by asking shard by shard."""
    from pulsar_cluster.query.partial import decode_partial, encode_plan, merge
    from pulsar_cluster.query.plan import ColumnSpec, Plan

    lines = "".join(
        f"grp,host=h{h} v={h * 10 + i} {T0 + i * 10**9}\n" for h in range(24) for i in range(5)
    )
    r = httpx.post(f"{cluster.url}/write", params={"db": "g"}, content=lines, timeout=30)
    assert r.status_code == 204, r.text
    plan = Plan(
        "select", "g", "grp", T0, T0 + 10**10, columns=(ColumnSpec("v", "sum"),), group_by=None
    )
    encoded = encode_plan(plan)
    node = cluster.leader_of(0)
    led = [s for s in range(cluster.shards) if cluster.leader_of(s) == node]
    params = {"shards": ",".join(map(str, led)), "consistency": "leader"}
    r = httpx.post(
        cluster.node_url(node) + "/v1/query",
        headers=cluster.headers,
        content=encoded,
        params=params,
        timeout=30,
    )
    assert r.status_code == 200, r.text
    one_by_one = [
        decode_partial(
            httpx.post(
                cluster.node_url(node) + f"/v1/shards/{s}/query",
                headers=cluster.headers,
                content=encoded,
                timeout=30,
            ).content
        )
        for s in led
    ]
    assert decode_partial(r.content) == merge(plan, one_by_one)
    other = next(s for s in range(cluster.shards) if cluster.leader_of(s) != node)
    r = httpx.post(
        cluster.node_url(node) + "/v1/query",
        headers=cluster.headers,
        content=encoded,
        params={"shards": f"{led[0]},{other}"},
        timeout=30,
    )
    assert r.status_code == 421, r.text
    assert r.json()["shard"] == other
    # Through the coordinator: every shard counted once.
    body = {"db": "g", "measurement": "grp", "fields": ["v"], "aggregate": "count"}
    out = httpx.post(f"{cluster.url}/api/v1/query", json=body, timeout=30).json()
    assert out["series"][0]["values"][0][1] == 120


def _influxql(cluster: Cluster, db: str, q: str) -> dict:
    r = httpx.post(f"{cluster.url}/query", params={"db": db, "q": q}, timeout=30)
    assert r.status_code == 200, r.text
    result = r.json()["results"][0]
    assert "error" not in result, result
    return result


def test_cached_tag_keys_never_misclassify_a_name(cluster: Cluster) -> None:
    """The coordinator plans with the tag keys it cached (pulsar_cluster/tagprobe.py); every
    answer is checked against the nodes' tag keys. A tag key that appears, or vanishes, after
    the cache was filled must not change any answer: each is compared with the same query
    whose names carry explicit ::tag / ::field casts, which no cache decides."""

    def count(q: str) -> int | None:
        series = _influxql(cluster, "tk", q).get("series")
        return None if not series else series[0]["values"][0][1]

    w = httpx.post(f"{cluster.url}/write", params={"db": "tk"}, content=f"sch,host=a v=1i {T0}\n")
    assert w.status_code == 204, w.text
    for _ in range(3):  # the first fills the cache; the next are planned from it
        assert count("SELECT count(v) FROM sch WHERE host = 'a'") == 1
    # a new tag key, unknown to the cache: `zone` must be taken for a tag, not a field
    w = httpx.post(
        f"{cluster.url}/write", params={"db": "tk"}, content=f"sch,host=b,zone=z1 v=2i {T0 + 1}\n"
    )
    assert w.status_code == 204, w.text
    assert count("SELECT count(v) FROM sch WHERE zone = 'z1'") == 1
    assert count("SELECT count(v) FROM sch WHERE zone = 'z1'") == 1  # now from the cache
    assert count("SELECT count(v) FROM sch WHERE zone::tag = 'z1'") == 1
    # the only series with `zone` dropped: whatever the index now says about the key, the
    # uncast name is classified as a fresh plan classifies it
    _influxql(cluster, "tk", "DROP SERIES FROM sch WHERE zone = 'z1'")
    keys = _influxql(cluster, "tk", "SHOW TAG KEYS FROM sch")["series"][0]["values"]
    cast = "tag" if ["zone"] in keys else "field"
    for _ in range(2):
        assert count("SELECT count(v) FROM sch WHERE zone != 'x'") == count(
            f"SELECT count(v) FROM sch WHERE zone::{cast} != 'x'"
        )
    assert count("SELECT count(v) FROM sch WHERE host = 'a'") == 1
