"""Where a node keeps the shard map: DIR/map.json (last map seen) and the metadata group.

DIR/map.json (docs/format/meta.md): `{"magic": "PLMAP", "format": 1, "map": {...}}`, written
to a temporary file, fsynced and renamed, so a restarted node starts from the newest map it
has seen instead of the static creation map (which no longer says where replicas live once
a move has finished).
"""

from __future__ import annotations

import os
from typing import Any

import orjson

from node.raft.meta import MetaGroup, MetaSnapshotter, MetaState
from pulsar_cluster.errors import CorruptionError
from pulsar_cluster.logs import get_logger
from pulsar_cluster.shardmap import PeersError, ShardMap

__all__ = ["load_map", "save_map", "start_meta_group", "meta_status", "MAP_FILE"]

log = get_logger(__name__)

MAP_FILE = "map.json"
_MAGIC = "PLMAP"
_FORMAT = 1


def save_map(data_dir: str, shard_map: ShardMap) -> None:
    path = os.path.join(data_dir, MAP_FILE)
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        f.write(orjson.dumps({"magic": _MAGIC, "format": _FORMAT, "map": shard_map.to_dict()}))
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    fd = os.open(data_dir, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def load_map(data_dir: str) -> ShardMap | None:
    path = os.path.join(data_dir, MAP_FILE)
    try:
        with open(path, "rb") as f:
            doc = orjson.loads(f.read())
    except FileNotFoundError:
        return None
    except orjson.JSONDecodeError as exc:
        raise CorruptionError(path, 0, f"not JSON: {exc}") from None
    if not isinstance(doc, dict) or doc.get("magic") != _MAGIC or doc.get("format") != _FORMAT:
        raise CorruptionError(path, 0, "bad magic or format")
    try:
        return ShardMap.from_dict(doc["map"])
    except (PeersError, KeyError) as exc:
        raise CorruptionError(path, 0, str(exc)) from None


def start_meta_group(initial: ShardMap, settings: Any) -> MetaGroup:
    """This node's replica of the metadata group on its `raft_port` (node/raft/meta.py).

    `initial` must be the creation map (version 1) or a newer one this node has stored: the
    group's state before its first entry is the creation map, identical on every member; the
    journal and dump replay everything after it.
    """
    from node.raft.settings import make_conf

    me = initial.peer(settings.node_id)
    raft_dir = os.path.join(settings.data_dir, "raft")
    state = MetaState(initial)
    snapshotter = MetaSnapshotter(state)
    # Metadata changes are rare and small: compact the log every 1000 entries.
    raft = settings.raft
    conf = make_conf(
        type(raft)(**{**_fields(raft), "compaction_entries": 1000}),
        settings.secret,
        os.path.join(raft_dir, "meta.journal"),
        os.path.join(raft_dir, "meta.dump"),
        bind_address=(
            None if settings.raft_bind_host is None else f"{settings.raft_bind_host}:{me.raft_port}"
        ),
        serializer=snapshotter.serialize,
        deserializer=snapshotter.deserialize,
    )
    partners = [initial.peer(n).meta_raft_address for n in initial.meta_members() if n != me.id]
    return MetaGroup(
        state,
        me.meta_raft_address,
        partners,
        conf,
        durable_journal=settings.engine.fsync == "always",
    )


def _fields(obj: Any) -> dict[str, Any]:
    return {name: getattr(obj, name) for name in obj.__dataclass_fields__}


def meta_status(group: MetaGroup | None) -> dict[str, Any] | None:
    if group is None:
        return None
    raft = group.getStatus()
    return {
        "role": {0: "follower", 1: "candidate", 2: "leader"}.get(raft["state"], "?"),
        "leader": group.leader_address(),
        "term": raft["raft_term"],
        "commit_index": raft["commit_idx"],
        "last_applied": raft["last_applied"],
        "map_version": group.current().version,
    }
