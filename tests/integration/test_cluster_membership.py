"""Membership with real processes: a 4th node joins under continuous writes, the cluster is
rebalanced onto it, it is drained and removed again; every acknowledged point stays readable and
the replicas of every shard end with identical checksums."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import httpx

from tests.integration.test_cluster_faults import Writer, assert_all_acked_readable
from tests.support.cluster import SECRET, Cluster, free_port_range
from tests.support.processes import free_port, wait_until

SHARDS = 4


def current_map(cluster: Cluster) -> dict[str, Any]:
    return cluster.node_get(0, "/v1/map")  # type: ignore[no-any-return]


def wait_moves_done(cluster: Cluster, timeout_s: float = 60.0) -> dict[str, Any]:
    def done() -> bool:
        r = httpx.get(cluster.url + "/api/v1/admin/moves", timeout=10)
        return r.status_code == 200 and not r.json()["moves"]

    wait_until(done, timeout_s, 0.25, "replica moves to finish")
    return current_map(cluster)


def assert_replicas_identical(cluster: Cluster, urls: dict[str, str], doc: dict[str, Any]) -> None:
    headers = {"Authorization": f"Bearer {SECRET}"}
    for shard, holders in enumerate(doc["replicas"]):
        deadline = time.monotonic() + 20
        sums: dict[str, Any] = {}
        while time.monotonic() < deadline:
            sums = {
                n: httpx.get(f"{urls[n]}/v1/shards/{shard}/checksum", headers=headers, timeout=10)
                .json()
                .get("checksum")
                for n in holders
            }
            if len(set(sums.values())) == 1:
                break
            time.sleep(0.2)
        assert len(set(sums.values())) == 1, (shard, sums)


def test_join_rebalance_drain_remove_under_writes(tmp_path: Path) -> None:
    # Log compaction every 50 entries: the new replicas catch up by snapshot transfer.
    cluster = Cluster(
        tmp_path,
        nodes=3,
        shards=SHARDS,
        replication_factor=3,
        env={"PULSAR_RAFT_COMPACTION_ENTRIES": "50"},
    )
    writer: Writer | None = None
    try:
        cluster.start()
        writer = Writer(cluster.url, max_requests=100_000)
        writer.start()
        urls = {f"node-{i}": cluster.node_url(i) for i in range(3)}

        # A 4th node joins through node-1's API.
        api, raft = free_port(), free_port_range(SHARDS + 1)
        urls["node-3"] = f"http://127.0.0.1:{api}"
        cluster._spawn(
            "node-3",
            [
                "node", "--node-id", "node-3", "--join", f"127.0.0.1:{cluster.api_ports[1]}",
                "--data-dir", str(tmp_path / "node-3"),
                "--host", "127.0.0.1", "--port", str(api), "--raft-port", str(raft),
                "--raft-election-timeout-ms", "400", "--log-level", "warning",
            ],
        )  # fmt: skip
        wait_until(
            lambda: "node-3" in {p["id"] for p in current_map(cluster)["peers"]},
            30, 0.2, "node-3 in the map",
        )  # fmt: skip

        r = httpx.post(cluster.url + "/api/v1/admin/rebalance", timeout=30)
        assert r.status_code == 200, r.text
        assert len(r.json()["moves"]) == 3  # 12 replicas over 4 nodes: 3 each
        doc = wait_moves_done(cluster)
        counts = {n: sum(n in r for r in doc["replicas"]) for n in urls}
        assert counts == {"node-0": 3, "node-1": 3, "node-2": 3, "node-3": 3}, doc
        acked_before = len(writer.acked)
        wait_until(lambda: len(writer.acked) > acked_before + 5, 30, 0.1, "writes go on")
        assert_replicas_identical(cluster, urls, doc)
        nodes = httpx.get(cluster.url + "/api/v1/admin/nodes", timeout=10).json()
        assert {n["id"]: n["replicas"] for n in nodes["nodes"]} == counts

        # A node with replicas cannot be removed; drain it first.
        r = httpx.delete(cluster.url + "/api/v1/admin/nodes/node-3", timeout=30)
        assert r.status_code == 400 and "drain" in r.json()["error"], r.text
        r = httpx.post(cluster.url + "/api/v1/admin/nodes/node-3/drain", timeout=30)
        assert r.status_code == 200, r.text
        doc = wait_moves_done(cluster)
        assert not any("node-3" in r for r in doc["replicas"]), doc
        r = httpx.delete(cluster.url + "/api/v1/admin/nodes/node-3", timeout=30)
        assert r.status_code == 200, r.text
        assert "node-3" not in {p["id"] for p in current_map(cluster)["peers"]}
        # node-3 destroyed its replicas and deleted their data.
        wait_until(
            lambda: not any((tmp_path / "node-3" / "shards").iterdir()),
            20, 0.2, "node-3 drops its shard data",
        )  # fmt: skip

        acked_before = len(writer.acked)
        wait_until(lambda: len(writer.acked) > acked_before + 5, 30, 0.1, "writes go on")
        writer.finish()
        assert_all_acked_readable(cluster, writer.acked)
        assert_replicas_identical(cluster, urls, doc)
    finally:
        if writer is not None and writer.is_alive():
            writer.stop_event.set()
        cluster.stop()
