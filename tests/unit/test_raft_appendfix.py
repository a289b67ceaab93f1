"""node/raft/appendfix.py: scripted two-node scenarios on real pysyncobj groups.

The groups run pysyncobj's own leader and follower code; only the wire is ours (pysyncobj's
`Transport` interface, in memory), so each test decides when a message arrives: a late reply,
or an append-entries delivered twice. Without the fixes each test fails (checked by removing
`AppendEntriesFixes` from `Replica`'s bases): the leader re-sends entries, the follower cuts
entries it applied (pysyncobj's CRITICAL line) and forgets a committed membership change, and
a snapshot keep-alive makes the follower commit entries nobody vouched for.
"""

from __future__ import annotations

import logging
import pickle
from collections import deque
from typing import Any

import pytest
from pysyncobj import SyncObj, SyncObjConf, replicated
from pysyncobj.node import TCPNode
from pysyncobj.transport import Transport

from node.raft.appendfix import AppendEntriesFixes
from node.raft.group import ShardGroup
from node.raft.meta import MetaGroup

A, B, X = "127.0.0.1:1", "127.0.0.1:2", "127.0.0.1:3"
CRITICAL = "truncating already-applied log entries"


class Wire:
    """Messages in flight, per receiver, in send order (one TCP connection per pair)."""

    def __init__(self) -> None:
        self.queues: dict[str, deque[tuple[str, Any]]] = {}
        self.groups: dict[str, Replica] = {}

    def take(self, to: str, kind: str | None = None) -> list[Any]:
        """Remove and return the queued messages to `to` (of one type)."""
        queue = self.queues.setdefault(to, deque())
        out = [m for m in queue if kind is None or m[1].get("type") == kind]
        for m in out:
            queue.remove(m)
        return out

    def deliver(self, to: str, messages: list[tuple[str, Any]]) -> None:
        group = self.groups[to]
        for sender, message in messages:
            # a copy, as the wire would give: the receiver may not see the sender's objects
            group._transport._onMessageReceived(
                TCPNode(sender), pickle.loads(pickle.dumps(message))
            )

    def settle(self, rounds: int = 20) -> None:
        """Deliver everything and tick both until nothing is in flight (bounded)."""
        for _ in range(rounds):
            moved = False
            for address in list(self.queues):
                pending = self.take(address)
                if address in self.groups:  # a member that is not running gets nothing
                    moved |= bool(pending)
                    self.deliver(address, pending)
            for group in self.groups.values():
                group.doTick(0)
            if not moved and not any(self.queues[a] for a in self.groups if a in self.queues):
                return
        raise AssertionError("messages still in flight")


class MemoryTransport(Transport):
    """pysyncobj's transport interface over a `Wire`; every peer counts as connected."""

    wire: Wire

    def __init__(self, syncObj: Any, selfNode: Any, otherNodes: Any) -> None:  # noqa: N803
        super().__init__(syncObj, selfNode, otherNodes)
        self.address = selfNode.address
        syncObj._transport = self

    def addNode(self, node: Any) -> None:  # noqa: N802 - pysyncobj's interface
        self._onNodeConnected(node)

    def send(self, node: Any, message: Any) -> bool:
        self.wire.queues.setdefault(node.address, deque()).append((self.address, message))
        return True


class Replica(AppendEntriesFixes, SyncObj):  # type: ignore[misc]
    def __init__(self, wire: Wire, address: str, partners: list[str]) -> None:
        self.applied: list[tuple[int, str]] = []
        conf = SyncObjConf(
            autoTick=False,
            appendEntriesUseBatch=False,  # as in production: each proposal is sent at once
            appendEntriesPeriod=0.5,
            raftMinTimeout=100.0,  # no spontaneous elections: the test starts the one it needs
            raftMaxTimeout=101.0,
            connectionTimeout=200.0,
            leaderFallbackTimeout=300.0,
            logCompactionMinTime=10**9,
            logCompactionMinEntries=10**9,
            dynamicMembershipChange=True,
        )
        MemoryTransport.wire = wire
        super().__init__(address, partners, conf, transportClass=MemoryTransport)
        wire.groups[address] = self
        for partner in partners:
            self._transport._onNodeConnected(TCPNode(partner))

    @replicated
    def put(self, value: str) -> None:
        self.applied.append((self.raftLastApplied + 1, value))

    def log_range(self) -> tuple[int, int]:
        raft_log = self._SyncObj__raftLog
        return raft_log[0][1], raft_log[-1][1]


def _pair() -> tuple[Wire, Replica, Replica]:
    wire = Wire()
    a, b = Replica(wire, A, [B]), Replica(wire, B, [A])
    a._SyncObj__raftElectionDeadline = 0  # a campaigns at its next tick, b votes for it
    a.doTick(0)
    wire.settle()
    assert a._isLeader() and b._getLeader() == TCPNode(A)
    return wire, a, b


def _propose(wire: Wire, leader: Replica, value: str) -> list[tuple[str, Any]]:
    """One proposal; its append-entries to B, taken off the wire (sent at once, not batched)."""
    leader.put(value)
    leader.doTick(0)
    sent = wire.take(B, "append_entries")
    assert sent and sent[-1][1]["entries"], sent
    return sent


