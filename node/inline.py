"""Which plans are answered on the event loop instead of a worker thread.

A hop to a worker thread and back costs about 40-55 us of CPU here (asyncio.to_thread of a
no-op, uvloop and asyncio) and, on a busy machine, a wait for the GIL: more than an index
look-up or a select of a few series-hours takes. Both the in-process node (node/local.py) and a
cluster node's query routes (node/service.py) answer such plans at once; anything bigger runs
in a thread, so the loop never stalls on a large query.
"""

from __future__ import annotations

from typing import Any

from node.query import EngineSource, is_cheap_meta
from pulsar_cluster.query.conditions import TRUE, resolve_series
from pulsar_cluster.query.plan import MAX_TIME, MIN_TIME, Plan

__all__ = ["INLINE_SERIES_FIELD_HOURS", "is_cheap_meta", "small_select_series"]

#: A select is answered on the loop when it reads at most this many series x fields x hours
#: (over all the sources it reads). At one point per 10 s that is about 6,000 points, a few
#: hundred microseconds of reading and reducing (bench/bench_query.py, single-groupby-1-1-1:
#: 1 x 1 x 1).
INLINE_SERIES_FIELD_HOURS = 16
_NS_PER_HOUR = 3_600_000_000_000


def _equalities_only(expr: Any) -> bool:
    """A tag predicate of `and`/`or` over `tag = value` comparisons only."""
    if not isinstance(expr, list) or not expr:
        return False
    if expr[0] == "cmp":
        return len(expr) == 4 and expr[2] == "="
    if expr[0] in ("and", "or"):
        return all(_equalities_only(e) for e in expr[1:])
    return False


def small_select_series(plan: Plan, sources: list[EngineSource]) -> list[list[bytes]] | None:
    """The sorted series `plan` reads in each source, when together they read at most
    INLINE_SERIES_FIELD_HOURS series x fields x hours: a time-bounded select whose tag predicate
    uses only equalities (resolved through the index in microseconds; regexes could scan many
    tag values on the event loop). None for any other plan."""
    if plan.kind != "select" or plan.start == MIN_TIME or plan.end == MAX_TIME:
        return None
    hours = max(1, -(-(plan.end - plan.start) // _NS_PER_HOUR))
    fields = len({c.field for c in plan.columns})
    if plan.tags == TRUE or not _equalities_only(plan.tags) or fields == 0:
        return None
    if hours * fields > INLINE_SERIES_FIELD_HOURS:
        return None
    out: list[list[bytes]] = []
    total = 0
    for source in sources:
        series = resolve_series(plan.tags, source, plan.database, plan.measurement)
        total += len(series)
        if total * fields * hours > INLINE_SERIES_FIELD_HOURS:
            return None
        out.append(sorted(series))
    return out
