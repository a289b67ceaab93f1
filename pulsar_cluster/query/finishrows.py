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
from pulsar_cluster.query.windowfill import fill_windows

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
    Here the one finalize covers every group. When every group has every window of the range
    (the common case: nothing to fill, whatever the fill mode), the rows of all groups are
    built in one pass and sliced per group; otherwise each group is filled on its own
    (windowfill.py). A single group (single-groupby-1-1-1) is finalised from its own state:
    no concatenation, and plain lists where numpy's fixed costs would dominate.
    """
    if plan.kind != "select" or plan.every <= 0 or len(finish.columns) != 1:
        return None
    oc = finish.columns[0]
    if oc.transform is not None or oc.source < 0:
        return None
    col = plan.columns[oc.source]
    if col.fn not in ROW_WISE or isinstance(partial, ColumnarPartial):
        return None
    every = plan.every
    w0 = window_origin(plan)
    nwin = 0
    if finish.fill != "none":
        if plan.start == MIN_TIME or plan.end == MAX_TIME:
            return None
        nwin = max(0, (plan.end - 1 - w0) // every + 1)
    keys = sorted(partial.groups)
    if not keys:
        return []
    states = [partial.groups[k][oc.source] for k in keys]
    kind = kind_for(col.fn)
    state = _combined(kind.keys, states)
    if state is None:
        return None
    w, _t, values = kind.finalize(state, col.fn, col.args)
    lens = [len(st["w"]) for st in states]
    names = ["time", oc.name]
    if not nwin:  # fill(none): each row at its own window
        times = (w0 + np.asarray(w, dtype=np.int64) * every).tolist()
        return _sliced(
            plan, finish, keys, names, lens, [[a, b] for a, b in zip(times, values, strict=True)]
        )
    grid = list(range(w0, w0 + nwin * every, every))  # the windows' start times
    if (
        lens.count(nwin) == len(lens)
        and _on_grid(w, len(keys), nwin)
        and (finish.fill == "null" or None not in values)
    ):
        # Every group has every window and no value is null: nothing to fill. Every row built
        # in one pass, then sliced per group (1000 groups of a dozen rows: a comprehension
        # per group would cost more than its rows).
        every_row = [[a, b] for a, b in zip(grid * len(keys), values, strict=True)]
        return _sliced(plan, finish, keys, names, lens, every_row)
    windows = np.asarray(w, dtype=np.int64).tolist()
    out: list[dict[str, Any]] = []
    start = 0
    for key, n in zip(keys, lens, strict=True):
        end = start + n
        dense = fill_windows(finish, nwin, windows[start:end], values[start:end], col.fn == "count")
        start = end
        rows = [[a, b] for a, b in zip(grid, dense, strict=True)]
        out.append(series_dict(plan, finish, key, list(names), rows))
    return out


def _combined(keys: tuple[str, ...], states: list[Any]) -> dict[str, np.ndarray] | None:
    """The states of all groups as one (a lone group's own state, not copied), or None when a
    group lacks one of `keys` or the groups' dtypes differ (an integer in one group, a float
    in another: concatenating would change the integers' type)."""
    if len(states) == 1:
        return states[0] if all(k in states[0] for k in keys) else None
    combined = {}
    for k in keys:
        parts = [st[k] for st in states if k in st]
        if len(parts) != len(states) or len({p.dtype for p in parts}) != 1:
            return None
        combined[k] = np.concatenate(parts)
    return combined


#: Up to this many rows a list comparison checks the window grid faster than numpy (whose
#: fixed costs are a few microseconds; a list of 61 ints compares in well under one).
_LIST_CHECK_ROWS = 256


def _on_grid(w: np.ndarray, count: int, nwin: int) -> bool:
    """Whether `w` is 0, 1, ..., nwin - 1, `count` times (with each group's length nwin: every
    group has every window, in order)."""
    if len(w) != count * nwin:
        return False
    if len(w) <= _LIST_CHECK_ROWS:
        return bool(np.asarray(w).tolist() == list(range(nwin)) * count)
    return bool((np.asarray(w, dtype=np.int64).reshape(count, nwin) == np.arange(nwin)).all())


def _sliced(
    plan: Plan,
    finish: Any,
    keys: list[GroupKey],
    names: list[str],
    lens: list[int],
    every_row: list[list[Any]],
) -> list[dict[str, Any]]:
    """One series per group from the rows of all groups, `lens[g]` rows each, in order."""
    if len(keys) == 1:
        return [series_dict(plan, finish, keys[0], names, every_row)]
    out: list[dict[str, Any]] = []
    start = 0
    for key, n in zip(keys, lens, strict=True):
        out.append(series_dict(plan, finish, key, list(names), every_row[start : start + n]))
        start += n
    return out
