"""node/raft/binding.py: a group whose Raft port is taken says so, and binds once it is free.

The port is taken the way it happened in the membership test: as the local port of a connected
socket (any outgoing connection may get a port picked earlier from the ephemeral range), which
a listening socket cannot share even with SO_REUSEADDR.
"""

from __future__ import annotations

import socket
import time
from pathlib import Path

import structlog

from node.raft.binding import raft_bound
from node.raft.meta import MetaGroup, MetaState
from node.raft.settings import RaftSettings, make_conf
from pulsar_cluster.shardmap import Peer, static_shard_map


def _group(tmp_path: Path, port: int) -> MetaGroup:
    initial = static_shard_map([Peer("n1", "127.0.0.1", 1, port)], 1, 1)
    conf = make_conf(
        RaftSettings(election_min_s=0.4, election_max_s=0.8),
        "secret",
        str(tmp_path / "meta.journal"),
        str(tmp_path / "meta.dump"),
    )
    return MetaGroup(MetaState(initial), f"127.0.0.1:{port}", [], conf, durable_journal=False)


def test_a_taken_port_is_reported_and_taken_once_free(tmp_path: Path) -> None:
    server = socket.create_server(("127.0.0.1", 0))
    client = socket.create_connection(server.getsockname())
    accepted, _ = server.accept()
    port = client.getsockname()[1]  # in use by a connection, not by a listener
    group = None
    try:
        with structlog.testing.capture_logs() as logs:
            group = _group(tmp_path, port)
        assert not raft_bound(group)
        (event,) = [e for e in logs if e["event"] == "raft_port_unavailable"]
        assert event["address"] == f"127.0.0.1:{port}" and event["log_level"] == "error"
        # The server side closes first, so the TIME_WAIT (which would hold the port for a
        # minute) is on the server's port, not on the client's.
        accepted.close()
        client.recv(1)  # its FIN
        client.close()
        deadline = time.monotonic() + 10  # pysyncobj retries every bindRetryTime (1 s)
        while not raft_bound(group) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert raft_bound(group)
    finally:
        for s in (client, accepted, server):
            s.close()
        if group is not None:
            group.destroy()
