"""A cluster node answers small plans on its event loop (node/inline.py, NodeService
.query_shards): which plans count as small over several shard engines, and that the answer
given with the series resolved up front is byte for byte the one of the threaded path."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from node import reads
from node.engine.engine import Engine, EngineOptions
from node.inline import INLINE_SERIES_FIELD_HOURS, small_select_series
from node.query import EngineSource
from pulsar_cluster.batch import partition_batch
from pulsar_cluster.lineprotocol import parse_line_protocol
from pulsar_cluster.query.plan import MAX_TIME, ColumnSpec, Plan
from pulsar_cluster.series import shard_for

S = 1_000_000_000
H = 3600 * S
T0 = 1_767_225_600 * S
SHARDS = 3


@pytest.fixture(scope="module")
def engines(tmp_path_factory: pytest.TempPathFactory) -> list[Engine]:
    """Eight hosts written to three shard engines as a cluster splits them (by series key)."""
    root = Path(tmp_path_factory.mktemp("shards"))
    out = [Engine(str(root / str(i)), EngineOptions(fsync="never")) for i in range(SHARDS)]
    rng = np.random.default_rng(7)
    lines = [
        f"cpu,host=h{h},dc=d{h % 2} v={rng.integers(0, 100)}i,w={rng.random():.3f} "
        f"{T0 + t * 10 * S}"
        for t in range(360 * 3)
        for h in range(8)
    ]
    batch = parse_line_protocol("\n".join(lines).encode(), "db")
    for shard, part in partition_batch(batch, lambda k: shard_for("db", k, SHARDS)).items():
        out[shard].apply(part)
    assert sum(1 for e in out if e.tag_keys("db", "cpu")) > 1  # spread over shards
    yield out
    for e in out:
        e.close()


def _plan(tags: list, hours: int, fields: tuple[str, ...], end: int | None = None) -> Plan:
    return Plan(
        "select",
        "db",
        "cpu",
        T0,
        T0 + hours * H if end is None else end,
        tags=tags,
        columns=tuple(ColumnSpec(f, "max") for f in fields),
        every=60 * S,
        group_by=None,
    )


def test_which_plans_are_small(engines: list[Engine]) -> None:
    sources = [EngineSource(e) for e in engines]
    one = ["cmp", "host", "=", "h1"]
    two = ["or", one, ["cmp", "host", "=", "h2"]]
    small = small_select_series(_plan(one, 1, ("v",)), sources)
    assert small is not None and sum(map(len, small)) == 1
    assert len(small) == SHARDS  # one list per engine, the series in the shard that holds it
    assert sum(map(len, small_select_series(_plan(two, 2, ("v", "w")), sources) or [])) == 2
    # 2 series x 2 fields x 5 hours > 16; a regex; no tag predicate; unbounded
    assert small_select_series(_plan(two, 5, ("v", "w")), sources) is None
    assert small_select_series(_plan(["cmp", "host", "=~", "h1"], 1, ("v",)), sources) is None
    assert small_select_series(_plan(["true"], 1, ("v",)), sources) is None
    assert small_select_series(_plan(one, 1, ("v",), end=MAX_TIME), sources) is None
    # the bound counts series over all the engines together
    dc = ["cmp", "dc", "=", "d0"]  # four hosts, spread over the shards
    assert small_select_series(_plan(dc, INLINE_SERIES_FIELD_HOURS // 4, ("v",)), sources)
    assert (
        small_select_series(_plan(dc, INLINE_SERIES_FIELD_HOURS // 4 + 1, ("v",)), sources) is None
    )


@settings(max_examples=60, deadline=None)
@given(
    st.lists(st.integers(0, 9), min_size=1, max_size=3),
    st.integers(1, 3),
    st.sampled_from([("v",), ("w",), ("v", "w")]),
    st.integers(0, 2 * H),
)
def test_inline_answers_equal_the_threaded_path(
    engines: list[Engine], hosts: list[int], hours: int, fields: tuple[str, ...], shift: int
) -> None:
    cmps = [["cmp", "host", "=", f"h{h}"] for h in hosts]  # h8, h9: no such series
    tags = cmps[0] if len(cmps) == 1 else ["or", *cmps[:2]]
    if len(cmps) == 3:
        tags = ["or", tags, cmps[2]]
    plan = _plan(tags, hours, fields)
    plan = Plan(**{**{f: getattr(plan, f) for f in plan.__slots__}, "start": T0 + shift})
    series = small_select_series(plan, [EngineSource(e) for e in engines])
    if series is None:  # over the bound: the threaded path answers it
        span_hours = -(-(plan.end - plan.start) // H)
        existing = len({h for h in hosts if h < 8})
        assert existing * len(fields) * span_hours > INLINE_SERIES_FIELD_HOURS
        return
    probe = ["host", "v", "dc"]
    inline = reads.answer_plan(plan, engines, None, probe, series)
    threaded = reads.answer_plan(plan, engines, None, probe)
    assert inline == threaded
    assert inline[1] == ["dc", "host"]
