"""The metadata Raft group: the versioned ShardMap (membership, shard -> replicas, moves).

One small pysyncobj group on `raft_port` of the first (by id) initial peers, at most five
(`ShardMap.meta_members`). Its state is one ShardMap; every command is a compare-and-set of the
whole map (pulsar_cluster/metacommand.py, docs/format/meta.md), so the state is a pure function
of the log: replaying the journal after a restart rebuilds the same map, no idempotence
bookkeeping needed. The initial state (before index 1) is the static map of the initial peers,
version 1, identical on every member.

Snapshots: our own small JSON file (docs/format/meta.md), never pysyncobj's pickle; written by
`serialize` in the tick thread, where it sees exactly the map of `last_entry`. The journal gets
the same fsync hooks as the shard groups (node/raft/durable.py).

Threading: apply runs in the group's tick thread; `current()` reads one attribute (a reference
swap), safe from any thread.
"""

from __future__ import annotations

import base64
import os
from collections.abc import Callable
from typing import Any

import orjson
from pysyncobj import SyncObj, SyncObjConf, replicated
from pysyncobj.node import TCPNode

from node.raft.appendfix import AppendEntriesFixes
from node.raft.binding import report_if_unbound
from node.raft.durable import JournalSync, SyncedJournalHooks, check_supported
from pulsar_cluster.errors import CorruptionError
from pulsar_cluster.logs import get_logger
from pulsar_cluster.metacommand import apply_cas
from pulsar_cluster.shardmap import ShardMap

__all__ = ["MetaGroup", "MetaState", "MetaSnapshotter", "SNAPSHOT_MAGIC", "SNAPSHOT_VERSION"]

log = get_logger(__name__)

SNAPSHOT_MAGIC = "PLMS"
SNAPSHOT_VERSION = 1


class MetaState:
    """The replicated state: the current map (replaced, never mutated)."""

    def __init__(self, initial: ShardMap) -> None:
        self.map = initial


class MetaSnapshotter:
    """serializer/deserializer of the metadata group's SyncObjConf (docs/format/meta.md)."""

    def __init__(self, state: MetaState) -> None:
        self.state = state

    def serialize(self, path: str, raft_data: tuple[Any, Any, Any]) -> None:
        last_entry, prev_entry, nodes = raft_data
        doc = {
            "magic": SNAPSHOT_MAGIC,
            "version": SNAPSHOT_VERSION,
            "last": _entry_doc(last_entry),
            "prev": _entry_doc(prev_entry),
            "nodes": sorted(str(n.address) for n in nodes),
            "map": self.state.map.to_dict(),
        }
        with open(path, "wb") as out:
            out.write(orjson.dumps(doc))
            out.flush()
            os.fsync(out.fileno())
        log.info("meta_snapshot_written", index=last_entry[1], map_version=self.state.map.version)

    def deserialize(self, path: str) -> tuple[Any, Any, Any]:
        try:
            with open(path, "rb") as f:
                doc = orjson.loads(f.read())
            if doc.get("magic") != SNAPSHOT_MAGIC or doc.get("version") != SNAPSHOT_VERSION:
                raise CorruptionError(path, 0, "bad metadata snapshot magic/version")
            self.state.map = ShardMap.from_dict(doc["map"])
            nodes = [TCPNode(a) for a in doc["nodes"]]
            return _entry(doc["last"]), _entry(doc["prev"]), nodes
        except Exception:  # pysyncobj swallows it and retries: say it loudly
            log.exception("meta_snapshot_load_failed", path=path)
            raise


def _entry_doc(entry: Any) -> list[Any]:
    return [int(entry[1]), int(entry[2]), base64.b64encode(bytes(entry[0])).decode()]


def _entry(doc: list[Any]) -> tuple[bytes, int, int]:
    return base64.b64decode(doc[2]), int(doc[0]), int(doc[1])


class MetaGroup(AppendEntriesFixes, SyncedJournalHooks, SyncObj):  # type: ignore[misc]
    def __init__(
        self,
        state: MetaState,
        self_address: str,
        partner_addresses: list[str],
        conf: SyncObjConf,
        durable_journal: bool = True,
    ) -> None:
        self.state = state  # before SyncObj.__init__: the dump is loaded into it
        self.journal_sync: JournalSync | None = None
        if durable_journal:
            check_supported()
        super().__init__(self_address, partner_addresses, conf)
        report_if_unbound(self, self_address, group="meta")
        if durable_journal:
            self.journal_sync = JournalSync(self._SyncObj__raftLog)

    @replicated
    def _apply(self, data: bytes) -> str | None:
        new, refused = apply_cas(self.state.map, data)
        if refused is None:
            self.state.map = new
        return refused

    def propose(self, data: bytes, callback: Callable[[Any, int], None]) -> None:
        """`callback(refusal or None, fail_reason)` in the tick thread once applied here."""
        self._apply(data, callback=callback)

    def current(self) -> ShardMap:
        return self.state.map

    def is_leader(self) -> bool:
        return bool(self._isLeader())

    def leader_address(self) -> str | None:
        leader = self._getLeader()
        return None if leader is None else str(leader.address)
