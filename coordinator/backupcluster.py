"""Backup checkpoints across a cluster's nodes (the ClusterBackend side of the admin API).

For every shard one replica makes the checkpoint: the replica named in `prefer` (the node the
parent backup used, so an incremental finds the same table files) when it is up, else the
current leader, else any reachable replica. The chosen replica first applies up to the
leader's commit index at the start of the backup, so the backup holds every write acknowledged
before it began (a shard without a leader at that moment has no such bound: its replica's
checkpoint holds what that replica applied). Shards are grouped by node,
one node call each, concurrently. Each shard is consistent at its own Raft index; shards are
not frozen at one common instant (docs/operations.md). If a node fails, the checkpoints already
made are released and the error is raised.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

from pulsar_cluster.errors import BadRequestError, PulsarError, UnavailableError
from pulsar_cluster.nodeclient import NodeClient

__all__ = ["cluster_checkpoint", "cluster_stream", "cluster_release"]


async def cluster_checkpoint(backend: Any, prefer: dict[int, str]) -> dict[str, Any]:
    shard_map = await backend.shard_map()
    status = await backend.status()
    up = {node for node, st in status["nodes"].items() if st.get("state") == "up"}
    chosen: dict[str, list[int]] = {}
    # The leader's commit index now: every write acknowledged so far is at or below it, and the
    # chosen replica applies up to it before its checkpoint (node/service.py).
    min_index: dict[int, int] = {}
    for entry in status["shards"]:
        shard = entry["shard"]
        leader_info = entry["replicas"].get(entry["leader"]) if entry["leader"] else None
        if isinstance(leader_info, dict):
            min_index[shard] = int(leader_info["commit_index"])
        replicas = shard_map.replicas[shard]
        wanted = prefer.get(shard)
        node: str
        if wanted is not None and wanted in replicas and wanted in up:
            node = wanted
        elif entry["leader"] in up:
            node = str(entry["leader"])
        else:
            alive = [n for n in replicas if n in up]
            if not alive:
                raise UnavailableError(f"shard {shard}: no replica reachable for a backup")
            node = alive[0]
        chosen.setdefault(node, []).append(shard)
    nodes = sorted(chosen)
    results = await asyncio.gather(
        *(
            backend.node_client(n).backup_checkpoint(
                chosen[n], {s: min_index[s] for s in chosen[n] if s in min_index}
            )
            for n in nodes
        ),
        return_exceptions=True,
    )
    failures = [r for r in results if isinstance(r, BaseException)]
    if failures:
        done: list[tuple[str | None, str]] = [
            (n, str(r["checkpoint"]))
            for n, r in zip(nodes, results, strict=True)
            if isinstance(r, dict)
        ]
        await cluster_release(backend, done)
        raise failures[0]
    shards: dict[str, Any] = {}
    created = 0
    for node_id, result in zip(nodes, results, strict=True):
        assert isinstance(result, dict)
        created = max(created, int(result["created_ns"]))
        for key, info in result["shards"].items():
            shards[key] = {**info, "node": node_id, "checkpoint": result["checkpoint"]}
    return {
        "mode": "cluster",
        "shard_count": shard_map.shard_count,
        "replication_factor": shard_map.replication_factor,
        "shard_map": shard_map.to_dict(),
        "created_ns": created,
        "shards": shards,
    }


def cluster_stream(
    backend: Any, node: str | None, checkpoint: str, shard: int, path: str
) -> AsyncIterator[bytes]:
    if not node:
        raise BadRequestError("a cluster backup file needs its node")
    client: NodeClient = backend.node_client(node)
    return client.backup_stream(checkpoint, shard, path)


async def cluster_release(backend: Any, checkpoints: list[tuple[str | None, str]]) -> int:
    async def one(node: str | None, cid: str) -> bool:
        if not node:
            return False
        try:
            return bool(await backend.node_client(node).backup_release(cid))
        except PulsarError:
            return False  # an unreachable node drops its checkpoints at restart (or by age)

    done = await asyncio.gather(*(one(n, c) for n, c in checkpoints))
    return sum(done)
