"""Is a group's Raft server listening? pysyncobj does not say.

pysyncobj binds its port in the tick thread and, when the bind fails (with its default
`maxBindRetries=0`), retries every `bindRetryTime` forever without logging anything. A group
that is not listening never hears from its leader: a move's target then waits in "catchup"
for ever while everything looks healthy. Seen in the membership test, whose ports come from
the ephemeral range: any outgoing connection (of any process) may take such a port as its local
port between the moment it was picked and the moment a replica binds it (for a move back to a
node, the port was free since its old replica was dropped), and a listening socket cannot share
the port with a connected one, nor with the TIME_WAIT such a connection leaves for a minute
(EADDRINUSE, SO_REUSEADDR or not: measured).

So each group checks right after start-up (pysyncobj's tick thread makes its first attempt
before `SyncObj.__init__` returns), logs an error naming the address, and reports `bound` in
the node status; pysyncobj's retries go on, and the port is taken as soon as it is free.
"""

from __future__ import annotations

from typing import Any

from pulsar_cluster.logs import get_logger

__all__ = ["raft_bound", "report_if_unbound"]

log = get_logger(__name__)


def raft_bound(syncobj: Any) -> bool:
    """True once the group's server socket is listening (pysyncobj's private transport;
    version pinned: 0.3.17)."""
    transport = getattr(syncobj, "_SyncObj__transport", None)
    return bool(getattr(transport, "ready", False))


def report_if_unbound(syncobj: Any, address: str, **context: Any) -> bool:
    """Log an error when `syncobj` could not bind `address`; returns whether it is bound."""
    bound = raft_bound(syncobj)
    if not bound:
        log.error(
            "raft_port_unavailable",
            address=address,
            hint="the port is in use (by a listener or as the local port of a connection); "
            "pysyncobj retries every second, the group takes no part in Raft until then",
            **context,
        )
    return bound
