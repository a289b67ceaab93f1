"""Pure planning of membership changes on a ShardMap: join, remove, drain, rebalance.

Every function takes a map and returns a new map (version + 1) or raises a BadRequestError that
names what is wrong; nothing here does I/O. The metadata group stores the result with a
compare-and-set (pulsar_cluster/metacommand.py) and node/membership.py carries out the moves.

Safety argument (architecture.md): a move first ADDS its target to the shard's Raft group,
waits until it has caught up, and only then REMOVES its source; a shard has at most one move at
a time. So a group never has fewer than `replication_factor` members and a majority of the old
configuration is always part of the new one: draining never drops below quorum.
"""

from __future__ import annotations

import dataclasses
from collections import Counter

from pulsar_cluster.errors import BadRequestError
from pulsar_cluster.shardmap import Move, Peer, ShardMap

__all__ = [
    "add_peer",
    "remove_peer",
    "plan_drain",
    "plan_rebalance",
    "balance_preferred",
    "advance_move",
    "finish_move",
    "replica_counts",
    "MembershipError",
]


class MembershipError(BadRequestError):
    """A membership request the current map cannot satisfy (nothing is changed)."""


def _bump(m: ShardMap, **changes: object) -> ShardMap:
    return dataclasses.replace(m, version=m.version + 1, **changes)  # type: ignore[arg-type]


def replica_counts(m: ShardMap, exclude: frozenset[str] = frozenset()) -> Counter[str]:
    """Replicas per node once every move in progress is done (0 for idle nodes)."""
    counts: Counter[str] = Counter({p.id: 0 for p in m.peers if p.id not in exclude})
    for shard, ids in enumerate(m.replicas):
        move = m.move_of(shard)
        for node in ids:
            if move is None or node != move.source:
                counts[node] += 1
        if move is not None and move.target not in ids:
            counts[move.target] += 1
    for node in exclude:
        counts.pop(node, None)
    return counts


def add_peer(m: ShardMap, peer: Peer) -> ShardMap:
    """`m` plus `peer`; the same map when it is already there with the same addresses."""
    for p in m.peers:
        if p.id == peer.id:
            if p == peer:
                return m
            raise MembershipError(f"node {peer.id} is already a member with other addresses")
        if (p.host, p.api_port) == (peer.host, peer.api_port) or (p.host, p.raft_port) == (
            peer.host,
            peer.raft_port,
        ):
            raise MembershipError(f"node {peer.id}: its address is used by node {p.id}")
    return _bump(m, peers=sorted([*m.peers, peer]))


def remove_peer(m: ShardMap, node: str) -> ShardMap:
    """`m` without `node`, which must hold no replica (drain it first)."""
    if node not in {p.id for p in m.peers}:
        raise MembershipError(f"no node {node} in the cluster")
    if node in m.meta_members():
        raise MembershipError(
            f"node {node} is a member of the metadata group, which is fixed at creation; "
            "drain it, but it cannot be removed"
        )
    held = [s for s in range(m.shard_count) if m.holds(node, s)] + [
        mv.shard for mv in m.moves if mv.source == node
    ]
    if held:
        raise MembershipError(
            f"node {node} still holds replicas of shards {sorted(set(held))}; drain it first",
            shards=sorted(set(held)),
        )
    return _bump(m, peers=[p for p in m.peers if p.id != node])


def _pick_target(m: ShardMap, shard: int, counts: Counter[str], avoid: set[str]) -> str | None:
    members = set(m.replicas[shard])
    candidates = [n for n in counts if n not in members and n not in avoid]
    if not candidates:
        return None
    return min(candidates, key=lambda n: (counts[n], n))


def plan_drain(m: ShardMap, node: str) -> ShardMap:
    """Add a move off `node` for every shard it holds (targets: least-loaded other nodes)."""
    if node not in {p.id for p in m.peers}:
        raise MembershipError(f"no node {node} in the cluster")
    counts = replica_counts(m, frozenset({node}))
    moves = list(m.moves)
    for shard in range(m.shard_count):
        if node not in m.replicas[shard]:
            continue
        current = m.move_of(shard)
        if current is not None:
            if current.source == node:
                continue  # already leaving
            raise MembershipError(
                f"shard {shard} has a move in progress ({current.source} -> {current.target}); "
                "retry when it is done"
            )
        target = _pick_target(m, shard, counts, {node})
        if target is None:
            raise MembershipError(
                f"cannot drain {node}: shard {shard} has no other node to move to "
                f"(replication factor {m.replication_factor}); add a node first"
            )
        counts[target] += 1
        moves.append(Move(shard, node, target))
    if moves == m.moves:
        return m
    return _bump(m, moves=moves)


