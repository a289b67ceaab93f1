"""The Raft snapshot container (node/raft/snapshot.py): an engine's data travels to another
engine exactly, and a damaged file never restores silently wrong data."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pysyncobj.node import TCPNode

from node.engine.engine import Engine
from node.raft.snapshot import ShardSnapshotter
from pulsar_cluster.batch import Column, FieldType, WriteBatch
from pulsar_cluster.errors import CorruptionError
from pulsar_cluster.series import make_series_key

LAST = (b"\x02last-entry", 7, 3)
PREV = (b"\x02prev-entry", 6, 3)
NODES = {TCPNode("10.0.0.1:7201"), TCPNode("10.0.0.2:7201")}


def _fill(engine: Engine, batches: int) -> None:
    for i in range(batches):
        ts = np.arange(10, dtype=np.int64) + i * 10
        key = make_series_key("m", {"s": str(i % 3)})
        col = Column(FieldType.FLOAT, ts, ts.astype(np.float64) / 2)
        engine.apply(WriteBatch("db", {key: {"v": col}}), index=i + 1)


def _dump(engine: Engine) -> list:
    rows = engine.scan("db", "m", {}, None, -(2**62), 2**62)
    return sorted(
        (k, n, d.timestamps.tolist(), d.values.tolist()) for k, f in rows for n, d in f.items()
    )


@pytest.fixture
def snapshot(tmp_path: Path) -> tuple[Path, list]:
    source = Engine(str(tmp_path / "a"))
    _fill(source, 5)
    path = tmp_path / "dump"
    ShardSnapshotter(source, str(tmp_path / "work-a")).serialize(str(path), (LAST, PREV, NODES))
    expected = _dump(source)
    source.close()
    return path, expected


def test_round_trip_into_an_empty_engine(snapshot: tuple[Path, list], tmp_path: Path) -> None:
    path, expected = snapshot
    target = Engine(str(tmp_path / "b"))
    last, prev, nodes = ShardSnapshotter(target, str(tmp_path / "work-b")).deserialize(str(path))
    assert last == LAST and prev == PREV
    assert {n.address for n in nodes} == {n.address for n in NODES}
    assert _dump(target) == expected and target.last_index == 5
    target.close()


def test_engine_already_ahead_is_left_alone(snapshot: tuple[Path, list], tmp_path: Path) -> None:
    path, _ = snapshot
    target = Engine(str(tmp_path / "c"))
    _fill(target, 8)  # indices 1..8: beyond the snapshot's 5
    before = _dump(target)
    ShardSnapshotter(target, str(tmp_path / "work-c")).deserialize(str(path))
    assert _dump(target) == before and target.last_index == 8
    target.close()


@given(st.data())
@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
def test_any_flipped_byte_is_refused(snapshot: tuple[Path, list], tmp_path: Path, data) -> None:
    path, _ = snapshot
    raw = bytearray(path.read_bytes())
    pos = data.draw(st.integers(0, len(raw) - 1))
    raw[pos] ^= data.draw(st.integers(1, 255))
    damaged = tmp_path / f"damaged-{pos}"
    damaged.write_bytes(bytes(raw))
    work = tmp_path / f"work-{pos}"
    target = Engine(str(tmp_path / f"e-{pos}"))
    try:
        with pytest.raises((CorruptionError, ValueError, KeyError, TypeError)):
            ShardSnapshotter(target, str(work)).deserialize(str(damaged))
        assert target.last_index == 0  # nothing restored
    finally:
        target.close()
        shutil.rmtree(tmp_path / f"e-{pos}", ignore_errors=True)
