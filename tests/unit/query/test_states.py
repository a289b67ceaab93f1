"""Partial aggregate states: split any data across any number of shards, merge, and get the
answer of the whole, which itself matches a naive reference implementation."""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pulsar_cluster.errors import QueryError
from pulsar_cluster.query import states
from pulsar_cluster.query.states import (
    SKETCH_ALPHA,
    concat_states,
    kind_for,
    percentile_rank,
    sketch_key,
    sketch_value,
)

# (window, time, value) points; times repeat across points on purpose (different series)
POINT = st.tuples(
    st.integers(0, 3),
    st.integers(0, 40),
    st.integers(-1000, 1000).map(lambda x: x / 8),
)
DATA = st.lists(POINT, min_size=1, max_size=120)
SHARDS = st.integers(1, 6)
FUNCS = [
    ("count", ()),
    ("sum", ()),
    ("mean", ()),
    ("min", ()),
    ("max", ()),
    ("first", ()),
    ("last", ()),
    ("spread", ()),
    ("stddev", ()),
    ("median", ()),
    ("percentile", (90.0,)),
    ("percentile", (5.0,)),
    ("mode", ()),
    ("distinct", ()),
    ("top", (3,)),
    ("bottom", (2,)),
    ("integral", (1.0,)),
    ("delta", ()),
    ("rate", (1.0,)),
]


@contextmanager
def exact_limit(n: int) -> Iterator[None]:
    old = states.QUANTILE_EXACT_LIMIT
    states.QUANTILE_EXACT_LIMIT = n
    try:
        yield
    finally:
        states.QUANTILE_EXACT_LIMIT = old


def compute(fn: str, args: tuple[Any, ...], points: list[tuple[int, int, float]]) -> Any:
    kind = kind_for(fn)
    if not points:
        return kind.reduce({}, args)
    w = np.array([p[0] for p in points], dtype=np.int64)
    t = np.array([p[1] for p in points], dtype=np.int64)
    x = np.array([p[2] for p in points], dtype=np.float64)
    return kind.reduce(kind.lift(w, t, x, fn), args)


def split_merge(fn: str, args: tuple[Any, ...], data: list, shards: int, assign: list[int]):
    parts: list[list] = [[] for _ in range(shards)]
    for p, a in zip(data, assign, strict=False):
        parts[a % shards].append(p)
    for p in data[len(assign) :]:
        parts[0].append(p)
    partials = [compute(fn, args, part) for part in parts]
    # merge in two stages, as federation does: pairs first, then everything
    stage = [
        kind_for(fn).reduce(concat_states(partials[i : i + 2]), args) for i in range(0, shards, 2)
    ]
    return kind_for(fn).reduce(concat_states(stage), args)


def rows(fn: str, args: tuple[Any, ...], state: Any) -> list[tuple]:
    if not state or not len(state.get("w", ())):
        return []
    w, t, v = kind_for(fn).finalize(state, fn, args)
    ts = [None] * len(w) if t is None else t.tolist()
    return list(zip(w.tolist(), ts, v, strict=True))


def close(a: list[tuple], b: list[tuple]) -> bool:
    if len(a) != len(b):
        return False
    for ra, rb in zip(a, b, strict=True):
        if ra[:2] != rb[:2]:
            return False
        va, vb = ra[2], rb[2]
        if va is None or vb is None:
            if va is not vb:
                return False
        elif not math.isclose(va, vb, rel_tol=1e-9, abs_tol=1e-9):
            return False
    return True


@settings(max_examples=60, deadline=None)
@given(data=DATA, shards=SHARDS, assign=st.lists(st.integers(0, 5), max_size=120))
@pytest.mark.parametrize(("fn", "args"), FUNCS)
def test_split_and_merge_equals_whole(fn, args, data, shards, assign) -> None:
    whole = rows(fn, args, compute(fn, args, data))
    merged = rows(fn, args, split_merge(fn, args, data, shards, assign))
    assert close(merged, whole), (merged, whole)


