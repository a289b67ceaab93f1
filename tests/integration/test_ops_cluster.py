"""Operations of a real cluster (2 `pulsar node` processes and a `pulsar coordinator`, all
reading one TOML file through PULSAR_CONFIG): cache statistics and clear fanned out to the
nodes, per-shard storage metrics scraped from a node, configuration reload of coordinator and
nodes, and OpenTelemetry traces that span coordinator and nodes (when the extra is installed).
"""

from __future__ import annotations

import json
import signal
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from pulsar_cluster.tracing import tracing_available
from tests.support.cluster import Cluster
from tests.support.processes import wait_until

T0 = 1_767_225_600_000_000_000  # 2026-01-01T00:00:00Z
TOKEN_1 = "cluster-admin-1"
TOKEN_2 = "cluster-admin-2"
TRACING_MISSING = tracing_available()


def _auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory):
    root = tmp_path_factory.mktemp("ops-cluster")
    config = root / "pulsar.toml"
    config.write_text(f'admin_token = "{TOKEN_1}"\n')
    env = {"PULSAR_CONFIG": str(config)}
    if TRACING_MISSING is None:
        env["PULSAR_TRACING"] = "console"  # spans as JSON lines in each process's log
    c = Cluster(root, nodes=2, shards=2, replication_factor=2, env=env)
    try:
        c.start()
        yield c, config
    finally:
        c.stop()


def _admin(c: Cluster, method: str, path: str, token: str = TOKEN_1, **params: Any) -> Any:
    r = httpx.request(
        method, f"{c.url}/api/v1/admin/{path}", headers=_auth(token), params=params, timeout=60
    )
    assert r.status_code == 200, r.text
    return r.json()


def _query(c: Cluster, headers: dict[str, str] | None = None) -> dict[str, Any]:
    body = {"db": "ops", "measurement": "cpu", "aggregate": "sum", "group_by": ["host"]}
    r = httpx.post(f"{c.url}/api/v1/query", json=body, headers=headers or {}, timeout=30)
    assert r.status_code == 200, r.text
    return r.json()


def _write(c: Cluster, start: int) -> None:
    lines = "".join(
        f"cpu,host=h{i % 8} v={i} {T0 + i * 10**9}\n" for i in range(start, start + 400)
    )
    r = httpx.post(f"{c.url}/write", params={"db": "ops"}, content=lines, timeout=30)
    assert r.status_code == 204, r.text


def _scrape(c: Cluster, i: int) -> dict[str, Any]:
    text = httpx.get(c.node_url(i) + "/metrics", timeout=10).text
    return {f.name: f for f in text_string_to_metric_families(text)}


def test_caches_fan_out_to_nodes_and_clear_keeps_answers(cluster) -> None:
    c, _ = cluster
    _write(c, 0)
    _admin(c, "POST", "flush")
    _write(c, 400)
    _admin(c, "POST", "flush")  # two tables per shard partition: compaction has work later
    answer = _query(c)
    assert len(answer["series"]) == 8
    once = _admin(c, "GET", "caches")
    assert _query(c) == answer
    twice = _admin(c, "GET", "caches")
    assert once["mode"] == "cluster" and set(twice["nodes"]) == {"node-0", "node-1"}
    assert twice["totals"]["block_cache"]["hits"] > once["totals"]["block_cache"]["hits"]
    assert twice["totals"]["block_cache"]["bytes"] > 0
    for node in twice["nodes"].values():
        assert set(node["shards"]) == {"0", "1"}  # replication factor 2: both shards here
        for shard in node["shards"].values():
            # one last-value cache per replica, the node's 1 M entries divided among two
            assert shard["last_value_cache"]["max_entries"] == 500_000
            # --block-cache-mb (64 by default) divided among the node's two replicas
            assert shard["block_cache"]["capacity_bytes"] == 32 * 1024 * 1024
    cleared = _admin(c, "POST", "caches/clear")
    for name, node in cleared["nodes"].items():
        for shard, doc in node["shards"].items():
            assert doc["block_cache"]["bytes"] == 0, (name, shard)
            assert doc["block_cache"]["entries"] == 0, (name, shard)
    assert _query(c) == answer
    # The last query refilled the caches of the replicas it read (the leaders); each node
    # answers for itself on its own API too, with what the coordinator reported for it.
    refilled = _admin(c, "GET", "caches")
    assert refilled["totals"]["block_cache"]["entries"] > 0
    for i in range(c.n):
        own = c.node_get(i, "/v1/caches")
        assert own["shards"].keys() == refilled["nodes"][f"node-{i}"]["shards"].keys()


