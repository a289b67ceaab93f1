"""The wire form of plans and partials (docs/format/partials.md): round trips and bad input."""

from __future__ import annotations

import msgpack
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pulsar_cluster.errors import QueryError
from pulsar_cluster.query.partial import (
    Partial,
    RawBlock,
    decode_partial,
    decode_plan,
    encode_partial,
    encode_plan,
    merge,
)
from pulsar_cluster.query.plan import ColumnSpec, Limits, Plan

TEXT = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"), max_size=8)
TAG_EXPR = st.recursive(
    st.one_of(
        st.just(["true"]),
        st.tuples(TEXT, st.sampled_from(["=", "!="]), TEXT).map(lambda t: ["cmp", *t]),
        st.tuples(TEXT, st.lists(TEXT, max_size=3)).map(lambda t: ["in", *t]),
    ),
    lambda inner: st.tuples(st.sampled_from(["and", "or"]), inner, inner).map(list),
    max_leaves=6,
)
PLANS = st.builds(
    Plan,
    kind=st.sampled_from(["select", "raw", "meta"]),
    database=TEXT,
    measurement=TEXT,
    start=st.integers(-(2**63) + 1, 2**63 - 1),
    end=st.integers(-(2**63) + 1, 2**63 - 1),
    tags=TAG_EXPR,
    fields_where=st.one_of(
        st.none(),
        st.tuples(TEXT, st.sampled_from([">", "<=", "="]), st.floats(allow_nan=False)).map(
            lambda t: ["fcmp", *t]
        ),
    ),
    columns=st.lists(
        st.builds(
            ColumnSpec,
            field=TEXT,
            fn=st.sampled_from(["mean", "percentile", "top"]),
            args=st.tuples(st.integers(1, 100)),
        ),
        max_size=3,
    ).map(tuple),
    every=st.integers(0, 10**12),
    offset=st.integers(-(10**9), 10**9),
    group_by=st.one_of(st.none(), st.lists(TEXT, max_size=3).map(tuple)),
    raw_fields=st.one_of(st.none(), st.lists(TEXT, max_size=3).map(tuple)),
    raw_limit=st.integers(0, 1000),
    descending=st.booleans(),
    meta=st.sampled_from(["", "tag_values"]),
    measurement_regex=st.one_of(st.none(), st.just("^c")),
    tag_keys=st.one_of(st.none(), st.lists(TEXT, max_size=2).map(tuple)),
    tag_key_regex=st.one_of(st.none(), st.just("h")),
    limits=st.builds(Limits, st.integers(1, 10**9), st.integers(1, 10**6)),
)


@settings(max_examples=200, deadline=None)
@given(PLANS)
def test_plan_round_trips(plan: Plan) -> None:
    data = encode_plan(plan)
    assert data[:4] == b"PQPL" and data[4] == 1
    assert decode_plan(data) == plan


ARRAYS = st.one_of(
    st.lists(st.floats(allow_nan=False), max_size=20).map(lambda v: np.array(v, dtype=np.float64)),
    st.lists(st.integers(-(2**63), 2**63 - 1), max_size=20).map(
        lambda v: np.array(v, dtype=np.int64)
    ),
    st.lists(st.booleans(), max_size=20).map(lambda v: np.array(v, dtype=bool)),
    st.lists(TEXT, max_size=20).map(lambda v: np.array([*v, "x"], dtype=object)[:-1]),
)
GROUP = st.lists(st.tuples(TEXT, TEXT), max_size=3).map(tuple)


@settings(max_examples=200, deadline=None)
@given(
    groups=st.dictionaries(GROUP, st.lists(st.dictionaries(TEXT, ARRAYS, max_size=3), max_size=3)),
    meta=st.dictionaries(TEXT, st.sets(st.tuples(TEXT, TEXT), max_size=4), max_size=3),
    arr=ARRAYS,
    counts=st.tuples(st.integers(0, 2**40), st.integers(0, 2**40)),
)
def test_partial_round_trips(groups, meta, arr, counts) -> None:
    raw = {(("host", "a"),): [RawBlock({"host": "a"}, arr, {"f": arr}, {"f": arr})]}
    p = Partial(groups, raw, meta, *counts)
    data = encode_partial(p)
    assert data[:4] == b"PQPA"
    back = decode_partial(data)
    assert (back.points_scanned, back.series_touched) == counts
    assert back.meta == meta
    assert set(back.groups) == set(groups)
    for key, states in groups.items():
        for s, b in zip(states, back.groups[key], strict=True):
            assert s.keys() == b.keys()
            for k in s:
                assert s[k].dtype == b[k].dtype and s[k].tolist() == b[k].tolist()
    block = back.raw[(("host", "a"),)][0]
    assert block.tags == {"host": "a"} and block.t.tolist() == arr.tolist()


@pytest.mark.parametrize(
    "data",
    [b"", b"PQPA", b"XXXX\x01\x80", b"PQPA\x02\x80", b"PQPA\x01\xc1", b"PQPA\x01" + b"\x92"],
)
def test_bad_partial_bytes_are_a_query_error(data: bytes) -> None:
    with pytest.raises(QueryError, match="malformed partial"):
        decode_partial(data)


def test_bad_array_and_plan_are_query_errors() -> None:
    bad_array = b"PQPA\x01" + msgpack.packb(
        {"g": [], "r": [], "m": {}, "ps": msgpack.ExtType(1, b"f123"), "st": 0}
    )
    with pytest.raises(QueryError, match="malformed partial"):
        decode_partial(bad_array)
    with pytest.raises(QueryError, match=r"malformed (query )?plan"):
        decode_plan(b"PQPL\x01" + msgpack.packb({"kind": "select"}))
    with pytest.raises(QueryError, match=r"malformed (query )?plan"):
        decode_plan(b"PQPA\x01\x80")


def test_merge_reduces_groups_from_several_partials() -> None:
    plan = Plan(kind="select", database="d", columns=(ColumnSpec("f", "mean"),))
    key = (("host", "a"),)

    def state(w: list[int], s: list[float], n: list[int]) -> dict:
        return {"w": np.array(w), "s": np.array(s), "n": np.array(n)}

    a = Partial({key: [state([0, 1], [2.0, 4.0], [1, 2])]}, points_scanned=3, series_touched=1)
    b = Partial({key: [state([1, 2], [6.0, 1.0], [2, 1])]}, points_scanned=3, series_touched=1)
    m = merge(plan, [decode_partial(encode_partial(a)), decode_partial(encode_partial(b))])
    got = m.groups[key][0]
    assert got["w"].tolist() == [0, 1, 2]
    assert got["s"].tolist() == [2.0, 10.0, 1.0] and got["n"].tolist() == [1, 4, 1]
    assert m.points_scanned == 6 and m.series_touched == 2
