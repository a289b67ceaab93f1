"""Aggregate scans over many series in one vectorised pass: the fast path of node/query.py.

The per-series executor (node/query.py `_execute`) reads each series, assigns its points to
windows and reduces them, paying about 50 us of Python per series: 50 ms of the 54 ms TSBS's
double-groupby-1 took (1000 hosts x 12 h, mean per host and hour), where numpy on its 4.3 M
points needs a few ms. Here each field is read for ALL series at once (node/engine/batchread.py:
one array of values with series offsets), the (series, window) runs are found for all series
together, from the pieces' regular timestamps by arithmetic when every piece is evenly spaced
(no timestamp array at all), and every aggregate column is reduced with one `reduceat` over
those runs. The per-series states are then slices of these arrays, merged per group exactly as
`_execute` merges them (the same `kind.reduce` on the same rows in the same order), so the
partial is the one the per-series path computes, value for value and dtype for dtype
(tests/unit/query/test_scanbatch.py checks it with hypothesis against that path).

Applies to time-windowed (`GROUP BY time`) selects of count, sum, mean, min, max, first and last
over numeric fields, without a field predicate, read in one chunk, when the rollup cache is not
in use; `execute_batched` returns None for anything else and the per-series path answers.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from node.engine.batchread import FieldBatch
from node.querybudget import Budget, series_group
from pulsar_cluster.batch import FieldType, numpy_dtype
from pulsar_cluster.query.partial import GroupKey, Partial
from pulsar_cluster.query.plan import Plan, window_origin
from pulsar_cluster.query.states import State, kind_for

__all__ = ["BATCH_FNS", "batch_applies", "execute_batched"]

#: Aggregates whose per-series state is one row per window computed by one reduceat.
BATCH_FNS = frozenset(("count", "sum", "mean", "min", "max", "first", "last"))
_NUMERIC = frozenset((FieldType.FLOAT, FieldType.INTEGER, FieldType.UNSIGNED))
#: Window arithmetic on pieces stays far from int64 overflow below this magnitude; beyond it
#: (windows anchored near the ends of time) timestamps are materialised and divided like the
#: per-series path does.
_SAFE = 1 << 61


def batch_applies(plan: Plan, chunks: int) -> bool:
    """Whether the plan's shape is one this path computes (the data may still send it back)."""
    return (
        plan.kind == "select"
        and plan.every > 0
        and plan.fields_where is None
        and chunks == 1
        and bool(plan.columns)
        and all(col.fn in BATCH_FNS for col in plan.columns)
    )


