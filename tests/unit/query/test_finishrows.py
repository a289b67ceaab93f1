"""pulsar_cluster/query/finishrows.py: finalising window-less aggregates for all groups at once
gives exactly the series of the per-group path (finish.py `_agg_series`)."""

from __future__ import annotations

from typing import Any

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from pulsar_cluster.query.columnar import ColumnarPartial, Columns, group_count
from pulsar_cluster.query.finish import Finish, OutColumn, _agg_series, finalize
from pulsar_cluster.query.finishrows import ROW_WISE, _on_grid, one_row_series, window_series
from pulsar_cluster.query.partial import Partial
from pulsar_cluster.query.plan import MIN_TIME, ColumnSpec, Plan
from pulsar_cluster.query.states import kind_for

FNS = sorted(ROW_WISE)
POINTS = st.lists(st.tuples(st.integers(0, 99), st.integers(-50, 50)), max_size=4)


def _draw_finish(draw: Any, fill_values: tuple[float, ...], limit: int, offset: int) -> Finish:
    """A one-column Finish with any fill mode, order, LIMIT/OFFSET and SLIMIT/SOFFSET."""
    return Finish(
        columns=[OutColumn("c", 0)],
        fill=draw(st.sampled_from(["null", "none", "previous", "linear", "value"])),
        fill_value=draw(st.sampled_from(fill_values)),
        descending=draw(st.booleans()),
        limit=draw(st.integers(0, limit)),
        offset=draw(st.integers(0, offset)),
        slimit=draw(st.integers(0, 3)),
        soffset=draw(st.integers(0, 1)),
        always_tags=draw(st.booleans()),
    )


@st.composite
def cases(draw: Any) -> tuple[Plan, Finish, Partial]:
    ncols = draw(st.integers(1, 3))
    fns = [draw(st.sampled_from(FNS)) for _ in range(ncols)]
    floats = [draw(st.booleans()) for _ in range(ncols)]
    start = draw(st.sampled_from([MIN_TIME, 0, 1000]))
    plan = Plan(
        "select",
        "db",
        "m",
        start=start,
        columns=tuple(ColumnSpec(f"f{i}", fn) for i, fn in enumerate(fns)),
        group_by=("host",),
    )
    sources = draw(st.lists(st.integers(0, ncols - 1), min_size=1, max_size=3))
    finish = Finish(
        columns=[OutColumn(f"c{j}", s) for j, s in enumerate(sources)],
        fill=draw(st.sampled_from(["null", "none"])),
        descending=draw(st.booleans()),
        limit=draw(st.integers(0, 2)),
        offset=draw(st.integers(0, 1)),
        slimit=draw(st.integers(0, 3)),
        soffset=draw(st.integers(0, 1)),
        always_tags=draw(st.booleans()),
    )
    partial = Partial()
    for g in range(draw(st.integers(0, 5))):
        states = []
        for i, fn in enumerate(fns):
            pts = sorted(dict(draw(POINTS)).items())
            t = np.array([p[0] for p in pts], dtype=np.int64)
            x = np.array([p[1] for p in pts], dtype=np.float64 if floats[i] else np.int64)
            if draw(st.booleans()) and len(x):
                x = x.astype(np.float64)  # now and then a type that differs between groups
            w = np.zeros(len(t), dtype=np.int64)
            states.append(kind_for(fn).from_series(w, t, x, fn, ()))
        if any(len(s["w"]) for s in states):
            partial.groups[(("host", f"h{g}"),)] = states
    return plan, finish, partial


@settings(max_examples=300, deadline=None)
@given(case=cases())
def test_one_row_series_equals_the_per_group_path(case: tuple[Plan, Finish, Partial]) -> None:
    plan, finish, partial = case
    slow = [_agg_series(plan, finish, k, s) for k, s in sorted(partial.groups.items())]
    slow = [s for s in slow if s["values"]]
    got = one_row_series(plan, finish, partial)
    if got is not None:
        fast = [s for s in got[0] if s["values"]]
        assert fast == slow
        assert got[1] == sum(1 for s in partial.groups.values() if any(len(x["w"]) for x in s))
    # and through finalize (SOFFSET/SLIMIT, bounds) either way
    out = finalize(plan, finish, partial)
    expected = slow[finish.soffset :] if finish.soffset else slow
    expected = expected[: finish.slimit] if finish.slimit else expected
    assert out == expected


