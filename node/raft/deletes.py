"""Replicated deletes: a DELETE Raft command carries an encoded delete plan, and every replica
resolves the plan's series against its own index *at that log index* (the same state on every
replica, so the same series) and records one engine delete at the command's Raft index."""

from __future__ import annotations

from node.engine.deletes import DeleteRequest
from node.engine.engine import Engine
from node.query import plan_series
from pulsar_cluster.errors import QueryError
from pulsar_cluster.query.partial import decode_plan
from pulsar_cluster.query.plan import Plan

__all__ = ["apply_delete", "check_delete_plan"]


def check_delete_plan(plan: Plan) -> None:
    """Refuse, before replicating it, a plan every replica would refuse."""
    if plan.kind != "delete":
        raise QueryError(f"malformed delete plan: {plan.kind!r} is not a delete")
    if plan.fields_where is not None:
        raise QueryError("fields not supported in WHERE clause during deletion")


def apply_delete(engine: Engine, body: bytes, index: int, accepted_ns: int | None = None) -> int:
    """Delete the plan's series in [start, end) at Raft index `index`; series matched."""
    plan = decode_plan(body)
    check_delete_plan(plan)
    names, keys = plan_series(engine, plan)
    if keys:
        # One engine record per command: the engine skips a second record at the same index.
        request = DeleteRequest(
            plan.database, names[0], plan.start, plan.end, series=tuple(sorted(keys))
        )
        engine.delete(request, index=index, accepted_ns=accepted_ns)
    return len(keys)
