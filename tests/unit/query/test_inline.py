"""Small queries run on the event loop (no thread hop), big ones in a thread; either way the
answer is the same. Checks which queries count as small, and that answers agree with a run
where everything goes through threads. Also the union of field times of raw reads."""

from __future__ import annotations

import asyncio
from pathlib import Path

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

import node.inline as inline_rule
from node.engine.engine import EngineOptions
from node.local import LocalNode
from node.query import EngineSource, _union_times
from pulsar_cluster.lineprotocol import parse_line_protocol
from pulsar_cluster.query import run
from pulsar_cluster.query.influxql.parser import parse_query
from pulsar_cluster.query.influxql.planner import execute_statement
from pulsar_cluster.query.partial import Partial, RawBlock
from pulsar_cluster.query.plan import Plan

S = 1_000_000_000
H = 3600 * S
T0 = 1_767_225_600 * S

QUERIES = [
    # small: one host, one field, one hour
    f"SELECT max(v) FROM cpu WHERE host = 'h1' AND time >= {T0} AND time < {T0 + H} "
    "GROUP BY time(1m)",
    # small: two hosts (OR of equalities), two fields
    f"SELECT mean(v), max(w) FROM cpu WHERE (host = 'h1' OR host = 'h2') AND time >= {T0} "
    f"AND time < {T0 + H} GROUP BY time(10m), host",
    # big: a regex
    f"SELECT max(v) FROM cpu WHERE host =~ /h1/ AND time >= {T0} AND time < {T0 + H} "
    "GROUP BY time(1m)",
    # big: every host, a day
    f"SELECT count(v) FROM cpu WHERE time >= {T0} AND time < {T0 + 24 * H} GROUP BY host",
    # raw points
    f"SELECT v FROM cpu WHERE host = 'h3' AND time >= {T0} AND time < {T0 + 600 * S}",
]


def _node(path: Path) -> LocalNode:
    node = LocalNode(str(path), EngineOptions(fsync="never"))
    rng = np.random.default_rng(3)
    lines = [
        f"cpu,host=h{h} v={rng.integers(0, 100)}i,w={rng.random():.3f} {T0 + t * 10 * S}"
        for t in range(360 * 3)
        for h in range(6)
    ]
    node.engine.apply(parse_line_protocol("\n".join(lines).encode(), "db"))
    return node


def _answers(node: LocalNode) -> list[object]:
    async def go() -> list[object]:
        out = []
        for text in QUERIES:
            for stmt in parse_query(text):
                out.append(await execute_statement(stmt, "db", node, T0 + 48 * H))
        return out

    return asyncio.run(go())


def test_small_selects_are_recognised(tmp_path: Path) -> None:
    node = _node(tmp_path)
    decided: list[tuple[Plan, bool]] = []
    original = node._small_select

    def spy(plan: Plan, source: EngineSource) -> list[bytes] | None:
        series = original(plan, source)
        if not decided or decided[-1][0] is not plan:  # asked again by query(): one decision
            decided.append((plan, series is not None))
        return series

    node._small_select = spy  # type: ignore[method-assign]
    try:
        _answers(node)
    finally:
        asyncio.run(node.close())
    # raw selects are not inlined by this rule (their plan kind is "raw")
    assert [small for _, small in decided] == [True, True, False, False, False]


def test_answers_do_not_depend_on_where_the_query_runs(tmp_path: Path, monkeypatch) -> None:
    node = _node(tmp_path)
    try:
        inline = _answers(node)
        monkeypatch.setattr(inline_rule, "INLINE_SERIES_FIELD_HOURS", 0)
        monkeypatch.setattr(run, "INLINE_ANSWER_ROWS", -1)
        threaded = _answers(node)
    finally:
        asyncio.run(node.close())
    assert inline == threaded
    assert all(a.get("series") for a in inline)  # type: ignore[attr-defined]


def test_small_answer_bounds_rows() -> None:
    plan = Plan(kind="select", database="db", start=0, end=60 * S, every=S)
    partial = Partial(groups={(("host", "a"),): []})
    assert run.small_answer(plan, partial)  # 61 windows x 1 group
    many = Partial(groups={(("host", str(i)),): [] for i in range(100)})
    assert not run.small_answer(plan, many)  # 100 groups x 61 windows
    assert not run.small_answer(Plan(kind="select", database="db", every=S), partial)  # unbounded
    t = np.arange(2000, dtype=np.int64)
    raw = Partial(raw={(): [RawBlock({}, t, {}, {})]})
    assert not run.small_answer(Plan(kind="raw", database="db"), raw)
    assert run.small_answer(
        Plan(kind="raw", database="db"), Partial(raw={(): [RawBlock({}, t[:10], {}, {})]})
    )


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.lists(st.integers(-(2**63), 2**63 - 1), max_size=30).map(
            lambda v: np.unique(np.array(v, dtype=np.int64))
        ),
        min_size=1,
        max_size=5,
    ),
    st.booleans(),
)
def test_union_of_field_times_is_sorted_unique_union(parts, shared: bool) -> None:
    """Raw reads join the fields of a series on the union of their timestamps."""
    if shared:
        parts = [parts[0].copy() for _ in parts]
    got = _union_times(parts)
    assert got.tolist() == np.unique(np.concatenate(parts)).tolist()