def test_windows_transforms_and_multi_row_aggregates_are_left_alone() -> None:
    plan = Plan("select", "db", "m", columns=(ColumnSpec("v", "last"),), every=10, start=0, end=30)
    assert one_row_series(plan, Finish(columns=[OutColumn("v", 0)]), Partial()) is None
    plan = Plan("select", "db", "m", columns=(ColumnSpec("v", "last"),))
    finish = Finish(columns=[OutColumn("v", 0, transform="abs")])
    assert one_row_series(plan, finish, Partial()) is None
    plan = Plan("select", "db", "m", columns=(ColumnSpec("v", "top", (2,)),))
    assert one_row_series(plan, Finish(columns=[OutColumn("v", 0)]), Partial()) is None


@settings(max_examples=200, deadline=None)
@given(case=cases(), flip=st.booleans())
def test_the_columnar_form_finalises_like_its_groups(
    case: tuple[Plan, Finish, Partial], flip: bool
) -> None:
    """A ColumnarPartial (rows of all groups per column; node/lastquery.py makes them)
    answers like its per-group form, which is built on first access of `groups`."""
    plan, finish, partial = case
    keys = sorted(partial.groups)
    states: list[Any] = []
    for c, col in enumerate(plan.columns):
        kind = kind_for(col.fn)
        rows = [(g, partial.groups[k][c]) for g, k in enumerate(keys)]
        rows = [(g, s) for g, s in rows if len(s["w"])]
        dtypes = {s[k].dtype for _, s in rows for k in kind.keys if k != "w"}
        if not rows or len(dtypes) > len(kind.keys):
            states.append(None)
            continue
        if flip:
            rows.reverse()  # rows need not come in key order
        state = {k: np.concatenate([s[k] for _, s in rows]) for k in kind.keys}
        state["w"] = np.array([g for g, _ in rows], dtype=np.int64)
        states.append(state)
    keep = sorted({int(g) for s in states if s is not None for g in s["w"]})
    if len(keep) != len(keys):
        return  # the columnar form lists only groups with a row
    empty = [{k: np.empty(0, np.int64) for k in kind_for(c.fn).keys} for c in plan.columns]
    columnar = ColumnarPartial(Columns(keys, states, empty))
    assert group_count(columnar) == len(keys)
    fast = finalize(plan, finish, columnar)
    assert columnar.columns is not None  # finalize did not need the per-group form
    ordinary = Partial(dict(columnar.groups))
    assert columnar.columns is None
    assert fast == finalize(plan, finish, ordinary)
    columnar.groups = {}
    assert group_count(columnar) == 0 and columnar.groups == {}


