"""A node's membership loop: follow the current map, run the replicas it assigns, move replicas.

Every `interval_s` each node:

1. refreshes its map: members of the metadata group read their own replica of it, the others
   ask a member (GET /v1/map); a newer map is persisted (DIR/map.json) and adopted;
2. reconciles: opens a replica (Engine + ShardGroup) for every shard the map gives it, the
   target of a move included (it starts "joining": node/raft/group.py), and destroys, deleting
   its data, every replica the map no longer gives it;
3. on the metadata group's leader only: advances every replica move by one idempotent step
   (the mover). The steps, recorded in the map so that a new leader resumes a crashed mover:

   add      the target's replica is running -> the shard leader adds it to the Raft group
            (addNodeToCluster) -> map: step "catchup"
   catchup  the target has applied up to the leader's commit index (by snapshot transfer when
            the log was compacted) -> map: the target becomes a listed replica, step "remove"
   remove   if the source leads, leadership is handed to the target first (a pysyncobj leader
            cannot remove itself); then the leader removes the source (removeNodeFromCluster)
            -> map: the source is dropped, the move is done; the source's own loop then
            destroys its replica and deletes the shard's data.

A group changes membership once at a time (one move per shard, one step per move), and always
adds before it removes, so it never has fewer than `replication_factor` members.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from node.service import NodeService
from pulsar_cluster.errors import PulsarError, UnavailableError
from pulsar_cluster.logs import get_logger
from pulsar_cluster.metacommand import MapConflictError, NotMetaMemberError
from pulsar_cluster.moveplan import advance_move, finish_move, plan_rebalance
from pulsar_cluster.nodeclient import NodeClient
from pulsar_cluster.nodehttp import NodeSession
from pulsar_cluster.shardmap import Move, ShardMap

__all__ = ["Membership"]

log = get_logger(__name__)

#: Compare-and-set attempts of one map change before giving up (each loses only to another
#: change that was applied meanwhile, so this is plenty).
_CAS_ATTEMPTS = 20
_PROBE_TIMEOUT_S = 3.0


class Membership:
    def __init__(self, service: NodeService, secret: str, interval_s: float = 0.5) -> None:
        self.service = service
        self.secret = secret
        self.interval_s = interval_s
        self._http = NodeSession()
        self.errors = 0

    def client(self, node_id: str, timeout_s: float = _PROBE_TIMEOUT_S) -> NodeClient:
        return NodeClient(
            self.service.map.peer(node_id).api_url, self.secret, timeout_s, self._http
        )

    async def close(self) -> None:
        await self._http.close()

    async def run(self) -> None:
        while True:
            await asyncio.sleep(self.interval_s)
            try:
                await self.tick()
            except asyncio.CancelledError:
                raise
            except PulsarError as exc:
                self.errors += 1
                log.warning("membership_tick_failed", error=str(exc))
            except Exception:  # a bug here must not stop the node; it is logged loudly
                self.errors += 1
                log.exception("membership_tick_crashed")

    async def tick(self) -> None:
        await self.refresh_map()
        self.service.reconcile()
        meta = self.service.meta
        if meta is not None and meta.is_leader() and self.service.map.moves:
            await self.move_step()

    async def rebalance_until_balanced(
        self, timeout_s: float = 3600.0, max_rounds: int = 50
    ) -> bool:
        """Rebalance the cluster in rounds, as `pulsar admin rebalance` does, until a round plans
        no move (`--rebalance-on-join`: a node added by scaling a StatefulSet gets its share
        without an operator). A shard moves once at a time, so each round waits for the moves
        in progress first. Bounded in rounds and time; False when it gave up (logged)."""
        deadline = asyncio.get_running_loop().time() + timeout_s
        rounds = 0
        while rounds < max_rounds and asyncio.get_running_loop().time() < deadline:
            await asyncio.sleep(max(self.interval_s, 0.5))
            if self.service.map.moves:
                continue  # a round (ours or an operator's) is still moving replicas
            try:
                planned = await self._rebalance_once()
            except PulsarError as exc:
                log.info("rebalance_after_join_waits", reason=str(exc))
                continue
            rounds += 1
            if not planned.moves:
                log.info("rebalance_after_join_done", rounds=rounds, version=planned.version)
                return True
            log.info("rebalance_after_join_round", round=rounds, moves=len(planned.moves))
        log.warning("rebalance_after_join_gave_up", rounds=rounds)
        return False

    async def _rebalance_once(self) -> ShardMap:
        if self.service.meta is not None:
            return await self.change_map(plan_rebalance)
        return ShardMap.from_dict(await self.forward("POST", "/v1/rebalance"))

    # --- the map ---------------------------------------------------------------------------------

    async def refresh_map(self) -> None:
        service = self.service
        if service.meta is not None:
            service.set_map(service.meta.current())
            return
        for node_id in service.map.meta_members():
            try:
                service.set_map(await self.client(node_id).shard_map())
                return
            except PulsarError as exc:
                log.debug("map_refresh_failed", node=node_id, error=str(exc))

    async def change_map(self, change: Callable[[ShardMap], ShardMap]) -> ShardMap:
        """Apply `change` to the current map with compare-and-set (metadata members only);
        `change` returns its argument unchanged when there is nothing to do."""
        meta = self.service.meta
        if meta is None:
            raise NotMetaMemberError("this node is not a member of the metadata group")
        for _ in range(_CAS_ATTEMPTS):
            current = meta.current()
            new = change(current)
            if new is current:
                return current
            try:
                return await self.service.propose_map(current.version, new)
            except MapConflictError:
                await asyncio.sleep(0.05)
        raise UnavailableError("the map kept changing; retry")

    async def forward(self, method: str, path: str, body: Any = None) -> Any:
        """Send a map-changing request to a member of the metadata group (from a non-member)."""
        errors = []
        for node_id in self.service.map.meta_members():
            try:
                return await self.client(node_id, 30.0).call_json(method, path, body)
            except UnavailableError as exc:
                errors.append(f"{node_id}: {exc.message}")
        raise UnavailableError("no metadata member reachable: " + "; ".join(errors))

    # --- the mover -------------------------------------------------------------------------------

    async def move_step(self) -> None:
        for move in list(self.service.map.moves):
            try:
                await self._advance(move)
            except PulsarError as exc:
                log.info("move_waits", shard=move.shard, step=move.step, reason=str(exc))

    async def _shard_status(self, node_id: str, shard: int) -> dict[str, Any] | None:
        try:
            status = await self.client(node_id).status()
        except PulsarError:
            return None
        got: dict[str, Any] | None = status.get("shards", {}).get(str(shard))
        return got

    async def _leader(self, shard: int, move: Move) -> tuple[str, dict[str, Any]]:
        m = self.service.map
        candidates = list(dict.fromkeys([*m.replicas[shard], move.target]))
        found = await asyncio.gather(*(self._shard_status(n, shard) for n in candidates))
        best: tuple[str, dict[str, Any]] | None = None
        for node_id, st in zip(candidates, found, strict=True):
            if (
                st is not None
                and st["role"] == "leader"
                and (best is None or st["term"] > best[1]["term"])
            ):
                best = (node_id, st)
        if best is None:
            raise UnavailableError(f"shard {shard} has no reachable leader")
        return best

    def _same(self, current: ShardMap, move: Move) -> bool:
        return current.move_of(move.shard) == move

    async def _advance(self, move: Move) -> None:
        shard = move.shard
        if move.step == "add":
            if await self._shard_status(move.target, shard) is None:
                raise UnavailableError(f"{move.target} has not started its replica yet")
            leader, _ = await self._leader(shard, move)
            await self.client(leader, 15.0).call_json(
                "POST", f"/v1/shards/{shard}/members", {"op": "add", "node": move.target}
            )
            await self.change_map(
                lambda cur: advance_move(cur, shard, "catchup") if self._same(cur, move) else cur
            )
            log.info("move_target_added", shard=shard, target=move.target)
        elif move.step == "catchup":
            _, leader_st = await self._leader(shard, move)
            target_st = await self._shard_status(move.target, shard)
            if target_st is not None and target_st.get("raft_bound") is False:
                raise UnavailableError(
                    f"{move.target} cannot listen on its Raft port for shard {shard} (in use)"
                )
            if target_st is None or target_st["last_applied"] < leader_st["commit_index"]:
                raise UnavailableError(f"{move.target} is catching up on shard {shard}")
            await self.change_map(
                lambda cur: advance_move(cur, shard, "remove") if self._same(cur, move) else cur
            )
            log.info("move_target_caught_up", shard=shard, target=move.target)
        elif move.step == "remove":
            leader, _ = await self._leader(shard, move)
            if leader == move.source:
                await self.client(leader).call_json(
                    "POST", f"/v1/shards/{shard}/transfer", {"to": None}
                )
                raise UnavailableError(f"shard {shard}: leadership moving off {move.source}")
            assert move.source is not None  # a move without source ends at "catchup"
            await self.client(leader, 15.0).call_json(
                "POST", f"/v1/shards/{shard}/members", {"op": "remove", "node": move.source}
            )
            await self.change_map(
                lambda cur: finish_move(cur, shard) if self._same(cur, move) else cur
            )
            log.info("move_done", shard=shard, source=move.source, target=move.target)
