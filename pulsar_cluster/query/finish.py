"""Finalising a merged partial into answer series: the coordinator's last step.

`finalize(plan, finish, partial)` turns reduced states into values per window, fills missing
windows, applies transformations, orders, offsets and limits rows and series, and returns
`[{"name", "tags", "columns", "values"}]` with times as int ns. Formatting of times (epoch or
RFC 3339) is the front end's job.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from pulsar_cluster.errors import LimitExceededError
from pulsar_cluster.query.finishrows import one_row_series, series_dict, window_series
from pulsar_cluster.query.partial import GroupKey, Partial, RawBlock
from pulsar_cluster.query.plan import Plan, window_origin
from pulsar_cluster.query.states import kind_for
from pulsar_cluster.query.transforms import apply_transform
from pulsar_cluster.query.windowfill import fill_windows

__all__ = ["OutColumn", "Finish", "finalize", "SELECTORS", "MULTI_ROW"]

#: Aggregates whose answer is one of the points: without GROUP BY time they report its time.
SELECTORS = {"min", "max", "first", "last"}
#: Aggregates that answer several rows per window.
MULTI_ROW = {"top", "bottom", "distinct"}


@dataclass(frozen=True, slots=True)
class OutColumn:
    """An answer column: plan column `source` (optionally transformed), or a raw field / tag."""

    name: str
    source: int = -1
    transform: str | None = None
    transform_args: tuple[Any, ...] = ()
    raw_field: str | None = None
    tag: str | None = None


@dataclass(slots=True)
class Finish:
    columns: list[OutColumn] = field(default_factory=list)
    #: raw plans: also add every tag key as a column (InfluxQL `SELECT *`)
    star_tags: bool = False
    fill: str = "null"  # null | none | previous | linear | value
    fill_value: Any = None
    descending: bool = False
    limit: int = 0
    offset: int = 0
    slimit: int = 0
    soffset: int = 0
    #: include `"tags": {}` on series without group tags (native API) or omit it (InfluxQL)
    always_tags: bool = True


def _too_many(plan: Plan, rows: int) -> LimitExceededError:
    return LimitExceededError(
        f"query answers {rows} rows, more than the limit of {plan.limits.max_rows}",
        limit="max_rows",
    )


def finalize(plan: Plan, finish: Finish, partial: Partial) -> list[dict[str, Any]]:
    # Without windows every group answers at most one row: all groups at once (finishrows.py).
    fast = one_row_series(plan, finish, partial)
    # Bound the answer before building it: rows are Python lists, the costly part.
    if fast is not None:
        upper = fast[1]
    elif plan.kind == "raw":
        upper = sum(len(b.t) for blocks in partial.raw.values() for b in blocks)
    else:
        per_group = 0
        if plan.every > 0 and finish.fill != "none":
            per_group = max(0, (plan.end - 1 - window_origin(plan)) // plan.every + 1)
        upper = sum(
            max([per_group, *(len(s.get("w", ())) for s in states)])
            for states in partial.groups.values()
        )
    if finish.limit and fast is None:  # (one row per group: LIMIT changes no bound)
        upper = min(upper, finish.limit * max(len(partial.raw), len(partial.groups)))
    if upper > plan.limits.max_rows:
        raise _too_many(plan, upper)
    if plan.kind == "raw":
        groups = sorted(partial.raw.items())
        series = [_raw_series(plan, finish, key, blocks) for key, blocks in groups]
    elif fast is not None:
        series = fast[0]
    else:
        # One answer column with windows: all groups at once where it applies (finishrows.py).
        found = window_series(plan, finish, partial)
        series = (
            found
            if found is not None
            else [
                _agg_series(plan, finish, key, states)
                for key, states in sorted(partial.groups.items())
            ]
        )
    series = [s for s in series if s["values"]]
    if finish.soffset:
        series = series[finish.soffset :]
    if finish.slimit:
        series = series[: finish.slimit]
    rows = sum(len(s["values"]) for s in series)
    if rows > plan.limits.max_rows:
        raise _too_many(plan, rows)
    return series


def _agg_series(plan: Plan, finish: Finish, key: GroupKey, states: list[Any]) -> dict[str, Any]:
    w0 = window_origin(plan)
    every = plan.every
    per_plan_col = []
    for col, state in zip(plan.columns, states, strict=True):
        w, t, values = kind_for(col.fn).finalize(state, col.fn, col.args)
        per_plan_col.append((col, w, t, values))
    single = len(finish.columns) == 1
    # Dense window grid for fill(): every window of [start, end) when the range is bounded.
    nwin = 0
    if every > 0 and finish.fill != "none":
        nwin = max(0, (plan.end - 1 - w0) // every + 1)
    out_cols: list[tuple[np.ndarray, list[Any]]] = []
    for oc in finish.columns:
        col, w, t, values = per_plan_col[oc.source]
        multi = col.fn in MULTI_ROW or col.fn == "points"
        if t is not None and (multi or (every == 0 and single and col.fn in SELECTORS)):
            times = np.asarray(t, dtype=np.int64)
        else:
            times = w0 + np.asarray(w, dtype=np.int64) * max(every, 0)
        if nwin and not multi:
            times, values = _fill(
                finish, w0, every, nwin, np.asarray(w, np.int64), values, col.fn == "count"
            )
        if oc.transform is not None:
            tt, tv = apply_transform(oc.transform, times, values, oc.transform_args)
            times, values = tt, tv.tolist()
        out_cols.append((times, values))
    columns = ["time", *[c.name for c in finish.columns]]
    if len(out_cols) == 1:
        times, values = out_cols[0]
        rows = list(map(list, zip(times.tolist(), values, strict=True)))
        return series_dict(plan, finish, key, columns, rows)
    table = _joined(out_cols)
    if finish.fill == "none":
        table = [r for r in table if any(v is not None for v in r[1:])]
    return series_dict(plan, finish, key, columns, table)


def _joined(out_cols: list[tuple[np.ndarray, list[Any]]]) -> list[list[Any]]:
    """Rows [time, value of column 1, ...] of several answer columns, one per distinct time
    (None where a column has no value at that time)."""
    first = out_cols[0][0]
    if all(np.array_equal(t, first) for t, _ in out_cols[1:]) and bool(
        np.all(first[1:] > first[:-1])
    ):
        # Every column has the same times, each once (a filled window grid: TSBS's
        # single-groupby-5-1-12 answers 720 windows x 5 columns): the rows are the columns
        # zipped, not placed value by value.
        return list(map(list, zip(first.tolist(), *(v for _, v in out_cols), strict=True)))
    return _placed_rows(out_cols)


def _placed_rows(out_cols: list[tuple[np.ndarray, list[Any]]]) -> list[list[Any]]:
    """`_joined`'s general case: each column's values placed by their time."""
    all_times = np.unique(np.concatenate([c[0] for c in out_cols]))
    table: list[list[Any]] = [[t] + [None] * len(out_cols) for t in all_times.tolist()]
    for j, (times, values) in enumerate(out_cols):
        pos = np.searchsorted(all_times, times).tolist()
        for p, v in zip(pos, values, strict=True):
            table[p][j + 1] = v
    return table


def _fill(
    finish: Finish,
    w0: int,
    every: int,
    nwin: int,
    w: np.ndarray,
    values: list[Any],
    is_count: bool = False,
) -> tuple[np.ndarray, list[Any]]:
    """The dense grid's times and values of one group (windowfill.py fills them)."""
    times = w0 + np.arange(nwin, dtype=np.int64) * every
    return times, fill_windows(finish, nwin, np.asarray(w).tolist(), values, is_count)


