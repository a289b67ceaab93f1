"""Snapshots: point-in-time content, restore into an existing or fresh engine, crash safety."""

from __future__ import annotations

import os

import pytest

from node.engine.engine import DeleteRequest, Engine, EngineOptions
from node.engine.snapshot import read_descriptor
from pulsar_cluster.errors import CorruptionError, NotFoundError, StorageError
from tests.unit.engine.helpers import batch_of, read_all

OPTS = EngineOptions(partition_ns=100)


def test_snapshot_holds_exactly_up_to_its_index(tmp_path):
    e = Engine(str(tmp_path / "a"), OPTS)
    e.apply(batch_of([("h1", "f", 1, 1.0), ("h1", "f", 150, 2.0)]), index=5)
    e.flush()
    e.apply(batch_of([("h2", "f", 7, 3.0)]), index=6)  # memtable only: the snapshot flushes it
    info = e.create_snapshot(str(tmp_path / "snap"))
    assert info.last_index == 6
    e.apply(batch_of([("h3", "f", 9, 4.0)]), index=7)  # after the snapshot
    expected = {("h1", "f", 1): 1.0, ("h1", "f", 150): 2.0, ("h2", "f", 7): 3.0}

    fresh = Engine(str(tmp_path / "b"), OPTS)
    fresh.restore_snapshot(str(tmp_path / "snap"))
    assert read_all(fresh) == expected
    assert fresh.last_index == 6
    # The replication layer replays the log from last_index + 1; earlier indexes are skipped.
    fresh.apply(batch_of([("h1", "f", 1, 99.0)]), index=6)
    fresh.apply(batch_of([("h3", "f", 9, 4.0)]), index=7)
    assert read_all(fresh) == {**expected, ("h3", "f", 9): 4.0}
    fresh.close()
    reopened = Engine(str(tmp_path / "b"), OPTS)
    assert read_all(reopened) == {**expected, ("h3", "f", 9): 4.0}
    assert reopened.last_index == 7
    reopened.close()
    e.close()


def test_restore_replaces_everything_including_the_wal(tmp_path):
    src = Engine(str(tmp_path / "src"), OPTS)
    src.apply(batch_of([("a", "f", 1, 1.0)]), index=1)
    src.create_snapshot(str(tmp_path / "snap"))
    dst = Engine(str(tmp_path / "dst"), OPTS)
    dst.apply(batch_of([("b", "f", 2, 2.0)]), index=1)
    dst.flush()
    dst.apply(batch_of([("c", "f", 3, 3.0)]), index=2)  # only in dst's WAL + memtable
    dst.restore_snapshot(str(tmp_path / "snap"))
    assert read_all(dst) == {("a", "f", 1): 1.0}
    assert dst.last_index == 1
    dst.close(flush=False)
    again = Engine(str(tmp_path / "dst"), OPTS)
    assert read_all(again) == {("a", "f", 1): 1.0}
    again.close()
    src.close()


def test_snapshot_keeps_tombstones_and_hard_links(tmp_path):
    e = Engine(str(tmp_path / "a"), OPTS)
    e.apply(batch_of([("a", "f", 1, 1.0), ("a", "f", 2, 2.0)]))
    e.flush()
    e.delete(DeleteRequest("db", "cpu", 2, 3))
    info = e.create_snapshot(str(tmp_path / "snap"))
    for name in info.tables:
        assert os.stat(tmp_path / "snap" / name).st_nlink >= 2  # shared, not copied
    fresh = Engine(str(tmp_path / "b"), OPTS)
    fresh.restore_snapshot(info.path)
    assert read_all(fresh) == {("a", "f", 1): 1.0}
    fresh.close()
    e.close()


def test_interrupted_restore_completes_at_open(tmp_path):
    e = Engine(str(tmp_path / "a"), OPTS)
    e.apply(batch_of([("a", "f", 1, 1.0)]), index=3)
    e.create_snapshot(str(tmp_path / "snap"))
    e.close()
    target = tmp_path / "b"
    other = Engine(str(target), OPTS)
    other.apply(batch_of([("zzz", "f", 5, 5.0)]), index=1)
    other.close()
    # Simulate a crash right after the marker was written: staged links + marker only.
    stage = target / "restore.tmp"
    stage.mkdir()
    info = read_descriptor(e._fs, str(tmp_path / "snap"))
    for name in [*info.tables, "MANIFEST"]:
        os.link(tmp_path / "snap" / name, stage / name)
    (target / "RESTORE").write_bytes("\n".join(info.tables).encode())
    reopened = Engine(str(target), OPTS)
    assert read_all(reopened) == {("a", "f", 1): 1.0}
    assert reopened.last_index == 3
    assert not (target / "RESTORE").exists() and not stage.exists()
    reopened.close()


def test_bad_snapshots_are_refused(tmp_path):
    e = Engine(str(tmp_path / "a"), OPTS)
    e.apply(batch_of([("a", "f", 1, 1.0)]))
    with pytest.raises(NotFoundError):
        e.restore_snapshot(str(tmp_path))
    info = e.create_snapshot(str(tmp_path / "snap"))
    with pytest.raises(StorageError):
        e.create_snapshot(str(tmp_path / "snap"))  # not empty
    descriptor = tmp_path / "snap" / "SNAPSHOT"
    data = bytearray(descriptor.read_bytes())
    data[20] ^= 0xFF
    descriptor.write_bytes(bytes(data))
    with pytest.raises(CorruptionError):
        e.restore_snapshot(info.path)
    assert read_all(e) == {("a", "f", 1): 1.0}  # a refused restore changes nothing
    e.close()
