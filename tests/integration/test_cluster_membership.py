"""Membership with real processes: a 4th node joins under continuous writes, the cluster is
rebalanced onto it, it is drained and removed again; every acknowledged point stays readable and
the replicas of every shard end with identical checksums."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.integration.test_cluster_faults import (
    Writer,
    assert_all_acked_readable,
)
from tests.support.cluster import SECRET, Cluster, free_port_range
from tests.support.processes import free_port, pulsar_command, wait_until

SHARDS = 4
HEADERS = {"Authorization": f"Bearer {SECRET}"}


def phase_writer(url: str, first: int) -> Writer:
    """The fault tests' writer, numbering its points from `first` (one writer per phase)."""
    return Writer(url, max_requests=100_000, first=first)


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
    acked: list[tuple[int, float]] = []
    try:
        cluster.start()
        writer = phase_writer(cluster.url, 0)
        writer.start()
        urls = {f"node-{i}": cluster.node_url(i) for i in range(3)}

        # A 4th node joins through node-1's API.
        urls["node-3"] = join_node(cluster, tmp_path, "node-3", 1)
        # Enough writes that every shard's log was compacted past its start (every 50 entries).
        wait_until(lambda: len(writer.acked) >= 120, 60, 0.1, "120 acknowledged writes")
        # Bad input changes nothing.
        version = current_map(cluster)["version"]
        r = httpx.post(
            urls["node-0"] + "/v1/members", json={"id": "bad id!"}, headers=HEADERS, timeout=10
        )
        assert r.status_code == 400, r.text
        r = httpx.post(urls["node-0"] + "/v1/members/node-9/drain", headers=HEADERS, timeout=10)
        assert r.status_code == 400 and "node-9" in r.json()["error"], r.text
        assert current_map(cluster)["version"] == version
        # Rebalance through node-3, which is not in the metadata group: it forwards.
        r = httpx.post(urls["node-3"] + "/v1/rebalance", headers=HEADERS, timeout=30)
        assert r.status_code == 200, r.text
        assert len(r.json()["moves"]) == 3  # 12 replicas over 4 nodes: 3 each
        doc = wait_moves_done(cluster)
        counts = {n: sum(n in r for r in doc["replicas"]) for n in urls}
        assert counts == {"node-0": 3, "node-1": 3, "node-2": 3, "node-3": 3}, doc
        acked_before = len(writer.acked)
        wait_until(lambda: len(writer.acked) > acked_before + 5, 30, 0.1, "writes go on")
        # Replicas agree once writes pause (node-3's new replicas hold the data too).
        writer.finish()
        acked += writer.acked
        assert_replicas_identical(cluster, urls, doc)
        # The new replicas caught up by snapshot transfer (node/raft/snapshot.py).
        assert "raft_snapshot_restored" in (tmp_path / "node-3.log").read_text(errors="replace")
        # A joined node restarts from its stored map (kill -9, same flags) with its replicas.
        cluster.kill("node-3")
        cluster._spawn("node-3", JOINER_ARGS["node-3"])
        wait_until(lambda: node_ready(cluster, "node-3", urls), 30, 0.2, "node-3 restarted")

        def node3_status() -> dict[str, Any]:
            r = httpx.get(urls["node-3"] + "/v1/status", headers=HEADERS, timeout=10)
            return r.json()  # type: ignore[no-any-return]

        # It may have been killed before it stored the last map: it refreshes within a tick.
        wait_until(lambda: node3_status()["map_version"] == doc["version"], 10, 0.1, "node-3 map")
        assert len(node3_status()["shards"]) == 3
        assert all(s["raft_bound"] for s in node3_status()["shards"].values())
        assert_replicas_identical(cluster, urls, doc)
        writer = phase_writer(cluster.url, 1_000_000)
        writer.start()
        nodes = httpx.get(cluster.url + "/api/v1/admin/nodes", timeout=10).json()
        assert {n["id"]: n["replicas"] for n in nodes["nodes"]} == counts

        # A node with replicas cannot be removed; drain it first.
        r = httpx.delete(cluster.url + "/api/v1/admin/nodes/node-3", timeout=30)
        assert r.status_code == 400 and "drain" in r.json()["error"], r.text
        # The CLI: plans the drain, shows "moves done/total", returns when the moves are done.
        out = subprocess.run(
            [*pulsar_command(), "admin", "drain-node", "node-3", "--url", cluster.url],
            capture_output=True, text=True, timeout=120, check=False,
        )  # fmt: skip
        assert out.returncode == 0, out.stderr
        assert "moves 3/3 done" in out.stderr, out.stderr
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
        acked += writer.acked
        assert_all_acked_readable(cluster, acked)
        assert_replicas_identical(cluster, urls, doc)
    finally:
        if writer is not None and writer.is_alive():
            writer.stop_event.set()
        cluster.stop()


JOINER_ARGS: dict[str, list[str]] = {}


def node_ready(cluster: Cluster, name: str, urls: dict[str, str]) -> bool:
    if cluster.procs[name].poll() is not None:
        pytest.fail(f"{name} exited: {cluster.log(name)}")
    try:
        return httpx.get(urls[name] + "/ready", timeout=3).status_code == 200
    except httpx.HTTPError:
        return False


