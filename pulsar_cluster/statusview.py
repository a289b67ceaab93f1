"""Human-readable cluster status for `pulsar admin status` (the JSON stays available: --json)."""

from __future__ import annotations

from typing import Any

__all__ = ["format_cluster_status"]


def format_cluster_status(status: dict[str, Any]) -> str:
    """Nodes, then one line per shard: leader, term, and per replica role, applied index, lag."""
    lines = [
        f"cluster: {status['shard_count']} shards, replication factor "
        f"{status['replication_factor']}, shard map version {status['map_version']}",
        "",
        "NODE       STATE  LEADS",
    ]
    for node_id, info in sorted(status["nodes"].items()):
        if info["state"] == "up":
            lines.append(f"{node_id:<10} up     {info['leads']}")
        else:
            lines.append(f"{node_id:<10} DOWN   -      {info.get('error', '')[:80]}")
    lines += ["", "SHARD  LEADER      TERM  REPLICAS (role applied/commit lag)"]
    for shard in status["shards"]:
        parts = []
        for node_id, r in shard["replicas"].items():
            if not isinstance(r, dict):
                parts.append(f"{node_id}: {r}")
                continue
            lag = "?" if r.get("lag") is None else r["lag"]
            parts.append(
                f"{node_id}: {r['role'][0].upper()} {r['last_applied']}/{r['commit_index']} "
                f"lag {lag}"
            )
        leader = shard["leader"] or "NONE"
        lines.append(f"{shard['shard']:<6} {leader:<11} {shard['term']:<5} " + ", ".join(parts))
    if status.get("shards_without_leader"):
        lines += ["", f"shards without a leader: {status['shards_without_leader']}"]
    return "\n".join(lines)