def plan_rebalance(m: ShardMap, exclude: frozenset[str] = frozenset()) -> ShardMap:
    """Moves that even out replicas per node (to within one), from the most to the least
    loaded node; shards with a move in progress are left alone. Then balances preferred
    leaders of the shards without moves."""
    counts = replica_counts(m, exclude)
    if not counts:
        return m
    moves = list(m.moves)
    busy = {mv.shard for mv in moves}
    # Replicas of each shard after the moves in progress.
    holders = {
        s: (set(m.replicas[s]) - {mv.source for mv in moves if mv.shard == s})
        | {mv.target for mv in moves if mv.shard == s}
        for s in range(m.shard_count)
    }
    for _ in range(m.shard_count * max(1, len(counts))):
        found = None
        # From the most loaded node to the least loaded one that can take one of its shards;
        # a shard has one move at a time, so with few shards a second rebalance (after these
        # moves) may be needed: `pulsar admin rebalance` repeats until nothing is planned.
        for high in sorted(counts, key=lambda n: (-counts[n], n)):
            for low in sorted(counts, key=lambda n: (counts[n], n)):
                if counts[high] - counts[low] <= 1:
                    break
                shard = next(
                    (
                        s
                        for s in range(m.shard_count)
                        if s not in busy and high in holders[s] and low not in holders[s]
                    ),
                    None,
                )
                if shard is not None:
                    found = (shard, high, low)
                    break
            if found is not None:
                break
        if found is None:
            break
        shard, high, low = found
        moves.append(Move(shard, high, low))
        busy.add(shard)
        holders[shard] = (holders[shard] - {high}) | {low}
        counts[high] -= 1
        counts[low] += 1
    out = m if moves == m.moves else _bump(m, moves=moves)
    preferred = balance_preferred(out)
    if preferred != out.replicas:
        out = dataclasses.replace(out, replicas=preferred, version=m.version + 1)
    return out


def balance_preferred(m: ShardMap) -> list[list[str]]:
    """Replica lists reordered so each node is the preferred (first) replica of about the same
    number of shards; shards with a move in progress keep their order.

    Local search: hand a shard's preference from its first replica to another of its replicas
    that leads at least two fewer shards, until no such hand-over is left (each one lowers the
    sum of squared counts, so it ends). Result: no shard can move its preference to a replica
    leading two or more fewer shards than the current one."""
    out = [list(r) for r in m.replicas]
    firsts: Counter[str] = Counter(r[0] for r in out)
    for _ in range(m.shard_count * m.shard_count + 1):
        changed = False
        for s in range(m.shard_count):
            if m.move_of(s) is not None:
                continue
            first = out[s][0]
            best = min(out[s], key=lambda n: (firsts[n], out[s].index(n)))
            if firsts[best] + 2 <= firsts[first]:
                firsts[first] -= 1
                firsts[best] += 1
                out[s] = [best, *[n for n in out[s] if n != best]]
                changed = True
        if not changed:
            break
    return out


def advance_move(m: ShardMap, shard: int, step: str) -> ShardMap:
    """The move of `shard` at `step` ("catchup": target is in the Raft group; "remove": target
    has caught up and becomes a listed replica)."""
    move = m.move_of(shard)
    if move is None:
        raise MembershipError(f"shard {shard} has no move in progress")
    replicas = [list(r) for r in m.replicas]
    if step == "remove":
        replicas[shard].append(move.target)
        if move.source is None:
            moves = [mv for mv in m.moves if mv.shard != shard]
            return _bump(m, replicas=replicas, moves=moves)
    moves = [dataclasses.replace(mv, step=step) if mv.shard == shard else mv for mv in m.moves]
    return _bump(m, replicas=replicas, moves=moves)


def finish_move(m: ShardMap, shard: int) -> ShardMap:
    """The source has left the Raft group: drop it from the map, and the move."""
    move = m.move_of(shard)
    if move is None or move.step != "remove":
        raise MembershipError(f"shard {shard} has no move at its remove step")
    replicas = [list(r) for r in m.replicas]
    replicas[shard] = [n for n in replicas[shard] if n != move.source]
    moves = [mv for mv in m.moves if mv.shard != shard]
    return _bump(m, replicas=replicas, moves=moves)
