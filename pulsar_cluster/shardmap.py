"""Cluster membership and the shard map: which nodes hold a replica of which shard.

Step one of issue 6: the map is *static*, computed deterministically from the `--peers` list at
cluster creation, so every node and coordinator derives the same map without talking to anyone.
A later metadata Raft group will own the map and bump `version` on every change; the wire shape
(`to_dict`/`from_dict`, served at `GET /v1/map`, docs/format/node-api.md) already carries it.

Placement: peers sorted by id; shard s has replicas peers[(s + k) mod n] for k in 0..rf-1, so
every node holds the same number of replicas (within one) and is the *first* replica (the
preferred leader) of shards/n of them. Raft ports: a node listens for shard s on
`raft_port + 1 + s`; `raft_port` itself is reserved for the metadata group.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from pulsar_cluster.errors import BadRequestError

__all__ = ["Peer", "ShardMap", "parse_peers", "format_peers", "static_shard_map", "PeersError"]

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
class ShardMap:
    version: int
    shard_count: int
    replication_factor: int
    peers: list[Peer]
    #: replicas[s] = node ids holding shard s, preferred leader first.
    replicas: list[list[str]] = field(default_factory=list)

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
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise PeersError(f"malformed shard map: {exc}") from None
        known = {p.id for p in peers}
        if len(out.replicas) != out.shard_count or any(
            not r or set(r) - known for r in out.replicas
        ):
            raise PeersError("malformed shard map: replicas do not match shards and peers")
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
    return ShardMap(1, shard_count, replication_factor, ordered, replicas)
