"""The move planner against a naive simulation of the mover: balance, replication factor kept,
and never below quorum at any step of any move."""

from __future__ import annotations

import dataclasses
from collections import Counter

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pulsar_cluster.moveplan import (
    MembershipError,
    add_peer,
    advance_move,
    finish_move,
    plan_drain,
    plan_rebalance,
    remove_peer,
)
from pulsar_cluster.shardmap import Peer, ShardMap, static_shard_map


def peer(i: int) -> Peer:
    return Peer(f"n{i:02d}", "127.0.0.1", 7100 + i, 7200 + 100 * i)


@st.composite
def clusters(draw: st.DrawFn) -> ShardMap:
    n = draw(st.integers(1, 6))
    rf = draw(st.integers(1, min(3, n)))
    m = static_shard_map([peer(i) for i in range(n)], draw(st.integers(1, 24)), rf)
    for i in range(n, n + draw(st.integers(0, 3))):
        m = add_peer(m, peer(i))
    return m


def run_moves(m: ShardMap) -> ShardMap:
    """The mover's protocol, step by step, checking every intermediate group."""
    for _ in range(4 * m.shard_count + 4):
        if not m.moves:
            return m
        move = m.moves[0]
        before = set(m.replicas[move.shard])
        # add: the Raft group is the listed replicas plus the target
        group = before | {move.target}
        assert len(group) == len(before) + 1
        m = advance_move(m, move.shard, "catchup")
        m = advance_move(m, move.shard, "remove")
        assert set(m.replicas[move.shard]) == group
        if move.source is not None:
            m = finish_move(m, move.shard)
        after = set(m.replicas[move.shard])
        # Raft single-server changes: each configuration differs from the previous one by one
        # node (so any two consecutive majorities overlap), never below the replication factor
        assert len(group ^ after) == (1 if move.source is not None else 0)
        assert len(after) >= m.replication_factor
        assert ShardMap.from_dict(m.to_dict()) == m
    raise AssertionError("moves did not finish")


def check_shape(m: ShardMap) -> None:
    for ids in m.replicas:
        assert len(ids) == m.replication_factor
        assert len(set(ids)) == len(ids)


@given(clusters())
@settings(max_examples=200)
def test_rebalance_balances_replicas(m: ShardMap) -> None:
    done = m
    for _ in range(m.shard_count + len(m.peers)):  # rounds, as `pulsar admin rebalance` does
        planned = plan_rebalance(done)
        assert len({mv.shard for mv in planned.moves}) == len(planned.moves)  # one per shard
        if not planned.moves:
            break
        done = run_moves(planned)
    check_shape(done)
    counts = Counter({p.id: 0 for p in done.peers})
    counts.update(n for ids in done.replicas for n in ids)
    assert max(counts.values()) - min(counts.values()) <= 1, counts


@given(clusters())
@settings(max_examples=200)
def test_rebalance_balances_preferred_leaders(m: ShardMap) -> None:
    done = m
    for _ in range(m.shard_count + len(m.peers)):
        planned = plan_rebalance(done)
        if not planned.moves:
            break
        done = run_moves(planned)
    again = plan_rebalance(done)  # no moves left: only the order of replicas changes
    assert not again.moves
    firsts = Counter(ids[0] for ids in again.replicas)
    for ids in again.replicas:  # no shard could hand its preference to a much idler replica
        assert all(firsts[n] + 2 > firsts[ids[0]] for n in ids)
    assert sorted(map(sorted, again.replicas)) == sorted(map(sorted, done.replicas))


@given(clusters(), st.data())
@settings(max_examples=200)
def test_drain_empties_a_node_and_keeps_replication(m: ShardMap, data: st.DataObject) -> None:
    victim = data.draw(st.sampled_from([p.id for p in m.peers]))
    spare = len(m.peers) - 1
    if spare < m.replication_factor and m.shards_of(victim):
        with pytest.raises(MembershipError):
            plan_drain(m, victim)
        return
    done = run_moves(plan_drain(m, victim))
    check_shape(done)
    assert not done.shards_of(victim)


@given(clusters())
def test_remove_refuses_a_node_with_replicas(m: ShardMap) -> None:
    for p in m.peers:
        if p.id in m.meta_members() or m.shards_of(p.id):
            with pytest.raises(MembershipError):
                remove_peer(m, p.id)
        else:
            out = remove_peer(m, p.id)
            assert p.id not in {q.id for q in out.peers} and out.version == m.version + 1


def test_join_is_idempotent_and_refuses_conflicts() -> None:
    m = static_shard_map([peer(0), peer(1), peer(2)], 4, 3)
    joined = add_peer(m, peer(3))
    assert joined.version == 2 and add_peer(joined, peer(3)) is joined
    with pytest.raises(MembershipError):
        add_peer(joined, dataclasses.replace(peer(3), api_port=1))
    with pytest.raises(MembershipError):
        add_peer(joined, dataclasses.replace(peer(4), api_port=peer(0).api_port))
