"""The metadata group's snapshot file (docs/format/meta.md) and DIR/map.json round-trip and
refuse foreign or damaged files."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pysyncobj.node import TCPNode

from node.mapstore import load_map, save_map
from node.raft.meta import MetaSnapshotter, MetaState
from pulsar_cluster.errors import CorruptionError
from pulsar_cluster.moveplan import add_peer, plan_drain
from pulsar_cluster.shardmap import Peer, static_shard_map


def _map(n: int, shards: int) -> object:
    peers = [Peer(f"n{i}", "127.0.0.1", 7100 + i, 7200 + 100 * i) for i in range(n)]
    m = static_shard_map(peers, shards, min(3, n))
    m = add_peer(m, Peer("extra", "127.0.0.1", 9100, 9200))
    return plan_drain(m, "n0")


@settings(max_examples=30, deadline=None)
@given(st.integers(1, 5), st.integers(1, 16), st.binary(max_size=64), st.binary(max_size=64))
def test_snapshot_round_trip(
    tmp_path_factory: pytest.TempPathFactory, n: int, shards: int, last: bytes, prev: bytes
) -> None:
    path = tmp_path_factory.mktemp("meta") / "meta.dump"
    state = MetaState(_map(n, shards))  # type: ignore[arg-type]
    nodes = {TCPNode("127.0.0.1:7200"), TCPNode("127.0.0.1:7300")}
    MetaSnapshotter(state).serialize(str(path), ((last, 9, 2), (prev, 8, 2), nodes))
    fresh = MetaState(static_shard_map([Peer("x", "h", 1, 2)], 1, 1))
    got_last, got_prev, got_nodes = MetaSnapshotter(fresh).deserialize(str(path))
    assert fresh.map == state.map
    assert got_last == (last, 9, 2) and got_prev == (prev, 8, 2)
    assert {n.address for n in got_nodes} == {n.address for n in nodes}


def test_foreign_snapshot_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "meta.dump"
    path.write_bytes(b'{"magic": "XXXX", "version": 1}')
    state = MetaState(static_shard_map([Peer("x", "h", 1, 2)], 1, 1))
    before = state.map
    with pytest.raises(CorruptionError):
        MetaSnapshotter(state).deserialize(str(path))
    assert state.map is before


def test_map_file_round_trip_and_damage(tmp_path: Path) -> None:
    m = _map(3, 4)
    assert load_map(str(tmp_path)) is None
    save_map(str(tmp_path), m)  # type: ignore[arg-type]
    assert load_map(str(tmp_path)) == m
    (tmp_path / "map.json").write_bytes(b'{"magic": "PLMAP", "format": 2, "map": {}}')
    with pytest.raises(CorruptionError):
        load_map(str(tmp_path))
    (tmp_path / "map.json").write_bytes(b"{trunc")
    with pytest.raises(CorruptionError):
        load_map(str(tmp_path))
