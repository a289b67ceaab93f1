"""Engine behaviour: read path, partitions, compaction, deletes, retention, limits, index."""

from __future__ import annotations

import os

import numpy as np
import pytest

from node.engine.engine import DeleteRequest, Engine, EngineOptions, RetentionPolicy
from node.engine.index import storage_key
from pulsar_cluster.batch import Column, FieldType, WriteBatch
from pulsar_cluster.errors import (
    BadRequestError,
    FieldTypeConflictError,
    LimitExceededError,
    OverloadedError,
)
from pulsar_cluster.series import make_series_key
from tests.unit.engine.helpers import batch_of, read_all, skey

W = 100  # partition width in the tests


def opts(**kw) -> EngineOptions:  # type: ignore[no-untyped-def]
    return EngineOptions(partition_ns=W, **kw)


def test_memtable_and_sstables_merge_last_write_wins(tmp_path):
    e = Engine(str(tmp_path), opts())
    e.apply(batch_of([("a", "f", 5, 1.0), ("a", "f", 3, 2.0), ("a", "f", 5, 3.0)]))
    assert read_all(e) == {("a", "f", 3): 2.0, ("a", "f", 5): 3.0}  # in-batch duplicate
    e.flush()
    e.apply(batch_of([("a", "f", 3, 9.0), ("a", "f", 1, 0.5)]))  # overwrite + out of order
    e.flush()
    e.apply(batch_of([("a", "f", 5, 7.0)]))
    assert read_all(e) == {("a", "f", 1): 0.5, ("a", "f", 3): 9.0, ("a", "f", 5): 7.0}
    data = e.read_field(skey("a"), "f", 2, 5)
    assert data is not None and data.timestamps.tolist() == [3] and data.values.tolist() == [9.0]
    assert e.read_field(skey("a"), "nope", 0, 10) is None
    e.close()
    e2 = Engine(str(tmp_path), opts())
    assert read_all(e2) == {("a", "f", 1): 0.5, ("a", "f", 3): 9.0, ("a", "f", 5): 7.0}
    e2.close()


def test_one_table_per_partition_and_pruning(tmp_path):
    e = Engine(str(tmp_path), opts())
    e.apply(batch_of([("a", "f", t, float(t)) for t in (-50, 5, 150, 151, 420)]))
    assert e.flush() == 4  # partitions [-100,0) [0,100) [100,200) [400,500)
    names = sorted(os.listdir(tmp_path / "sst"))
    assert sorted(n.split("-", 3)[3] for n in names) == ["-100.sst", "0.sst", "100.sst", "400.sst"]
    assert read_all(e)[("a", "f", -50)] == -50.0
    e._cache.clear()
    misses = e._cache.misses
    data = e.read_field(skey("a"), "f", 100, 200)
    assert data is not None and data.timestamps.tolist() == [150, 151]
    assert e._cache.misses - misses == 1  # only the one partition's block was read
    data = e.read_field(skey("a"), "f", 100, 200)
    assert e._cache.misses - misses == 1 and e._cache.hits >= 1  # served by the block cache
    e.close()


def test_types_are_kept_and_conflicts_rejected(tmp_path):
    e = Engine(str(tmp_path), opts())
    key = make_series_key("m", {"h": "x"})
    ts = np.array([1, 2], dtype=np.int64)
    cols = {
        "i": Column(FieldType.INTEGER, ts, np.array([1, -2], dtype=np.int64)),
        "u": Column(FieldType.UNSIGNED, ts, np.array([1, 2**63], dtype=np.uint64)),
        "b": Column(FieldType.BOOLEAN, ts, np.array([True, False])),
        "s": Column(FieldType.STRING, ts, np.array(["x", "ü"], dtype=object)),
    }
    e.apply(WriteBatch("db", {key: cols}))
    e.flush()
    bad = WriteBatch("db", {key: {"i": Column(FieldType.FLOAT, ts, np.array([1.0, 2.0]))}})
    with pytest.raises(FieldTypeConflictError):
        e.apply(bad)
    e.close()
    e = Engine(str(tmp_path), opts())
    with pytest.raises(FieldTypeConflictError):
        e.apply(bad)  # types are recovered from the tables
    sk = storage_key("db", key)
    assert e.read_field(sk, "u", 0, 10).values.tolist() == [1, 2**63]  # type: ignore[union-attr]
    assert e.read_field(sk, "s", 0, 10).values.tolist() == ["x", "ü"]  # type: ignore[union-attr]
    assert e.read_field(sk, "b", 0, 10).values.tolist() == [True, False]  # type: ignore[union-attr]
    e.close()