def _raw_series(
    plan: Plan, finish: Finish, key: GroupKey, blocks: list[RawBlock]
) -> dict[str, Any]:
    blocks = sorted(blocks, key=lambda b: sorted(b.tags.items()))
    if finish.columns:
        outs = finish.columns
    else:
        names = sorted({n for b in blocks for n in b.values})
        if finish.star_tags:
            # tags the answer is grouped by are in "tags", not columns (InfluxDB's rule)
            grouped = {k for b in blocks for k in b.tags} if plan.group_by is None else set()
            grouped |= {k for k, _ in key}
            tag_names = sorted({k for b in blocks for k in b.tags} - set(names) - grouped)
            outs = sorted(
                [OutColumn(n, raw_field=n) for n in names]
                + [OutColumn(k, tag=k) for k in tag_names],
                key=lambda c: c.name,
            )
        else:
            outs = [OutColumn(n, raw_field=n) for n in names]
    # Column by column (one list per column, values converted by tolist), then rows by zip:
    # per-value Python work only where a field has gaps (high-cpu-1 answers ~1000 rows x 21).
    t = blocks[0].t if len(blocks) == 1 else np.concatenate([b.t for b in blocks])
    cols: list[list[Any]] = []
    has_value = np.zeros(len(t), dtype=bool)  # rows with at least one selected field value
    gaps = False  # whether any row may lack every selected field (then has_value decides)
    for oc in outs:
        parts: list[Any] = []
        for b in blocks:
            if oc.tag is not None:
                parts.extend([b.tags.get(oc.tag)] * len(b.t))
                continue
            vals = b.values.get(oc.raw_field or "")
            if vals is None:
                parts.extend([None] * len(b.t))
                gaps = True
                continue
            mask = b.present[oc.raw_field or ""]
            if mask.all():
                parts.extend(vals.tolist())
            else:
                gaps = True
                parts.extend(
                    v if m else None for v, m in zip(vals.tolist(), mask.tolist(), strict=True)
                )
        cols.append(parts)
    field_cols = [j for j, oc in enumerate(outs) if oc.raw_field is not None]
    if gaps and field_cols:
        offset = 0
        for b in blocks:
            n = len(b.t)
            for j in field_cols:
                present = b.present.get(outs[j].raw_field or "")
                if present is not None:
                    has_value[offset : offset + n] |= present
            offset += n
    times = t.tolist()
    if len(blocks) > 1:
        order = np.argsort(t, kind="stable").tolist()
        times = [times[i] for i in order]
        cols = [[c[i] for i in order] for c in cols]
        has_value = has_value[order]
    rows = list(map(list, zip(times, *cols, strict=True)))
    # a row with no selected field value is not a point of this selection (InfluxDB drops it)
    if gaps and field_cols:
        rows = list(itertools.compress(rows, has_value.tolist()))
    return series_dict(plan, finish, key, ["time", *[c.name for c in outs]], rows)
