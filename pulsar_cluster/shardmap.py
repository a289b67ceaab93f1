"""Cluster membership and the shard map: which nodes hold a replica of which shard.

A new cluster's map (version 1) is computed deterministically from the `--peers` list, so every
node derives the same one without talking to anyone. From then on the metadata Raft group
(node/raft/meta.py) owns it: every change (a node joins, a replica move advances) is a
compare-and-set on `version`. The wire shape (`to_dict`/`from_dict`, served at `GET /v1/map`,
docs/format/node-api.md, stored in the metadata snapshot, docs/format/meta.md) carries it.

Placement: peers sorted by id; shard s has replicas peers[(s + k) mod n] for k in 0..rf-1, so
every node holds the same number of replicas (within one) and is the *first* replica (the
preferred leader) of shards/n of them. Raft ports: a node listens for shard s on
`raft_port + 1 + s`; `raft_port` itself is reserved for the metadata group.
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass, field
from typing import Any

from pulsar_cluster.errors import BadRequestError

__all__ = [
    "Peer",
    "Move",
    "ShardMap",
    "parse_peers",
    "format_peers",
    "static_shard_map",
    "PeersError",
    "MAX_META_MEMBERS",
    "MOVE_STEPS",
]

#: Size cap of the metadata Raft group: the first (by id) initial peers, at most this many.
MAX_META_MEMBERS = 5
#: The steps of a replica move, in order (node/membership.py drives them; architecture.md).
MOVE_STEPS = ("add", "catchup", "remove")

_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,62}$")


class PeersError(BadRequestError):
    """A --peers list (or a shard map) that cannot describe a cluster."""


@dataclass(frozen=True, slots=True, order=True)
class Peer:
    id: str
    host: str
    api_port: int
    raft_port: int

    @property
    def api_url(self) -> str:
        return f"http://{self.host}:{self.api_port}"

    def shard_raft_address(self, shard: int) -> str:
        return f"{self.host}:{self.raft_port + 1 + shard}"

    @property
    def meta_raft_address(self) -> str:
        return f"{self.host}:{self.raft_port}"


def parse_peers(text: str) -> list[Peer]:
    """`id=host:apiport:raftport,...` -> peers sorted by id. Raises PeersError."""
    peers: list[Peer] = []
    for item in (p.strip() for p in text.split(",")):
        if not item:
            continue
        node_id, sep, address = item.partition("=")
        parts = address.rsplit(":", 2)
        if not sep or len(parts) != 3 or not _ID.match(node_id):
            raise PeersError(f"bad peer '{item}': expected id=host:apiport:raftport")
        host, api, raft = parts
        try:
            api_port, raft_port = int(api), int(raft)
        except ValueError:
            raise PeersError(f"bad peer '{item}': ports must be integers") from None
        if not host or not (0 < api_port < 65536 and 0 < raft_port < 65536):
            raise PeersError(f"bad peer '{item}': empty host or port out of range")
        peers.append(Peer(node_id, host, api_port, raft_port))
    if not peers:
        raise PeersError("the peer list is empty")
    ids = [p.id for p in peers]
    if len(set(ids)) != len(ids):
        raise PeersError(f"duplicate peer ids in {ids}")
    return sorted(peers)


def format_peers(peers: list[Peer]) -> str:
    return ",".join(f"{p.id}={p.host}:{p.api_port}:{p.raft_port}" for p in peers)


@dataclass(frozen=True, slots=True)
class Move:
    """One replica move in progress: `target` joins shard `shard`'s group, then `source` (None:
    nothing to remove) leaves it. `step` is the next thing to do (MOVE_STEPS)."""

    shard: int
    source: str | None
    target: str
    step: str = "add"

    def to_dict(self) -> dict[str, Any]:
        return {
            "shard": self.shard,
            "source": self.source,
            "target": self.target,
            "step": self.step,
        }

    @classmethod
    def from_dict(cls, doc: dict[str, Any]) -> Move:
        source = doc.get("source")
        move = cls(
            int(doc["shard"]), None if source is None else str(source), str(doc["target"]),
            str(doc.get("step", "add")),
        )  # fmt: skip
        if move.step not in MOVE_STEPS:
            raise ValueError(f"unknown move step {move.step!r}")
        return move


@dataclass(frozen=True, slots=True)
class ShardMap:
    version: int
    shard_count: int
    replication_factor: int
    peers: list[Peer]
    #: replicas[s] = node ids holding shard s, preferred leader first.
    replicas: list[list[str]] = field(default_factory=list)
    #: Node ids of the metadata Raft group (fixed at creation; empty: derived from peers).
    meta: list[str] = field(default_factory=list)
    #: Replica moves in progress (at most one per shard).
    moves: list[Move] = field(default_factory=list)

    def meta_members(self) -> list[str]:
        if self.meta:
            return list(self.meta)
        return [p.id for p in sorted(self.peers)[:MAX_META_MEMBERS]]

    def move_of(self, shard: int) -> Move | None:
        for move in self.moves:
            if move.shard == shard:
                return move
        return None

    def holds(self, node_id: str, shard: int) -> bool:
        """`node_id` must run a replica of `shard`: a member, or the target of its move."""
        move = self.move_of(shard)
        return node_id in self.replicas[shard] or (move is not None and move.target == node_id)

    def local_shards(self, node_id: str) -> list[int]:
        return [s for s in range(self.shard_count) if self.holds(node_id, s)]

    def peer(self, node_id: str) -> Peer:
        for p in self.peers:
            if p.id == node_id:
                return p
        raise KeyError(node_id)

    def shards_of(self, node_id: str) -> list[int]:
        return [s for s, ids in enumerate(self.replicas) if node_id in ids]

    def to_dict(self) -> dict[str, Any]:
        return {
            "version": self.version,
            "shard_count": self.shard_count,
            "replication_factor": self.replication_factor,
            "peers": [
                {"id": p.id, "host": p.host, "api_port": p.api_port, "raft_port": p.raft_port}
                for p in self.peers
            ],
            "replicas": [list(r) for r in self.replicas],
            "meta": self.meta_members(),
            "moves": [m.to_dict() for m in self.moves],
        }

    @classmethod
    def from_dict(cls, doc: dict[str, Any]) -> ShardMap:
        try:
            peers = [
                Peer(str(p["id"]), str(p["host"]), int(p["api_port"]), int(p["raft_port"]))
                for p in doc["peers"]
            ]
            out = cls(
                int(doc["version"]),
                int(doc["shard_count"]),
                int(doc["replication_factor"]),
                peers,
                [[str(i) for i in r] for r in doc["replicas"]],
                [str(i) for i in doc.get("meta", [])],
                [Move.from_dict(m) for m in doc.get("moves", [])],
            )
            if not out.meta:
                # A map written without its metadata members (older maps) gets them derived
                # from its peers now, as `to_dict` writes them: the map equals its round trip.
                out = dataclasses.replace(out, meta=out.meta_members())
        except (KeyError, TypeError, ValueError) as exc:
            raise PeersError(f"malformed shard map: {exc}") from None
        known = {p.id for p in peers}
        if len(out.replicas) != out.shard_count or any(
            not r or set(r) - known for r in out.replicas
        ):
            raise PeersError("malformed shard map: replicas do not match shards and peers")
        if set(out.meta) - known or len(set(out.meta)) != len(out.meta):
            raise PeersError("malformed shard map: unknown or repeated metadata members")
        shards = [m.shard for m in out.moves]
        if len(set(shards)) != len(shards) or any(
            not 0 <= m.shard < out.shard_count
            or m.target not in known
            or (m.target in out.replicas[m.shard]) != (m.step == "remove")
            or (m.source is not None and m.source not in out.replicas[m.shard])
            for m in out.moves
        ):
            raise PeersError("malformed shard map: bad replica moves")
        return out


def static_shard_map(peers: list[Peer], shard_count: int, replication_factor: int) -> ShardMap:
    """The deterministic map of a new cluster (version 1); independent of the order of peers."""
    if shard_count < 1:
        raise PeersError("the shard count must be at least 1")
    if not 1 <= replication_factor <= len(peers):
        raise PeersError(
            f"replication factor {replication_factor} needs between 1 and {len(peers)} peers"
        )
    ordered = sorted(peers)
    n = len(ordered)
    replicas = [
        [ordered[(s + k) % n].id for k in range(replication_factor)] for s in range(shard_count)
    ]
    meta = [p.id for p in ordered[:MAX_META_MEMBERS]]
    return ShardMap(1, shard_count, replication_factor, ordered, replicas, meta)