def test_apply_is_idempotent_by_index(tmp_path):
    e = Engine(str(tmp_path), opts())
    assert e.apply(batch_of([("a", "f", 1, 1.0)]), index=10) == 10
    e.apply(batch_of([("a", "f", 1, 2.0)]), index=10)  # a replay: skipped
    e.apply(batch_of([("a", "f", 1, 3.0)]), index=9)
    assert read_all(e) == {("a", "f", 1): 1.0}
    e.close()
    e = Engine(str(tmp_path), opts())
    assert e.last_index == 10
    e.close()


def test_compaction_merges_partitions_and_drops_overwrites(tmp_path):
    e = Engine(str(tmp_path), opts(compaction_trigger=3))
    for v in range(5):
        e.apply(batch_of([("a", "f", 1, float(v)), ("a", "f", 150, float(v)), ("b", "g", 2, v)]))
        e.flush()
    assert e.status()["sstables"] == 10 and e.needs_compaction()
    before = read_all(e)
    assert e.compact() == 10  # background policy: each partition's run of small tables
    st = e.status()
    assert st["sstables"] == 2 and st["sstable_points"] == 3  # overwritten points are gone
    assert read_all(e) == before
    e.close()
    e = Engine(str(tmp_path), opts())
    assert read_all(e) == before and e.status()["sstables"] == 2
    e.close()


def test_background_policy_leaves_big_tables_alone(tmp_path):
    e = Engine(str(tmp_path), opts(compaction_trigger=2, compaction_small_bytes=400))
    rng = np.random.default_rng(1)
    e.apply(batch_of([("a", "f", t, float(rng.random())) for t in range(0, 100, 1)]))
    e.flush()  # a big table
    for v in range(2):
        e.apply(batch_of([("a", "f", 1, float(v))]))
        e.flush()
    assert e.compact() == 2
    assert e.status()["sstables"] == 2
    assert read_all(e)[("a", "f", 1)] == 1.0
    assert e.compact(full=True) == 2 and e.status()["sstables"] == 1
    assert read_all(e)[("a", "f", 1)] == 1.0
    e.close()


def test_deletes_hide_data_then_compaction_removes_it(tmp_path):
    e = Engine(str(tmp_path), opts())
    e.apply(batch_of([("a", "f", t, 1.0) for t in (1, 2, 3, 150)] + [("b", "f", 2, 2.0)]))
    e.flush()
    e.apply(batch_of([("a", "f", 4, 4.0)]))  # in the memtable
    e.delete(DeleteRequest("db", "cpu", 2, 151, {"host": "a"}))
    e.apply(batch_of([("a", "f", 3, 33.0)]))  # written after the delete: survives
    expected = {("a", "f", 1): 1.0, ("a", "f", 3): 33.0, ("b", "f", 2): 2.0}
    assert read_all(e) == expected
    assert e.status()["tombstones"] == 1
    e.close(flush=False)
    e = Engine(str(tmp_path), opts())  # tombstone from the manifest, delete replayed from WAL
    assert read_all(e) == expected
    e.flush()
    e.compact(full=True)
    assert read_all(e) == expected
    assert e.status()["tombstones"] == 0  # applied everywhere, forgotten
    assert e.status()["sstable_points"] == 3
    e.close()
    e = Engine(str(tmp_path), opts())
    assert read_all(e) == expected
    e.close()


def test_delete_by_explicit_series_and_bad_requests(tmp_path):
    e = Engine(str(tmp_path), opts())
    e.apply(batch_of([("a", "f", 1, 1.0), ("b", "f", 1, 1.0)]))
    e.delete(DeleteRequest("db", "", 0, 10, series=(make_series_key("cpu", {"host": "b"}),)))
    assert read_all(e) == {("a", "f", 1): 1.0}
    with pytest.raises(BadRequestError):
        e.delete(DeleteRequest("db", "cpu", 5, 5))
    with pytest.raises(BadRequestError):
        e.delete(DeleteRequest("", "cpu", 0, 5))
    e.close()


