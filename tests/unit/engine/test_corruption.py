"""Corruption: flipped and truncated bytes in WAL segments and SSTables.

The engine must detect it (CorruptionError naming file and offset, or a recovery report), keep
every intact record, and never return wrong data.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from node.engine.engine import Engine, EngineOptions
from node.engine.sstable import SSTable
from pulsar_cluster.errors import CorruptionError
from tests.unit.engine.helpers import batch_of, read_all, skey


def opts() -> EngineOptions:
    return EngineOptions(partition_ns=1000, block_points=8)


POINTS = [("a", "f", t, float(t) * 1.5) for t in range(40)]
TRUTH = {(h, f, t): v for h, f, t, v in POINTS}


def _one_table(tmp_path: Path) -> Path:
    e = Engine(str(tmp_path), opts())
    e.apply(batch_of(POINTS))
    e.flush()
    e.close()
    (table,) = (tmp_path / "sst").iterdir()
    return table


def _flip(path: Path, offset: int, mask: int = 0x01) -> None:
    data = bytearray(path.read_bytes())
    data[offset] ^= mask
    path.write_bytes(bytes(data))


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(where=st.floats(0, 1, exclude_max=True), mask=st.integers(1, 255))
def test_any_flipped_sstable_byte_is_detected_never_wrong_data(tmp_path_factory, where, mask):
    tmp_path = tmp_path_factory.mktemp("flip")
    table = _one_table(tmp_path)
    offset = int(where * table.stat().st_size)
    _flip(table, offset, mask)
    e = Engine(str(tmp_path), opts())
    try:
        if e.status()["quarantined_tables"]:
            # Header, index, meta or footer damage: detected at open, table set aside.
            problems = " ".join(e.status()["recovery_problems"])  # type: ignore[arg-type]
            assert str(table) in problems and "offset" in problems
            assert (tmp_path / "corrupt" / table.name).exists()
            assert read_all(e) == {}
            return
        try:
            got = read_all(e)
        except CorruptionError as exc:  # a damaged block: the read fails, naming the spot
            assert exc.path == str(table)
            assert 0 <= exc.offset < table.stat().st_size
            return
        assert got == TRUTH  # a flip that changes nothing observable (e.g. reserved bytes)
    finally:
        e.close(flush=False)


@pytest.mark.parametrize("cut", [1, 20, 52, 200])
def test_truncated_sstable_is_quarantined_and_engine_starts(tmp_path, cut):
    table = _one_table(tmp_path)
    os.truncate(table, table.stat().st_size - cut)
    e = Engine(str(tmp_path), opts())
    st_ = e.status()
    assert st_["quarantined_tables"] == [str(tmp_path / "corrupt" / table.name)]
    assert st_["sstables"] == 0
    e.apply(batch_of([("b", "f", 1, 1.0)]))  # the engine works
    assert read_all(e) == {("b", "f", 1): 1.0}
    e.close()


def test_block_damage_fails_only_the_reads_that_touch_it(tmp_path):
    table = _one_table(tmp_path)
    t = SSTable(str(table))
    refs = t.entries[skey("a")]["f"][1]
    t.close()
    _flip(table, refs[1].offset + 3)  # second block: points 8..15
    e = Engine(str(tmp_path), opts())
    assert e.status()["quarantined_tables"] == []  # only the index is checked at open
    (problem,) = e.verify()
    assert str(table) in problem and f"offset {refs[1].offset}" in problem
    with pytest.raises(CorruptionError) as info:
        e.read_field(skey("a"), "f", 0, 40)
    assert info.value.offset == refs[1].offset and info.value.path == str(table)
    ok = e.read_field(skey("a"), "f", 20, 40)  # blocks 3..5 are intact and readable
    assert ok is not None and ok.timestamps.tolist() == list(range(20, 40))
    assert np.array_equal(ok.values, np.arange(20, 40) * 1.5)
    e.apply(batch_of([("a", "f", 100, 1.0)]))
    e.flush()
    with pytest.raises(CorruptionError):
        e.compact(full=True)  # compaction never turns damage into silently missing data
    assert e.status()["sstables"] == 2  # both inputs kept, no output published
    assert not list((tmp_path / "sst").glob("*.tmp"))
    e.close(flush=False)


def test_corrupt_wal_record_keeps_the_others_and_reports(tmp_path):
    e = Engine(str(tmp_path), opts())
    for i in range(10):
        e.apply(batch_of([("a", "f", i, float(i))]))
    e.close(flush=False)
    (seg,) = [p for p in (tmp_path / "wal").iterdir() if p.stat().st_size > 16]
    data = seg.read_bytes()
    # Damage the payload of the 4th record (records are equal-sized here).
    rec = (len(data) - 16) // 10
    _flip(seg, 16 + 3 * rec + rec // 2, 0xFF)
    e = Engine(str(tmp_path), opts())
    assert read_all(e) == {("a", "f", i): float(i) for i in range(10) if i != 3}
    problems = e.status()["recovery_problems"]
    assert any(str(seg) in p and f"offset {16 + 3 * rec}" in p for p in problems)  # type: ignore[union-attr]
    e.close()


def test_truncated_wal_tail(tmp_path):
    e = Engine(str(tmp_path), opts())
    for i in range(5):
        e.apply(batch_of([("a", "f", i, float(i))]))
    e.close(flush=False)
    (seg,) = [p for p in (tmp_path / "wal").iterdir() if p.stat().st_size > 16]
    os.truncate(seg, seg.stat().st_size - 3)
    e = Engine(str(tmp_path), opts())
    assert read_all(e) == {("a", "f", i): float(i) for i in range(4)}
    assert any("torn tail" in p for p in e.status()["recovery_problems"])  # type: ignore[union-attr]
    e.close()


def test_corrupt_manifest_refuses_to_guess(tmp_path):
    from node.engine.engine import DeleteRequest

    e = Engine(str(tmp_path), opts())
    e.apply(batch_of([("a", "f", 1, 1.0)]))
    e.delete(DeleteRequest("db", "cpu", 0, 1))
    e.close()
    _flip(tmp_path / "MANIFEST", 20)
    with pytest.raises(CorruptionError) as info:
        Engine(str(tmp_path), opts())
    assert "MANIFEST" in info.value.path
