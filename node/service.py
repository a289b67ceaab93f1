"""A storage node process's state: one Engine and one Raft group per shard replica it holds.

Directory layout under the node's data dir:

    DIR/shards/<id>/wal, sst     the engine of shard <id> (node/engine/engine.py)
    DIR/raft/shard-<id>.journal  pysyncobj's journal (mmap; not fsynced by pysyncobj)
    DIR/raft/shard-<id>.dump     pysyncobj's full dump file (needed with a journal; notes)

Write path (leader): decode and validate the encoded batch, split it into commands of at most
48 KB, propose them all at once (pipelined, bounded in-flight bytes), and return when every
command is committed by a majority and applied (and fsynced, with fsync=always) here.
"""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import os
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from node import reads
from node.background import BackgroundWorker
from node.backup import CheckpointStore
from node.engine.engine import Engine, EngineOptions
from node.raft.budget import ByteBudget
from node.raft.deletes import check_delete_plan
from node.raft.group import ShardGroup
from node.raft.settings import RaftSettings, make_conf
from node.raft.snapshot import ShardSnapshotter
from pulsar_cluster.batchcodec import decode_batch
from pulsar_cluster.errors import BadRequestError, NotLeaderError, UnavailableError
from pulsar_cluster.logs import get_logger
from pulsar_cluster.nodeapi import ScanRequest, TagMatcher
from pulsar_cluster.query.partial import decode_plan
from pulsar_cluster.raftcommand import (
    MAX_COMMAND_BYTES,
    STAMP_BYTES,
    CommandKind,
    encode_command,
    split_write,
    stamp_command,
)
from pulsar_cluster.shardmap import ShardMap

__all__ = ["NodeService", "NodeSettings", "check_cluster_file"]

log = get_logger(__name__)

_FAIL_REASONS = {
    1: "queue full",
    2: "missing leader",
    3: "discarded by a new leader",
    4: "not the leader",
    5: "leader changed before commit",
    6: "request failed",
}


#: Smallest memtable a shard replica gets from the node's budget: below a few MB flushes write
#: tiny tables and compaction does the work again.
_MIN_MEMTABLE_BYTES = 4 * 1024 * 1024
#: Smallest in-flight proposal budget of a shard replica: a few of the largest commands.
_MIN_INFLIGHT = 1024 * 1024


@dataclass(slots=True)
class NodeSettings:
    node_id: str
    data_dir: str
    secret: str
    engine: EngineOptions = field(default_factory=EngineOptions)
    raft: RaftSettings = field(default_factory=RaftSettings)
    #: How long a write waits for commit + apply before answering 503 (outcome unknown).
    write_timeout_s: float = 10.0
    #: Bytes of proposed, not yet applied commands per node, divided among its shard replicas
    #: (see budget.py). Per shard it was 32 MiB x 16 shards: 4.3 GB peak for a 3-node cluster
    #: on the full TSBS load, 1.5 GB after the division, at the same ingest rate.
    inflight_bytes: int = 32 * 1024 * 1024
    #: Address Raft listens on (port added per group); None: the advertised host of --peers.
    raft_bind_host: str | None = None
    #: Leaders stamp the accepted time into commands (WRITE_AT/DELETE_AT, point-in-time
    #: recovery). Off only while older nodes, which refuse those kinds, are being upgraded.
    raft_time_stamps: bool = True


class _Replica:
    def __init__(self, shard: int, engine: Engine, group: ShardGroup, budget: ByteBudget) -> None:
        self.shard = shard
        self.engine = engine
        self.group = group
        self.worker = BackgroundWorker(engine)
        self.budget = budget