def test_retention_drops_whole_partitions_and_measurement_overrides(tmp_path):
    now = [1000]
    policy = RetentionPolicy(duration_ns=300, measurements={"short": 100})
    e = Engine(str(tmp_path), opts(retention={"db": policy}, clock=lambda: now[0]))
    pts = [("a", "f", t, float(t)) for t in (150, 650, 950)]
    e.apply(batch_of(pts))
    e.apply(batch_of(pts, measurement="short"))
    e.apply(batch_of(pts, database="other"))
    e.flush()
    assert e.status()["sstables"] == 6  # per database and partition
    # Reads hide expired points at once: cpu keeps 300 ns, short 100 ns.
    assert sorted(t for (_, _, t) in read_all(e)) == [950]
    assert sorted(t for (_, _, t) in read_all(e, measurement="short")) == [950]
    assert e.enforce_retention() == 2  # db's [100,200) and [600,700): past every retention
    assert e.status()["sstables"] == 4
    assert len(read_all(e, database="other")) == 3  # no policy: kept forever
    now[0] = 1040
    e.compact(full=True)  # the 'short' tombstone is applied
    assert sorted(t for (_, _, t) in read_all(e, measurement="short")) == [950]
    e.close()


def test_set_retention_at_runtime(tmp_path):
    e = Engine(str(tmp_path), opts(clock=lambda: 1000))
    e.apply(batch_of([("a", "f", 50, 1.0), ("a", "f", 950, 2.0)]))
    e.flush()
    e.set_retention("db", RetentionPolicy(duration_ns=500))
    assert read_all(e) == {("a", "f", 950): 2.0}
    assert e.enforce_retention() == 1
    e.set_retention("db", None)
    assert read_all(e) == {("a", "f", 950): 2.0}  # the dropped partition is gone for good
    e.close()


def test_cardinality_limit_is_a_clear_error(tmp_path):
    e = Engine(str(tmp_path), opts(max_series_per_database=3))
    e.apply(batch_of([("a", "f", 1, 1.0), ("b", "f", 1, 1.0)]))
    with pytest.raises(LimitExceededError) as info:
        e.apply(batch_of([("c", "f", 1, 1.0), ("d", "f", 1, 1.0)]))
    assert "limit of 3 series" in str(info.value) and info.value.status_code == 422
    assert len(read_all(e)) == 2  # nothing of the refused batch was written
    e.apply(batch_of([("a", "f", 2, 1.0), ("c", "f", 1, 1.0)]))  # existing series are fine
    e.apply(batch_of([("z", "f", 1, 1.0)], database="other"))  # per database
    e.close()


def test_backpressure_when_flushes_or_compaction_fall_behind(tmp_path):
    e = Engine(str(tmp_path), opts(max_tables_per_partition=2))
    for v in range(3):
        e.apply(batch_of([("a", "f", 1, float(v))]))
        e.flush()
    with pytest.raises(OverloadedError) as info:
        e.apply(batch_of([("a", "f", 2, 1.0)]))
    assert info.value.status_code == 429 and info.value.retry_after_s > 0
    e.compact(full=True)
    e.apply(batch_of([("a", "f", 2, 1.0)]))  # accepted again
    e.close()
    e = Engine(str(tmp_path), opts(max_immutable_memtables=1))
    e._immutables.append(e._memtable)  # a flush that has not finished yet
    e._memtable = e._new_memtable()
    with pytest.raises(OverloadedError) as info:
        e.apply(batch_of([("a", "f", 3, 1.0)]))
    assert info.value.status_code == 503
    e._immutables.clear()


