"""`pulsar node --join URL` and the membership actions of `pulsar admin`.

join: the new node registers itself (id and addresses) in the cluster's map through any node's
API (`POST /v1/members`, authenticated by the cluster secret), and starts with the map it gets
back; it holds no replica until a rebalance moves some to it. A restarted node that already
joined (DIR/map.json lists it) starts from its stored map without asking.

admin: drain-node, remove-node, rebalance, nodes and moves against the coordinator's admin API
(docs/api.md), with a progress line of moves done/total until the moves finish.
"""

from __future__ import annotations

import json
import os
import sys
import time
from typing import Any

import httpx

from pulsar_cluster.errors import UnavailableError
from pulsar_cluster.shardmap import Peer, ShardMap

__all__ = ["join_cluster", "joined_before", "run_admin_action", "ADMIN_ACTIONS"]

ADMIN_ACTIONS = ("drain-node", "remove-node", "rebalance", "nodes", "moves")
_MAX_REBALANCE_ROUNDS = 20


def _stored_map(data_dir: str, node_id: str) -> ShardMap | None:
    # DIR/map.json, written by the node (node/mapstore.py, docs/format/meta.md).
    try:
        with open(os.path.join(data_dir, "map.json"), encoding="utf-8") as f:
            doc = json.load(f)
    except FileNotFoundError:
        return None
    shard_map = ShardMap.from_dict(doc["map"])
    return shard_map if node_id in {p.id for p in shard_map.peers} else None


def joined_before(data_dir: str, node_id: str) -> bool:
    """`node_id` has joined a cluster with this data directory before (it keeps the map)."""
    return _stored_map(data_dir, node_id) is not None


def join_cluster(
    url: str, secret: str, peer: Peer, data_dir: str, timeout_s: float = 60.0
) -> ShardMap:
    """Register `peer` through the node API at `url`; the current map (retried while the
    cluster is unreachable, up to `timeout_s`)."""
    stored = _stored_map(data_dir, peer.id)
    if stored is not None:
        return stored
    base = url if "://" in url else f"http://{url}"
    body = {
        "id": peer.id,
        "host": peer.host,
        "api_port": peer.api_port,
        "raft_port": peer.raft_port,
    }
    deadline = time.monotonic() + timeout_s
    last = "no attempt"
    while time.monotonic() < deadline:
        try:
            r = httpx.post(
                base.rstrip("/") + "/v1/members",
                json=body,
                headers={"Authorization": f"Bearer {secret}"},
                timeout=30,
            )
        except httpx.HTTPError as exc:
            last = f"{type(exc).__name__}: {exc}"
            time.sleep(1.0)
            continue
        if r.status_code == 200:
            return ShardMap.from_dict(r.json())
        if 400 <= r.status_code < 500 and r.status_code not in (409, 421):
            raise SystemExit(f"pulsar: join refused by {base}: {r.text}")
        last = f"HTTP {r.status_code}: {r.text}"
        time.sleep(1.0)
    raise UnavailableError(f"could not join through {base} within {timeout_s}s: {last}")


def run_admin_action(client: Any, action: str, node: str | None, wait: bool) -> Any:
    """One membership action through the coordinator (`client`: PulsarClient)."""
    if action in ("drain-node", "remove-node") and not node:
        raise SystemExit(f"pulsar: admin {action} needs a node id")
    if action == "nodes":
        return client.admin("GET", "nodes")
    if action == "moves":
        return client.admin("GET", "moves")
    if action == "remove-node":
        return client.admin("DELETE", f"nodes/{node}")
    if action == "drain-node":
        answer = client.admin("POST", f"nodes/{node}/drain")
        total = len(answer.get("moves", []))
        return _progress(client, total) if wait and total else answer
    # A shard moves once at a time: with few shards one plan may not reach balance, so the
    # rebalance is planned again after its moves until nothing more is planned (bounded).
    answer = client.admin("POST", "rebalance")
    for _ in range(_MAX_REBALANCE_ROUNDS):
        total = len(answer.get("moves", []))
        if not wait or total == 0:
            return answer
        _progress(client, total)
        answer = client.admin("POST", "rebalance")
    return answer


def _progress(client: Any, total: int, timeout_s: float = 3600.0) -> Any:
    """Print `moves done/total` until no move is left (bounded by `timeout_s`)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        moves = client.admin("GET", "moves")["moves"]
        done = max(0, total - len(moves))
        steps = ", ".join(f"{m['shard']}:{m['step']}" for m in moves)
        sys.stderr.write(f"\rmoves {done}/{total} done  {steps:<60}")
        sys.stderr.flush()
        if not moves:
            sys.stderr.write("\n")
            return client.admin("GET", "nodes")
        time.sleep(1.0)
    raise SystemExit("pulsar: moves still running after the timeout; see `pulsar admin moves`")