class NodeService:
    def __init__(self, settings: NodeSettings, shard_map: ShardMap) -> None:
        self.settings = settings
        self.map = shard_map
        self.node_id = settings.node_id
        self._replicas: dict[int, _Replica] = {}
        self.checkpoints: CheckpointStore | None = None  # backups; made in start()
        # Raft address of every (shard, node), to turn pysyncobj's leader into a node id.
        self._raft_owner: dict[tuple[int, str], str] = {}
        for shard, ids in enumerate(shard_map.replicas):
            for node_id in ids:
                addr = shard_map.peer(node_id).shard_raft_address(shard)
                self._raft_owner[(shard, addr)] = node_id

    # --- lifecycle -------------------------------------------------------------------------------

    def start(self) -> None:
        """Open engines and start Raft groups (blocking; call before serving)."""
        s = self.settings
        me = self.map.peer(self.node_id)
        raft_dir = os.path.join(s.data_dir, "raft")
        os.makedirs(raft_dir, exist_ok=True)
        self.checkpoints = CheckpointStore(os.path.join(s.data_dir, "backup-checkpoints"))
        shards = list(self.map.shards_of(self.node_id))
        # --memtable-mb and the block cache are the node's budgets: a node holding 16 shard
        # replicas must not keep 16 full-size memtables and caches (measured: 3 to 4 GB peak
        # for a 3-node cluster on the TSBS benchmark before this).
        share = max(1, len(shards))
        per_shard = dataclasses.replace(
            s.engine,
            memtable_bytes=max(_MIN_MEMTABLE_BYTES, s.engine.memtable_bytes // share),
            block_cache_bytes=s.engine.block_cache_bytes // share,
        )
        for shard in shards:
            options = per_shard
            if s.engine.wal_archive_dir:  # one archive per node and shard (docs/operations.md)
                archive = os.path.join(s.engine.wal_archive_dir, self.node_id, f"shard-{shard}")
                options = dataclasses.replace(per_shard, wal_archive_dir=archive)
            engine = Engine(os.path.join(s.data_dir, "shards", str(shard)), options)
            partners = [
                self.map.peer(n).shard_raft_address(shard)
                for n in self.map.replicas[shard]
                if n != self.node_id
            ]
            snapshotter = ShardSnapshotter(
                engine, os.path.join(raft_dir, f"shard-{shard}.snapshot-work")
            )
            os.makedirs(snapshotter.work_dir, exist_ok=True)
            conf = make_conf(
                s.raft,
                s.secret,
                os.path.join(raft_dir, f"shard-{shard}.journal"),
                os.path.join(raft_dir, f"shard-{shard}.dump"),
                bind_address=(
                    None
                    if s.raft_bind_host is None
                    else f"{s.raft_bind_host}:{me.raft_port + 1 + shard}"
                ),
                serializer=snapshotter.serialize,
                deserializer=snapshotter.deserialize,
            )
            # pysyncobj binds the host part of selfNode; it listens on this address only.
            group = ShardGroup(
                shard,
                engine,
                me.shard_raft_address(shard),
                partners,
                conf,
                # fsync=always promises power-loss durability: the journal must sync too.
                durable_journal=s.engine.fsync == "always",
            )
            budget = ByteBudget(max(_MIN_INFLIGHT, s.inflight_bytes // share))
            replica = _Replica(shard, engine, group, budget)
            replica.worker.start()
            self._replicas[shard] = replica
        log.info("node_started", node=self.node_id, shards=sorted(self._replicas))

    def balance_leaders(self) -> list[int]:
        """Hand each shard this node leads, but is not the preferred (first) replica of, to its
        preferred replica, so leaders spread like the placement does. Called periodically;
        returns the shards asked to transfer. Graceful (TimeoutNow), and refused by pysyncobj
        when the preferred replica is behind or disconnected: then we simply keep leading."""
        asked = []
        for shard, replica in self._replicas.items():
            preferred = self.map.replicas[shard][0]
            if preferred == self.node_id or not replica.group.is_leader():
                continue
            status = replica.group.getStatus()
            if status["commit_idx"] != status["last_applied"]:
                continue  # busy catching up: not now
            address = self.map.peer(preferred).shard_raft_address(shard)
            replica.group.request_leadership_transfer(address)
            asked.append(shard)
        return asked

    def close(self) -> None:
        """Stop Raft first (no more applies), then flush and close the engines."""
        for replica in self._replicas.values():
            replica.group.destroy()
        for replica in self._replicas.values():
            replica.group.destroy_synchronous()  # joins the tick thread: no apply after this
            replica.worker.stop()
            replica.engine.close()
        self._replicas.clear()

    # --- routing checks --------------------------------------------------------------------------

    def _replica(self, shard: int) -> _Replica:
        replica = self._replicas.get(shard)
        if replica is None:
            if not 0 <= shard < self.map.shard_count:
                raise BadRequestError(f"no shard {shard}: the cluster has {self.map.shard_count}")
            raise NotLeaderError(
                shard, self.map.replicas[shard][0], self.map.version, "not a replica on this node"
            )
        return replica

    def leader_of(self, shard: int) -> str | None:
        replica = self._replicas[shard]
        if replica.group.is_leader():
            return self.node_id
        addr = replica.group.leader_address()
        return None if addr is None else self._raft_owner.get((shard, addr))

    def _require_leader(self, shard: int) -> _Replica:
        replica = self._replica(shard)
        if not replica.group.is_leader():
            leader = self.leader_of(shard)
            reason = "not the leader" if leader else "no leader yet (election in progress)"
            raise NotLeaderError(shard, leader, self.map.version, reason)
        return replica

    # --- writes ----------------------------------------------------------------------------------

    async def write(self, shard: int, encoded_batch: bytes) -> int:
        """Replicate one encoded batch of this shard; returns the number of Raft commands."""
        replica = self._require_leader(shard)
        batch = await asyncio.to_thread(decode_batch, encoded_batch)  # BatchFormatError: 400
        if not batch:
            return 0
        commands = await asyncio.to_thread(split_write, batch, MAX_COMMAND_BYTES - STAMP_BYTES)
        return await self._replicate(shard, replica, commands)

    async def delete(self, shard: int, encoded_plan: bytes) -> None:
        """Replicate a delete plan of this shard (applied by every replica at one index)."""
        replica = self._require_leader(shard)
        check_delete_plan(decode_plan(encoded_plan))  # QueryError (400) before replicating
        if len(encoded_plan) + 8 + STAMP_BYTES > MAX_COMMAND_BYTES:
            raise BadRequestError("delete plan too large for one raft command")
        await self._replicate(shard, replica, [encode_command(CommandKind.DELETE, encoded_plan)])

    async def _replicate(self, shard: int, replica: _Replica, commands: list[bytes]) -> int:
        """Propose `commands` at once; return when all are committed and applied here."""
        total = sum(len(c) for c in commands)
        timeout = self.settings.write_timeout_s
        await replica.budget.acquire(total, timeout)
        try:
            loop = asyncio.get_running_loop()
            futures = []
            # The leader stamps the accepted time into the command, so every replica records
            # the same time in its WAL (point-in-time recovery, docs/format/raft-command.md).
            accepted_ns = time.time_ns()
            for command in commands:
                fut: asyncio.Future[tuple[Any, int]] = loop.create_future()
                if self.settings.raft_time_stamps:
                    proposed = stamp_command(command, accepted_ns)
                else:
                    proposed = command
                replica.group.propose(proposed, _resolver(loop, fut))
                futures.append(fut)
            try:
                results = await asyncio.wait_for(asyncio.gather(*futures), timeout)
            except TimeoutError:
                raise UnavailableError(
                    f"shard {shard}: commit not confirmed within {timeout}s; "
                    "the write may or may not be applied (retrying it is safe)",
                    shard=shard,
                ) from None
        finally:
            await replica.budget.release(total)
        for result, reason in results:
            if reason != 0:
                raise NotLeaderError(
                    shard,
                    self.leader_of(shard),
                    self.map.version,
                    f"write not committed: {_FAIL_REASONS.get(reason, reason)}",
                )
            if result is not None:
                message, details = result
                raise BadRequestError(message, shard=shard, **details)
        return len(commands)

    # --- reads -----------------------------------------------------------------------------------

    def _reader(self, shard: int, consistency: str) -> _Replica:
        """The replica to read `shard` from, per the consistency level (node-api.md)."""
        if consistency == "leader":
            replica = self._require_leader(shard)
            if not replica.group.leader_caught_up():
                raise UnavailableError(
                    f"shard {shard}: new leader still applying earlier entries; retry",
                    shard=shard,
                )
        else:
            replica = self._replica(shard)
        return replica

    async def scan(self, shard: int, request: ScanRequest, consistency: str) -> bytes:
        """Matching series of one shard, encoded as a WriteBatch (docs/format/node-api.md)."""
        engine = self._reader(shard, consistency).engine
        return await asyncio.to_thread(reads.scan_encoded, engine, request)

    async def query(self, shard: int, encoded_plan: bytes, consistency: str) -> bytes:
        """The encoded partial of a query plan over one shard."""
        engine = self._reader(shard, consistency).engine
        return await asyncio.to_thread(reads.run_plan, engine, encoded_plan)

    async def select(
        self,
        shard: int,
        consistency: str,
        database: str,
        measurement: str,
        matchers: list[TagMatcher],
        start: int,
        end: int,
        fields: list[str] | None,
    ) -> bytes:
        engine = self._reader(shard, consistency).engine
        return await asyncio.to_thread(
            reads.select_encoded, engine, database, measurement, matchers, start, end, fields
        )

    async def compact(self) -> None:
        """Flush, then fully compact every local replica (local work: not replicated), and ask
        each Raft group to compact its log too (an engine snapshot replaces the journal's
        entries; pysyncobj runs it in the group's tick thread, shortly after)."""

        def one(engine: Engine) -> None:
            engine.flush()
            engine.compact(full=True)

        await asyncio.gather(*(asyncio.to_thread(one, r.engine) for r in self._replicas.values()))
        for replica in self._replicas.values():
            replica.group.forceLogCompaction()

    def databases(self) -> list[str]:
        return sorted({d for r in self._replicas.values() for d in r.engine.databases()})

    def measurements(self, database: str) -> list[str]:
        return sorted({m for r in self._replicas.values() for m in r.engine.measurements(database)})

    async def flush(self) -> None:
        await asyncio.gather(*(asyncio.to_thread(r.engine.flush) for r in self._replicas.values()))

    def ready(self) -> bool:
        """Every local replica knows a leader (ours or another)."""
        return bool(self._replicas) and all(self.leader_of(s) is not None for s in self._replicas)

    def status(self) -> dict[str, Any]:
        shards = {}
        for shard, replica in sorted(self._replicas.items()):
            raft = replica.group.getStatus()
            engine = replica.engine.status()
            shards[str(shard)] = {
                "role": {0: "follower", 1: "candidate", 2: "leader"}.get(raft["state"], "?"),
                "leader": self.leader_of(shard),
                "term": raft["raft_term"],
                "commit_index": raft["commit_idx"],
                "last_applied": raft["last_applied"],
                "apply_lag": raft["commit_idx"] - raft["last_applied"],
                "engine_last_index": engine["last_index"],
                "log_entries": raft["log_len"],
                "has_quorum": raft["has_quorum"],
                "inflight_bytes": replica.budget.used,
                "preferred_leader": self.map.replicas[shard][0],
                "journal_syncs": (
                    replica.group.journal_sync.syncs if replica.group.journal_sync else None
                ),
                "leadership_transfers": replica.group.transfers,
                "engine": engine,
            }
        return {
            "node_id": self.node_id,
            "pid": os.getpid(),
            "map_version": self.map.version,
            "shards": shards,
        }

    async def backup_checkpoint(
        self, shards: list[int], min_index: dict[int, int] | None = None, timeout_s: float = 30.0
    ) -> dict[str, Any]:
        """A backup checkpoint of the local replicas of `shards` (node/backup.py).

        `min_index[shard]` (the leader's commit index when the backup started) is waited for
        first: a follower's checkpoint then holds every write acknowledged before the backup
        began, like the leader's would."""
        assert self.checkpoints is not None
        replicas = {shard: self._replica(shard) for shard in shards}
        deadline = time.monotonic() + timeout_s
        for shard, replica in replicas.items():
            want = (min_index or {}).get(shard, 0)
            while replica.group.raftLastApplied < want:
                if time.monotonic() > deadline:
                    raise UnavailableError(
                        f"shard {shard}: replica did not apply index {want} within {timeout_s}s",
                        shard=shard,
                    )
                await asyncio.sleep(0.01)
        engines = {shard: r.engine for shard, r in replicas.items()}
        return await asyncio.to_thread(self.checkpoints.create, engines)

    async def checksum(self, shard: int) -> dict[str, Any]:
        """A digest of every point of this replica of `shard` (convergence checks)."""
        replica = self._replica(shard)
        return await asyncio.to_thread(_checksum, replica.engine)


def _resolver(loop: asyncio.AbstractEventLoop, fut: asyncio.Future[tuple[Any, int]]) -> Any:
    def done(result: Any, reason: int) -> None:  # tick thread
        loop.call_soon_threadsafe(_set, fut, (result, reason))

    return done


def _set(fut: asyncio.Future[tuple[Any, int]], value: tuple[Any, int]) -> None:
    if not fut.done():  # cancelled by a timeout: nobody waits any more
        fut.set_result(value)


def _checksum(engine: Engine) -> dict[str, Any]:
    digest = hashlib.blake2b(digest_size=16)
    points = 0
    for database in engine.databases():
        for measurement in engine.measurements(database):
            rows = engine.scan(database, measurement, {}, None, -(2**63) + 1, 2**63 - 1)
            for key, fields in sorted(rows, key=lambda r: r[0]):
                digest.update(database.encode() + b"\0" + key)
                for name in sorted(fields):
                    data = fields[name]
                    digest.update(name.encode())
                    digest.update(np.ascontiguousarray(data.timestamps).tobytes())
                    digest.update(repr(data.values.tolist()).encode())
                    points += len(data.timestamps)
    return {"checksum": digest.hexdigest(), "values": points, "last_index": engine.last_index}


def check_cluster_file(data_dir: str, shard_map: ShardMap, node_id: str) -> None:
    """Record the cluster's shape at creation (DIR/cluster.json); refuse a different one later.

    Shard count and placement are fixed at creation: a node restarted with other --shards or
    --peers would hash series to other shards and silently split the data.
    """
    import json

    path = os.path.join(data_dir, "cluster.json")
    current = {"node_id": node_id, "map": shard_map.to_dict()}
    try:
        with open(path, encoding="utf-8") as f:
            recorded = json.load(f)
    except FileNotFoundError:
        os.makedirs(data_dir, exist_ok=True)
        tmp = path + ".tmp"
        with open(tmp, "w", encoding="utf-8") as f:
            json.dump(current, f, indent=2)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
        return
    if recorded != current:
        raise BadRequestError(
            f"{path} records another cluster (node id, shard count, replication factor or "
            "peers differ from the flags); these are fixed at cluster creation"
        )
