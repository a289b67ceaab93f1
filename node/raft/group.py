"""One shard replica's Raft group: a pysyncobj SyncObj whose state machine is an Engine.

The SyncObj is only the adapter (STYLE: no god object): it turns committed log entries into
`Engine.apply(batch, index=raft index)` calls and reports results to proposers' callbacks.

Threading: pysyncobj runs apply, callbacks and state changes in this group's own tick thread
(autoTick). Nothing here may block on another Raft call from that thread (deadlock). `propose`
is safe from any thread.

Idempotence: inside a replicated method `raftLastApplied + 1` is the index being applied
(pysyncobj increments it after the call). pysyncobj re-applies the whole journal after every
restart; the engine skips every index at or below the last one it made durable, so each command
reaches the engine exactly once.

Determinism: every replica must reach the same decision for a command. Rejections that depend
only on the command and prior state (malformed bytes, a field type conflict) are returned as a
result, identical on every replica. Transient local trouble (memtable backpressure) is waited
out here instead of being turned into a different outcome; a failing disk stops the process
(`os._exit`), because skipping the entry would silently diverge this replica, and after a
restart the journal replays it.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from typing import Any

from pysyncobj import SyncObj, SyncObjConf, replicated

from node.engine.engine import Engine
from node.raft.appendfix import AppendEntriesFixes
from node.raft.binding import raft_bound, report_if_unbound
from node.raft.ddl import apply_ddl
from node.raft.deletes import apply_delete
from node.raft.durable import JournalSync, SyncedJournalHooks, check_supported
from pulsar_cluster.batchcodec import BatchFormatError, decode_batch
from pulsar_cluster.errors import (
    BadRequestError,
    OverloadedError,
    PulsarError,
)
from pulsar_cluster.logs import get_logger
from pulsar_cluster.raftcommand import DDL_KINDS, CommandKind, RaftCommandError, decode_stamped

__all__ = ["ShardGroup", "Rejected", "apply_command"]

log = get_logger(__name__)

#: Result of a command every replica refused: (error message, details); None means applied.
Rejected = tuple[str, dict[str, Any]]
_EXIT_STORAGE_FAILURE = 70  # EX_SOFTWARE-like: the supervisor restarts us, the journal replays
#: How far a joining replica pushes its election deadline, every tick, until it has a leader.
_JOINING_HOLD_S = 3600.0


def apply_command(engine: Engine, data: bytes, index: int) -> Rejected | None:
    """Apply one committed command at Raft index `index` to `engine` (tick thread)."""
    try:
        # Stamped kinds carry the leader's accepted time; unstamped ones (journals of older
        # versions) get 0 = unknown, the same on every replica.
        kind, stamp, body = decode_stamped(data)
        accepted_ns = 0 if stamp is None else stamp
        if kind is CommandKind.DELETE:
            return _apply_delete(engine, bytes(body), index, accepted_ns)
        if kind in DDL_KINDS:
            return _apply_ddl(engine, kind, bytes(body), index)
        batch = decode_batch(body)
    except (RaftCommandError, BatchFormatError) as exc:
        return (exc.message, exc.details)
    payload = bytes(body)
    for attempt in range(1_000_000):
        try:
            engine.apply(batch, index=index, encoded=payload, accepted_ns=accepted_ns)
            return None
        except BadRequestError as exc:  # field type conflict: same on every replica
            return (exc.message, exc.details)
        except OverloadedError:
            # The memtables wait for a flush. Flush here (this group's thread, this engine
            # only) rather than answer differently from the other replicas.
            if attempt % 100 == 0:
                log.warning("apply_waits_for_flush", directory=engine.directory)
            try:
                engine.flush()
            except (OSError, PulsarError) as exc:
                log.error("flush_failed_during_apply", error=str(exc))
                time.sleep(0.1)
        except (OSError, PulsarError) as exc:
            log.critical(
                "apply_failed_stopping_node",
                directory=engine.directory,
                index=index,
                error=str(exc),
            )
            os._exit(_EXIT_STORAGE_FAILURE)
    raise AssertionError("unreachable")  # pragma: no cover


def _apply_delete(engine: Engine, body: bytes, index: int, accepted_ns: int) -> Rejected | None:
    return _apply_or_stop(
        engine, index, "delete", lambda: apply_delete(engine, body, index, accepted_ns)
    )


def _apply_ddl(engine: Engine, kind: CommandKind, body: bytes, index: int) -> Rejected | None:
    return _apply_or_stop(engine, index, "ddl", lambda: apply_ddl(engine, kind, body, index))


def _apply_or_stop(
    engine: Engine, index: int, what: str, apply: Callable[[], object]
) -> Rejected | None:
    """Run one replicated operation: a refusal every replica reaches alike is the result; a
    storage failure stops the process (skipping the entry would diverge this replica)."""
    try:
        apply()
        return None
    except BadRequestError as exc:
        return (exc.message, exc.details)
    except (OSError, PulsarError) as exc:
        log.critical(
            f"{what}_failed_stopping_node", directory=engine.directory, index=index, error=str(exc)
        )
        os._exit(_EXIT_STORAGE_FAILURE)


class ShardGroup(AppendEntriesFixes, SyncedJournalHooks, SyncObj):  # type: ignore[misc]
    def __init__(
        self,
        shard: int,
        engine: Engine,
        self_address: str,
        partner_addresses: list[str],
        conf: SyncObjConf,
        durable_journal: bool = True,
        joining: bool = False,
    ) -> None:
        # A replica being added (a move's target) must not campaign before the group's leader
        # has added it: pysyncobj has no PreVote, and a higher term from a node that is not yet
        # a member would depose the leader once it is added (membership.py; the members
        # disconnect unknown nodes, but an encrypted connection looks up for a moment). So it
        # holds its election timer until it hears from a leader.
        self._joining = joining
        # Set before SyncObj.__init__: pysyncobj's own snapshots skip attributes that exist
        # before it (and compaction is off until engine snapshots replace them; settings.py).
        self.shard = shard
        self.engine = engine
        self._transfer_to: str | None = None
        self.transfers = 0
        self.journal_sync: JournalSync | None = None
        if durable_journal:
            check_supported()
        super().__init__(self_address, partner_addresses, conf)
        report_if_unbound(self, self_address, shard=shard)
        if durable_journal:
            # Installed right after start-up; entries replayed from disk are already there.
            self.journal_sync = JournalSync(self._SyncObj__raftLog)
        if joining:
            self._hold_election()
        self.addOnTickCallback(self._on_tick)

    def _hold_election(self) -> None:
        # pysyncobj's private election deadline (monotonic clock; version pinned: 0.3.17).
        self._SyncObj__raftElectionDeadline = time.monotonic() + _JOINING_HOLD_S

    def request_leadership_transfer(self, address: str) -> None:
        """Ask this leader to hand leadership to `address` (Raft TimeoutNow), from any thread.

        Done in the tick thread (pysyncobj's state is not locked); pysyncobj refuses unless the
        target's log matches the leader's, so a lagging replica never gets it.
        """
        self._transfer_to = address

    def _on_tick(self) -> None:  # tick thread
        if self._joining:
            if self._getLeader() is None:
                self._hold_election()
            else:
                self._joining = False  # each append-entries now re-arms the normal timer
        target, self._transfer_to = self._transfer_to, None
        if target is not None and self._isLeader():
            # "" = any caught-up follower (pysyncobj picks the most caught-up one).
            self.transferLeadership(target or None, callback=self._on_transfer)

    def _on_transfer(self, _result: Any, reason: int) -> None:
        if reason == 0:
            self.transfers += 1

    @replicated
    def _apply(self, data: bytes) -> Rejected | None:
        return apply_command(self.engine, data, self.raftLastApplied + 1)

    def propose(self, data: bytes, callback: Callable[[Any, int], None]) -> None:
        """Queue one command; `callback(result, fail_reason)` runs in the tick thread after the
        command is committed and applied here (fail_reason 0), or when it failed."""
        self._apply(data, callback=callback)

    def is_leader(self) -> bool:
        return bool(self._isLeader())

    def leader_address(self) -> str | None:
        leader = self._getLeader()
        return None if leader is None else str(leader.address)

    def leader_caught_up(self) -> bool:
        """This leader has applied its own term's no-op entry, hence every entry committed by
        earlier leaders (acknowledged writes included). Before that, a read here could miss
        acknowledged data. Reads pysyncobj's private `__noopIDx` (version pinned: 0.3.17)."""
        noop = getattr(self, "_SyncObj__noopIDx", None)
        return self.is_leader() and noop is not None and self.raftLastApplied >= noop

    def members(self) -> set[str]:
        """Raft addresses of the other members, as this replica knows them."""
        return {str(n.address) for n in self.otherNodes}

    def change_membership(
        self, op: str, address: str, callback: Callable[[Any, int], None]
    ) -> None:
        """Add or remove `address` (leader only; one change at a time: pysyncobj refuses a
        second one, REQUEST_DENIED, until the first is applied)."""
        if op == "add":
            self.addNodeToCluster(address, callback=callback)
        else:
            self.removeNodeFromCluster(address, callback=callback)

    def term(self) -> int:
        return int(self._getTerm())

    def bound(self) -> bool:
        """Its Raft server is listening (node/raft/binding.py)."""
        return raft_bound(self)
