"""The metadata group's command codec and state transition: round trip, refusal of garbage
and of stale compare-and-sets, determinism."""

from __future__ import annotations

import dataclasses

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pulsar_cluster.metacommand import (
    MetaCommandError,
    apply_cas,
    decode_meta_command,
    encode_cas,
)
from pulsar_cluster.moveplan import plan_drain
from pulsar_cluster.shardmap import Peer, ShardMap, static_shard_map


@st.composite
def maps(draw: st.DrawFn) -> ShardMap:
    n = draw(st.integers(1, 7))
    peers = [Peer(f"n{i}", "127.0.0.1", 7100 + i, 7200 + 100 * i) for i in range(n)]
    m = static_shard_map(peers, draw(st.integers(1, 32)), draw(st.integers(1, min(3, n))))
    return dataclasses.replace(m, version=draw(st.integers(1, 10**9)))


@given(maps())
def test_cas_round_trip(m: ShardMap) -> None:
    new = dataclasses.replace(m, version=m.version + 1)
    cas = decode_meta_command(encode_cas(m.version, new))
    assert cas.expect == m.version
    assert cas.map == new
    assert apply_cas(m, encode_cas(m.version, new)) == (new, None)


@given(maps(), st.integers(-5, 5).filter(lambda d: d != 0))
def test_stale_cas_is_refused_and_changes_nothing(m: ShardMap, delta: int) -> None:
    expect = m.version + delta
    new = dataclasses.replace(m, version=expect + 1)
    state, refused = apply_cas(m, encode_cas(expect, new))
    assert state is m
    assert refused is not None and "conflict" in refused


@given(maps(), st.binary(max_size=200))
def test_garbage_is_refused_never_raises(m: ShardMap, data: bytes) -> None:
    state, refused = apply_cas(m, data)
    assert state is m and refused is not None


@given(maps(), st.integers(0, 400), st.binary(min_size=1, max_size=4))
def test_corrupted_command_is_refused(m: ShardMap, pos: int, junk: bytes) -> None:
    data = bytearray(encode_cas(m.version, dataclasses.replace(m, version=m.version + 1)))
    pos %= len(data)
    data[pos : pos + len(junk)] = junk
    state, refused = apply_cas(m, bytes(data))
    assert state is m or state.version == m.version + 1  # valid JSON edits may still decode
    if refused is None:
        assert state == ShardMap.from_dict(state.to_dict())


def test_fixed_shape_cannot_change() -> None:
    peers = [Peer(f"n{i}", "h", 7100 + i, 7200 + 100 * i) for i in range(4)]
    m = static_shard_map(peers, 8, 3)
    bigger = static_shard_map(peers, 9, 3)
    state, refused = apply_cas(m, encode_cas(1, dataclasses.replace(bigger, version=2)))
    assert state is m and refused is not None and "fixed" in refused


def test_version_must_follow_expect() -> None:
    peers = [Peer("a", "h", 1, 2)]
    m = static_shard_map(peers, 2, 1)
    with pytest.raises(MetaCommandError):
        encode_cas(1, dataclasses.replace(m, version=5))


def test_moves_survive_the_codec() -> None:
    peers = [Peer(f"n{i}", "h", 7100 + i, 7200 + 100 * i) for i in range(4)]
    m = static_shard_map(peers, 8, 3)
    drained = plan_drain(m, "n0")
    assert drained.moves
    assert decode_meta_command(encode_cas(1, drained)).map == drained


def test_a_map_without_its_metadata_members_equals_its_round_trip() -> None:
    """Found by hypothesis: a command whose "meta" key was damaged decoded to a map with no
    metadata members, which `to_dict` then wrote with the members derived from the peers."""
    doc = ShardMap(1, 1, 1, [Peer("n0", "127.0.0.1", 7100, 7200)], [["n0"]], ["n0"]).to_dict()
    del doc["meta"]
    m = ShardMap.from_dict(doc)
    assert m.meta == ["n0"]
    assert m == ShardMap.from_dict(m.to_dict())
