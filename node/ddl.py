"""Data definition on one engine: DROP SERIES / MEASUREMENT, DROP DATABASE, registry changes.

Shared by the standalone node (node/local.py, the engine numbers the operation itself) and the
Raft adapter (node/raft/ddl.py, at the command's log index). Series are resolved through this
engine's index when the operation is applied: in a cluster every replica of a shard resolves the
same series, because it applies the same commands in the same order.

Bodies of the Raft commands (docs/format/raft-command.md): CATALOG carries a CatalogOp (JSON),
DROP_DATABASE `{"database": str}` (JSON), DROP_SERIES an encoded delete plan (PQPL).
"""

from __future__ import annotations

from node.engine.deletes import DeleteRequest
from node.engine.engine import Engine
from node.query import plan_series
from pulsar_cluster.catalogop import validate_database_name
from pulsar_cluster.errors import QueryError
from pulsar_cluster.query.plan import MAX_TIME, MIN_TIME, Plan

__all__ = [
    "check_drop_plan",
    "drop_series",
    "drop_database",
]


def check_drop_plan(plan: Plan) -> None:
    """Refuse, before replicating it, a DROP SERIES plan every replica would refuse."""
    if plan.kind != "delete":
        raise QueryError(f"malformed drop plan: {plan.kind!r} is not a delete")
    if plan.fields_where is not None:
        raise QueryError("fields not supported in WHERE clause during deletion")
    if plan.start != MIN_TIME or plan.end != MAX_TIME:
        raise QueryError("DROP SERIES doesn't support time in WHERE clause")


def drop_series(engine: Engine, plan: Plan, index: int | None = None) -> int:
    """Drop the plan's series (points and index entries); returns how many matched.

    One engine record, at `index` (None: the engine's next), names every matched series of
    every measurement of the plan. Nothing matched: nothing is recorded.
    """
    check_drop_plan(plan)
    names, keys = plan_series(engine, plan)
    if keys:
        request = DeleteRequest(
            plan.database,
            names[0],
            MIN_TIME,
            MAX_TIME,
            series=tuple(sorted(keys)),
            drop=True,
        )
        engine.delete(request, index=index)
    return len(keys)


def drop_database(engine: Engine, database: str, index: int | None = None) -> None:
    """Remove the database: its registry entry, index entries, memtable points and tables."""
    validate_database_name(database)
    engine.delete(DeleteRequest(database, "", MIN_TIME, MAX_TIME, drop=True), index=index)
