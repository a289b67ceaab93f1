"""Three replication bugs of pysyncobj 0.3.17, fixed around its message handler.

Seen in the membership test (a replica joining under writes, caught up by snapshot): the
follower logged pysyncobj's CRITICAL "truncating already-applied log entries ... state machine
may have diverged". Traced (debug logging in pysyncobj's handler, 16 runs): every time, the
entries it cut were identical to the ones the leader re-sent. The chain:

1. Leader: pipelined append-entries (appendEntriesUseBatch off sends each proposal at once)
   are answered in order, and pysyncobj sets `nextIndex = reply's next` on every success that
   raises `matchIndex`, even when it has already sent further. A late reply (typically the
   follower's "I installed the snapshot, send from S+1" while S+1.. are already on the wire)
   moves nextIndex back, and the leader sends those entries again.
2. Follower: pysyncobj deletes everything after `prevLogIdx` whenever its log is longer, not
   only on a conflict (Raft, fig. 2: "if an existing entry conflicts with a new one ... delete
   the existing entry and all that follow it"). A re-send therefore cuts entries it already
   applied, and a resend shorter than the cut leaves its log *below* its applied index. The cut
   also reverses every membership change in the cut range (`__doChangeCluster(reverse=True)`,
   dropping the connection to an added member) until the leader sends those entries again.
3. Follower: on a snapshot chunk (and on the keep-alive pysyncobj sends while its serializer
   is busy), the follower sets `commitIndex = min(leaderCommit, own last index)` without having
   checked its log against the leader's: entries of an old term it still holds would be
   applied as if committed, and a later snapshot would not replace them (the engine is "ahead").

Fixes (all in the tick thread, before or after pysyncobj's own handler):

1. a success reply never moves the leader's nextIndex backwards (a rejection still does: the
   follower knows best where its log ends);
2. entries the follower already holds (same index and term: Raft's log matching property
   makes them identical) are dropped from the message; a message holding nothing new is
   answered here (success, next = its last entry + 1) after pysyncobj did its bookkeeping
   (term, leader, election timer) on a copy without entries; the commit index it may raise is
   capped at the message's last entry, which is what Raft allows;
3. a message that carries no log position (snapshot chunks, keep-alives) cannot raise the
   commit index.

Entries that really conflict still go through pysyncobj's truncation (and its CRITICAL line,
then true). pysyncobj's private names are used (version pinned: 0.3.17); `check_supported`
(node/raft/durable.py) fails loudly if they move.
"""

from __future__ import annotations

from typing import Any

from pysyncobj import SyncObj

from pulsar_cluster.logs import get_logger

__all__ = ["AppendEntriesFixes", "HANDLER"]

log = get_logger(__name__)

#: pysyncobj's message handler (mangled name), overridden below.
HANDLER = "_SyncObj__onMessageReceived"
_LEADER = 2  # pysyncobj's _RAFT_STATE.LEADER
_LOG_POSITION = ("prevLogIdx", "prevLogTerm", "entries")


class AppendEntriesFixes:
    """Mixin for a SyncObj subclass (before SyncObj in the bases). Counters for tests/status."""

    # pysyncobj's private state and methods (SyncObj's, under their mangled names).
    _SyncObj__raftLog: Any
    _SyncObj__raftCommitIndex: int
    _SyncObj__raftCurrentTerm: int
    _SyncObj__raftState: int
    _SyncObj__raftNextIndex: dict[Any, int]
    _SyncObj__selfNode: Any
    _SyncObj__sendNextNodeIdx: Any

    #: Re-sent entries the follower kept instead of cutting and re-adding them.
    duplicate_entries_kept: int = 0
    #: Success replies that would have moved the leader's nextIndex backwards.
    next_index_kept: int = 0

    def _SyncObj__onMessageReceived(self, node: Any, message: Any) -> None:  # noqa: N802
        kind = message.get("type") if isinstance(message, dict) else None
        if kind == "append_entries":
            message = self._filter_append(node, message)
            if message is None:
                return
        elif kind == "next_node_idx" and message.get("success") and not message.get("reset"):
            self._success_reply(node, message)
            return
        SyncObj._SyncObj__onMessageReceived(self, node, message)

    # --- leader ----------------------------------------------------------------------------------

    def _success_reply(self, node: Any, message: dict[str, Any]) -> None:
        next_index: dict[Any, int] = self._SyncObj__raftNextIndex
        before = next_index.get(node) if self._SyncObj__raftState == _LEADER else None
        SyncObj._SyncObj__onMessageReceived(self, node, message)
        if before is not None and node in next_index and next_index[node] < before:
            # The follower has everything up to the reply's next - 1, and entries from there
            # to `before` are already on their way: sending them again only makes it cut them.
            next_index[node] = before
            self.next_index_kept += 1

    # --- follower --------------------------------------------------------------------------------

    def _filter_append(self, node: Any, message: dict[str, Any]) -> dict[str, Any] | None:
        if self._SyncObj__selfNode is None or message["term"] < self._SyncObj__raftCurrentTerm:
            return message  # pysyncobj ignores it
        if "prevLogIdx" not in message:
            # A snapshot chunk or a keep-alive: nothing in it vouches for our log.
            commit = self._SyncObj__raftCommitIndex
            if message.get("commit_index", 0) > commit:
                message = {**message, "commit_index": commit}
            return message
        if "transmission" in message:
            return message  # one entry of >= 64 KiB in pieces (our commands stay below 48 KiB)
        raft_log = self._SyncObj__raftLog
        first, last = raft_log[0][1], raft_log[-1][1]
        prev = message["prevLogIdx"]
        if prev < first or prev >= last or raft_log[prev - first][2] != message["prevLogTerm"]:
            # Nothing after prev here, or prev itself missing or conflicting: pysyncobj's own
            # handling is right (append, or reject so the leader backs up).
            return message
        entries = message.get("entries") or []
        held = 0
        for entry in entries:
            idx = entry[1]
            if idx > last or raft_log[idx - first][2] != entry[2]:
                break
            held += 1
        if held < len(entries):
            if held == 0:
                return message  # entries[0] conflicts: pysyncobj cuts from there, as Raft says
            # Skip what we hold; pysyncobj appends the rest (cutting only a real conflict).
            self.duplicate_entries_kept += held
            base = entries[held - 1]
            return {
                **message,
                "prevLogIdx": base[1],
                "prevLogTerm": base[2],
                "entries": entries[held:],
            }
        # Everything in the message is already here, and our log goes further: keep it all.
        end = prev + len(entries)
        self.duplicate_entries_kept += len(entries)
        bookkeeping = {k: v for k, v in message.items() if k not in _LOG_POSITION}
        # Raft: commitIndex = min(leaderCommit, index of the last entry the leader vouched for);
        # our entries beyond `end` may be an old term's.
        bookkeeping["commit_index"] = min(message["commit_index"], end)
        SyncObj._SyncObj__onMessageReceived(self, node, bookkeeping)
        self._SyncObj__sendNextNodeIdx(node, nextNodeIdx=end + 1, success=True)
        return None