@st.composite
def window_cases(draw: Any) -> tuple[Plan, Finish, Partial]:
    """GROUP BY time(10) over [0, 10 * nwin): groups with every window (the batched path's
    case) or some missing (its fallback), values of one type or of both across groups."""
    fn = draw(st.sampled_from(FNS))
    nwin = draw(st.integers(1, 4))
    plan = Plan(
        "select",
        "db",
        "m",
        start=0,
        end=10 * nwin,
        every=10,
        columns=(ColumnSpec("f", fn),),
        group_by=("host",),
    )
    finish = _draw_finish(draw, (0, -1.5), 2, 1)
    mixed = draw(st.booleans())
    partial = Partial()
    for g in range(draw(st.integers(0, 5))):
        full = draw(st.booleans())
        pts: list[tuple[int, int]] = []
        for win in range(nwin):
            n = draw(st.integers(1 if full else 0, 3))
            offsets = sorted(draw(st.sets(st.integers(0, 9), min_size=n, max_size=n)))
            pts += [(10 * win + o, draw(st.integers(-50, 50))) for o in offsets]
        if not pts:
            continue
        t = np.array([p[0] for p in pts], dtype=np.int64)
        floats = mixed and draw(st.booleans())
        x = np.array([p[1] for p in pts], dtype=np.float64 if floats else np.int64)
        state = kind_for(fn).from_series(t // 10, t, x, fn, ())
        partial.groups[(("host", f"h{g}"),)] = [state]
    return plan, finish, partial


@settings(max_examples=400, deadline=None)
@given(case=window_cases())
def test_window_series_equals_the_per_group_path(case: tuple[Plan, Finish, Partial]) -> None:
    plan, finish, partial = case
    slow = [_agg_series(plan, finish, k, s) for k, s in sorted(partial.groups.items())]
    got = window_series(plan, finish, partial)
    if got is not None:
        assert got == slow
    out = finalize(plan, finish, partial)
    slow = [s for s in slow if s["values"]]
    expected = slow[finish.soffset :] if finish.soffset else slow
    expected = expected[: finish.slimit] if finish.slimit else expected
    assert out == expected


def test_window_series_takes_the_common_case() -> None:
    """Every group with every window: answered by the batched path (not the fallback)."""
    plan = Plan("select", "db", "m", start=0, end=30, every=10, columns=(ColumnSpec("f", "mean"),))
    partial = Partial()
    for g in range(3):
        t = np.array([1, 11, 21], dtype=np.int64)
        x = np.array([g, g + 1, g + 2], dtype=np.int64)
        partial.groups[(("host", f"h{g}"),)] = [
            kind_for("mean").from_series(t // 10, t, x, "mean", ())
        ]
    got = window_series(plan, Finish(columns=[OutColumn("mean", 0)]), partial)
    assert got is not None and [s["values"] for s in got][1] == [[0, 1.0], [10, 2.0], [20, 3.0]]


def typed(x: Any) -> Any:
    """x with every scalar paired with its type: 1 and 1.0 (and lists and tuples) differ."""
    if isinstance(x, dict):
        return {k: typed(v) for k, v in x.items()}
    if isinstance(x, list | tuple):
        return (type(x).__name__, [typed(v) for v in x])
    return (type(x).__name__, x)


@st.composite
def gappy_window_cases(draw: Any) -> tuple[Plan, Finish, Partial]:
    """GROUP BY time(10) over [start, start + 10 * span) with start anywhere in a window (the
    first window partly outside, as TSBS's queries), groups missing windows or having none at
    all, nulls-free values of one type or of both across groups, every fill mode."""
    fn = draw(st.sampled_from(FNS))
    start = draw(st.integers(0, 9))
    span = draw(st.integers(1, 6))
    plan = Plan(
        "select",
        "db",
        "m",
        start=start,
        end=start + 10 * span,
        every=10,
        columns=(ColumnSpec("f", fn),),
        group_by=("host",),
    )
    finish = _draw_finish(draw, (0, -1.5, 7), 3, 2)
    floats = draw(st.booleans())
    mixed = draw(st.booleans())
    partial = Partial()
    for g in range(draw(st.integers(0, 4))):
        times = draw(st.sets(st.integers(start, plan.end - 1), max_size=12))
        pts = sorted((t, draw(st.integers(-50, 50))) for t in times)
        t = np.array([p[0] for p in pts], dtype=np.int64)
        as_float = draw(st.booleans()) if mixed else floats
        x = np.array([p[1] for p in pts], dtype=np.float64 if as_float else np.int64)
        kind = kind_for(fn)
        if len(t):
            state = kind.from_series(t // 10, t, x, fn, ())
        else:
            state = {k: np.empty(0, dtype=x.dtype if k != "w" else np.int64) for k in kind.keys}
        partial.groups[(("host", f"h{g}"),)] = [state]
    return plan, finish, partial


@settings(max_examples=500, deadline=None)
@given(case=gappy_window_cases())
def test_window_series_fills_like_the_per_group_path(case: tuple[Plan, Finish, Partial]) -> None:
    """The batched path answers groups with missing windows too (each filled on its own) and a
    lone group from its own state: exactly the per-group path's series, value types included."""
    plan, finish, partial = case
    slow = [_agg_series(plan, finish, k, s) for k, s in sorted(partial.groups.items())]
    got = window_series(plan, finish, partial)
    states = [s[0] for s in partial.groups.values()]
    if all(len({s[k].dtype for s in states}) <= 1 for k in kind_for(plan.columns[0].fn).keys):
        assert got is not None  # one dtype per state key: the batched path answers
    if got is not None:
        assert typed(got) == typed(slow)
    out = finalize(plan, finish, partial)
    slow = [s for s in slow if s["values"]]
    expected = slow[finish.soffset :] if finish.soffset else slow
    expected = expected[: finish.slimit] if finish.slimit else expected
    assert typed(out) == typed(expected)


@settings(max_examples=300, deadline=None)
@given(
    count=st.integers(1, 40),
    nwin=st.integers(0, 20),
    change=st.one_of(st.none(), st.tuples(st.integers(0, 10**6), st.integers(-1, 21))),
    cut=st.booleans(),
)
def test_the_window_grid_check_is_exact_small_or_large(
    count: int, nwin: int, change: tuple[int, int] | None, cut: bool
) -> None:
    """`_on_grid` (a list comparison up to _LIST_CHECK_ROWS rows, numpy above) says whether
    w is 0..nwin-1 repeated `count` times, whatever one changed or missing row does."""
    w = np.tile(np.arange(nwin, dtype=np.int64), count)
    if change is not None and len(w):
        w[change[0] % len(w)] = change[1]
    if cut and len(w):
        w = w[:-1]
    want = w.tolist() == list(range(nwin)) * count
    assert _on_grid(w, count, nwin) is want
