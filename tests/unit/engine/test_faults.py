"""Injected file-system faults: full disk in the WAL, failed fsync of a table during a flush."""

from __future__ import annotations

import errno
from typing import BinaryIO

import pytest

from node.engine.engine import Engine, EngineOptions
from node.engine.fs import OsFileSystem
from pulsar_cluster.errors import StorageError
from tests.unit.engine.helpers import batch_of, read_all


class _FullDiskFile:
    """Wraps a WAL segment file: writes fail with ENOSPC after writing half of the bytes."""

    def __init__(self, f: BinaryIO, fs: FaultyFs) -> None:
        self._f = f
        self._fs = fs

    def write(self, data: bytes) -> int:
        if self._fs.disk_full:
            self._f.write(data[: len(data) // 2])  # a torn record, as a real full disk leaves
            raise OSError(errno.ENOSPC, "No space left on device")
        return self._f.write(data)

    def __getattr__(self, name: str):  # type: ignore[no-untyped-def]
        return getattr(self._f, name)


class FaultyFs(OsFileSystem):
    def __init__(self) -> None:
        self.disk_full = False
        self.fail_table_fsync = False

    def open_append(self, path: str) -> BinaryIO:
        return _FullDiskFile(super().open_append(path), self)  # type: ignore[return-value]

    def fsync(self, f):  # type: ignore[no-untyped-def]
        if self.fail_table_fsync and str(getattr(f, "name", "")).endswith(".sst.tmp"):
            raise OSError(errno.EIO, "injected EIO")
        target = f._f if isinstance(f, _FullDiskFile) else f
        super().fsync(target)


def test_full_disk_refuses_the_write_and_keeps_the_log_usable(tmp_path):
    fs = FaultyFs()
    e = Engine(str(tmp_path), EngineOptions(), fs)
    e.apply(batch_of([("a", "f", 1, 1.0)]))
    fs.disk_full = True
    with pytest.raises(StorageError):
        e.apply(batch_of([("a", "f", 2, 2.0)]))
    assert read_all(e) == {("a", "f", 1): 1.0}  # the refused write is not visible
    fs.disk_full = False
    e.apply(batch_of([("a", "f", 3, 3.0)]))
    e.close(flush=False)
    e = Engine(str(tmp_path), EngineOptions())
    assert read_all(e) == {("a", "f", 1): 1.0, ("a", "f", 3): 3.0}
    assert e.status()["recovery_problems"] == []  # the torn half record was cut at once
    e.close()


def test_failed_table_fsync_fails_the_flush_not_the_data(tmp_path):
    fs = FaultyFs()
    e = Engine(str(tmp_path), EngineOptions(partition_ns=100), fs)
    e.apply(batch_of([("a", "f", 1, 1.0), ("a", "f", 150, 2.0)]))
    fs.fail_table_fsync = True
    with pytest.raises(OSError):
        e.flush()
    assert not list((tmp_path / "sst").glob("*.tmp"))  # aborted cleanly
    assert read_all(e) == {("a", "f", 1): 1.0, ("a", "f", 150): 2.0}  # still readable
    e.apply(batch_of([("a", "f", 2, 3.0)]))  # writes go on
    fs.fail_table_fsync = False
    assert e.flush() == 3  # the waiting memtable (2 partitions) and the new one
    e.close()
    e = Engine(str(tmp_path), EngineOptions(partition_ns=100))
    assert read_all(e) == {("a", "f", 1): 1.0, ("a", "f", 2): 3.0, ("a", "f", 150): 2.0}
    e.close()
