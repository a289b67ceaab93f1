"""Peers parsing and the static shard map: deterministic, balanced, round-trippable."""

from __future__ import annotations

from collections import Counter

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pulsar_cluster.shardmap import (
    Peer,
    PeersError,
    ShardMap,
    format_peers,
    parse_peers,
    static_shard_map,
)

peer_lists = st.lists(
    st.builds(
        Peer,
        st.from_regex(r"[a-z][a-z0-9\-]{0,8}", fullmatch=True),
        st.sampled_from(["127.0.0.1", "n.svc", "10.0.0.2"]),
        st.integers(1, 65535),
        st.integers(1, 65535),
    ),
    min_size=1,
    max_size=7,
    unique_by=lambda p: p.id,
)


@given(peer_lists)
def test_peers_round_trip(peers: list[Peer]) -> None:
    assert parse_peers(format_peers(peers)) == sorted(peers)


@given(peer_lists, st.integers(1, 64), st.integers(1, 5), st.randoms())
def test_static_map_is_deterministic_and_balanced(
    peers: list[Peer], shards: int, rf: int, rnd
) -> None:
    if rf > len(peers):
        with pytest.raises(PeersError):
            static_shard_map(peers, shards, rf)
        return
    shuffled = list(peers)
    rnd.shuffle(shuffled)
    m = static_shard_map(peers, shards, rf)
    assert m == static_shard_map(shuffled, shards, rf)
    assert all(len(set(r)) == rf for r in m.replicas)
    per_node = Counter(i for r in m.replicas for i in r)
    leaders = Counter(r[0] for r in m.replicas)
    assert max(per_node.values()) - min(per_node.get(p.id, 0) for p in peers) <= rf
    assert max(leaders.values()) - min(leaders.get(p.id, 0) for p in peers) <= 1
    assert ShardMap.from_dict(m.to_dict()) == m


@pytest.mark.parametrize(
    "text",
    ["", "a", "a=h:1", "a=h:x:2", "a=h:1:2,a=h:3:4", "a=:1:2", "a=h:0:2", "-a=h:1:2"],
)
def test_bad_peer_lists_are_refused(text: str) -> None:
    with pytest.raises(PeersError):
        parse_peers(text)


def test_malformed_map_is_refused() -> None:
    m = static_shard_map(parse_peers("a=h:1:2,b=h:3:4"), 4, 2).to_dict()
    m["replicas"][0] = ["zz"]
    with pytest.raises(PeersError):
        ShardMap.from_dict(m)