def test_node_metrics_per_shard(cluster) -> None:
    c, _ = cluster
    _admin(c, "POST", "compact")
    _query(c)
    for i in range(c.n):
        families = _scrape(c, i)
        shards = {s.labels["shard"] for s in families["pulsar_engine_wal_bytes"].samples}
        assert shards == {"0", "1"}
        tables = families["pulsar_engine_sstables"].samples
        assert {(s.labels["database"], s.labels["partition"]) for s in tables} == {
            ("ops", "2026-01-01T00:00:00Z")
        }
        assert all(s.value == 1 for s in tables)  # compacted: one table per partition
        assert all(s.value > 0 for s in families["pulsar_engine_sstable_bytes"].samples)
        compactions = families["pulsar_engine_compactions"].samples
        assert sum(s.value for s in compactions) >= 1
        read = sum(s.value for s in families["pulsar_engine_compaction_read_bytes"].samples)
        written = sum(s.value for s in families["pulsar_engine_compaction_written_bytes"].samples)
        assert read > written > 0  # two tables merged into one
        assert sum(s.value for s in families["pulsar_engine_flushes"].samples) >= 2
        assert sum(s.value for s in families["pulsar_engine_points_written"].samples) > 0
        roles = {
            (s.labels["shard"], s.labels["role"])
            for s in families["pulsar_raft_role"].samples
            if s.value == 1
        }
        assert {shard for shard, _ in roles} == {"0", "1"}
        for name in ("pulsar_raft_term", "pulsar_raft_commit_index", "pulsar_raft_applied_index"):
            assert all(s.value >= 1 for s in families[name].samples), name
        assert "pulsar_last_value_cache_hits" in families
        # the coordinator keeps connections to every node open (keep-alive), and this scrape
        assert families["pulsar_http_connections_open"].samples[0].value >= 1
        assert families["pulsar_http_requests_served"].samples[0].value > 0
        last = families["pulsar_last_value_cache_hits"].samples  # one cache per replica
        assert {s.labels["shard"] for s in last} == {"0", "1"}

    def one_leader_per_shard() -> bool:
        # The nodes are scraped one after the other: during an election or a hand-over to the
        # preferred replica (every second here) a shard may show no leader or two for a moment.
        leaders = [
            s
            for i in range(c.n)
            for s in _scrape(c, i)["pulsar_raft_is_leader"].samples
            if s.value == 1
        ]
        return sorted(s.labels["shard"] for s in leaders) == ["0", "1"]

    wait_until(one_leader_per_shard, 20, 0.2, "one leader per shard in the metrics")
    hits = [s.value for i in range(c.n) for s in _scrape(c, i)["pulsar_block_cache_hits"].samples]
    assert sum(hits) > 0


def test_reload_coordinator_and_nodes(cluster) -> None:
    c, config = cluster
    coordinator = c.procs["coordinator"]
    config.write_text(
        f'admin_token = "{TOKEN_2}"\n'
        'retention = ["ops=1h"]\n'  # the nodes' engines: data of 2026-01-01 is long expired
        "memtable_mb = 32\n"  # a node setting that needs a restart
    )
    coordinator.send_signal(signal.SIGHUP)

    def token_two() -> bool:
        return httpx.get(f"{c.url}/api/v1/admin/status", headers=_auth(TOKEN_2)).status_code == 200

    wait_until(token_two, 10, 0.05, "the coordinator's new admin token")
    assert httpx.get(f"{c.url}/api/v1/admin/status", headers=_auth(TOKEN_1)).status_code == 401
    assert len(_query(c)["series"]) == 8  # the nodes have not reloaded yet

    result = _admin(c, "POST", "reload", token=TOKEN_2)
    assert result["applied"] == [] and result["needs_restart"] == []  # done by SIGHUP
    for node in ("node-0", "node-1"):
        assert result["nodes"][node]["applied"] == ["retention"], result
        assert result["nodes"][node]["needs_restart"] == ["memtable_mb"], result
    assert _query(c)["series"] == []  # reads apply the retention at once

    # A broken file: the coordinator keeps its configuration and says why; a node told by
    # SIGHUP logs the reason and keeps running.
    config.write_text("admin_token = \n")
    r = httpx.post(f"{c.url}/api/v1/admin/reload", headers=_auth(TOKEN_2), timeout=30)
    assert r.status_code == 400 and "invalid TOML" in r.json()["error"], r.text
    c.procs["node-1"].send_signal(signal.SIGHUP)
    wait_until(lambda: "config_reload_failed" in c.log("node-1"), 10, 0.05, "node failure log")
    failed = _scrape(c, 1)
    assert failed["pulsar_config_last_reload_successful"].samples[0].value == 0
    results = {s.labels["result"]: s.value for s in failed["pulsar_config_reloads"].samples}
    assert results == {"applied": 1, "failed": 1}
    assert httpx.get(f"{c.url}/api/v1/admin/status", headers=_auth(TOKEN_2)).status_code == 200
    config.write_text(f'admin_token = "{TOKEN_2}"\n')  # the retention is lifted again
    result = _admin(c, "POST", "reload", token=TOKEN_2)
    assert all(result["nodes"][n]["applied"] == ["retention"] for n in ("node-0", "node-1"))
    assert _scrape(c, 1)["pulsar_config_last_reload_successful"].samples[0].value == 1
    # Expired partitions may already be dropped for good (the background retention pass);
    # points written again are kept and read now that no retention applies.
    _write(c, 0)
    assert len(_query(c)["series"]) == 8
    assert all(p.poll() is None for p in c.procs.values())


