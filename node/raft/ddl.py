"""Replicated data definition: the CATALOG, DROP_DATABASE and DROP_SERIES Raft commands.

The coordinator proposes each such command on EVERY shard group (a database, its registry
entry and its series live in every shard; see docs/architecture.md, "Databases"). Each replica
applies it to its engine at the command's Raft index (node/ddl.py), so the registry, the index
and the data stay identical on every replica, and a replayed journal is skipped by the engine's
last-applied index like any write.
"""

from __future__ import annotations

from node.ddl import check_drop_plan, drop_database, drop_series
from node.engine.engine import Engine
from pulsar_cluster.catalogop import CatalogOp, decode_drop_database
from pulsar_cluster.errors import BadRequestError
from pulsar_cluster.query.partial import decode_plan
from pulsar_cluster.raftcommand import CommandKind

__all__ = ["apply_ddl", "check_ddl"]


def check_ddl(kind: CommandKind, body: bytes | memoryview) -> None:
    """Refuse, before proposing it, a command every replica would refuse (BadRequestError)."""
    if kind is CommandKind.CATALOG:
        CatalogOp.decode(body)
    elif kind is CommandKind.DROP_DATABASE:
        decode_drop_database(body)
    elif kind is CommandKind.DROP_SERIES:
        check_drop_plan(decode_plan(bytes(body)))
    else:
        raise BadRequestError(f"raft command kind {kind.name} is not a DDL command")


def apply_ddl(engine: Engine, kind: CommandKind, body: bytes, index: int) -> None:
    """Apply one committed DDL command at Raft index `index` (tick thread).

    BadRequestError for a command every replica refuses alike; storage errors propagate.
    """
    if kind is CommandKind.CATALOG:
        engine.catalog(CatalogOp.decode(body), index=index)
    elif kind is CommandKind.DROP_DATABASE:
        drop_database(engine, decode_drop_database(body), index=index)
    elif kind is CommandKind.DROP_SERIES:
        drop_series(engine, decode_plan(body), index=index)
    else:
        raise BadRequestError(f"raft command kind {kind.name} is not a DDL command")
