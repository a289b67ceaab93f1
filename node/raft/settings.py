"""Raft tuning of a node, and the pysyncobj configuration built from it."""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from pysyncobj import SyncObjConf

__all__ = ["RaftSettings", "make_conf"]

#: Compaction disabled (no serializer given): pysyncobj's default snapshot pickles the SyncObj's
#: attributes, which would be wrong here (the data lives in the engine, not in the object).
_NEVER = 2**62


@dataclass(frozen=True, slots=True)
class RaftSettings:
    #: Election timeout range (s). pysyncobj's defaults (0.4/1.4) flap on a loaded 2-core box;
    #: the notes measured 1.5/3 s as stable. Tests pass smaller values to fail over quickly.
    election_min_s: float = 1.5
    election_max_s: float = 3.0
    #: Heartbeat period; must stay well below election_min_s (capped at a quarter of it).
    #: Heartbeats dominate a node's idle CPU (each is pickled, compressed and encrypted, per
    #: group and follower): 0.1 s cost 0.2-0.4 cores per idle node with 16 shards here.
    append_entries_period_s: float = 0.25
    #: Tick thread wake-up period when idle; sockets and new proposals wake it at once.
    tick_period_s: float = 0.1
    #: Longer than the largest snapshot transfer (64 KB chunks, no progress replies): with the
    #: default 3.5 s a 100 MB snapshot never completed (notes).
    connection_timeout_s: float = 60.0
    #: A leader that has not heard from a majority for this long steps down.
    leader_fallback_s: float = 5.0
    #: pysyncobj's batch mode sends new entries only on the next heartbeat: every write waits
    #: up to a heartbeat period for replication and another for the commit to propagate
    #: (measured here: ~150 ms per sequential 4-shard write at 100 ms heartbeats, versus a few
    #: ms without). Off: each proposal is sent at once (coalesced with whatever else is pending).
    append_entries_batch: bool = False
    #: 4 MB socket buffers (measured best in the notes; 64 KB default stalls large batches).
    socket_buffer_bytes: int = 4 * 1024 * 1024
    #: Log compaction (an engine snapshot, node/raft/snapshot.py) after this many entries or
    #: this many seconds. Each snapshot flushes the memtable in the group's tick thread, so not
    #: too often; the journal holds at most this many commands of <= 48 KiB.
    compaction_entries: int = 20_000
    compaction_interval_s: float = 3600.0

    @classmethod
    def from_env(cls) -> RaftSettings:
        """Overrides from PULSAR_RAFT_ELECTION_MIN_S etc. (tests shorten timeouts this way)."""
        kwargs: dict[str, Any] = {}
        for name in ("election_min_s", "election_max_s", "leader_fallback_s"):
            value = os.environ.get("PULSAR_RAFT_" + name.upper())
            if value:
                kwargs[name] = float(value)
        entries = os.environ.get("PULSAR_RAFT_COMPACTION_ENTRIES")
        if entries:
            kwargs["compaction_entries"] = int(entries)
        return cls(**kwargs)


def make_conf(
    settings: RaftSettings,
    password: str,
    journal_file: str,
    dump_file: str,
    on_state_changed: Callable[[int, int], None] | None = None,
    bind_address: str | None = None,
    serializer: Callable[[str, Any], None] | None = None,
    deserializer: Callable[[str], Any] | None = None,
) -> SyncObjConf:
    if not password:
        # Without a password pysyncobj unpickles whatever any TCP client sends: remote code
        # execution (notes). There is no insecure mode.
        raise ValueError("a cluster secret is required for Raft")
    return SyncObjConf(
        password=password,
        journalFile=journal_file,
        fullDumpFile=dump_file,  # a journal without it cannot recover after compaction (notes)
        raftMinTimeout=settings.election_min_s,
        raftMaxTimeout=settings.election_max_s,
        # pysyncobj requires raftMinTimeout > 3 heartbeats; short test timeouts shorten both.
        appendEntriesPeriod=min(settings.append_entries_period_s, settings.election_min_s / 4),
        autoTickPeriod=min(settings.tick_period_s, settings.election_min_s / 8),
        connectionTimeout=settings.connection_timeout_s,
        connectionRetryTime=min(1.0, settings.election_min_s),
        leaderFallbackTimeout=settings.leader_fallback_s,
        appendEntriesUseBatch=settings.append_entries_batch,
        sendBufferSize=settings.socket_buffer_bytes,
        recvBufferSize=settings.socket_buffer_bytes,
        logCompactionMinEntries=settings.compaction_entries if serializer else _NEVER,
        logCompactionMinTime=settings.compaction_interval_s if serializer else _NEVER,
        serializer=serializer,
        deserializer=deserializer,
        dynamicMembershipChange=True,
        commandsWaitLeader=True,
        onStateChanged=on_state_changed,
        # None: listen on the advertised address itself (pysyncobj's default).
        bindAddress=bind_address,
    )
