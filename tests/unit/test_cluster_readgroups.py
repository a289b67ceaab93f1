"""Which node each shard of a cluster query is read from (ClusterBackend._read_groups)."""

from __future__ import annotations

import pytest

from coordinator.cluster import ClusterBackend
from pulsar_cluster.shardmap import parse_peers, static_shard_map


def _map(nodes: int, rf: int, shards: int = 16):  # type: ignore[no-untyped-def]
    spec = ",".join(f"n{i}=127.0.0.1:{7100 + i}:{7200 + i}" for i in range(nodes))
    return static_shard_map(parse_peers(spec), shards, rf)


@pytest.mark.parametrize(("nodes", "rf"), [(3, 3), (3, 2), (5, 3), (4, 1), (1, 1)])
def test_any_reads_every_shard_once_from_as_few_nodes_as_hold_them(nodes: int, rf: int) -> None:
    shard_map = _map(nodes, rf)
    backend = ClusterBackend(["127.0.0.1:7100"], "t")
    firsts = set()
    for _ in range(2 * nodes):
        groups = backend._read_groups(shard_map, "any")
        shards = sorted(s for group in groups.values() for s in group)
        assert shards == list(range(16))  # every shard once
        for node, group in groups.items():
            assert all(node in shard_map.replicas[s] for s in group)  # a replica of each
        if rf == nodes:
            assert len(groups) == 1  # every node holds every shard: one call
        firsts.add(max(groups, key=lambda n: len(groups[n])))
    if rf > 1:  # (with one replica per shard there is no choice to rotate)
        assert len(firsts) == nodes  # the node read most rotates over all of them


def test_leader_reads_go_to_each_shards_cached_leader() -> None:
    shard_map = _map(3, 3)
    backend = ClusterBackend(["127.0.0.1:7100"], "t")
    backend._leaders = {s: f"n{s % 3}" for s in range(16)}
    groups = backend._read_groups(shard_map, "leader")
    assert groups == {f"n{i}": [s for s in range(16) if s % 3 == i] for i in range(3)}