def test_tag_index_views(tmp_path):
    e = Engine(str(tmp_path), opts())
    b = WriteBatch("db")
    ts = np.array([1], dtype=np.int64)
    for host, region in [("h1", "eu"), ("h2", "eu"), ("h3", "us")]:
        k = make_series_key("cpu", {"host": host, "region": region})
        b.series[k] = {"v": Column(FieldType.FLOAT, ts, np.array([1.0]))}
    e.apply(b)
    e.flush()
    e.close()
    e = Engine(str(tmp_path), opts())  # rebuilt from the tables
    idx = e.index
    assert idx.tag_keys("db", "cpu") == ["host", "region"]
    assert idx.tag_values("db", "cpu", "region") == ["eu", "us"]
    assert len(idx.series_with_tag("db", "cpu", "region", "eu")) == 2
    assert len(idx.series_of_measurement("db", "cpu")) == 3
    assert len(e.match_series("db", "cpu", {"region": "eu", "host": "h2"})) == 1
    assert e.match_series("db", "cpu", {"region": "nowhere"}) == []
    assert e.databases() == ["db"] and e.measurements("db") == ["cpu"]
    e.close()


def test_torn_flush_is_discarded_and_replayed_from_the_wal(tmp_path):
    e = Engine(str(tmp_path), opts())
    e.apply(batch_of([("a", "f", 1, 1.0), ("a", "f", 150, 2.0)]))
    e.close(flush=False)  # data only in the WAL
    wal_copy = {n: (tmp_path / "wal" / n).read_bytes() for n in os.listdir(tmp_path / "wal")}
    manifest = (tmp_path / "MANIFEST").read_bytes() if (tmp_path / "MANIFEST").exists() else None
    e = Engine(str(tmp_path), opts())
    e.flush()  # two tables (two partitions) of one flush
    names = sorted(os.listdir(tmp_path / "sst"))
    assert len(names) == 2
    e.close(flush=False)
    # The state of a crash after the first rename of the flush: one table renamed, the second
    # not, the manifest not yet updated (the commit point), the WAL not trimmed.
    os.remove(tmp_path / "sst" / names[1])
    if manifest is None:
        os.remove(tmp_path / "MANIFEST")
    else:
        (tmp_path / "MANIFEST").write_bytes(manifest)
    for n, data in wal_copy.items():
        (tmp_path / "wal" / n).write_bytes(data)
    e = Engine(str(tmp_path), opts())
    problems = e.status()["recovery_problems"]
    assert any("unfinished flush" in p for p in problems), problems  # type: ignore[union-attr]
    assert read_all(e) == {("a", "f", 1): 1.0, ("a", "f", 150): 2.0}
    e.close()


def test_compaction_leftover_inputs_are_removed(tmp_path):
    e = Engine(str(tmp_path), opts())
    for v in range(2):
        e.apply(batch_of([("a", "f", 1, float(v))]))
        e.flush()
    inputs = sorted(os.listdir(tmp_path / "sst"))
    saved = {n: (tmp_path / "sst" / n).read_bytes() for n in inputs}
    e.compact(full=True)
    e.close()
    for n, data in saved.items():  # crash after publishing the output, before removing inputs
        (tmp_path / "sst" / n).write_bytes(data)
    e = Engine(str(tmp_path), opts())
    assert e.status()["sstables"] == 1
    assert read_all(e) == {("a", "f", 1): 1.0}
    e.close()


def test_size_tiered_background_compaction_rewrites_each_point_a_few_times(tmp_path):
    from node.engine.compaction import plan_partition

    class T:  # just what the planner looks at
        def __init__(self, size: int) -> None:
            self.size = size

    mb = 1024 * 1024
    big, mid, small = T(40 * mb), T(8 * mb), T(mb)
    tables = [big, mid, T(2 * mb), T(2 * mb), small, small]
    run = plan_partition(tables, 4, 10**12, False, [])  # type: ignore[arg-type]
    # The 40 MB table is more than 4x the run's largest (8 MB): it is left alone.
    assert run == tables[1:]
    assert plan_partition([big, small, small, small], 4, 10**12, False, []) == []  # type: ignore[arg-type]
    # Simulate many flushes of equal size: total bytes written stays O(n log n), not O(n^2).
    sizes: list[int] = []
    written = 0
    for _ in range(200):
        sizes.append(100 * 1024)
        while True:
            objs = [T(s) for s in sizes]
            run = plan_partition(objs, 4, 10**12, False, [])  # type: ignore[arg-type]
            if not run:
                break
            merged = sum(t.size for t in run)
            written += merged
            sizes = [*sizes[: len(sizes) - len(run)], merged]
    assert written < 200 * 100 * 1024 * 6  # each byte rewritten about log4(200) ~ 4 times
