"""Backup and restore of a 3-node Raft cluster (real `pulsar node` and `pulsar coordinator`
processes): full and incremental backups through the coordinator (the incremental with one node
down), restore of every node into a new cluster on other ports, point-by-point comparison, new
writes after the restore (the Raft log continues after the restored index), and point-in-time
recovery from the archived WAL of the surviving replicas."""

from __future__ import annotations

import os
import time
from pathlib import Path

import httpx

from pulsar_cluster.backupclient import list_backups
from tests.integration.test_backup_standalone import (
    cli,
    delete_h0,
    expected,
    lines_for,
    points,
    without_h0,
    write,
)
from tests.support.cluster import Cluster
from tests.support.processes import wait_until


def admin_status(url: str) -> dict:
    r = httpx.get(f"{url}/api/v1/admin/status", timeout=10)
    assert r.status_code == 200, r.text
    return r.json()


def flush(url: str) -> None:
    r = httpx.post(f"{url}/api/v1/admin/flush", timeout=60)
    assert r.status_code == 200, r.text


def test_cluster_backup_restore_and_pitr(tmp_path: Path) -> None:
    archive, dest = tmp_path / "archive", tmp_path / "backups"
    env = {"PULSAR_WAL_ARCHIVE_DIR": str(archive)}
    cluster = Cluster(tmp_path / "c1", nodes=3, shards=4, env=env)
    (tmp_path / "c1").mkdir()
    try:
        cluster.start()
        a, b = lines_for(0), lines_for(1)
        write(cluster.url, a)
        flush(cluster.url)
        write(cluster.url, b)
        cli("backup", "--url", cluster.url, str(dest))
        c = lines_for(2)
        write(cluster.url, c)
        delete_h0(cluster.url)
        flush(cluster.url)
        d = lines_for(3)
        write(cluster.url, d)
        t_mid = time.time_ns()
        time.sleep(0.01)
        e = lines_for(3, value_offset=0.5)
        write(cluster.url, e)
        everything = points(cluster.url)
        assert everything == {**without_h0(expected(a, b, c)), **expected(e)}
        # A node dies: the incremental backup takes its shards from the other replicas, each
        # first applying up to the leader's commit index (so e is in it).
        cluster.kill("node-2")
        wait_until(lambda: not admin_status(cluster.url)["shards_without_leader"], 30, 0.2)
        cli("backup", "--url", cluster.url, str(dest), "--incremental")
        for i in (0, 1):  # the live replicas seal and archive their WAL up to e
            r = httpx.post(cluster.node_url(i) + "/v1/flush", headers=cluster.headers, timeout=60)
            assert r.status_code == 200, r.text
        for i in range(3):
            assert os.listdir(tmp_path / "c1" / f"node-{i}" / "backup-checkpoints") == []
    finally:
        cluster.stop()

    full, inc = list_backups(str(dest))
    assert inc.parent == full.id and inc.mode == "cluster" and inc.shard_count == 4
    assert {f.stored_in for s in inc.shards for f in s.files} == {full.id, inc.id}

    # Restore every node into a new cluster with other ports: all points back, writes go on.
    (tmp_path / "c2").mkdir()
    new = Cluster(tmp_path / "c2", nodes=3, shards=4)
    cli("restore", str(dest), "--data-dir", str(tmp_path / "c2"), "--all-nodes",
        "--peers", new.peers)  # fmt: skip
    try:
        new.start()
        assert points(new.url) == everything
        more = lines_for(7)
        write(new.url, more)
        assert points(new.url) == {**everything, **expected(more)}
        for shard in range(4):
            sums = new.checksums(shard)
            assert len({s["checksum"] for s in sums.values()}) == 1, sums
        # kill -9 every node and restart: the restored dump plus the journal recover as usual
        for i in range(3):
            new.kill(f"node-{i}")
        for i in range(3):
            new.start_node(i)
        new.wait_ready(60)
        again = lines_for(8)
        write(new.url, again)
        assert points(new.url) == {**everything, **expected(more), **expected(again)}
    finally:
        new.stop()

    # One node at a time (as on each node's own machine): same content for that node.
    one = tmp_path / "one-node"
    cli("restore", str(dest), "--data-dir", str(one), "--node-id", "node-1", "--peers", new.peers)
    assert sorted(os.listdir(one / "shards")) == ["0", "1", "2", "3"]
    assert sorted(os.listdir(one / "raft")) == [f"shard-{s}.dump" for s in range(4)]
    for s in range(4):
        a_file = one / "raft" / f"shard-{s}.dump"
        b_file = tmp_path / "c2" / "node-1" / "raft" / f"shard-{s}.dump"
        assert a_file.read_bytes() == b_file.read_bytes()

    # Point in time: full backup + archived WAL of every replica, up to t_mid.
    (tmp_path / "c3").mkdir()
    pitr = Cluster(tmp_path / "c3", nodes=3, shards=4)
    cli("restore", str(dest), "--data-dir", str(tmp_path / "c3"), "--all-nodes",
        "--peers", pitr.peers, "--until", str(t_mid), "--wal-archive", str(archive))  # fmt: skip
    try:
        pitr.start()
        assert points(pitr.url) == {**without_h0(expected(a, b, c)), **expected(d)}
    finally:
        pitr.stop()
