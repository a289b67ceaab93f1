"""Finalising row-wise aggregates of many groups at once: without windows (`every == 0`,
`one_row_series`) and, for one answer column, with them (`window_series`).

Without GROUP BY time every group answers at most one row, and the general path
(pulsar_cluster/query/finish.py `_agg_series`) pays its per-group costs (a finalize call, array
conversions and a window table per group and column) once per group: about 45 ms for TSBS's
lastpoint (1000 hosts x 10 fields). Here each column's states of ALL groups are concatenated
and finalised in one vectorised call, then the rows are assembled in Python lists. The result
equals `_agg_series` for every group (tests/unit/query/test_finishrows.py checks it against it).

Used only for the aggregate kinds whose `finalize` works row by row; anything else (transforms,
multi-row aggregates, a column whose value types differ between groups) returns None and the
general path answers.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from pulsar_cluster.query.columnar import ColumnarPartial, Columns
from pulsar_cluster.query.partial import GroupKey, Partial
from pulsar_cluster.query.plan import MAX_TIME, MIN_TIME, Plan, window_origin
from pulsar_cluster.query.states import kind_for

__all__ = ["one_row_series", "window_series", "series_dict", "ROW_WISE"]

#: Aggregates whose finalize maps each reduced row to one output row on its own.
ROW_WISE = frozenset(("count", "sum", "mean", "min", "max", "first", "last", "spread"))
#: As in finish.py: selectors report their point's time when they are the only column.
_SELECTORS = frozenset(("min", "max", "first", "last"))


def one_row_series(
    plan: Plan, finish: Any, partial: Partial
) -> tuple[list[dict[str, Any]], int] | None:
    """The answer series (before SOFFSET/SLIMIT) of an aggregate plan without windows, in
    group order, and the number of rows before OFFSET (finalize's bound); None when this fast
    path does not apply."""
    if plan.kind != "select" or plan.every != 0 or not finish.columns:
        return None
    if any(
        oc.transform is not None or oc.source < 0 or plan.columns[oc.source].fn not in ROW_WISE
        for oc in finish.columns
    ):
        return None
    w0 = window_origin(plan)
    single = len(finish.columns) == 1
    found: _Found | None
    if isinstance(partial, ColumnarPartial) and partial.columns is not None:
        found = _from_columns(plan, finish, partial.columns, w0, single)
    else:
        found = _from_groups(plan, finish, partial, w0, single)
    if found is None:
        return None
    keys, columns, upper = found
    names = ["time", *[oc.name for oc in finish.columns]]
    out: list[dict[str, Any]] = []
    sources = [oc.source for oc in finish.columns]
    for g, key in enumerate(keys):
        if single:
            times, values = columns[sources[0]]
            if times[g] is None:
                continue
            row = [times[g], values[g]]
        else:
            cells = [columns[c][1][g] for c in sources]
            if all(columns[c][0][g] is None for c in sources):
                continue
            row = [w0, *cells]
        if finish.offset:
            continue  # one row per series: any OFFSET skips it
        series: dict[str, Any] = {"name": plan.measurement}
        if key or finish.always_tags:
            series["tags"] = dict(key)
        series["columns"] = list(names)
        series["values"] = [row]
        out.append(series)
    return out, upper


_Found = tuple[list[GroupKey], dict[int, tuple[list[Any], list[Any]]], int]


def _from_groups(plan: Plan, finish: Any, partial: Partial, w0: int, single: bool) -> _Found | None:
    """(sorted group keys, per plan column output times and values per group (None: no
    row), finalize's bound: the groups with a row in any plan column) of the per-group form."""
    keys = sorted(partial.groups)
    per_group = [partial.groups[k] for k in keys]
    # Rows per group and plan column: at most one each, or this path does not apply.
    by_column: list[tuple[list[Any], list[int]]] = []
    with_rows = np.zeros(len(keys), dtype=bool)
    for c in range(len(plan.columns)):
        col_states = [states[c] for states in per_group]
        lens = [len(st["w"]) if "w" in st else 0 for st in col_states]
        if lens and max(lens) > 1:
            return None  # not reduced to one row: leave it to the general path
        with_rows |= np.array(lens, dtype=bool)
        by_column.append((col_states, lens))
    # Per plan column: output times and values per group (None: no row in that group).
    columns: dict[int, tuple[list[Any], list[Any]]] = {}
    for oc in finish.columns:
        c = oc.source
        if c in columns:
            continue
        col = plan.columns[c]
        kind = kind_for(col.fn)
        col_states, lens = by_column[c]
        present = [g for g, n in enumerate(lens) if n]
        everywhere = len(present) == len(keys)
        if not present:
            columns[c] = ([None] * len(keys), [None] * len(keys))
            continue
        chosen = col_states if everywhere else [col_states[g] for g in present]
        combined = {}
        for k in kind.keys:
            parts = [st[k] for st in chosen]
            if len({p.dtype for p in parts}) != 1:
                return None  # e.g. an integer in one group, a float in another
            combined[k] = np.concatenate(parts)
        _w, t, vals = kind.finalize(combined, col.fn, col.args)
        columns[c] = _placed(col.fn, t, vals, present, len(keys), w0, single)
    return keys, columns, int(np.count_nonzero(with_rows))


def _from_columns(plan: Plan, finish: Any, cols: Columns, w0: int, single: bool) -> _Found:
    """As `_from_groups`, for the columnar form (pulsar_cluster/query/columnar.py): each
    plan column is finalised in one call, its rows placed by their group index."""
    count = len(cols.keys)
    columns: dict[int, tuple[list[Any], list[Any]]] = {}
    for oc in finish.columns:
        c = oc.source
        if c in columns:
            continue
        state = cols.states[c]
        if state is None:
            columns[c] = ([None] * count, [None] * count)
            continue
        col = plan.columns[c]
        w, t, vals = kind_for(col.fn).finalize(state, col.fn, col.args)
        places = np.asarray(w, dtype=np.int64).tolist()
        columns[c] = _placed(col.fn, t, vals, places, count, w0, single)
    return cols.keys, columns, count  # every group of the columnar form has a row


def _placed(
    fn: str, t: Any, vals: Any, places: list[int], count: int, w0: int, single: bool
) -> tuple[list[Any], list[Any]]:
    """(times, values) over `count` groups from finalised rows for the groups `places`: a lone
    selector keeps its point's time, anything else answers at w0; groups
    without a row get None."""
    if single and fn in _SELECTORS and t is not None:
        tl = np.asarray(t, dtype=np.int64).tolist()
    else:
        tl = [w0] * len(places)
    if places == list(range(count)):  # every group, in order
        return tl, list(vals)
    times: list[Any] = [None] * count
    values: list[Any] = [None] * count
    for i, g in enumerate(places):
        times[g] = tl[i]
        values[g] = vals[i]
    return times, values


def series_dict(
    plan: Plan, finish: Any, key: GroupKey, columns: list[str], rows: list[Any]
) -> dict[str, Any]:
    """One answer series of a group: rows ordered (DESC), offset and limited."""
    if finish.descending:
        rows.reverse()
    if finish.offset:
        rows = rows[finish.offset :]
    if finish.limit:
        rows = rows[: finish.limit]
    out: dict[str, Any] = {"name": plan.measurement}
    if key or finish.always_tags:
        out["tags"] = dict(key)
    out["columns"] = columns
    out["values"] = rows
    return out


def window_series(plan: Plan, finish: Any, partial: Partial) -> list[dict[str, Any]] | None:
    """The answer series (before SOFFSET/SLIMIT), in group order, of a `GROUP BY time()`
    aggregate with ONE answer column of a row-wise aggregate, finalised for all groups in one
    call; None when this path does not apply (finish.py's per-group `_agg_series` answers).

    TSBS's double-groupby-1 (mean per host and hour, 1000 hosts x 12 windows) spent about
    17 us per group in the per-group path: a finalize call, the fill check and the row lists.
    Here the one finalize covers every group and each group's rows are sliced out of two
    lists. With a fill mode other than `none`, it applies only when every group has every
    window of the range (the common case: nothing to fill, whatever the mode).
    """
    if plan.kind != "select" or plan.every <= 0 or len(finish.columns) != 1:
        return None
    oc = finish.columns[0]
    if oc.transform is not None or oc.source < 0:
        return None
    col = plan.columns[oc.source]
    if col.fn not in ROW_WISE or isinstance(partial, ColumnarPartial):
        return None
    w0 = window_origin(plan)
    nwin = 0
    if finish.fill != "none":
        if plan.start == MIN_TIME or plan.end == MAX_TIME:
            return None
        nwin = max(0, (plan.end - 1 - w0) // plan.every + 1)
    keys = sorted(partial.groups)
    if not keys:
        return []
    states = [partial.groups[k][oc.source] for k in keys]
    lens = np.array([len(st.get("w", ())) for st in states], dtype=np.int64)
    if nwin and not bool(np.all(lens == nwin)):
        return None  # some group misses a window: fill() per group
    kind = kind_for(col.fn)
    combined = {}
    for k in kind.keys:
        parts = [st[k] for st in states if k in st]
        if len(parts) != len(states) or len({p.dtype for p in parts}) != 1:
            return None  # e.g. an integer in one group, a float in another
        combined[k] = np.concatenate(parts)
    w = np.asarray(combined["w"], dtype=np.int64)
    if nwin and not np.array_equal(w, np.tile(np.arange(nwin, dtype=np.int64), len(keys))):
        return None
    _w, _t, values = kind.finalize(combined, col.fn, col.args)
    if nwin and finish.fill != "null" and None in values:
        return None  # a window without a value (e.g. stddev of one point) is filled per group
    times = (w0 + w * plan.every).tolist()
    names = ["time", oc.name]
    ends = np.cumsum(lens).tolist()
    # Every row built in one pass, then sliced per group: a zip and a map per group cost
    # more than the group's dozen rows (1000 groups of double-groupby-1).
    every_row = list(map(list, zip(times, values, strict=True)))
    out: list[dict[str, Any]] = []
    start = 0
    for key, end in zip(keys, ends, strict=True):
        rows = every_row[start:end]
        start = end
        out.append(series_dict(plan, finish, key, list(names), rows))
    return out