@settings(max_examples=60, deadline=None)
@given(data=DATA, shards=SHARDS, assign=st.lists(st.integers(0, 5), max_size=120))
@pytest.mark.parametrize(("fn", "args"), [("median", ()), ("percentile", (75.0,))])
def test_sketched_quantiles_merge_exactly_and_stay_within_bound(
    fn, args, data, shards, assign
) -> None:
    with exact_limit(8):
        whole = rows(fn, args, compute(fn, args, data))
        merged = rows(fn, args, split_merge(fn, args, data, shards, assign))
    assert close(merged, whole)
    by_window: dict[int, list[float]] = defaultdict(list)
    for w, _, x in data:
        by_window[w].append(x)
    for w, _, got in whole:
        xs = sorted(by_window[w])
        n = len(xs)
        if n <= 8:  # still exact
            assert got == pytest.approx(reference(fn, args, xs))
            continue
        if fn == "median":
            candidates = [xs[(n - 1) // 2], xs[n // 2]]
        else:
            i = percentile_rank(n, args[0])
            if not 0 <= i < n:
                assert got is None
                continue
            candidates = [xs[i]]
        assert any(abs(got - c) <= SKETCH_ALPHA * abs(c) + 1e-12 for c in candidates), (got, xs)


def reference(fn: str, args: tuple[Any, ...], xs: list[float]) -> Any:
    xs = sorted(xs)
    n = len(xs)
    if fn == "median":
        return xs[n // 2] if n % 2 else (xs[n // 2 - 1] + xs[n // 2]) / 2
    i = percentile_rank(n, args[0])
    return xs[i] if 0 <= i < n else None


@settings(max_examples=80, deadline=None)
@given(data=DATA)
def test_whole_matches_naive_reference(data) -> None:
    by_window: dict[int, list[tuple[int, float]]] = defaultdict(list)
    for w, t, x in data:
        by_window[w].append((t, x))
    windows = sorted(by_window)
    pts = {w: by_window[w] for w in windows}

    def check(fn: str, args: tuple[Any, ...], expect: dict[int, Any], with_time: bool = False):
        got = rows(fn, args, compute(fn, args, data))
        assert [r[0] for r in got] == windows
        for w, t, v in got:
            e = expect[w]
            if with_time:
                assert (t, v) == e, (fn, w)
            elif e is None or isinstance(e, str):
                assert v == e
            else:
                assert v == pytest.approx(e, rel=1e-9, abs=1e-9), (fn, w)

    check("count", (), {w: len(p) for w, p in pts.items()})
    check("sum", (), {w: sum(x for _, x in p) for w, p in pts.items()})
    check("mean", (), {w: sum(x for _, x in p) / len(p) for w, p in pts.items()})
    check("min", (), {w: min(p, key=lambda q: (q[1], q[0])) for w, p in pts.items()}, True)
    check("max", (), {w: min(p, key=lambda q: (-q[1], q[0])) for w, p in pts.items()}, True)
    check("first", (), {w: min(p, key=lambda q: (q[0], -q[1])) for w, p in pts.items()}, True)
    check("last", (), {w: max(p, key=lambda q: (q[0], q[1])) for w, p in pts.items()}, True)
    check("spread", (), {w: max(x for _, x in p) - min(x for _, x in p) for w, p in pts.items()})
    std = {}
    for w, p in pts.items():
        xs = [x for _, x in p]
        std[w] = float(np.std(xs, ddof=1)) if len(xs) > 1 else None
    check("stddev", (), std)
    check("median", (), {w: reference("median", (), [x for _, x in p]) for w, p in pts.items()})
    check(
        "percentile",
        (33.0,),
        {w: reference("percentile", (33.0,), [x for _, x in p]) for w, p in pts.items()},
    )
    modes = {}
    for w, p in pts.items():
        counts = Counter(x for _, x in p)
        first_t = {x: min(t for t, y in p if y == x) for x in counts}
        modes[w] = min(counts, key=lambda x: (-counts[x], first_t[x], x))
    check("mode", (), modes)
    deltas = {}
    for w, p in pts.items():
        f = min(p, key=lambda q: (q[0], -q[1]))
        la = max(p, key=lambda q: (q[0], q[1]))
        deltas[w] = la[1] - f[1]
    check("delta", (), deltas)


@settings(max_examples=80, deadline=None)
@given(data=DATA, n=st.integers(1, 4))
def test_top_and_bottom_keep_the_n_extremes(data, n) -> None:
    for fn, sign in (("top", -1), ("bottom", 1)):
        got = rows(fn, (n,), compute(fn, (n,), data))
        by_window: dict[int, list[tuple[int, float]]] = defaultdict(list)
        for w, t, x in data:
            by_window[w].append((t, x))
        expect = []
        for w in sorted(by_window):
            best = sorted(by_window[w], key=lambda q: (sign * q[1], q[0]))[:n]
            expect.extend((w, t, x) for t, x in sorted(best))
        assert got == expect


@given(st.lists(st.floats(-1e300, 1e300, allow_nan=False), min_size=1, max_size=200))
def test_sketch_keys_are_ordered_and_within_alpha(xs) -> None:
    arr = np.array(sorted(xs))
    keys = sketch_key(arr)
    assert np.all(np.diff(keys) >= 0)
    back = sketch_value(keys)
    assert np.all(np.abs(back - arr) <= SKETCH_ALPHA * np.abs(arr) * (1 + 1e-9) + 1e-300)


def test_numeric_aggregates_refuse_strings() -> None:
    x = np.array(["a", "b"], dtype=object)
    w = np.zeros(2, dtype=np.int64)
    t = np.arange(2, dtype=np.int64)
    for fn in ("sum", "mean", "stddev", "median", "spread", "top", "integral"):
        with pytest.raises(QueryError, match="not defined for string"):
            kind_for(fn).lift(w, t, x, fn)
    # count, first, last, mode, distinct take any type
    for fn in ("count", "first", "last", "mode", "distinct"):
        kind = kind_for(fn)
        assert rows(fn, (), kind.reduce(kind.lift(w, t, x, fn), ()))


def test_unknown_aggregate_is_a_query_error() -> None:
    with pytest.raises(QueryError, match="unsupported aggregate function nope"):
        kind_for("nope")


@settings(max_examples=150, deadline=None)
@given(
    points=st.lists(
        st.tuples(st.integers(0, 200), st.integers(-20, 20).map(lambda x: x / 4)),
        min_size=0,
        max_size=60,
        unique_by=lambda p: p[0],
    ),
    width=st.integers(1, 50),
)
@pytest.mark.parametrize(("fn", "args"), FUNCS)
def test_series_fast_path_equals_lift_and_reduce(fn, args, points, width) -> None:
    points = sorted(points)
    t = np.array([p[0] for p in points], dtype=np.int64)
    x = np.array([p[1] for p in points], dtype=np.float64)
    w = t // width
    kind = kind_for(fn)
    fast = kind.from_series(w, t, x, fn, args)
    slow = kind.reduce(kind.lift(w, t, x, fn), args) if len(w) else {}
    assert rows(fn, args, fast) == rows(fn, args, slow)


@settings(max_examples=300, deadline=None)
@given(
    st.sampled_from(["min", "max"]),
    st.sampled_from([np.int64, np.uint64, np.float64]),
    st.lists(
        st.tuples(
            st.integers(0, 40),  # window
            st.integers(0, 5),  # time: few distinct, many ties
            st.sampled_from([0.0, -0.0, 1.0, -3.0, 2.5, 7.0, 1e300, -np.inf, np.inf]),
        ),
        min_size=256,
        max_size=700,
    ),
)
def test_dense_extreme_reduce_picks_the_rows_the_sort_picks(
    fn: str, dtype: type, rows: list[tuple[int, int, float]]
) -> None:
    from pulsar_cluster.query.states import SELECTOR_ORDER, _extreme_dense, _pick

    if dtype is not np.float64:
        rows = [(w, t, abs(v)) for w, t, v in rows if np.isfinite(v) and abs(v) < 1e18]
        rows = (rows * 256)[:256] if rows else [(0, 0, 1.0)] * 256
    w = np.array([r[0] for r in rows], dtype=np.int64)
    t = np.array([r[1] for r in rows], dtype=np.int64)
    v = np.array([r[2] for r in rows], dtype=dtype)
    s = {"w": w, "t": t, "v": v}
    dense = _extreme_dense(s, fn)
    assert dense is not None  # >= 256 rows, no NaN, dense windows
    keys, last = SELECTOR_ORDER[fn](s)
    want = _pick(s, *keys, last=last)
    for k in ("w", "t", "v"):
        assert dense[k].dtype == want[k].dtype
        assert dense[k].tobytes() == want[k].tobytes(), k  # bit for bit: -0.0 is not 0.0
