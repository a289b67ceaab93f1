"""StorageBackend over a Raft cluster: writes routed by shard to leaders, queries fanned out.

The coordinator learns the shard map from any reachable node (`--nodes` seeds) and caches it
with its version; it caches the leader of each shard and follows the `leader` hint of a 421
NotLeaderError. Every node call has a timeout, retries are bounded in count and time, and a
shard with no reachable replica fails the request with an UnavailableError naming the shard.

Retries are safe: a write whose outcome is unknown (timeout, leader change) may have committed,
and sending it again rewrites the same (series, field, timestamp) values: last write wins.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

from coordinator import backupcluster
from pulsar_cluster.batch import WriteBatch, partition_batch
from pulsar_cluster.batchcodec import encode_batch
from pulsar_cluster.cachestats import total_caches
from pulsar_cluster.catalogop import CatalogOp, encode_drop_database
from pulsar_cluster.errors import (
    BadRequestError,
    NotLeaderError,
    OverloadedError,
    PulsarError,
    UnavailableError,
)
from pulsar_cluster.logs import get_logger
from pulsar_cluster.nodeapi import ScanRequest, SeriesData, TagMatcher
from pulsar_cluster.nodeclient import NodeAuthError, NodeClient
from pulsar_cluster.nodehttp import NodeSession
from pulsar_cluster.query.columnar import decode_any, merge_columns
from pulsar_cluster.query.partial import Partial, encode_plan, merge
from pulsar_cluster.query.plan import Plan
from pulsar_cluster.raftcommand import CommandKind, encode_command
from pulsar_cluster.series import shard_for
from pulsar_cluster.shardmap import ShardMap
from pulsar_cluster.tagprobe import StaleTagKeysError, TagKeyCache

__all__ = ["ClusterBackend", "ClusterSettings", "split_by_shard"]

log = get_logger(__name__)


#: How long a cached map is used before it is re-read (a 421 with a newer version re-reads it
#: at once); bounds how long a coordinator misses a node that joined.
_MAP_TTL_S = 5.0


@dataclass(frozen=True, slots=True)
class ClusterSettings:
    #: Per node call; a write waits for commit + apply on the leader within it.
    call_timeout_s: float = 10.0
    #: Total time a request may spend retrying one shard (leader changes take a few election
    #: timeouts: 1.5-3 s each with the default Raft settings).
    shard_deadline_s: float = 20.0
    max_attempts: int = 30
    #: Small status calls (readiness, map discovery).
    probe_timeout_s: float = 2.0


def split_by_shard(batch: WriteBatch, shard_count: int) -> dict[int, WriteBatch]:
    """One sub-batch per shard; one hash per series (never per point), rows moved with numpy
    gathers when the batch is a table."""
    database = batch.database
    return partition_batch(batch, lambda key: shard_for(database, key, shard_count))


#: Partials up to this many bytes in all are merged on the event loop: decoding and merging
#: them takes less than the hop to a worker thread and back (a small query's answers are a few
#: hundred bytes per node); larger ones go to a thread so that no merge stalls other requests.
INLINE_MERGE_BYTES = 16 * 1024


def _check_probe(assumed: dict[str, bool], answers: list[list[str] | None]) -> None:
    """StaleTagKeysError unless the tag keys among the probed names, over every node's answer,
    are exactly those the plan took for tag keys (a node that did not answer the probe counts
    as a difference: the statement is planned again with fresh tag keys)."""
    if any(found is None for found in answers):
        raise StaleTagKeysError("a node did not answer the tag-key probe")
    now = {name for found in answers for name in found or ()}
    if now != {name for name, is_tag in assumed.items() if is_tag}:
        raise StaleTagKeysError(f"tag keys changed among {sorted(assumed)}")


class ClusterBackend:
    #: `query(plan, consistency=...)` reads followers too with "any" (coordinator/consistency.py)
    supports_consistency = True

    def __init__(
        self, seeds: list[str], token: str, settings: ClusterSettings | None = None
    ) -> None:
        if not seeds:
            raise ValueError("at least one node address is needed")
        self.settings = settings or ClusterSettings()
        self._seeds = [s if "://" in s else f"http://{s}" for s in seeds]
        self._token = token
        self._http = NodeSession()
        #: tag keys per measurement for planning, checked by every query (tagprobe.py)
        self.tag_key_cache = TagKeyCache()
        self._map: ShardMap | None = None
        self._map_at = 0.0  # monotonic time of the last load
        self._clients: dict[str, NodeClient] = {}
        self._leaders: dict[int, str] = {}
        self._map_lock = asyncio.Lock()
        self._rr = 0

    # --- map and clients -------------------------------------------------------------------------

    def _client(self, node_id: str) -> NodeClient:
        client = self._clients.get(node_id)
        if client is None:
            assert self._map is not None
            client = NodeClient(
                self._map.peer(node_id).api_url,
                self._token,
                self.settings.call_timeout_s,
                self._http,
            )
            self._clients[node_id] = client
        return client

    async def shard_map(self) -> ShardMap:
        if self._map is not None and time.monotonic() - self._map_at < _MAP_TTL_S:
            return self._map
        async with self._map_lock:
            if self._map is not None and time.monotonic() - self._map_at < _MAP_TTL_S:
                return self._map
            if self._map is not None:
                # Periodic refresh (nodes that joined, moves): from a member of the metadata
                # group; the cached map stays in use when none answers.
                for node_id in self._map.meta_members():
                    try:
                        fresh = await NodeClient(
                            self._map.peer(node_id).api_url,
                            self._token,
                            self.settings.probe_timeout_s,
                            self._http,
                        ).shard_map()
                    except PulsarError:
                        continue
                    if fresh.version >= self._map.version:
                        self._map = fresh
                    break
                self._map_at = time.monotonic()
                return self._map
            errors = []
            for seed in self._seeds:
                client = NodeClient(seed, self._token, self.settings.probe_timeout_s, self._http)
                try:
                    self._map = await client.shard_map()
                    self._map_at = time.monotonic()
                    log.info("shard_map_loaded", version=self._map.version, seed=seed)
                    return self._map
                except NodeAuthError:
                    raise
                except PulsarError as exc:
                    errors.append(str(exc))
            raise UnavailableError(
                "no node reachable to load the shard map: " + "; ".join(errors), nodes=self._seeds
            )

    def _note_map_version(self, version: int) -> None:
        if self._map is not None and version > self._map.version:
            self._map_at = 0.0  # reload on next use (a newer map exists)

    # --- membership (docs/api.md: admin nodes, drain, rebalance) ---------------------------------

    async def membership(self, method: str, path: str, body: Any = None) -> Any:
        """A membership call on the node API (`/v1/members...`, `/v1/rebalance`), sent to a
        member of the metadata group (any node would forward it there)."""
        shard_map = await self.shard_map()
        errors = []
        for node_id in [*shard_map.meta_members(), *(p.id for p in shard_map.peers)]:
            client = NodeClient(shard_map.peer(node_id).api_url, self._token, 30.0, self._http)
            try:
                answer = await client.call_json(method, path, body)
            except UnavailableError as exc:
                errors.append(f"{node_id}: {exc.message}")
                continue
            self._map_at = 0.0  # the map changed: reload on next use
            return answer
        raise UnavailableError("no node accepted the membership change: " + "; ".join(errors))

    async def nodes(self) -> dict[str, Any]:
        """Every node of the map: addresses, replicas, preferred leaderships, state."""
        self._map_at = 0.0
        shard_map = await self.shard_map()
        statuses = await self._node_statuses()
        out = []
        for peer in shard_map.peers:
            st = statuses.get(peer.id, {})
            shards = shard_map.shards_of(peer.id)
            out.append(
                {
                    "id": peer.id,
                    "api_url": peer.api_url,
                    "raft_port": peer.raft_port,
                    "state": "down" if "error" in st else "up",
                    "meta_member": peer.id in shard_map.meta_members(),
                    "replicas": len(shards),
                    "shards": shards,
                    "preferred_leader_of": sum(
                        1 for r in shard_map.replicas if r and r[0] == peer.id
                    ),
                    "leads": sum(
                        1 for s in st.get("shards", {}).values() if s.get("role") == "leader"
                    ),
                }
            )
        return {
            "map_version": shard_map.version,
            "nodes": out,
            "moves": [m.to_dict() for m in shard_map.moves],
        }

    # --- writes ----------------------------------------------------------------------------------

    async def write(self, batch: WriteBatch) -> None:
        if not batch:
            return
        shard_map = await self.shard_map()
        parts = split_by_shard(batch, shard_map.shard_count)
        payloads = await asyncio.to_thread(
            lambda: {shard: encode_batch(sub) for shard, sub in parts.items()}
        )
        results = await asyncio.gather(
            *(self._write_shard(shard, data) for shard, data in payloads.items()),
            return_exceptions=True,
        )
        for result in results:
            if isinstance(result, BaseException):
                raise result

    async def _write_shard(self, shard: int, payload: bytes) -> None:
        async def attempt(node_id: str, remaining: float) -> None:
            await self._client(node_id).write(shard, payload, timeout_s=remaining)

        await self._with_leader(shard, attempt, leader_only=True)

    async def _with_leader(self, shard: int, call: Any, leader_only: bool) -> Any:
        """Run `call(node_id, remaining_s)` against the shard's leader (or any replica),
        following hints and moving on from unreachable replicas, bounded in count and time."""
        s = self.settings
        shard_map = await self.shard_map()
        replicas = shard_map.replicas[shard]
        if leader_only:
            candidate = self._leaders.get(shard, replicas[0])
            if candidate not in replicas:  # cached from an older map (the replica moved)
                candidate = replicas[0]
        else:
            self._rr += 1
            candidate = replicas[self._rr % len(replicas)]
        deadline = time.monotonic() + s.shard_deadline_s
        last_error = "no attempt"
        delay = 0.05
        for _ in range(s.max_attempts):
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            try:
                result = await call(candidate, min(remaining, s.call_timeout_s))
                if leader_only:
                    self._leaders[shard] = candidate
                return result
            except NotLeaderError as exc:
                self._note_map_version(exc.map_version)
                last_error = f"{candidate}: {exc.message}"
                if exc.leader and exc.leader != candidate and exc.leader in replicas:
                    candidate = exc.leader
                    continue  # follow the hint at once
                self._leaders.pop(shard, None)
            except (BadRequestError, OverloadedError, NodeAuthError):
                raise
            except UnavailableError as exc:
                last_error = f"{candidate}: {exc.message}"
                self._leaders.pop(shard, None)
            # No usable hint: next replica, after a growing pause (an election takes time).
            candidate = replicas[(replicas.index(candidate) + 1) % len(replicas)]
            await asyncio.sleep(min(delay, max(0.0, deadline - time.monotonic())))
            delay = min(delay * 2, 0.5)
        raise UnavailableError(
            f"shard {shard} unavailable: no {'leader' if leader_only else 'replica'} answered "
            f"within {s.shard_deadline_s}s (last error: {last_error})",
            shard=shard,
        )

    # --- reads -----------------------------------------------------------------------------------

    async def scan(self, request: ScanRequest, consistency: str = "leader") -> list[SeriesData]:
        parts = await self._fan_out(
            lambda client, shard: client.scan(shard, request, consistency), consistency
        )
        # A series lives in exactly one shard: the parts are disjoint.
        out = [series for part in parts for series in part]
        out.sort(key=lambda s: s.key)
        return out

    def _expected_replica(self, shard_map: ShardMap, shard: int, consistency: str) -> str:
        """The replica a read of `shard` goes to first: its cached leader (else the preferred
        one) with consistency=leader, the next replica in turn with any."""
        replicas = shard_map.replicas[shard]
        if consistency == "leader":
            cached = self._leaders.get(shard, replicas[0])
            return cached if cached in replicas else replicas[0]
        self._rr += 1
        return replicas[self._rr % len(replicas)]

    def _read_groups(self, shard_map: ShardMap, consistency: str) -> dict[str, list[int]]:
        """The shards of a query grouped by the node each is read from first. With
        consistency=leader: each shard's cached leader. With any: as few nodes as hold every
        shard, preferring a node that rotates from query to query; with one replica of every
        shard on every node (replication factor = nodes) that is one call per query, where
        spreading each shard over its replicas made one per node."""
        groups: dict[str, list[int]] = {}
        if consistency == "leader":
            for shard in range(shard_map.shard_count):
                node = self._expected_replica(shard_map, shard, consistency)
                groups.setdefault(node, []).append(shard)
            return groups
        self._rr += 1
        peers = [p.id for p in shard_map.peers]
        rank = {node: (i - self._rr) % len(peers) for i, node in enumerate(peers)}
        for shard in range(shard_map.shard_count):
            node = min(shard_map.replicas[shard], key=lambda n: rank.get(n, len(peers)))
            groups.setdefault(node, []).append(shard)
        return groups

    async def _fan_out(self, call: Any, consistency: str) -> list[Any]:
        """`call(client, shard)` on one replica of every shard, concurrently."""
        shard_map = await self.shard_map()
        leader_only = consistency == "leader"

        async def one(shard: int) -> Any:
            async def attempt(node_id: str, remaining: float) -> Any:
                return await call(self._client(node_id), shard)

            return await self._with_leader(shard, attempt, leader_only)

        return list(await asyncio.gather(*(one(s) for s in range(shard_map.shard_count))))

    async def query(
        self,
        plan: Plan,
        consistency: str = "leader",
        tag_probe: dict[str, bool] | None = None,
    ) -> Partial:
        """Send the plan to one replica of every shard; merge their partials.

        One call per node for all the shards it is expected to serve (`_read_groups`: its
        cached leaderships, or with consistency=any as few nodes as hold every shard), merged
        there: 3 calls (1 with any) instead of 16 on a 3-node cluster. Shards of a call that
        fails (a leader moved, a node is down) are retried one by one, with the usual hints,
        retries and deadline.

        `tag_probe`: the names the plan was made with, and whether each was taken for a tag
        key; every node says which are tag keys now, and StaleTagKeysError says the union
        differs (pulsar_cluster/tagprobe.py)."""
        encoded = encode_plan(plan)
        groups = self._read_groups(await self.shard_map(), consistency)
        probe = None if tag_probe is None else list(tag_probe)

        async def per_node(node_id: str, shards: list[int]) -> list[tuple[bytes, list[str] | None]]:
            try:
                answer = await self._client(node_id).query_shards(
                    shards, encoded, consistency, probe
                )
            except (NotLeaderError, UnavailableError) as exc:
                log.debug("grouped_query_falls_back", node=node_id, error=exc.message)
                return list(
                    await asyncio.gather(
                        *(
                            self._with_leader(
                                shard,
                                lambda node, _remaining, shard=shard: self._client(node).query(
                                    shard, encoded, consistency, probe
                                ),
                                consistency == "leader",
                            )
                            for shard in shards
                        )
                    )
                )
            if consistency == "leader":
                for shard in shards:
                    self._leaders[shard] = node_id
            return [answer]

        parts = await asyncio.gather(*(per_node(n, shards) for n, shards in groups.items()))
        answers = [a for part in parts for a, _ in part]
        if tag_probe is not None:
            _check_probe(tag_probe, [found for part in parts for _, found in part])

        def combine() -> Partial:
            # Columnar answers (last()-only plans, pulsar_cluster/query/columnar.py) are
            # merged as such: no per-group states on the coordinator either.
            decoded = [decode_any(a) for a in answers]
            merged = merge_columns(plan, decoded)
            return merge(plan, decoded) if merged is None else merged

        if sum(len(a) for a in answers) <= INLINE_MERGE_BYTES:
            return combine()
        return await asyncio.to_thread(combine)

    async def delete(self, plan: Plan) -> None:
        """Propose the delete plan through every shard's log (leaders only, concurrently)."""
        encoded = encode_plan(plan)
        shard_map = await self.shard_map()

        async def one(shard: int) -> None:
            async def attempt(node_id: str, remaining: float) -> None:
                await self._client(node_id).delete(shard, encoded, timeout_s=remaining)

            await self._with_leader(shard, attempt, leader_only=True)

        await asyncio.gather(*(one(s) for s in range(shard_map.shard_count)))

    async def catalog(self, op: CatalogOp) -> None:
        """Propose the registry change on every shard group (every engine keeps the registry)."""
        await self._ddl(encode_command(CommandKind.CATALOG, op.encode()))

    async def drop_database(self, database: str) -> None:
        await self._ddl(encode_command(CommandKind.DROP_DATABASE, encode_drop_database(database)))

    async def drop_series(self, plan: Plan) -> None:
        await self._ddl(encode_command(CommandKind.DROP_SERIES, encode_plan(plan)))

    async def _ddl(self, command: bytes) -> None:
        """Propose one DDL command through every shard's log (leaders, concurrently); returns
        when every shard has committed and applied it. A shard that fails fails the call; the
        statement may then be applied on some shards only, and repeating it is harmless (every
        DDL command is idempotent)."""
        shard_map = await self.shard_map()

        async def one(shard: int) -> None:
            async def attempt(node_id: str, remaining: float) -> None:
                await self._client(node_id).ddl(shard, command, timeout_s=remaining)

            await self._with_leader(shard, attempt, leader_only=True)

        results = await asyncio.gather(
            *(one(s) for s in range(shard_map.shard_count)), return_exceptions=True
        )
        for result in results:
            if isinstance(result, BaseException):
                raise result

    async def select_series(
        self,
        database: str,
        measurement: str,
        matchers: list[TagMatcher],
        start: int,
        end: int,
        fields: list[str] | None = None,
        consistency: str = "leader",
    ) -> list[SeriesData]:
        for m in matchers:
            m.compiled()  # re.error here, before any network call
        parts = await self._fan_out(
            lambda client, shard: client.select(
                shard, consistency, database, measurement, matchers, start, end, fields
            ),
            consistency,
        )
        out = [series for part in parts for series in part]
        out.sort(key=lambda s: s.key)
        return out

    async def compact(self) -> None:
        await self._all_nodes("compact", lambda c: c.compact(), tolerate=False)

    async def _all_nodes(self, what: str, call: Any, tolerate: bool) -> list[Any]:
        shard_map = await self.shard_map()
        results = await asyncio.gather(
            *(call(self._client(p.id)) for p in shard_map.peers), return_exceptions=True
        )
        out = []
        for peer, result in zip(shard_map.peers, results, strict=True):
            if isinstance(result, BaseException):
                if not tolerate or not isinstance(result, PulsarError):
                    raise result
                log.warning("node_call_failed", node=peer.id, what=what, error=str(result))
                continue
            out.append(result)
        return out

    async def databases(self) -> list[str]:
        found = await self._all_nodes("databases", lambda c: c.databases(), tolerate=True)
        return sorted({d for names in found for d in names})

    async def measurements(self, database: str) -> list[str]:
        found = await self._all_nodes(
            "measurements", lambda c: c.measurements(database), tolerate=True
        )
        return sorted({m for names in found for m in names})

    async def flush(self) -> None:
        await self._all_nodes("flush", lambda c: c.flush(), tolerate=False)

    async def caches(self) -> dict[str, Any]:
        """Every node's cache statistics and their total; an unreachable node is listed with
        its error (and left out of the total)."""
        shard_map = await self.shard_map()

        async def one(node_id: str) -> dict[str, Any]:
            try:
                return await asyncio.wait_for(
                    self._client(node_id).caches(), self.settings.probe_timeout_s
                )
            except (PulsarError, TimeoutError) as exc:
                return {"error": str(exc) or type(exc).__name__}

        ids = [p.id for p in shard_map.peers]
        nodes = dict(zip(ids, await asyncio.gather(*(one(i) for i in ids)), strict=True))
        totals = total_caches(n["totals"] for n in nodes.values() if "totals" in n)
        return {"mode": "cluster", "nodes": nodes, "totals": totals}

    async def clear_caches(self, cache: str = "all") -> None:
        """Clear the caches on every node; fails (naming the node) if one cannot be reached."""
        await self._all_nodes("clear_caches", lambda c: c.clear_caches(cache), tolerate=False)

    async def reload_nodes(self) -> dict[str, dict[str, Any]]:
        """Ask every node to reload its configuration; per node its answer or its error."""
        shard_map = await self.shard_map()

        async def one(node_id: str) -> dict[str, Any]:
            try:
                return await self._client(node_id).reload()
            except PulsarError as exc:
                return {"error": exc.message}

        ids = [p.id for p in shard_map.peers]
        return dict(zip(ids, await asyncio.gather(*(one(i) for i in ids)), strict=True))

    # --- status ----------------------------------------------------------------------------------

    async def _node_statuses(self) -> dict[str, dict[str, Any]]:
        shard_map = await self.shard_map()

        async def one(node_id: str) -> dict[str, Any]:
            try:
                return await asyncio.wait_for(
                    self._client(node_id).status(), self.settings.probe_timeout_s
                )
            except (PulsarError, TimeoutError) as exc:
                return {"error": str(exc) or type(exc).__name__}

        ids = [p.id for p in shard_map.peers]
        return dict(zip(ids, await asyncio.gather(*(one(i) for i in ids)), strict=True))

    async def status(self) -> dict[str, Any]:
        shard_map = await self.shard_map()
        nodes = await self._node_statuses()
        shards = []
        for shard in range(shard_map.shard_count):
            leader, term, commit = None, 0, 0
            replicas: dict[str, Any] = {}
            for node_id in shard_map.replicas[shard]:
                st = nodes.get(node_id, {}).get("shards", {}).get(str(shard))
                if st is None:
                    replicas[node_id] = "unreachable"
                    continue
                replicas[node_id] = {
                    "role": st["role"],
                    "term": st["term"],
                    "commit_index": st["commit_index"],
                    "last_applied": st["last_applied"],
                    "engine_last_index": st["engine_last_index"],
                }
                if st["role"] == "leader" and st["term"] >= term:
                    leader, term, commit = node_id, st["term"], st["commit_index"]
            for info in replicas.values():
                if isinstance(info, dict):
                    info["lag"] = max(0, commit - info["last_applied"]) if leader else None
            if leader:
                self._leaders[shard] = leader
            shards.append({"shard": shard, "leader": leader, "term": term, "replicas": replicas})
        return {
            "mode": "cluster",
            "map_version": shard_map.version,
            "shard_count": shard_map.shard_count,
            "replication_factor": shard_map.replication_factor,
            "nodes": {
                node_id: (
                    {"state": "up", "leads": sum(1 for s in shards if s["leader"] == node_id)}
                    if "error" not in st
                    else {"state": "down", "error": st["error"]}
                )
                for node_id, st in nodes.items()
            },
            "shards": shards,
            "shards_without_leader": [s["shard"] for s in shards if s["leader"] is None],
        }

    # --- backup (coordinator/backupcluster.py) ----------------------------------------------------

    def node_client(self, node_id: str) -> NodeClient:
        return self._client(node_id)

    async def backup_checkpoint(self, prefer: dict[int, str]) -> dict[str, Any]:
        return await backupcluster.cluster_checkpoint(self, prefer)

    def backup_stream(
        self, node: str | None, checkpoint: str, shard: int, path: str
    ) -> AsyncIterator[bytes]:
        return backupcluster.cluster_stream(self, node, checkpoint, shard, path)

    async def backup_release(self, checkpoints: list[tuple[str | None, str]]) -> int:
        return await backupcluster.cluster_release(self, checkpoints)

    async def ready(self) -> bool:
        try:
            status = await self.status()
        except PulsarError:
            return False
        return not status["shards_without_leader"]

    async def close(self) -> None:
        await self._http.close()
