"""Mergeable partial aggregate states: what a shard computes and the coordinator merges.

A *state* is a dict of equally long numpy arrays, always with `"w"`: the window index of each
row (window start = plan origin + w * every; one window when the plan has no `every`). A state
kind defines three pure functions:

- `lift(w, t, x)`: one row per point (w, t sorted by time within one series);
- `reduce(state, args)`: rows in any order -> at most the rows the kind keeps per window
  (one row for sum/count/mean/min/..., up to n for top/bottom, one per distinct value for
  mode/distinct, an exact value list or a sketch for quantiles, every point for integral);
- `finalize(state, fn, args)`: reduced state -> output rows `(w, t, value)` (t is the point's own
  time for selectors, or None for "window start").

Merging is `reduce(concat(states))`; `reduce` is associative and commutative, so splitting the
points of a window across any number of shards and merging gives the same rows as computing on
all of them (tests/unit/query/test_states.py proves it with hypothesis). Quantiles (median,
percentile) keep the exact values while a window holds at most QUANTILE_EXACT_LIMIT of them and
switch to a log-bucket sketch (DDSketch, relative accuracy SKETCH_ALPHA) above that; the switch
depends only on the window's total count, so it happens identically however the data is split.
The wire form of states is docs/format/partials.md.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from pulsar_cluster.errors import QueryError

__all__ = [
    "State",
    "StateKind",
    "KINDS",
    "kind_for",
    "concat_states",
    "QUANTILE_EXACT_LIMIT",
    "SKETCH_ALPHA",
    "sketch_key",
    "sketch_value",
]

State = dict[str, np.ndarray]
Rows = tuple[np.ndarray, np.ndarray | None, list[Any]]

#: A window keeps its exact values for median/percentile up to this many points (then a sketch).
QUANTILE_EXACT_LIMIT = 1024
#: Relative accuracy of the quantile sketch: an answer is within 1% of the exact value.
SKETCH_ALPHA = 0.01
_GAMMA = (1 + SKETCH_ALPHA) / (1 - SKETCH_ALPHA)
_LOG_GAMMA = math.log(_GAMMA)
# Bucket numbers of float64 magnitudes lie within +-37 000 at this accuracy; the offset keeps
# every key of a positive value > 0 so that sign * (bucket + offset) is ordered like the values.
_KEY_OFFSET = 1 << 17


def sketch_key(x: np.ndarray) -> np.ndarray:
    """Order-preserving int64 bucket key of each value (0 for zero)."""
    x = np.asarray(x, dtype=np.float64)
    mag = np.abs(x)
    keys = np.zeros(len(x), dtype=np.int64)
    nz = mag > 0
    buckets = np.ceil(np.log(mag[nz]) / _LOG_GAMMA).astype(np.int64) + _KEY_OFFSET
    keys[nz] = np.where(x[nz] > 0, buckets, -buckets)
    return keys


def sketch_value(keys: np.ndarray) -> np.ndarray:
    """The representative of each bucket: within SKETCH_ALPHA (relative) of every member."""
    keys = np.asarray(keys, dtype=np.int64)
    bucket = np.abs(keys) - _KEY_OFFSET
    mag = 2.0 * np.power(_GAMMA, bucket.astype(np.float64)) / (_GAMMA + 1.0)
    return np.where(keys == 0, 0.0, np.sign(keys) * mag)


# --- helpers ------------------------------------------------------------------------------------


def _starts(sorted_w: np.ndarray) -> np.ndarray:
    """Index of the first row of each run of equal values in a sorted array."""
    if len(sorted_w) == 0:
        return np.empty(0, dtype=np.int64)
    change = np.empty(len(sorted_w), dtype=bool)
    change[0] = True
    np.not_equal(sorted_w[1:], sorted_w[:-1], out=change[1:])
    return change.nonzero()[0]  # np.flatnonzero's answer without its two Python wrappers


def _ends(st: np.ndarray, n: int) -> np.ndarray:
    """Ends (exclusive) of the runs starting at `st` in an array of length n (np.r_ costs about
    15 us a call, more than the rest of a small series' reduction)."""
    out = np.empty(len(st), dtype=np.int64)
    if len(st):
        out[:-1] = st[1:]
        out[-1] = n
    return out


def _counts(st: np.ndarray, n: int) -> np.ndarray:
    """Lengths of the runs starting at `st` in an array of length n."""
    return _ends(st, n) - st


def _ranks(x: np.ndarray) -> np.ndarray:
    """Dense integer ranks of values of any orderable dtype (strings included)."""
    if x.dtype != object:
        return x
    _, inverse = np.unique(x, return_inverse=True)
    return inverse.astype(np.int64)


def _take(state: State, idx: np.ndarray) -> State:
    return {k: v[idx] for k, v in state.items()}


def concat_states(states: Sequence[State]) -> State:
    states = [s for s in states if len(s.get("w", ()))]
    if not states:
        return {}
    if len(states) == 1:
        return states[0]
    return {k: np.concatenate([s[k] for s in states]) for k in states[0]}


def _empty(keys: Sequence[str]) -> State:
    return {k: np.empty(0, dtype=np.int64) for k in keys}


def _numeric(x: np.ndarray, fn: str) -> np.ndarray:
    if x.dtype.kind in "Ob":  # object (strings) or bool
        label = "string" if x.dtype.kind == "O" else "boolean"
        raise QueryError(f"{fn}() is not defined for {label} fields")
    return x


def _by_window(state: State, *keys: np.ndarray) -> tuple[State, np.ndarray]:
    """State sorted by w, then by `keys` (last key most significant after w); run starts."""
    order = np.lexsort((*keys, state["w"])) if keys else np.argsort(state["w"], kind="stable")
    s = _take(state, order)
    return s, _starts(s["w"])


def _pick(state: State, *keys: np.ndarray, last: bool = False) -> State:
    """One row per window: the first (or last) in the order given by keys."""
    if not len(state.get("w", ())):
        return state
    s, starts = _by_window(state, *keys)
    idx = _ends(starts, len(s["w"])) - 1 if last else starts
    return _take(s, idx)


def _sum_runs(values: np.ndarray, starts: np.ndarray) -> np.ndarray:
    return np.add.reduceat(values, starts) if len(values) else values


# --- kinds --------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class StateKind:
    name: str
    keys: tuple[str, ...]
    lift: Callable[[np.ndarray, np.ndarray, np.ndarray, str], State]
    reduce: Callable[[State, tuple[Any, ...]], State]
    finalize: Callable[[State, str, tuple[Any, ...]], Rows]
    #: Optional fast path for the points of one series (w non-decreasing, t strictly
    #: increasing): equal to reduce(lift(...)) without sorting (tests/unit/query/test_states.py).
    series: Callable[[np.ndarray, np.ndarray, np.ndarray, str], State] | None = None

    def from_series(self, w: np.ndarray, t: np.ndarray, x: np.ndarray, fn: str, args: Any) -> State:
        if self.series is not None:
            return self.series(w, t, x, fn) if len(w) else {k: w[:0] for k in self.keys}
        return self.reduce(self.lift(w, t, x, fn), args)


def _rows_from(w: np.ndarray, values: np.ndarray, t: np.ndarray | None = None) -> Rows:
    return w, t, values.tolist()


def _runs(w: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Starts and ends (exclusive) of the runs of a non-decreasing window array."""
    st = _starts(w)
    return st, _ends(st, len(w))


def _extreme_series(w: np.ndarray, t: np.ndarray, x: np.ndarray, fn: str) -> State:
    x = _numeric(x, fn)
    st = _starts(w)
    ext = (np.minimum if fn == "min" else np.maximum).reduceat(x, st)
    # The earliest point equal to the extreme, per window (array methods: no Python wrappers).
    hits = (x == ext.repeat(_counts(st, len(w)))).nonzero()[0]
    idx = hits[hits.searchsorted(st)]
    return {"w": w[st], "t": t[idx], "v": x[idx]}


def _edge_series(last: bool) -> Callable[[np.ndarray, np.ndarray, np.ndarray, str], State]:
    def series(w: np.ndarray, t: np.ndarray, x: np.ndarray, fn: str) -> State:
        st, ends = _runs(w)
        idx = ends - 1 if last else st
        return {"w": w[st], "t": t[idx], "v": x[idx]}

    return series


# count


def _count_reduce(s: State, _: tuple[Any, ...]) -> State:
    if not len(s.get("w", ())):
        return s
    s, st = _by_window(s)
    return {"w": s["w"][st], "n": _sum_runs(s["n"], st)}


COUNT = StateKind(
    "count",
    ("w", "n"),
    lambda w, t, x, fn: {"w": w, "n": np.ones(len(w), dtype=np.int64)},
    _count_reduce,
    lambda s, fn, a: _rows_from(s["w"], s["n"]),
    lambda w, t, x, fn: _count_series(w),
)

# sum and mean


def _sum_reduce(s: State, _: tuple[Any, ...]) -> State:
    if not len(s.get("w", ())):
        return s
    s, st = _by_window(s)
    out = {"w": s["w"][st], "s": _sum_runs(s["s"], st)}
    if "n" in s:
        out["n"] = _sum_runs(s["n"], st)
    return out


def _count_series(w: np.ndarray) -> State:
    st = _starts(w)
    return {"w": w[st], "n": _counts(st, len(w))}


def _sum_series(w: np.ndarray, t: np.ndarray, x: np.ndarray, fn: str) -> State:
    st = _starts(w)
    return {"w": w[st], "s": np.add.reduceat(_numeric(x, fn), st)}


def _mean_series(w: np.ndarray, t: np.ndarray, x: np.ndarray, fn: str) -> State:
    st = _starts(w)
    return {
        "w": w[st],
        "s": np.add.reduceat(_numeric(x, fn).astype(np.float64), st),
        "n": _counts(st, len(w)),
    }


SUM = StateKind(
    "sum",
    ("w", "s"),
    lambda w, t, x, fn: {"w": w, "s": _numeric(x, fn)},
    _sum_reduce,
    lambda s, fn, a: _rows_from(s["w"], s["s"]),
    _sum_series,
)

MEAN = StateKind(
    "mean",
    ("w", "s", "n"),
    lambda w, t, x, fn: {
        "w": w,
        "s": _numeric(x, fn).astype(np.float64),
        "n": np.ones(len(w), dtype=np.int64),
    },
    _sum_reduce,
    lambda s, fn, a: _rows_from(s["w"], s["s"] / s["n"]),
    _mean_series,
)

# selectors with their point time: min, max, first, last


def _neg(x: np.ndarray) -> np.ndarray:
    r = _ranks(x)
    return -r if r.dtype != np.uint64 else np.iinfo(np.uint64).max - r


SELECTOR_ORDER: dict[str, Callable[[State], tuple[tuple[np.ndarray, ...], bool]]] = {
    # lexsort keys (least significant first) and whether to take the last row of each window.
    # Ties go to the earliest time (min/max) or to the larger value (first/last), so the choice
    # never depends on the order in which shards answered.
    "min": lambda s: ((s["t"], _ranks(s["v"])), False),
    "max": lambda s: ((s["t"], _neg(s["v"])), False),
    "first": lambda s: ((_neg(s["v"]), s["t"]), False),
    "last": lambda s: ((_ranks(s["v"]), s["t"]), True),
}


#: Below this many rows the sort in _pick is as fast as the scatter of _extreme_dense.
_DENSE_MIN_ROWS = 256


def _extreme_dense(s: State, name: str) -> State | None:
    """min/max reduce without sorting: one scatter per window over a dense window range
    (1000 series x 720 windows merged: about 5 ms instead of 28 ms for the lexsort). The same
    rows as _pick: the extreme value, ties to the earliest time, then to the first row.
    None where that cannot be guaranteed (NaN, strings, int64 min whose negation wraps in
    _neg, sparse windows)."""
    w, t, v = s["w"], s["t"], s["v"]
    n = len(w)
    if n < _DENSE_MIN_ROWS or v.dtype.kind not in "iuf":
        return None
    if v.dtype.kind == "f" and bool(np.isnan(v).any()):
        return None
    if v.dtype == np.int64 and name == "max" and int(v.min()) == np.iinfo(np.int64).min:
        return None
    wmin = int(w.min())
    span = int(w.max()) - wmin + 1
    if span > 2 * n:
        return None
    g = w - wmin
    if v.dtype.kind == "f":
        fill = -np.inf if name == "max" else np.inf
    else:
        info = np.iinfo(v.dtype)
        fill = info.min if name == "max" else info.max
    best = np.full(span, fill, dtype=v.dtype)
    (np.maximum if name == "max" else np.minimum).at(best, g, v)
    cand = np.flatnonzero(v == best[g])
    tbest = np.full(span, np.iinfo(np.int64).max, dtype=np.int64)
    np.minimum.at(tbest, g[cand], t[cand])
    cand = cand[t[cand] == tbest[g[cand]]]
    first = np.full(span, n, dtype=np.int64)
    np.minimum.at(first, g[cand], cand)
    rows = first[first < n]
    return {"w": w[rows], "t": t[rows], "v": v[rows]}


def _selector(name: str, numeric: bool) -> StateKind:
    def lift(w: np.ndarray, t: np.ndarray, x: np.ndarray, fn: str) -> State:
        return {"w": w, "t": t, "v": _numeric(x, fn) if numeric else x}

    def reduce(s: State, _: tuple[Any, ...]) -> State:
        if not len(s.get("w", ())):
            return s
        if name in ("min", "max"):
            dense = _extreme_dense(s, name)
            if dense is not None:
                return dense
        keys, last = SELECTOR_ORDER[name](s)
        return _pick(s, *keys, last=last)

    series = _extreme_series if name in ("min", "max") else _edge_series(name == "last")
    return StateKind(
        name,
        ("w", "t", "v"),
        lift,
        reduce,
        lambda s, fn, a: _rows_from(s["w"], s["v"], s["t"]),
        series,
    )


MIN = _selector("min", True)
MAX = _selector("max", True)
FIRST = _selector("first", False)
LAST = _selector("last", False)

# spread


def _spread_reduce(s: State, _: tuple[Any, ...]) -> State:
    if not len(s.get("w", ())):
        return s
    s, st = _by_window(s)
    return {
        "w": s["w"][st],
        "mn": np.minimum.reduceat(s["mn"], st),
        "mx": np.maximum.reduceat(s["mx"], st),
    }


SPREAD = StateKind(
    "spread",
    ("w", "mn", "mx"),
    lambda w, t, x, fn: {"w": w, "mn": _numeric(x, fn), "mx": x},
    _spread_reduce,
    lambda s, fn, a: _rows_from(s["w"], s["mx"] - s["mn"]),
)

# stddev: count, mean and sum of squared deviations (Chan et al.'s parallel combination)


def _stddev_reduce(s: State, _: tuple[Any, ...]) -> State:
    if not len(s.get("w", ())):
        return s
    s, st = _by_window(s)
    n = _sum_runs(s["n"], st)
    mean = _sum_runs(s["n"] * s["m"], st) / n
    group = np.repeat(np.arange(len(st)), np.diff(np.r_[st, len(s["w"])]))
    dev = s["m"] - mean[group]
    m2 = _sum_runs(s["m2"] + s["n"] * dev * dev, st)
    return {"w": s["w"][st], "n": n, "m": mean, "m2": m2}


def _stddev_final(s: State, fn: str, a: tuple[Any, ...]) -> Rows:
    n = s["n"]
    out: list[Any] = np.sqrt(s["m2"] / np.maximum(n - 1, 1)).tolist()
    return s["w"], None, [v if k > 1 else None for v, k in zip(out, n.tolist(), strict=True)]


STDDEV = StateKind(
    "stddev",
    ("w", "n", "m", "m2"),
    lambda w, t, x, fn: {
        "w": w,
        "n": np.ones(len(w), dtype=np.int64),
        "m": _numeric(x, fn).astype(np.float64),
        "m2": np.zeros(len(w)),
    },
    _stddev_reduce,
    _stddev_final,
)

# quantiles (median, percentile): exact values, or a sketch above QUANTILE_EXACT_LIMIT.
# Rows are of two sorts in one state: exact values (c == 0, x = value) and sketch buckets
# (c > 0 points in bucket k). A window is sketched as soon as it has a bucket row.


def _quantile_lift(w: np.ndarray, t: np.ndarray, x: np.ndarray, fn: str) -> State:
    is_int = _numeric(x, fn).dtype.kind in "iu"
    return {
        "w": w,
        "x": x.astype(np.float64),
        "k": np.zeros(len(w), dtype=np.int64),
        "c": np.zeros(len(w), dtype=np.int64),
        # 1: an exact value of an integer field (percentile answers it as an integer, as
        # InfluxDB does); float64 holds integers exactly up to 2**53
        "i": np.full(len(w), int(is_int), dtype=np.int64),
    }


def _quantile_reduce(s: State, _: tuple[Any, ...]) -> State:
    if not len(s.get("w", ())):
        return s
    s, st = _by_window(s)
    exact = s["c"] == 0
    total = _sum_runs(np.where(exact, 1, s["c"]), st)
    has_sketch = _sum_runs((~exact).astype(np.int64), st) > 0
    sketch_win = has_sketch | (total > QUANTILE_EXACT_LIMIT)
    group = np.repeat(np.arange(len(st)), np.diff(np.r_[st, len(s["w"])]))
    to_sketch = sketch_win[group]
    keep = _take(s, np.flatnonzero(~to_sketch))
    keep = _take(keep, np.lexsort((keep["x"], keep["w"])))
    sk = _take(s, np.flatnonzero(to_sketch))
    conv = sk["c"] == 0
    sk["k"] = np.where(conv, sketch_key(sk["x"]), sk["k"])
    sk["c"] = np.where(conv, 1, sk["c"])
    if len(sk["w"]):
        order = np.lexsort((sk["k"], sk["w"]))
        sk = _take(sk, order)
        change = np.ones(len(order), dtype=bool)
        change[1:] = (sk["w"][1:] != sk["w"][:-1]) | (sk["k"][1:] != sk["k"][:-1])
        st2 = np.flatnonzero(change)
        sk = {
            "w": sk["w"][st2],
            "x": np.zeros(len(st2)),
            "k": sk["k"][st2],
            "c": _sum_runs(sk["c"], st2),
            "i": np.zeros(len(st2), dtype=np.int64),
        }
    out = concat_states([keep, sk])
    return _take(out, np.lexsort((out["k"], out["x"], out["w"]))) if out else keep


def percentile_rank(n: int, p: float) -> int:
    """InfluxDB's nearest-rank index: floor(n * p / 100 + 0.5) - 1 (negative: no answer)."""
    return math.floor(n * p / 100.0 + 0.5) - 1


def _quantile_final(s: State, fn: str, a: tuple[Any, ...]) -> Rows:
    if not len(s.get("w", ())):
        return np.empty(0, dtype=np.int64), None, []
    st = _starts(s["w"])
    ends = np.r_[st[1:], len(s["w"])]
    values: list[Any] = []
    for lo, hi in zip(st.tolist(), ends.tolist(), strict=True):
        c = s["c"][lo:hi]
        if c[0] == 0:  # exact window: values sorted ascending
            x = s["x"][lo:hi]
            n = len(x)
            if fn == "median":
                values.append(float(x[n // 2]) if n % 2 else float((x[n // 2 - 1] + x[n // 2]) / 2))
                continue
            i = percentile_rank(n, float(a[0]))
            if not 0 <= i < n:
                values.append(None)
            elif bool(np.all(s["i"][lo:hi] == 1)):
                values.append(int(x[i]))
            else:
                values.append(float(x[i]))
            continue
        cum = np.cumsum(c)
        n = int(cum[-1])
        i = (n - 1) // 2 if fn == "median" else percentile_rank(n, float(a[0]))
        if not 0 <= i < n:
            values.append(None)
            continue
        b = int(np.searchsorted(cum, i, side="right"))
        values.append(float(sketch_value(s["k"][lo + b : lo + b + 1])[0]))
    return s["w"][st], None, values


QUANTILE = StateKind(
    "quantile", ("w", "x", "k", "c", "i"), _quantile_lift, _quantile_reduce, _quantile_final
)

# mode and distinct: per window, each distinct value with its count and first time


def _counts_reduce(s: State, _: tuple[Any, ...]) -> State:
    if not len(s.get("w", ())):
        return s
    xr = _ranks(s["x"])
    order = np.lexsort((s["t"], xr, s["w"]))
    s = _take(s, order)
    xr = xr[order]
    change = np.ones(len(order), dtype=bool)
    change[1:] = (s["w"][1:] != s["w"][:-1]) | (xr[1:] != xr[:-1])
    st = np.flatnonzero(change)
    return {"w": s["w"][st], "x": s["x"][st], "c": _sum_runs(s["c"], st), "t": s["t"][st]}


def _mode_final(s: State, fn: str, a: tuple[Any, ...]) -> Rows:
    if not len(s.get("w", ())):
        return np.empty(0, dtype=np.int64), None, []
    # Most frequent; ties to the value seen first (InfluxDB's rule), then the smaller value.
    best = _pick(s, _ranks(s["x"]), s["t"], -s["c"])
    return best["w"], None, best["x"].tolist()


def _distinct_final(s: State, fn: str, a: tuple[Any, ...]) -> Rows:
    if not len(s.get("w", ())):
        return np.empty(0, dtype=np.int64), None, []
    order = np.lexsort((_ranks(s["x"]), s["t"], s["w"]))
    return s["w"][order], None, s["x"][order].tolist()


def _counts_lift(w: np.ndarray, t: np.ndarray, x: np.ndarray, fn: str) -> State:
    return {"w": w, "x": x, "c": np.ones(len(w), dtype=np.int64), "t": t}


MODE = StateKind("mode", ("w", "x", "c", "t"), _counts_lift, _counts_reduce, _mode_final)
DISTINCT = StateKind(
    "distinct", ("w", "x", "c", "t"), _counts_lift, _counts_reduce, _distinct_final
)

# top and bottom: the n best points of each window


def _top_reduce(bottom: bool) -> Callable[[State, tuple[Any, ...]], State]:
    def reduce(s: State, a: tuple[Any, ...]) -> State:
        if not len(s.get("w", ())):
            return s
        n = int(a[0])
        value_key = _ranks(s["v"]) if bottom else _neg(s["v"])
        s, st = _by_window(s, s["t"], value_key)
        group = np.repeat(st, np.diff(np.r_[st, len(s["w"])]))
        keep = (np.arange(len(s["w"])) - group) < n
        return _take(s, np.flatnonzero(keep))

    return reduce


def _top_final(s: State, fn: str, a: tuple[Any, ...]) -> Rows:
    if not len(s.get("w", ())):
        return np.empty(0, dtype=np.int64), np.empty(0, dtype=np.int64), []
    order = np.lexsort((_ranks(s["v"]), s["t"], s["w"]))  # InfluxDB lists them by time
    return s["w"][order], s["t"][order], s["v"][order].tolist()


def _top_lift(w: np.ndarray, t: np.ndarray, x: np.ndarray, fn: str) -> State:
    return {"w": w, "t": t, "v": _numeric(x, fn)}


TOP = StateKind("top", ("w", "t", "v"), _top_lift, _top_reduce(False), _top_final)
BOTTOM = StateKind("bottom", ("w", "t", "v"), _top_lift, _top_reduce(True), _top_final)

# points: every point of the window (integral, and raw input of transformations)


def _points_reduce(s: State, _: tuple[Any, ...]) -> State:
    if not len(s.get("w", ())):
        return s
    # by time, and points at the same time (from different series) by value, so the order never
    # depends on how the points were split between shards
    return _take(s, np.lexsort((_ranks(s["v"]), s["t"], s["w"])))


def _integral_final(s: State, fn: str, a: tuple[Any, ...]) -> Rows:
    if not len(s.get("w", ())):
        return np.empty(0, dtype=np.int64), None, []
    unit = float(a[0]) if a else 1e9
    w, t, x = s["w"], s["t"].astype(np.float64), s["v"].astype(np.float64)
    st = _starts(w)
    same = w[1:] == w[:-1]
    area = np.where(same, (t[1:] - t[:-1]) * (x[1:] + x[:-1]) / 2.0, 0.0)
    total = np.add.reduceat(np.r_[area, 0.0], st) if len(area) else np.zeros(len(st))
    return w[st], None, (total / unit).tolist()


def _points_final(s: State, fn: str, a: tuple[Any, ...]) -> Rows:
    if not len(s.get("w", ())):
        return np.empty(0, dtype=np.int64), np.empty(0, dtype=np.int64), []
    return s["w"], s["t"], s["v"].tolist()


POINTS = StateKind(
    "points",
    ("w", "t", "v"),
    lambda w, t, x, fn: {"w": w, "t": t, "v": x},
    _points_reduce,
    _points_final,
)
INTEGRAL = StateKind(
    "integral",
    ("w", "t", "v"),
    lambda w, t, x, fn: {"w": w, "t": t, "v": _numeric(x, fn)},
    _points_reduce,
    _integral_final,
)

# first and last point together: delta and rate within a window


def _firstlast_lift(w: np.ndarray, t: np.ndarray, x: np.ndarray, fn: str) -> State:
    x = _numeric(x, fn).astype(np.float64)
    return {"w": w, "ft": t, "fv": x, "lt": t, "lv": x}


def _firstlast_reduce(s: State, a: tuple[Any, ...]) -> State:
    if not len(s.get("w", ())):
        return s
    first = _pick({"w": s["w"], "t": s["ft"], "v": s["fv"]}, -s["fv"], s["ft"])
    last = _pick({"w": s["w"], "t": s["lt"], "v": s["lv"]}, s["lv"], s["lt"], last=True)
    return {"w": first["w"], "ft": first["t"], "fv": first["v"], "lt": last["t"], "lv": last["v"]}


def _firstlast_final(s: State, fn: str, a: tuple[Any, ...]) -> Rows:
    if not len(s.get("w", ())):
        return np.empty(0, dtype=np.int64), None, []
    delta = s["lv"] - s["fv"]
    if fn == "delta":
        return s["w"], None, delta.tolist()
    unit = float(a[0]) if a else 1e9
    dt = (s["lt"] - s["ft"]).astype(np.float64)
    rate = np.divide(delta * unit, dt, out=np.zeros(len(dt)), where=dt > 0)
    return (
        s["w"],
        None,
        [r if d > 0 else None for r, d in zip(rate.tolist(), dt.tolist(), strict=True)],
    )


FIRSTLAST = StateKind(
    "firstlast", ("w", "ft", "fv", "lt", "lv"), _firstlast_lift, _firstlast_reduce, _firstlast_final
)

#: Aggregate function name -> the state kind that computes it.
KINDS: dict[str, StateKind] = {
    "count": COUNT,
    "sum": SUM,
    "mean": MEAN,
    "median": QUANTILE,
    "percentile": QUANTILE,
    "min": MIN,
    "max": MAX,
    "first": FIRST,
    "last": LAST,
    "spread": SPREAD,
    "stddev": STDDEV,
    "mode": MODE,
    "distinct": DISTINCT,
    "top": TOP,
    "bottom": BOTTOM,
    "integral": INTEGRAL,
    "delta": FIRSTLAST,
    "rate": FIRSTLAST,
    "points": POINTS,
}


def kind_for(fn: str) -> StateKind:
    try:
        return KINDS[fn]
    except KeyError:
        raise QueryError(f"unsupported aggregate function {fn}()") from None


def empty_state(fn: str) -> State:
    return _empty(kind_for(fn).keys)