class _Runs:
    """The (series, window) runs of one field: run r covers values[start[r]:end[r]]."""

    def __init__(self, batch: FieldBatch, nseries: int, w0: int, every: int) -> None:
        self.batch = batch
        total = len(batch.values)
        self.total = total
        if not total:
            self.start = np.empty(0, np.int64)
            self.w = np.empty(0, np.int64)
            self.series = np.empty(0, np.int64)
        elif batch.regular and _arithmetic_safe(batch, total, w0, every):
            self._from_pieces(batch, total, w0, every)
        else:
            self._from_times(batch, total, w0, every)
        self.end = np.empty(len(self.start), dtype=np.int64)
        if len(self.start):
            self.end[:-1] = self.start[1:]
            self.end[-1] = total
        self.counts = self.end - self.start
        # Rows of series i: rows[i]:rows[i + 1] (runs are in series order).
        self.rows = np.searchsorted(self.series, np.arange(nseries + 1), side="left")

    def _from_pieces(self, batch: FieldBatch, total: int, w0: int, every: int) -> None:
        assert batch.piece_start is not None and batch.piece_first is not None
        assert batch.piece_step is not None
        o, f, s = batch.piece_start, batch.piece_first, batch.piece_step
        count = len(o)
        n = np.empty(count, dtype=np.int64)
        n[:-1] = o[1:] - o[:-1]
        n[-1] = total - o[-1]
        series = np.searchsorted(batch.offsets, o, side="right") - 1
        wa = (f - w0) // every
        wb = (f + (n - 1) * s - w0) // every
        # A piece opens a run when it starts a series or a window other than where the
        # previous piece of its series ended; each window starting inside it opens one more.
        opens = np.ones(count, dtype=np.int64)
        opens[1:] = (series[1:] != series[:-1]) | (wa[1:] != wb[:-1])
        per_piece = opens + (wb - wa)
        rep = np.repeat(np.arange(count), per_piece)
        local = np.arange(len(rep), dtype=np.int64) - (np.cumsum(per_piece) - per_piece)[rep]
        k = wa[rep] + local + 1 - opens[rep]
        # First point at or after the window's start (0 for the run the piece opens).
        j = -((f[rep] - w0 - k * every) // s[rep])
        start = o[rep] + np.maximum(j, 0)
        # Windows a piece steps over (spacing wider than a window) open empty runs: a run
        # that starts where the next one starts holds no point.
        keep = np.empty(len(start), dtype=bool)
        keep[:-1] = start[1:] != start[:-1]
        keep[-1] = True
        if bool(keep.all()):
            self.start, self.w, self.series = start, k, series[rep]
        else:
            self.start, self.w, self.series = start[keep], k[keep], series[rep][keep]

    def _from_times(self, batch: FieldBatch, total: int, w0: int, every: int) -> None:
        ts = self.times()
        w = (ts - w0) // every  # as the per-series path divides
        change = np.empty(total, dtype=bool)
        change[0] = True
        np.not_equal(w[1:], w[:-1], out=change[1:])
        inner = batch.offsets[1:-1]
        change[inner[inner < total]] = True
        self.start = np.flatnonzero(change)
        self.w = w[self.start]
        self.series = np.searchsorted(batch.offsets, self.start, side="right") - 1

    def times(self, idx: np.ndarray | None = None) -> np.ndarray:
        """Timestamps of the points at positions `idx` (every point when None)."""
        b = self.batch
        if b.times is not None:
            return b.times if idx is None else b.times[idx]
        assert b.piece_start is not None and b.piece_first is not None
        assert b.piece_step is not None
        if idx is None:
            idx = np.arange(self.total, dtype=np.int64)
        p = np.searchsorted(b.piece_start, idx, side="right") - 1
        return b.piece_first[p] + (idx - b.piece_start[p]) * b.piece_step[p]


def _arithmetic_safe(batch: FieldBatch, total: int, w0: int, every: int) -> bool:
    """Whether every intermediate of `_from_pieces` stays far inside int64."""
    assert batch.piece_first is not None and batch.piece_step is not None
    assert batch.piece_start is not None
    if not -_SAFE < w0 < _SAFE or every >= _SAFE:
        return False
    o = batch.piece_start
    n = np.empty(len(o), dtype=np.int64)
    n[:-1] = o[1:] - o[:-1]
    n[-1] = total - o[-1]
    last = batch.piece_first + (n - 1) * batch.piece_step  # real timestamps: no wrap-around
    return int(batch.piece_first.min()) > -_SAFE and int(last.max()) < _SAFE


def _column_state(fn: str, runs: _Runs, x: np.ndarray, dtype: np.dtype) -> State:
    """The per-series states of every series, concatenated: what `kind.from_series` gives for
    each series' points (node/query.py `_series_states`), series after series."""
    st = runs.start
    w = runs.w
    if fn == "count":
        return {"w": w, "n": runs.counts}
    if fn == "sum":
        xs = x if x.dtype == dtype else x.astype(dtype)
        return {"w": w, "s": np.add.reduceat(xs, st)}
    if fn == "mean":
        return {"w": w, "s": np.add.reduceat(x.astype(np.float64), st), "n": runs.counts}
    if fn in ("min", "max"):
        ext = (np.minimum if fn == "min" else np.maximum).reduceat(x, st)
        hits = np.flatnonzero(x == np.repeat(ext, runs.counts))
        idx = hits[np.searchsorted(hits, st)]  # earliest point equal to the extreme
    elif fn == "first":
        idx = st
    else:
        idx = runs.end - 1
    return {"w": w, "t": runs.times(idx), "v": x[idx].astype(dtype)}


def execute_batched(plan: Plan, source: Any, skeys: list[bytes], budget: Budget) -> Partial | None:
    """The partial `_execute` computes for `plan` over `skeys`, or None when this path does
    not apply to the data (then nothing has been counted against the budget)."""
    reader: Callable[..., FieldBatch | None] | None = getattr(source, "read_field_batch", None)
    if reader is None:
        return None
    counted = budget.points

    def on_block(points: int) -> None:
        budget.read(points)
        budget.tick()

    runs: dict[str, _Runs] = {}
    w0 = window_origin(plan)
    for col in plan.columns:
        if col.field in runs:
            continue
        budget.tick()
        batch = reader(skeys, col.field, plan.start, plan.end, on_block)
        if batch is None or (batch.type is not None and batch.type not in _NUMERIC):
            budget.points = counted  # the per-series path reads (and counts) again
            return None
        if (
            batch.type is FieldType.FLOAT
            and any(c.fn in ("min", "max") and c.field == col.field for c in plan.columns)
            and bool(np.isnan(batch.values).any())
        ):
            budget.points = counted  # NaN extremes: left to the per-series path's rules
            return None
        runs[col.field] = _Runs(batch, len(skeys), w0, plan.every)
    states: list[State] = []
    rows: list[np.ndarray] = []
    for col in plan.columns:
        r = runs[col.field]
        dtype = numpy_dtype(r.batch.type) if r.batch.type is not None else np.dtype(np.int64)
        states.append(_column_state(col.fn, r, r.batch.values, dtype))
        rows.append(r.rows)
    out = Partial(series_touched=len(skeys))
    out.points_scanned = budget.points
    budget.tick()
    _group(plan, skeys, states, rows, out)
    return out


def _group(
    plan: Plan, skeys: list[bytes], states: list[State], rows: list[np.ndarray], out: Partial
) -> None:
    """Per-series states into groups, as node/query.py `_execute` merges them."""
    kinds = [kind_for(col.fn) for col in plan.columns]
    counts = np.stack([r[1:] - r[:-1] for r in rows])
    present = np.flatnonzero(counts.any(axis=0)).tolist()
    members: dict[GroupKey, list[int]] = {}
    for i in present:
        members.setdefault(series_group(skeys[i], plan.group_by), []).append(i)
    lo = [r.tolist() for r in rows]
    for key, idx in members.items():
        group: list[State] = []
        for c, (kind, col) in enumerate(zip(kinds, plan.columns, strict=True)):
            parts = [i for i in idx if lo[c][i + 1] > lo[c][i]]
            if not parts:
                group.append({k: np.empty(0, np.int64) for k in kind.keys})
            elif len(parts) == 1:
                a, b = lo[c][parts[0]], lo[c][parts[0] + 1]
                group.append({k: v[a:b] for k, v in states[c].items()})
            else:
                group.append(kind.reduce(_gather(states[c], lo[c], parts), col.args))
        out.groups[key] = group


def _gather(state: State, lo: list[int], parts: list[int]) -> State:
    """The rows of series `parts` (in order), concatenated."""
    if parts[-1] - parts[0] == len(parts) - 1:  # consecutive series: one slice
        a, b = lo[parts[0]], lo[parts[-1] + 1]
        return {k: v[a:b] for k, v in state.items()}
    return {k: np.concatenate([v[lo[i] : lo[i + 1]] for i in parts]) for k, v in state.items()}