def _spans(log: str) -> list[dict[str, Any]]:
    spans = []
    for line in log.splitlines():
        if line.startswith('{"name"'):
            try:
                spans.append(json.loads(line))
            except json.JSONDecodeError:
                continue
    return spans


@pytest.mark.skipif(TRACING_MISSING is not None, reason=f"tracing extra: {TRACING_MISSING}")
def test_one_trace_from_coordinator_to_nodes(cluster) -> None:
    c, _ = cluster
    trace_id = "4bf92f3577b34da6a3ce929d0e0e4736"
    caller_span = "00f067aa0ba902b7"
    _query(c, {"traceparent": f"00-{trace_id}-{caller_span}-01", "X-Request-ID": "traced-1"})

    def spans_of(name: str) -> list[dict[str, Any]]:
        log = (c.root / f"{name}.log").read_text(errors="replace")
        return [s for s in _spans(log) if s["context"]["trace_id"] == "0x" + trace_id]

    def node_spans() -> list[dict[str, Any]]:
        return [s for i in range(c.n) for s in spans_of(f"node-{i}")]

    def complete() -> bool:
        clients = [s for s in spans_of("coordinator") if s["kind"] == "SpanKind.CLIENT"]
        return bool(clients) and len(node_spans()) == len(clients)

    wait_until(complete, 10, 0.1, "spans of the traced query in every process")
    coordinator = spans_of("coordinator")
    server = [s for s in coordinator if s["kind"] == "SpanKind.SERVER"]
    assert len(server) == 1 and server[0]["name"] == "POST /api/v1/query"
    assert server[0]["parent_id"] == "0x" + caller_span
    assert server[0]["resource"]["attributes"]["service.name"] == "pulsardb-coordinator"
    assert server[0]["attributes"]["pulsar.request_id"] == "traced-1"  # as in the request log
    clients = {s["context"]["span_id"]: s for s in coordinator if s["kind"] == "SpanKind.CLIENT"}
    assert len(clients) >= 1  # one per node the shards' leaders are on (one call per node)
    assert all(s["parent_id"] == server[0]["context"]["span_id"] for s in clients.values())
    # Every node call is continued by exactly one node span (one trace across processes).
    assert sorted(s["parent_id"] for s in node_spans()) == sorted(clients)
    for i in range(c.n):
        for span in spans_of(f"node-{i}"):
            assert span["kind"] == "SpanKind.SERVER"
            assert span["resource"]["attributes"]["service.name"] == "pulsardb-node"
            assert span["resource"]["attributes"]["service.instance.id"] == f"node-{i}"
            assert span["name"].startswith(("POST /v1/query", "POST /v1/shards/"))


def test_caches_with_a_node_down(cluster) -> None:
    """Last in the module: it kills a node. Statistics name the unreachable node and total the
    others; a clear that cannot reach every node fails, naming the node, instead of claiming
    success."""
    c, _ = cluster
    c.kill("node-1")
    doc = _admin(c, "GET", "caches", token=TOKEN_2)
    assert "unreachable" in doc["nodes"]["node-1"]["error"]
    assert doc["totals"] == doc["nodes"]["node-0"]["totals"]  # the reachable node only
    r = httpx.post(f"{c.url}/api/v1/admin/caches/clear", headers=_auth(TOKEN_2), timeout=30)
    assert r.status_code == 503 and "unreachable" in r.json()["error"], r.text
    result = _admin(c, "POST", "reload", token=TOKEN_2)
    assert "unreachable" in result["nodes"]["node-1"]["error"]
    assert result["nodes"]["node-0"]["status"] == "reloaded"
