"""The node executor: tag predicates resolve through the index like a naive evaluation; a
query over series split across shards (encoded, decoded, merged) answers like one shard; the
real engine answers like the in-memory reference; limits end a query with a 4xx."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from node.engine.engine import Engine, EngineOptions
from node.query import EngineSource, execute_encoded, execute_partial
from pulsar_cluster.batch import Column, FieldType, WriteBatch
from pulsar_cluster.errors import LimitExceededError, QueryError
from pulsar_cluster.query.compile import Item, SelectSpec, compile_select
from pulsar_cluster.query.conditions import resolve_series
from pulsar_cluster.query.finish import finalize
from pulsar_cluster.query.partial import decode_partial, encode_plan, merge
from pulsar_cluster.query.plan import Limits, Plan
from pulsar_cluster.query.where import Where
from pulsar_cluster.series import make_series_key
from tests.unit.query.memsource import MemSource

HOSTS = ["h0", "h1", "h2", "h3"]
REGIONS = ["eu", "us", None]
SERIES = st.lists(
    st.tuples(
        st.sampled_from(HOSTS),
        st.sampled_from(REGIONS),
        st.lists(st.tuples(st.integers(0, 99), st.integers(-50, 50)), max_size=15),
    ),
    min_size=1,
    max_size=8,
    unique_by=lambda s: (s[0], s[1]),
)
TAG_LEAF = st.one_of(
    st.tuples(st.sampled_from(["host", "region"]), st.sampled_from(["=", "!="]),
              st.sampled_from([*HOSTS, "eu", "us", ""])).map(lambda t: ["cmp", *t]),
    st.tuples(st.sampled_from(["host", "region"]), st.sampled_from(["=~", "!~"]),
              st.sampled_from(["^h[01]$", "u", "^$", "."])).map(lambda t: ["cmp", *t]),
    st.tuples(st.sampled_from(["host", "region"]), st.lists(st.sampled_from([*HOSTS, "eu"]),
              max_size=3)).map(lambda t: ["in", *t]),
)  # fmt: skip
TAG_EXPR = st.recursive(
    TAG_LEAF,
    lambda inner: st.tuples(st.sampled_from(["and", "or"]), inner, inner).map(list),
    max_leaves=5,
)


def tags_of(host: str, region: str | None) -> dict[str, str]:
    return {"host": host} if region is None else {"host": host, "region": region}


def build(series: list, shards: int = 1, assign: list[int] | None = None) -> list[MemSource]:
    sources = [MemSource() for _ in range(shards)]
    for i, (host, region, pts) in enumerate(series):
        src = sources[(assign[i] if assign and i < len(assign) else i) % shards]
        src.add("db", "cpu", tags_of(host, region), "v", FieldType.INTEGER,
                [p[0] for p in pts], [p[1] for p in pts])  # fmt: skip
    return sources


def naive_match(expr: list, tags: dict[str, str]) -> bool:
    op = expr[0]
    if op == "and":
        return naive_match(expr[1], tags) and naive_match(expr[2], tags)
    if op == "or":
        return naive_match(expr[1], tags) or naive_match(expr[2], tags)
    if op == "in":
        return tags.get(expr[1], "") in expr[2]
    value = tags.get(expr[1], "")
    return {
        "=": lambda: value == expr[3],
        "!=": lambda: value != expr[3],
        "=~": lambda: re.search(expr[3], value) is not None,
        "!~": lambda: re.search(expr[3], value) is None,
    }[expr[2]]()


@settings(max_examples=150, deadline=None)
@given(series=SERIES, expr=TAG_EXPR)
def test_tag_predicates_resolve_like_a_naive_evaluation(series, expr) -> None:
    src = build(series)[0]
    got = resolve_series(expr, src, "db", "cpu")
    want = {
        b"db\x00" + make_series_key("cpu", tags_of(h, r))
        for h, r, _ in series
        if naive_match(expr, tags_of(h, r))
    }
    assert got == want


SPECS = st.one_of(
    st.tuples(
        st.sampled_from(
            [
                "count",
                "sum",
                "mean",
                "max",
                "first",
                "median",
                "stddev",
                "spread",
                "percentile",
                "distinct",
                "top",
            ]
        ),
        st.sampled_from([0, 10, 25]),
        st.one_of(st.none(), st.just(("host",)), st.just(("region", "host"))),
    ),
    st.tuples(st.just(None), st.just(0), st.one_of(st.none(), st.just(()), st.just(("host",)))),
)


def spec_for(fn: str | None, every: int, group_by: Any, expr: list, fw: Any) -> SelectSpec:
    args: tuple = (50.0,) if fn == "percentile" else (2,) if fn == "top" else ()
    items = [Item("v", fn, args)]
    where = Where(start=0, end=100, tags=expr, fields=fw, has_lower=True, has_upper=True)
    return SelectSpec("db", "cpu", items, where, every=every, group_by=group_by)


@settings(max_examples=120, deadline=None)
@given(
    series=SERIES,
    spec=SPECS,
    expr=TAG_EXPR,
    shards=st.integers(1, 4),
    assign=st.lists(st.integers(0, 3), max_size=8),
    fw=st.one_of(st.none(), st.just(["fcmp", "v", ">", 0])),
)
def test_sharded_query_answers_like_one_shard(series, spec, expr, shards, assign, fw) -> None:
    fn, every, group_by = spec
    plan, finish = compile_select(spec_for(fn, every, group_by, expr, fw), now=10**6)
    whole = finalize(plan, finish, execute_partial(plan, build(series)[0]))
    parts = [
        decode_partial(execute_encoded(encode_plan(plan), s)) for s in build(series, shards, assign)
    ]
    split = finalize(plan, finish, merge(plan, parts))
    assert approx_equal(split, whole)


def test_fill_previous_linear_value_and_none() -> None:
    src = MemSource()
    src.add("db", "m", {"h": "a"}, "v", FieldType.FLOAT, [0, 30, 35], [1.0, 4.0, 6.0])
    base = SelectSpec(
        "db", "m", [Item("v", "mean")], Where(0, 50, None, None, True, True), every=10
    )
    expect = {
        "null": [[0, 1.0], [10, None], [20, None], [30, 5.0], [40, None]],
        "none": [[0, 1.0], [30, 5.0]],
        "previous": [[0, 1.0], [10, 1.0], [20, 1.0], [30, 5.0], [40, 5.0]],
        "linear": [[0, 1.0], [10, 1 + 4 / 3], [20, 1 + 4 / 3 * 2], [30, 5.0], [40, None]],
        "value": [[0, 1.0], [10, -1], [20, -1], [30, 5.0], [40, -1]],
    }
    for fill, rows in expect.items():
        base.fill, base.fill_value = fill, -1
        plan, finish = compile_select(base, now=0)
        out = finalize(plan, finish, execute_partial(plan, src))
        assert out[0]["values"] == rows, fill


def test_transforms_over_windows_and_raw_points() -> None:
    src = MemSource()
    t = [0, 10**9, 2 * 10**9, 3 * 10**9]
    src.add("db", "m", {}, "v", FieldType.FLOAT, t, [1.0, 3.0, 2.0, 6.0])
    where = Where(0, 4 * 10**9, None, None, True, True)

    def run(item: Item, every: int = 0) -> list:
        plan, finish = compile_select(SelectSpec("db", "m", [item], where, every=every), 0)
        return finalize(plan, finish, execute_partial(plan, src))[0]["values"]

    assert run(Item("v", None, (), "derivative", (10**9,))) == [
        [10**9, 2.0], [2 * 10**9, -1.0], [3 * 10**9, 4.0]
    ]  # fmt: skip
    assert run(Item("v", None, (), "non_negative_derivative", (10**9,))) == [
        [10**9, 2.0], [3 * 10**9, 4.0]
    ]  # fmt: skip
    assert run(Item("v", None, (), "difference")) == [
        [10**9, 2.0],
        [2 * 10**9, -1.0],
        [3 * 10**9, 4.0],
    ]
    assert run(Item("v", None, (), "cumulative_sum")) == [
        [0, 1.0], [10**9, 4.0], [2 * 10**9, 6.0], [3 * 10**9, 12.0]
    ]  # fmt: skip
    assert run(Item("v", None, (), "moving_average", (2,))) == [
        [10**9, 2.0], [2 * 10**9, 2.5], [3 * 10**9, 4.0]
    ]  # fmt: skip
    # derivative of 2 s window means: (1+3)/2=2 then (2+6)/2=4 -> +2 per 2 s = 1 per second
    assert run(Item("v", "mean", (), "derivative", (10**9,)), every=2 * 10**9) == [[2 * 10**9, 1.0]]
    # integral: trapezoids 2 + 2.5 + 4 = 8.5 value-seconds
    assert run(Item("v", "integral", (10**9,))) == [[0, 8.5]]
    assert run(Item("v", "rate", (10**9,))) == [[0, 5.0 / 3.0]]
    assert run(Item("v", "delta")) == [[0, 5.0]]


def test_selector_without_windows_reports_the_point_time() -> None:
    src = MemSource()
    src.add("db", "m", {}, "v", FieldType.FLOAT, [5, 7, 9], [1.0, 8.0, 2.0])
    where = Where(0, 100, None, None, True, True)
    plan, finish = compile_select(SelectSpec("db", "m", [Item("v", "max")], where), 0)
    assert finalize(plan, finish, execute_partial(plan, src))[0]["values"] == [[7, 8.0]]
    plan, finish = compile_select(
        SelectSpec("db", "m", [Item("v", "max"), Item("v", "mean")], where), 0
    )
    assert finalize(plan, finish, execute_partial(plan, src))[0]["values"] == [[0, 8.0, 11 / 3]]


def test_limits_end_the_query_with_limit_exceeded() -> None:
    src = build([("h0", None, [(i, i) for i in range(10)]), ("h1", None, [(1, 1)])])[0]
    where = Where(0, 100, None, None, True, True)
    spec = SelectSpec("db", "cpu", [Item("v", "sum")], where)
    plan, _ = compile_select(spec, 0, Limits(max_points=5))
    with pytest.raises(LimitExceededError, match="more than 5 points") as info:
        execute_partial(plan, src)
    assert info.value.status_code == 422
    plan, _ = compile_select(spec, 0, Limits(max_series=1))
    with pytest.raises(LimitExceededError, match="matches 2 series"):
        execute_partial(plan, src)
    plan, _ = compile_select(spec, 0, Limits(timeout_ms=0))
    with pytest.raises(LimitExceededError, match="time limit"):
        execute_partial(plan, src)
    with pytest.raises(LimitExceededError, match="windows"):
        compile_select(
            SelectSpec("db", "cpu", [Item("v", "sum")], where, every=1), 0, Limits(max_windows=10)
        )


def test_mixing_and_misuse_are_query_errors() -> None:
    where = Where(0, 100, None, None, True, True)
    with pytest.raises(QueryError, match="mixing aggregate"):
        compile_select(SelectSpec("d", "m", [Item("v", "sum"), Item("v")], where), 0)
    with pytest.raises(QueryError, match="cannot be combined"):
        compile_select(SelectSpec("d", "m", [Item("v", "top", (2,)), Item("v", "sum")], where), 0)
    with pytest.raises(QueryError, match="GROUP BY requires"):
        compile_select(SelectSpec("d", "m", [Item("v")], where, every=10), 0)
    with pytest.raises(QueryError, match="lower limit"):
        compile_select(SelectSpec("d", "m", [Item("v", "sum")], Where(), every=10), 0)


def test_engine_source_answers_like_the_reference(tmp_path: Path) -> None:
    engine = Engine(str(tmp_path), EngineOptions(fsync="never", block_points=7))
    ref = MemSource()
    rng = np.random.default_rng(7)
    try:
        for round_ in range(3):
            batch = WriteBatch("db")
            for h in HOSTS:
                ts = rng.choice(1000, size=40, replace=False).astype(np.int64)
                vals = rng.normal(size=40)
                key = make_series_key("cpu", {"host": h})
                batch.series[key] = {"v": Column(FieldType.FLOAT, ts, vals)}
                old = ref.data.get(b"db\x00" + key, {}).get("v")
                all_t = np.r_[old[1], ts] if old else ts
                all_v = np.r_[old[2], vals] if old else vals
                ref.add(
                    "db", "cpu", {"host": h}, "v", FieldType.FLOAT, all_t.tolist(), all_v.tolist()
                )
            engine.apply(batch)
            if round_ < 2:
                engine.flush()  # data in two SSTables and the memtable
        for fn in ("mean", "max", "median", "count", None):
            for expr in (["true"], ["cmp", "host", "=~", "^h[12]$"]):
                spec = SelectSpec(
                    "db", "cpu", [Item("v", fn)], Where(100, 900, expr, None, True, True),
                    every=100 if fn else 0, group_by=("host",),
                )  # fmt: skip
                plan, finish = compile_select(spec, 0)
                got = finalize(plan, finish, execute_partial(plan, EngineSource(engine)))
                want = finalize(plan, finish, execute_partial(plan, ref))
                assert got == want
                assert got
        meta = Plan(kind="meta", database="db", meta="tag_values", tag_keys=("host",))
        assert execute_partial(meta, EngineSource(engine)).meta == {
            "cpu": {("host", h) for h in HOSTS}
        }
    finally:
        engine.close()


def test_extreme_time_ranges_do_not_overflow() -> None:
    src = build([("h0", None, [(1, 1), (5, 2)])])[0]
    for start, end, every in (
        (-(2**70), 2**70, 0),
        (-(2**63) + 1, 2**63 - 1, 0),
        (-(2**63) + 1, 2**63 - 1, 7 * 86_400 * 10**9 * 1000),
    ):
        spec = SelectSpec(
            "db", "cpu", [Item("v", "sum")], Where(start, end, None, None, True, True), every=every
        )
        try:
            plan, finish = compile_select(spec, 0)
        except (QueryError, LimitExceededError):
            continue
        out = finalize(plan, finish, execute_partial(plan, src))
        assert out[0]["values"][0][1] == 3


def test_answer_rows_are_bounded_before_they_are_built() -> None:
    src = build([("h0", None, [(i, i) for i in range(30)]), ("h1", None, [(1, 1)])])[0]
    where = Where(0, 100, None, None, True, True)
    for items, every in (([Item("v")], 0), ([Item("v", "sum")], 1)):
        plan, finish = compile_select(
            SelectSpec("db", "cpu", items, where, every=every), 0, Limits(max_rows=20)
        )
        with pytest.raises(LimitExceededError, match="more than the limit of 20") as info:
            finalize(plan, finish, execute_partial(plan, src))
        assert info.value.details["limit"] == "max_rows"
    spec = SelectSpec("db", "cpu", [Item("v")], where, limit=5)
    plan, finish = compile_select(spec, 0, Limits(max_rows=20))
    assert len(finalize(plan, finish, execute_partial(plan, src))[0]["values"]) == 5


@settings(max_examples=80, deadline=None)
@given(series=SERIES, spec=SPECS, fw=st.one_of(st.none(), st.just(["fcmp", "v", "<", 10])))
def test_chunked_reads_answer_like_one_read(series, spec, fw) -> None:
    import node.query as executor

    fn, every, group_by = spec
    plan, finish = compile_select(spec_for(fn, every, group_by, ["true"], fw), now=10**6)
    src = build(series)[0]
    whole = finalize(plan, finish, execute_partial(plan, src))
    old = executor.CHUNK_NS
    executor.CHUNK_NS = 7  # 15 chunks over [0, 100)
    try:
        assert len(executor._chunks(plan)) == (15 if plan.kind == "select" else 1)
        chunked = finalize(plan, finish, execute_partial(plan, src))
    finally:
        executor.CHUNK_NS = old
    assert approx_equal(chunked, whole)


def approx_equal(a: Any, b: Any) -> bool:
    """Equal, floats within 1e-9 (summation order differs between chunkings)."""
    if isinstance(a, float) and isinstance(b, float):
        return abs(a - b) <= 1e-9 * max(1.0, abs(a), abs(b))
    if isinstance(a, list | tuple) and isinstance(b, list | tuple):
        return len(a) == len(b) and all(approx_equal(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(approx_equal(a[k], b[k]) for k in a)
    return bool(a == b)


def test_count_of_an_empty_window_is_zero() -> None:
    src = MemSource()
    src.add("db", "m", {}, "v", FieldType.FLOAT, [0, 35], [1.0, 2.0])
    where = Where(0, 40, None, None, True, True)
    spec = SelectSpec("db", "m", [Item("v", "count"), Item("v", "mean")], where, every=10)
    plan, finish = compile_select(spec, 0)
    out = finalize(plan, finish, execute_partial(plan, src))
    assert out[0]["values"] == [[0, 1, 1.0], [10, 0, None], [20, 0, None], [30, 1, 2.0]]
