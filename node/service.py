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
import shutil
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from node import reads
from node.background import BackgroundWorker
from node.backup import CheckpointStore
from node.engine.engine import Engine, EngineOptions
from node.inline import is_cheap_meta, small_select_series
from node.lastquery import WARM_MAX_ENTRIES, CacheWarmer
from node.mapstore import load_map, meta_status, save_map, start_meta_group
from node.query import EngineSource
from node.raft.budget import ByteBudget
from node.raft.ddl import check_ddl
from node.raft.deletes import check_delete_plan
from node.raft.group import ShardGroup
from node.raft.meta import MetaGroup
from node.raft.settings import RaftSettings, make_conf
from node.raft.snapshot import ShardSnapshotter
from node.shardstats import shard_document
from pulsar_cluster.batchcodec import decode_batch
from pulsar_cluster.cachestats import (
    caches_selected,
    check_cache_name,
    node_document,
    rollup_selected,
)
from pulsar_cluster.errors import BadRequestError, NotLeaderError, UnavailableError
from pulsar_cluster.logs import get_logger
from pulsar_cluster.metacommand import MapConflictError, NotMetaMemberError, encode_cas
from pulsar_cluster.nodeapi import ScanRequest, TagMatcher
from pulsar_cluster.query.partial import decode_plan
from pulsar_cluster.raftcommand import (
    MAX_COMMAND_BYTES,
    STAMP_BYTES,
    STAMPABLE_KINDS,
    CommandKind,
    command_kind,
    decode_command,
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
#: Seconds a replica the map no longer lists stays open before it is destroyed.
_DROP_GRACE_S = 2.0
#: Last-value cache entries per node, divided among its shard replicas like the memtable
#: budget (the standalone node's default bound; about 150 bytes per entry).
_LAST_CACHE_ENTRIES = 1_000_000
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
    def __init__(
        self,
        shard: int,
        engine: Engine,
        group: ShardGroup,
        budget: ByteBudget,
        warm_entries: int,
    ) -> None:
        self.shard = shard
        self.engine = engine
        self.group = group
        self.worker = BackgroundWorker(engine)
        self.budget = budget
        #: Kept by the engine: every write the Raft apply path applies, deletes, DDL, restores.
        self.last_cache = engine.last_values
        self.warmer = CacheWarmer(engine, self.last_cache, warm_entries)


class NodeService:
    def __init__(self, settings: NodeSettings, shard_map: ShardMap) -> None:
        self.settings = settings
        self.map = shard_map
        #: The map this node was started with (the creation map for initial peers).
        self.initial_map = shard_map
        self.node_id = settings.node_id
        self._replicas: dict[int, _Replica] = {}
        self.checkpoints: CheckpointStore | None = None  # backups; made in start()
        # Raft address of every (shard, node), to turn pysyncobj's leader into a node id.
        self._raft_owner: dict[tuple[int, str], str] = {}
        self._set_map(shard_map)
        #: The metadata group's replica on this node (its members only; node/raft/meta.py).
        self.meta: MetaGroup | None = None
        #: Local replicas the map no longer gives this node, and since when (monotonic).
        self._unwanted_since: dict[int, float] = {}

    # --- lifecycle -------------------------------------------------------------------------------

    def start(self) -> None:
        """Start the metadata group (on its members), open engines, start shard groups
        (blocking; call before serving)."""
        s = self.settings
        os.makedirs(os.path.join(s.data_dir, "raft"), exist_ok=True)
        self.checkpoints = CheckpointStore(os.path.join(s.data_dir, "backup-checkpoints"))
        shards_dir = os.path.join(s.data_dir, "shards")
        if os.path.isdir(shards_dir):
            for name in os.listdir(shards_dir):
                if ".dropped-" in name:  # a dropped replica whose deletion was cut short
                    shutil.rmtree(os.path.join(shards_dir, name), ignore_errors=True)
        persisted = load_map(s.data_dir)
        if persisted is not None and persisted.version > self.map.version:
            self._set_map(persisted)
        elif persisted is None:
            save_map(s.data_dir, self.map)
        if self.initial_map.version == 1 and self.node_id in self.initial_map.meta_members():
            self.meta = start_meta_group(self.initial_map, self.settings)
        for shard in self.map.local_shards(self.node_id):
            self._open_replica(shard)
        log.info("node_started", node=self.node_id, shards=sorted(self._replicas))

    def _budget_share(self) -> int:
        return max(1, len(self.map.local_shards(self.node_id)))

    def _open_replica(self, shard: int) -> _Replica:
        s = self.settings
        me = self.map.peer(self.node_id)
        raft_dir = os.path.join(s.data_dir, "raft")
        # --memtable-mb and the block cache are the node's budgets: a node holding 16 shard
        # replicas must not keep 16 full-size memtables and caches (measured: 3 to 4 GB peak
        # for a 3-node cluster on the TSBS benchmark before this).
        share = self._budget_share()
        per_shard = dataclasses.replace(
            s.engine,
            memtable_bytes=max(_MIN_MEMTABLE_BYTES, s.engine.memtable_bytes // share),
            block_cache_bytes=s.engine.block_cache_bytes // share,
            rollup_cache_bytes=s.engine.rollup_cache_bytes // share,
            last_value_entries=max(1, _LAST_CACHE_ENTRIES // share),
        )
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
            # The target of a move: not a member until the leader adds it (membership.py).
            joining=self.node_id not in self.map.replicas[shard],
        )
        budget = ByteBudget(max(_MIN_INFLIGHT, s.inflight_bytes // share))
        # The start-up warm-up of the cache (node/lastquery.py) is a node budget too.
        replica = _Replica(shard, engine, group, budget, WARM_MAX_ENTRIES // share)
        replica.worker.start()
        replica.warmer.start()
        self._replicas[shard] = replica
        return replica

    # --- membership (node/membership.py drives these) --------------------------------------------

    def _set_map(self, new: ShardMap) -> None:
        self.map = new
        self._raft_owner = {
            (shard, p.shard_raft_address(shard)): p.id
            for p in new.peers
            for shard in range(new.shard_count)
        }

    def set_map(self, new: ShardMap) -> bool:
        """Adopt `new` when it is newer than ours (persisted first, DIR/map.json)."""
        if new.version <= self.map.version:
            return False
        save_map(self.settings.data_dir, new)
        self._set_map(new)
        log.info("shard_map_updated", version=new.version, moves=len(new.moves))
        return True

    def reconcile(self) -> tuple[list[int], list[int]]:
        """Open the replicas the map gives this node and destroy (deleting their data) those it
        no longer does. Blocking: the membership loop calls it on the event loop, between
        requests, because `_replicas` is read there without a lock; it opens empty engines
        (milliseconds) and joins tick threads, so it pauses the API only briefly. A replica
        opened later gets its memtable/cache share of the node's budget as of that moment."""
        wanted = set(self.map.local_shards(self.node_id))
        opened = sorted(wanted - set(self._replicas))
        now = time.monotonic()
        for shard in wanted:
            self._unwanted_since.pop(shard, None)
        for shard in set(self._replicas) - wanted:
            self._unwanted_since.setdefault(shard, now)
        # A replica leaves a grace period after the map stops listing it: reads that started
        # here (consistency=any, coordinators with the old map) finish first.
        dropped = sorted(
            shard
            for shard, since in self._unwanted_since.items()
            if shard in self._replicas and now - since >= _DROP_GRACE_S
        )
        for shard in opened:
            self._open_replica(shard)
        for shard in dropped:
            self._drop_replica(shard)
            del self._unwanted_since[shard]
        if opened or dropped:
            log.info("replicas_reconciled", opened=opened, dropped=dropped)
        return opened, dropped

    def _drop_replica(self, shard: int) -> None:
        replica = self._replicas.pop(shard)
        replica.group.destroy()
        replica.group.destroy_synchronous()
        replica.warmer.stop()
        replica.worker.stop()
        replica.engine.close()
        # The shard moved away: its data and Raft files go (a later move back starts fresh).
        # Renamed at once (a move back must not find it), deleted in the background (a large
        # shard takes a while; leftovers of a crash are deleted at the next start).
        shards_dir = os.path.join(self.settings.data_dir, "shards")
        trash = os.path.join(shards_dir, f"{shard}.dropped-{time.time_ns()}")
        os.rename(os.path.join(shards_dir, str(shard)), trash)
        threading.Thread(target=shutil.rmtree, args=(trash, True), daemon=True).start()
        raft_dir = os.path.join(self.settings.data_dir, "raft")
        for name in os.listdir(raft_dir):
            if name.startswith(f"shard-{shard}."):
                path = os.path.join(raft_dir, name)
                if os.path.isdir(path):
                    shutil.rmtree(path)
                else:
                    os.remove(path)

    async def change_shard_membership(self, shard: int, op: str, node_id: str) -> str:
        """On the shard's leader: add (op "add") or remove ("remove") `node_id` from its Raft
        group. Idempotent: answers "already" when the group is already like that."""
        if op not in ("add", "remove"):
            raise BadRequestError("op must be 'add' or 'remove'")
        replica = self._require_leader(shard)
        try:
            address = self.map.peer(node_id).shard_raft_address(shard)
        except KeyError:
            raise BadRequestError(f"no node {node_id} in the map") from None
        if node_id == self.node_id:
            raise BadRequestError("a leader cannot change its own membership; transfer first")
        if (address in replica.group.members()) == (op == "add"):
            return "already"
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[tuple[Any, int]] = loop.create_future()
        replica.group.change_membership(op, address, _resolver(loop, fut))
        try:
            _result, reason = await asyncio.wait_for(fut, self.settings.write_timeout_s)
        except TimeoutError:
            raise UnavailableError(f"shard {shard}: membership change not confirmed") from None
        if reason != 0:
            raise UnavailableError(
                f"shard {shard}: membership change refused: {_FAIL_REASONS.get(reason, reason)} "
                "(another change may be in progress; retry)",
                shard=shard,
            )
        return "done"

    def transfer_leadership(self, shard: int, node_id: str | None) -> None:
        """Ask this leader to hand `shard` to `node_id` (None: any caught-up follower)."""
        replica = self._require_leader(shard)
        address = "" if node_id is None else self.map.peer(node_id).shard_raft_address(shard)
        replica.group.request_leadership_transfer(address)

    async def propose_map(self, expect: int, new: ShardMap) -> ShardMap:
        """Compare-and-set the cluster's map through the metadata group (members only)."""
        if self.meta is None:
            raise NotMetaMemberError("this node is not a member of the metadata group")
        data = encode_cas(expect, new)
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[tuple[Any, int]] = loop.create_future()
        self.meta.propose(data, _resolver(loop, fut))
        try:
            refused, reason = await asyncio.wait_for(fut, self.settings.write_timeout_s)
        except TimeoutError:
            raise UnavailableError("metadata change not confirmed (no metadata leader?)") from None
        if reason != 0:
            raise UnavailableError(
                f"metadata change failed: {_FAIL_REASONS.get(reason, reason)}; retry"
            )
        if refused is not None:
            raise MapConflictError(refused, map_version=self.meta.current().version)
        current = self.meta.current()
        self.set_map(current)
        return current

    def balance_leaders(self) -> list[int]:
        """Hand each shard this node leads, but is not the preferred (first) replica of, to its
        preferred replica, so leaders spread like the placement does. Called periodically;
        returns the shards asked to transfer. Graceful (TimeoutNow), and refused by pysyncobj
        when the preferred replica is behind or disconnected: then we simply keep leading."""
        asked = []
        for shard, replica in list(self._replicas.items()):
            if self.map.move_of(shard) is not None or shard >= self.map.shard_count:
                continue  # the mover decides who leads while a replica moves
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
        if self.meta is not None:
            self.meta.destroy()
            self.meta.destroy_synchronous()
            self.meta = None
        for replica in self._replicas.values():
            replica.group.destroy()
        for replica in self._replicas.values():
            replica.group.destroy_synchronous()  # joins the tick thread: no apply after this
            replica.warmer.stop()
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

    async def ddl(self, shard: int, command: bytes) -> None:
        """Replicate one DDL command (CATALOG, DROP_DATABASE, DROP_SERIES) of this shard."""
        replica = self._require_leader(shard)
        kind, body = decode_command(command)  # RaftCommandError: 400
        check_ddl(kind, body)  # 400 before replicating what every replica would refuse
        if len(command) > MAX_COMMAND_BYTES:
            raise BadRequestError("DDL command too large for one raft command")
        await self._replicate(shard, replica, [command])

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
                proposed = (
                    stamp_command(command, accepted_ns)
                    if self.settings.raft_time_stamps and command_kind(command) in STAMPABLE_KINDS
                    else command
                )
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

    async def query(
        self,
        shard: int,
        encoded_plan: bytes,
        consistency: str,
        tag_probe: list[str] | None = None,
    ) -> reads.PlanAnswer:
        """The encoded partial of a query plan over one shard (and the tag-key probe's answer,
        pulsar_cluster/tagprobe.py)."""
        replica = self._reader(shard, consistency)
        return await asyncio.to_thread(
            reads.run_plan, replica.engine, encoded_plan, replica.last_cache, tag_probe
        )

    async def query_shards(
        self,
        shards: list[int],
        encoded_plan: bytes,
        consistency: str,
        tag_probe: list[str] | None = None,
    ) -> reads.PlanAnswer:
        """One merged partial of a query plan over several local replicas (node-api.md). Every
        shard must be readable here at `consistency`, or the whole call fails naming the first
        that is not (NotLeaderError / UnavailableError): the coordinator then asks per shard."""
        if not shards or len(set(shards)) != len(shards):
            raise BadRequestError("shards must be a non-empty list of distinct shard ids")
        replicas = [self._reader(shard, consistency) for shard in shards]
        engines = [r.engine for r in replicas]
        caches = [r.last_cache for r in replicas]
        plan = decode_plan(encoded_plan)  # QueryError (400) for a malformed plan
        # Index look-ups and selects of a few series-hours are answered here, on the loop:
        # cheaper than the hop to a worker thread and back (node/inline.py).
        if is_cheap_meta(plan):
            return reads.answer_plan(plan, engines, caches, tag_probe)
        series = small_select_series(plan, [EngineSource(e) for e in engines])
        if series is not None:
            return reads.answer_plan(plan, engines, caches, tag_probe, series)
        return await asyncio.to_thread(reads.answer_plan, plan, engines, caches, tag_probe)

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
        """Every local replica knows a leader (ours or another). A node the map gives no
        replica (just joined, or drained) is ready: it serves its API."""
        assigned = self.map.local_shards(self.node_id)
        return all(s in self._replicas for s in assigned) and all(
            self.leader_of(s) is not None for s in assigned
        )

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
                "raft_bound": replica.group.bound(),
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
            "meta": meta_status(self.meta),
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

    def engines(self) -> list[Engine]:
        """The engines of the local replicas (configuration reload applies retention there)."""
        return [replica.engine for replica in self._replicas.values()]

    def shard_metrics(self) -> dict[str, dict[str, Any]]:
        """Per local replica: engine, cache and Raft state (pulsar_cluster/storagemetrics.py)."""
        out = {}
        for shard, replica in sorted(self._replicas.items()):
            raft = replica.group.getStatus()
            out[str(shard)] = shard_document(
                replica.engine,
                replica.last_cache,
                raft={
                    "role": {0: "follower", 1: "candidate", 2: "leader"}.get(raft["state"], "?"),
                    "term": raft["raft_term"],
                    "commit_index": raft["commit_idx"],
                    "last_applied": raft["last_applied"],
                    "log_entries": raft["log_len"],
                },
            )
        return out

    def caches(self) -> dict[str, Any]:
        """Cache statistics of every local replica (pulsar_cluster/cachestats.py)."""
        return node_document(
            {
                str(shard): {
                    "block_cache": replica.engine.block_cache_stats(),
                    "last_value_cache": replica.last_cache.stats(),
                    "rollup_cache": replica.engine.rollups.stats(),
                }
                for shard, replica in sorted(self._replicas.items())
            }
        )

    def clear_caches(self, cache: str = "all") -> None:
        """Empty the selected caches of every local replica (BadRequestError for a bad name)."""
        try:
            block, last = caches_selected(check_cache_name(cache))
            rollup = rollup_selected(cache)
        except ValueError as exc:
            raise BadRequestError(str(exc)) from None
        for replica in self._replicas.values():
            if block:
                replica.engine.clear_block_cache()
            if last:
                replica.last_cache.clear()
            if rollup:
                replica.engine.rollups.clear()

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
    current = {"node_id": node_id, "map": _creation_fields(shard_map.to_dict())}
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
    if isinstance(recorded.get("map"), dict):
        recorded["map"] = _creation_fields(recorded["map"])
    if recorded != current:
        raise BadRequestError(
            f"{path} records another cluster (node id, shard count, replication factor or "
            "peers differ from the flags); these are fixed at cluster creation"
        )


def _creation_fields(doc: dict[str, Any]) -> dict[str, Any]:
    """The part of a map fixed at creation (membership changes later live in DIR/map.json)."""
    return {k: v for k, v in doc.items() if k not in ("meta", "moves")}
