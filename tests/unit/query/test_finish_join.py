"""pulsar_cluster/query/finish.py `_joined`: several answer columns joined into rows by time.
Columns with the same times, each once (a filled window grid) are zipped; the result equals
the general placement by time (`_placed_rows`), value types included."""

from __future__ import annotations

from typing import Any

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from pulsar_cluster.query.finish import Finish, OutColumn, _joined, _placed_rows, finalize
from pulsar_cluster.query.partial import Partial
from pulsar_cluster.query.plan import ColumnSpec, Plan
from pulsar_cluster.query.states import kind_for

VALUES = st.one_of(st.none(), st.integers(-5, 5), st.floats(-5, 5, allow_nan=False))


def typed(x: Any) -> Any:
    """x with every scalar paired with its type: 1 and 1.0 differ."""
    if isinstance(x, list | tuple):
        return (type(x).__name__, [typed(v) for v in x])
    return (type(x).__name__, x)


@st.composite
def column_sets(draw: Any) -> list[tuple[np.ndarray, list[Any]]]:
    """2-4 columns: the same sorted distinct times (the zipped case), the same times with a
    repeat or out of order, or times of their own."""
    ncols = draw(st.integers(2, 4))
    shared = draw(st.lists(st.integers(0, 30), max_size=8))
    how = draw(st.sampled_from(["grid", "same", "own"]))
    if how == "grid":
        shared = sorted(set(shared))
    cols = []
    for _ in range(ncols):
        times = shared if how != "own" else draw(st.lists(st.integers(0, 30), max_size=8))
        values = [draw(VALUES) for _ in times]
        cols.append((np.array(times, dtype=np.int64), values))
    return cols


@settings(max_examples=400, deadline=None)
@given(cols=column_sets())
def test_joined_equals_placement_by_time(cols: list[tuple[np.ndarray, list[Any]]]) -> None:
    assert typed(_joined(cols)) == typed(_placed_rows(cols))


@settings(max_examples=150, deadline=None)
@given(
    fns=st.lists(st.sampled_from(["max", "mean", "count", "last", "sum"]), min_size=2, max_size=3),
    windows=st.lists(st.sets(st.integers(0, 5), max_size=6), min_size=3, max_size=3),
    fill=st.sampled_from(["null", "none", "previous", "linear", "value"]),
    descending=st.booleans(),
    limit=st.integers(0, 3),
)
def test_several_columns_with_windows_answer_every_window_once(
    fns: list[str], windows: list[set[int]], fill: str, descending: bool, limit: int
) -> None:
    """Through finalize: one row per window with each column's value at its window (None,
    the fill value or a filled value where it has none), whichever way the rows were joined."""
    plan = Plan(
        "select",
        "db",
        "m",
        start=0,
        end=60,
        every=10,
        columns=tuple(ColumnSpec(f"f{i}", fn) for i, fn in enumerate(fns)),
    )
    finish = Finish(
        columns=[OutColumn(f"c{i}", i) for i in range(len(fns))],
        fill=fill,
        fill_value=-1,
        descending=descending,
        limit=limit,
    )
    states = []
    for i, fn in enumerate(fns):
        t = np.array(sorted(10 * w + 1 for w in windows[i]), dtype=np.int64)
        x = (t // 10 + i).astype(np.int64)
        states.append(kind_for(fn).from_series(t // 10, t, x, fn, ()))
    out = finalize(plan, finish, Partial({(): states}))
    rows = out[0]["values"] if out else []
    times = [r[0] for r in rows]
    assert len(set(times)) == len(times)  # each window once
    assert times == sorted(times, reverse=descending)
    if fill != "none" and not limit:
        assert len(rows) == 6
    for r in rows:
        w = r[0] // 10
        for i, fn in enumerate(fns):
            if w in windows[i]:
                want = {"count": 1, "mean": float(w + i)}.get(fn, w + i)
                assert typed(r[i + 1]) == typed(want)
            elif fill in ("null", "none"):
                assert r[i + 1] == (0 if fn == "count" and fill == "null" else None)
            elif fill == "value":
                assert r[i + 1] == -1