def join_node(
    cluster: Cluster, tmp_path: Path, name: str, via: int, extra: tuple[str, ...] = ()
) -> str:
    """Start `name` with --join through node `via`; its API URL once it is in the map."""
    api, raft = free_port(), free_port_range(SHARDS + 1)
    JOINER_ARGS[name] = [
        "node", "--node-id", name, "--join", f"127.0.0.1:{cluster.api_ports[via]}",
        "--data-dir", str(tmp_path / name),
        "--host", "127.0.0.1", "--port", str(api), "--raft-port", str(raft),
        "--raft-election-timeout-ms", "400", "--log-level", "info", *extra,
    ]  # fmt: skip
    cluster._spawn(name, JOINER_ARGS[name])
    wait_until(
        lambda: name in {p["id"] for p in current_map(cluster)["peers"]},
        30, 0.2, f"{name} in the map",
    )  # fmt: skip
    return f"http://127.0.0.1:{api}"


def test_replace_a_dead_node(tmp_path: Path) -> None:
    """kill -9 a node holding replicas; a new node joins, the dead one is drained (its moves
    never hear from it) and removed; no acknowledged write is lost."""
    cluster = Cluster(tmp_path, nodes=3, shards=SHARDS, replication_factor=3)
    writer: Writer | None = None
    try:
        cluster.start()
        urls = {f"node-{i}": cluster.node_url(i) for i in range(3)}
        # A StatefulSet scaled up: the new node asks for its share itself (no admin call).
        urls["node-3"] = join_node(cluster, tmp_path, "node-3", 0, ("--rebalance-on-join",))

        def node3_has_its_share() -> bool:
            doc = current_map(cluster)
            return not doc["moves"] and sum("node-3" in ids for ids in doc["replicas"]) == 3

        wait_until(node3_has_its_share, 90, 0.25, "node-3 to get 3 of 12 replicas by itself")
        writer = phase_writer(cluster.url, 0)
        writer.start()
        wait_until(lambda: len(writer.acked) >= 20, 30, 0.1, "20 acknowledged writes")

        cluster.kill("node-3")
        urls["node-4"] = join_node(cluster, tmp_path, "node-4", 2)
        r = httpx.post(cluster.url + "/api/v1/admin/nodes/node-3/drain", timeout=30)
        assert r.status_code == 200, r.text
        assert {m["target"] for m in r.json()["moves"]} == {"node-4"}
        doc = wait_moves_done(cluster, 90)
        assert not any("node-3" in ids for ids in doc["replicas"])
        assert sum("node-4" in ids for ids in doc["replicas"]) == 3
        r = httpx.delete(cluster.url + "/api/v1/admin/nodes/node-3", timeout=30)
        assert r.status_code == 200, r.text

        acked_before = len(writer.acked)
        wait_until(lambda: len(writer.acked) > acked_before + 5, 30, 0.1, "writes go on")
        writer.finish()
        assert_all_acked_readable(cluster, writer.acked)
        assert_replicas_identical(cluster, urls, current_map(cluster))
    finally:
        if writer is not None and writer.is_alive():
            writer.stop_event.set()
        cluster.stop()


def meta_leader(cluster: Cluster) -> int:
    """Index of the initial node leading the metadata group (the mover)."""

    def find() -> int | None:
        for i in range(cluster.n):
            try:
                meta = cluster.node_get(i, "/v1/status")["meta"]
            except httpx.HTTPError:
                continue
            if meta and meta["role"] == "leader":
                return i
        return None

    wait_until(lambda: find() is not None, 20, 0.1, "metadata leader")
    found = find()
    assert found is not None
    return found


def test_moves_resume_after_the_mover_is_killed(tmp_path: Path) -> None:
    """kill -9 the metadata leader (which drives the moves) in the middle of a rebalance: the
    next leader resumes every move from the step recorded in the map."""
    cluster = Cluster(tmp_path, nodes=3, shards=SHARDS, replication_factor=3)
    writer: Writer | None = None
    try:
        cluster.start()
        urls = {f"node-{i}": cluster.node_url(i) for i in range(3)}
        urls["node-3"] = join_node(cluster, tmp_path, "node-3", 0)
        writer = phase_writer(cluster.url, 0)
        writer.start()
        wait_until(lambda: len(writer.acked) >= 20, 30, 0.1, "20 acknowledged writes")

        mover = meta_leader(cluster)
        r = httpx.post(cluster.url + "/api/v1/admin/rebalance", timeout=30)
        assert r.status_code == 200 and len(r.json()["moves"]) == 3, r.text
        seen: list[Any] = []

        def past_first_step() -> bool:
            seen[:] = current_map(cluster)["moves"]
            return not seen or any(m["step"] != "add" for m in seen)

        wait_until(past_first_step, 30, 0.05, "a move past its first step")
        # Killed right after the moves were seen (a move needs two more mover ticks to end).
        cluster.kill(f"node-{mover}")
        assert seen, "the moves finished before the mover was killed"
        cluster.start_node(mover)
        doc = wait_moves_done(cluster, 90)
        assert meta_leader(cluster) is not None
        counts = {n: sum(n in ids for ids in doc["replicas"]) for n in urls}
        assert counts == {"node-0": 3, "node-1": 3, "node-2": 3, "node-3": 3}, doc

        cluster.wait_node_ready(mover)
        acked_before = len(writer.acked)
        wait_until(lambda: len(writer.acked) > acked_before + 5, 30, 0.1, "writes go on")
        writer.finish()
        assert_all_acked_readable(cluster, writer.acked)
        assert_replicas_identical(cluster, urls, current_map(cluster))
    finally:
        if writer is not None and writer.is_alive():
            writer.stop_event.set()
        cluster.stop()
