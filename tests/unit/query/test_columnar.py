"""pulsar_cluster/query/columnar.py: the columnar partial merges like the per-group partials
(partial.merge), survives its wire form (version 2) exactly, and bad frames are refused."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pulsar_cluster.errors import QueryError
from pulsar_cluster.query.columnar import (
    COLUMNAR_VERSION,
    ColumnarPartial,
    Columns,
    decode_any,
    encode_any,
    merge_columns,
)
from pulsar_cluster.query.finish import Finish, OutColumn, finalize
from pulsar_cluster.query.finishrows import ROW_WISE
from pulsar_cluster.query.partial import (
    PARTIAL_MAGIC,
    Partial,
    decode_partial,
    encode_partial,
    merge,
    pack_body,
)
from pulsar_cluster.query.plan import ColumnSpec, Plan
from pulsar_cluster.query.states import kind_for

HOSTS = ["a", "b", "c", "d", "e"]


def columnar(plan: Plan, groups: dict[Any, list[dict[str, np.ndarray]]]) -> ColumnarPartial:
    """The columnar form of one-row-per-group states (what node/lastquery.py builds)."""
    keys = sorted(groups)
    states: list[Any] = []
    for c, col in enumerate(plan.columns):
        rows = [(g, groups[k][c]) for g, k in enumerate(keys) if len(groups[k][c]["w"])]
        if not rows:
            states.append(None)
            continue
        state = {k: np.concatenate([s[k] for _, s in rows]) for k in kind_for(col.fn).keys}
        state["w"] = np.array([g for g, _ in rows], dtype=np.int64)
        states.append(state)
    keys = [k for k in keys if any(len(s["w"]) for s in groups[k])]
    empty = [{k: np.empty(0, np.int64) for k in kind_for(c.fn).keys} for c in plan.columns]
    return ColumnarPartial(Columns(keys, _compact(states, groups, plan), empty), 2, 3)


def _compact(states: list[Any], groups: dict[Any, Any], plan: Plan) -> list[Any]:
    # Group places must index the listed keys (those with a row): renumber.
    every = sorted(groups)
    listed = [k for k in every if any(len(s["w"]) for s in groups[k])]
    place = np.array([listed.index(k) if k in listed else -1 for k in every], dtype=np.int64)
    return [None if s is None else {**s, "w": place[s["w"]]} for s in states]


@st.composite
def shards(draw: Any) -> tuple[Plan, list[ColumnarPartial]]:
    fns = draw(st.lists(st.sampled_from(sorted(ROW_WISE)), min_size=1, max_size=3))
    floats = draw(st.booleans())
    plan = Plan(
        "select",
        "db",
        "m",
        columns=tuple(ColumnSpec(f"f{i}", fn) for i, fn in enumerate(fns)),
        group_by=("host",),
    )
    parts = []
    for _ in range(draw(st.integers(1, 3))):
        groups: dict[Any, list[dict[str, np.ndarray]]] = {}
        for host in draw(st.lists(st.sampled_from(HOSTS), unique=True, max_size=4)):
            states = []
            for fn in fns:
                pts = draw(st.lists(st.tuples(st.integers(0, 20), st.integers(-9, 9)), max_size=3))
                pts = sorted(dict(pts).items())
                t = np.array([p[0] for p in pts], dtype=np.int64)
                x = np.array([p[1] for p in pts], dtype=np.float64 if floats else np.int64)
                w = np.zeros(len(t), dtype=np.int64)
                states.append(kind_for(fn).from_series(w, t, x, fn, ()))
            groups[(("host", host),)] = states
        parts.append(columnar(plan, groups))
    return plan, parts


def _finish(plan: Plan) -> Finish:
    return Finish(columns=[OutColumn(f"c{i}", i) for i in range(len(plan.columns))])


@settings(max_examples=200, deadline=None)
@given(case=shards())
def test_columnar_merge_and_wire_equal_the_per_group_ones(
    case: tuple[Plan, list[ColumnarPartial]],
) -> None:
    plan, parts = case
    finish = _finish(plan)
    ordinary = [Partial(dict(p.groups), series_touched=2, points_scanned=3) for p in parts]
    expected = finalize(plan, finish, merge(plan, ordinary))
    fresh = [decode_any(encode_any(columnar(plan, dict(p.groups)), plan)) for p in parts]
    assert all(isinstance(p, ColumnarPartial) and p.columns is not None for p in fresh)
    merged = merge_columns(plan, fresh)
    assert merged is not None and merged.columns is not None
    assert merged.series_touched == 2 * len(parts) and merged.points_scanned == 3 * len(parts)
    assert finalize(plan, finish, merged) == expected
    again = decode_any(encode_any(merged, plan))
    assert finalize(plan, finish, again) == expected
    # the per-group form of a merged columnar partial is what merge() gives, too
    assert finalize(plan, finish, Partial(dict(again.groups))) == expected


def test_ordinary_partials_keep_version_1_and_mixed_lists_are_not_merged_here() -> None:
    plan = Plan("select", "db", "m", columns=(ColumnSpec("v", "last"),))
    p = Partial(series_touched=1)
    data = encode_any(p, plan)
    assert data[4] == 1 and decode_any(data) == decode_partial(encode_partial(p))
    assert merge_columns(plan, [p]) is None
    assert merge_columns(plan, []) is None


@pytest.mark.parametrize(
    "columns",
    [
        {"k": [], "f": ["last"], "s": []},  # fewer states than functions
        {"k": [], "f": ["last"], "s": [{"w": np.zeros(1, np.int64)}]},  # keys of another kind
        {"k": [[["h", "a"]]], "f": ["last"], "s": [{"w": np.array([3]), "t": [1], "v": [2]}]},
        {"k": [], "f": ["last"]},
    ],
)
def test_malformed_columnar_partials_are_refused(columns: dict[str, Any]) -> None:
    body = {"g": [], "r": [], "m": {}, "ps": 0, "st": 0, "c": columns}
    with pytest.raises(QueryError):
        decode_any(PARTIAL_MAGIC + bytes([COLUMNAR_VERSION]) + pack_body(body))
    with pytest.raises(QueryError):
        decode_any(PARTIAL_MAGIC + bytes([COLUMNAR_VERSION]) + b"\xc1")
    # a version-1 reader refuses a version-2 frame instead of misreading it
    with pytest.raises(QueryError):
        decode_partial(PARTIAL_MAGIC + bytes([COLUMNAR_VERSION]) + pack_body(body))
