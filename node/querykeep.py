"""Select plans with `keep` (pulsar_cluster/query/keepwindows.py): reduce only the windows a
LIMIT can return, and still answer every group the whole range has.

`execute_kept(plan, source, last_cache, series, run)` answers `plan` as `run` (node/query.py
`execute_partial`) answers it without `keep`, except that the states hold only the rows of
windows `keep[0] .. keep[1] - 1`; the coordinator finalises the whole range's window grid and
its LIMIT cuts exactly those windows out of every group (with fill(null) or fill(value): the
only plans given `keep`), so the answer is the same.

1. The kept windows: `run` over the plan narrowed to [max(start, origin + lo * every),
   min(end, origin + hi * every)). The narrowed start is a window boundary (or the plan's own
   start), so every kept window holds the same points as before and each point's window
   number is shifted by the same whole number of windows, added back to every row.
   The rollup cache (node/engine/rollups.py) is left out: a few windows that move with every
   query's end are cheap to reduce again, and storing them cost more than the read (TSBS's
   groupby-orderby-limit: two thirds of the node's time went to filling the cache).
2. Which groups exist: a group is in a partial when any of its series has a point in the range
   (node/query.py keeps a group when some column has a row). Groups found in step 1 exist.
   Only the series of the others are read again, over the range before and after the kept
   windows, by `run` too, so deletes, the memtable, retention and the engine's pruning apply as
   in a full read; a group found there gets empty states (null rows, or the fill value, in the
   kept windows; count() 0). TSBS's groupby-orderby-limit (one group) never gets here.

Equal answers also need equal value types: a group's rows are concatenated over its series
before they are reduced, so an integer field in one series and a float field in another give
float rows when both have points in the range. The node checks its series: when a column's
field has more than one type among them (and the groups hold several series), the plan runs
without `keep`. Shards cannot see each other's types, so a field stored as an integer in the
series of one shard and as a float in those of another can still answer integers where the full
read answers floats (documented in docs/format/partials.md `kw`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from typing import Any

import numpy as np

from node.querybudget import series_group
from pulsar_cluster.query.conditions import resolve_series
from pulsar_cluster.query.partial import Partial
from pulsar_cluster.query.plan import Plan, window_origin
from pulsar_cluster.query.source import QuerySource
from pulsar_cluster.query.states import kind_for

__all__ = ["execute_kept"]

Run = Callable[..., Partial]


def execute_kept(
    plan: Plan, source: QuerySource, last_cache: Any, series: list[bytes] | None, run: Run
) -> Partial:
    assert plan.keep is not None and plan.every > 0
    full = replace(plan, keep=None)
    skeys = (
        series
        if series is not None
        else sorted(resolve_series(plan.tags, source, plan.database, plan.measurement))
    )
    if plan.group_by is not None and not _one_type_each(plan, source, skeys):
        return run(full, source, last_cache, skeys)
    lo, hi = plan.keep
    every = plan.every
    w0 = window_origin(plan)
    k_start = max(plan.start, w0 + lo * every)
    k_end = min(plan.end, w0 + hi * every)
    if k_start >= k_end:  # the windows lie outside the range (a malformed keep): read it all
        return run(full, source, last_cache, skeys)
    narrowed = replace(full, start=k_start, end=k_end)
    shift = (window_origin(narrowed) - w0) // every
    out = run(narrowed, source, last_cache, skeys, use_rollups=False)
    if shift:
        for states in out.groups.values():
            # new arrays, not in place: the states may share arrays with a cache
            for i, state in enumerate(states):
                if "w" in state:
                    states[i] = {**state, "w": state["w"] + np.int64(shift)}
    if plan.group_by == ():  # one group: it exists, or every series is absent
        absent = [] if () in out.groups else list(skeys)
    else:
        absent = [k for k in skeys if series_group(k, plan.group_by) not in out.groups]
    for a, b in ((plan.start, k_start), (k_end, plan.end)):
        if not absent or a >= b:
            continue
        rest = run(replace(full, start=a, end=b), source, last_cache, absent, use_rollups=False)
        out.points_scanned += rest.points_scanned
        for key in rest.groups:
            out.groups[key] = _empty_states(plan)
        absent = [k for k in absent if series_group(k, plan.group_by) not in out.groups]
    return out


def _empty_states(plan: Plan) -> list[dict[str, np.ndarray]]:
    """A group without rows in any column, as node/query.py fills a column without rows."""
    return [{k: np.empty(0, np.int64) for k in kind_for(c.fn).keys} for c in plan.columns]


def _one_type_each(plan: Plan, source: QuerySource, skeys: list[bytes]) -> bool:
    """Whether every column's field has at most one type among these series."""
    of: Any = getattr(source, "field_types_of", None)
    for name in dict.fromkeys(c.field for c in plan.columns):
        if of is not None:
            types = of(skeys, name)
        else:
            types = {t for k in skeys if (t := source.series_fields(k).get(name)) is not None}
        if len(types) > 1:
            return False
    return True