def _commit_everything(wire: Wire, a: Replica, b: Replica, n: int) -> None:
    """Deliver what is in flight, then heartbeats until b applied all n values."""
    for _ in range(10):
        wire.settle()
        if len(b.applied) == n:
            return
        a._SyncObj__newAppendEntriesTime = 0  # a heartbeat now carries the commit index
        a.doTick(0)
    raise AssertionError(f"b applied {b.applied}")


def test_a_late_success_reply_does_not_move_next_index_back() -> None:
    wire, a, _ = _pair()
    first = _propose(wire, a, "v1")
    second = _propose(wire, a, "v2")
    last = a.log_range()[1]
    wire.deliver(B, first + second)
    replies = wire.take(A, "next_node_idx")
    assert [r[1]["next_node_idx"] for r in replies] == [last, last + 1]
    wire.deliver(A, replies[:1])  # the second reply is still on its way
    assert a._SyncObj__raftNextIndex[TCPNode(B)] == last + 1
    assert a.next_index_kept == 1
    a._SyncObj__newAppendEntriesTime = 0
    a.doTick(0)
    resent = [m for _, m in wire.take(B, "append_entries") if m.get("entries")]
    assert resent == []  # v2 is not sent again


def test_a_resent_append_keeps_applied_entries_and_membership(
    caplog: pytest.LogCaptureFixture,
) -> None:
    wire, a, b = _pair()
    stale = _propose(wire, a, "v1")
    wire.settle()
    a.addNodeToCluster(X)  # a committed membership change after v1
    a.doTick(0)
    wire.settle()
    _propose(wire, a, "v2")
    _commit_everything(wire, a, b, 2)
    assert TCPNode(X) in b.otherNodes
    before = b.log_range()
    applied = b.raftLastApplied
    assert applied == before[1]
    with caplog.at_level(logging.CRITICAL, logger="pysyncobj.syncobj"):
        wire.deliver(B, stale)  # v1's append-entries again (a duplicate on the wire)
    assert CRITICAL not in caplog.text
    assert b.log_range() == before and b.raftLastApplied == applied
    assert TCPNode(X) in b.otherNodes  # pysyncobj reversed the change it had cut
    (reply,) = wire.take(A, "next_node_idx")
    assert reply[1]["success"] and reply[1]["next_node_idx"] == stale[-1][1]["entries"][-1][1] + 1
    assert b.duplicate_entries_kept >= 1
    # The group goes on: a new value reaches b, applied once.
    _propose(wire, a, "v3")
    _commit_everything(wire, a, b, 3)
    assert [v for _, v in b.applied] == ["v1", "v2", "v3"]
    assert [i for i, _ in b.applied] == sorted({i for i, _ in b.applied})


def test_a_resend_that_overlaps_the_end_appends_only_the_new_entries(
    caplog: pytest.LogCaptureFixture,
) -> None:
    wire, a, b = _pair()
    first = _propose(wire, a, "v1")
    wire.deliver(B, first)
    _commit_everything(wire, a, b, 1)  # b holds and applied v1
    second = _propose(wire, a, "v2")  # v2's append-entries is lost
    # Both entries in one message from v1's position, as a leader that backed up sends them.
    both = {**second[-1][1], "entries": first[-1][1]["entries"] + second[-1][1]["entries"]}
    both["prevLogIdx"] = first[-1][1]["prevLogIdx"]
    both["prevLogTerm"] = first[-1][1]["prevLogTerm"]
    with caplog.at_level(logging.CRITICAL, logger="pysyncobj.syncobj"):
        wire.deliver(B, [(A, both)])
    assert CRITICAL not in caplog.text
    assert b.log_range()[1] == a.log_range()[1]
    _commit_everything(wire, a, b, 2)
    assert [v for _, v in b.applied] == ["v1", "v2"]


def test_a_conflicting_entry_is_still_cut() -> None:
    wire, a, b = _pair()
    sent = _propose(wire, a, "v1")
    wire.deliver(B, sent)
    wire.take(A)
    message = sent[-1][1]
    idx = message["entries"][-1][1]
    # A later leader (higher term) with another entry at the same, uncommitted index.
    other = (message["entries"][-1][0], idx, message["term"] + 1)
    wire.deliver(B, [(A, {**message, "term": message["term"] + 1, "entries": [other]})])
    assert b._SyncObj__raftLog[-1][1:] == (idx, message["term"] + 1)


def test_a_message_without_log_position_cannot_commit() -> None:
    wire, a, b = _pair()
    sent = _propose(wire, a, "v1")
    wire.deliver(B, sent)
    wire.take(A)
    commit = b.raftCommitIndex
    assert commit < b.log_range()[1]  # v1 is here, not known to be committed
    # What a leader sends while its serializer is busy (or with each snapshot chunk).
    keep_alive = {"type": "append_entries", "term": b.raftCurrentTerm, "serialized": None}
    wire.deliver(B, [(A, {**keep_alive, "commit_index": commit + 10})])
    b.doTick(0)
    assert b.raftCommitIndex == commit and b.applied == []


def test_the_groups_use_the_fixes() -> None:
    for group in (ShardGroup, MetaGroup):
        assert group.__mro__.index(AppendEntriesFixes) < group.__mro__.index(SyncObj)
