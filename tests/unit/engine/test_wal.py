"""WAL: round trip, torn tails, corruption in the middle, group commit, failed fsync."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from node.engine.fs import OsFileSystem
from node.engine.wal import (
    FILE_HEADER,
    RECORD_HEADER,
    RecordType,
    RecoveryReport,
    SyncPolicy,
    WriteAheadLog,
)
from pulsar_cluster.errors import StorageError


class SlowCountingFs(OsFileSystem):
    """A real file system whose fsync takes a while (a slow disk) and is counted."""

    def __init__(self, delay_s: float = 0.005) -> None:
        self.delay_s = delay_s
        self.fsyncs = 0
        self.fail_fsync = False

    def fsync(self, f):  # type: ignore[no-untyped-def]
        if self.fail_fsync:
            raise OSError(5, "injected EIO")
        self.fsyncs += 1
        time.sleep(self.delay_s)
        super().fsync(f)


def _open(path, fs=None, policy=SyncPolicy.ALWAYS, segment_bytes=1 << 20):  # type: ignore[no-untyped-def]
    wal = WriteAheadLog(str(path), fs or OsFileSystem(), policy, segment_bytes)
    report = RecoveryReport()
    records = list(wal.replay(report))
    wal.open_for_append()
    return wal, records, report


@settings(max_examples=30, deadline=None)
@given(payloads=st.lists(st.binary(max_size=300), max_size=30), seg=st.integers(40, 2000))
def test_round_trip_over_segments(tmp_path_factory, payloads, seg):
    path = tmp_path_factory.mktemp("wal")
    wal, records, report = _open(path, segment_bytes=seg)
    assert records == [] and report.problems == []
    for i, p in enumerate(payloads, start=1):
        wal.sync(wal.append(RecordType.WRITE if i % 3 else RecordType.DELETE, i, p))
    wal.close()
    wal2, records, report = _open(path)
    assert [(r.index, r.payload) for r in records] == list(enumerate(payloads, start=1))
    assert [r.type for r in records] == [
        RecordType.WRITE if i % 3 else RecordType.DELETE for i in range(1, len(payloads) + 1)
    ]
    assert report.problems == [] and report.records == len(payloads)
    wal2.close()


def _last_segment(path) -> str:  # type: ignore[no-untyped-def]
    names = sorted(
        n
        for n in os.listdir(path)
        if n.endswith(".wal") and os.path.getsize(path / n) > FILE_HEADER.size
    )
    return str(path / names[-1])


@pytest.mark.parametrize("cut", [1, 5, 17, 30])
def test_torn_tail_is_cut_and_reported(tmp_path, cut):
    wal, _, _ = _open(tmp_path)
    for i in range(1, 6):
        wal.sync(wal.append(RecordType.WRITE, i, b"x" * 40))
    wal.close()
    seg = _last_segment(tmp_path)
    size = os.path.getsize(seg)
    os.truncate(seg, size - cut)  # the last record was being written when the power went
    wal2, records, report = _open(tmp_path)
    assert [r.index for r in records] == [1, 2, 3, 4]
    assert any("torn tail" in p and seg in p for p in report.problems)
    assert os.path.getsize(seg) == size - (RECORD_HEADER.size + 40)  # cut at the record start
    wal2.close()
    # The repair is stable: a second open finds nothing to report.
    wal3, records, report = _open(tmp_path)
    assert [r.index for r in records] == [1, 2, 3, 4] and report.problems == []
    wal3.close()


def test_corrupt_record_in_the_middle_keeps_every_intact_record(tmp_path):
    wal, _, _ = _open(tmp_path)
    for i in range(1, 11):
        wal.sync(wal.append(RecordType.WRITE, i, bytes([i]) * 50))
    wal.close()
    seg = _last_segment(tmp_path)
    rec = RECORD_HEADER.size + 50
    data = bytearray(Path(seg).read_bytes())
    data[FILE_HEADER.size + 3 * rec + 20] ^= 0x40  # payload of record 4
    data[FILE_HEADER.size + 6 * rec + 1] ^= 0xFF  # length field of record 7: no skip by length
    Path(seg).write_bytes(bytes(data))
    wal2, records, report = _open(tmp_path)
    assert [r.index for r in records] == [1, 2, 3, 5, 6, 8, 9, 10]
    assert all(r.payload == bytes([r.index]) * 50 for r in records)  # never wrong data
    offsets = [str(FILE_HEADER.size + 3 * rec), str(FILE_HEADER.size + 6 * rec)]
    assert all(any(o in p for p in report.problems) for o in offsets)
    wal2.close()


def test_group_commit_shares_fsyncs(tmp_path):
    fs = SlowCountingFs(delay_s=0.005)
    wal, _, _ = _open(tmp_path, fs)
    before = fs.fsyncs
    threads_n, per_thread = 8, 25
    errors: list[BaseException] = []

    def writer(t: int) -> None:
        try:
            for i in range(per_thread):
                wal.sync(wal.append(RecordType.WRITE, t * 1000 + i + 1, b"p" * 20))
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(t,)) for t in range(threads_n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert not errors
    fsyncs = fs.fsyncs - before
    total = threads_n * per_thread
    # Eight writers waiting on one slow disk: each fsync serves several of them.
    assert fsyncs < total / 2, (fsyncs, total)
    wal.close()
    _, records, _ = _open(tmp_path)
    assert len(records) == total


def test_rotation_during_concurrent_syncs(tmp_path):
    fs = SlowCountingFs(delay_s=0.001)
    wal, _, _ = _open(tmp_path, fs)
    stop = threading.Event()
    errors: list[BaseException] = []
    counter = iter(range(1, 10**9))
    lock = threading.Lock()

    def writer() -> None:
        try:
            while not stop.is_set():
                with lock:
                    i = next(counter)
                wal.sync(wal.append(RecordType.WRITE, i, b"z" * 10))
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=writer) for _ in range(4)]
    for t in threads:
        t.start()
    for _ in range(30):
        wal.rotate()
        time.sleep(0.002)
    stop.set()
    for t in threads:
        t.join(timeout=30)
    assert not errors
    wal.close()


def test_failed_fsync_fails_the_log(tmp_path):
    fs = SlowCountingFs(delay_s=0)
    wal, _, _ = _open(tmp_path, fs)
    wal.sync(wal.append(RecordType.WRITE, 1, b"a"))
    fs.fail_fsync = True
    ticket = wal.append(RecordType.WRITE, 2, b"b")
    with pytest.raises(StorageError):
        wal.sync(ticket)
    fs.fail_fsync = False
    with pytest.raises(StorageError):
        wal.append(RecordType.WRITE, 3, b"c")  # refuses until reopened


def test_policies_never_and_interval_do_not_fsync_per_write(tmp_path):
    for policy in (SyncPolicy.NEVER, SyncPolicy.INTERVAL):
        fs = SlowCountingFs(delay_s=0)
        wal, _, _ = _open(tmp_path / policy, fs, policy)
        before = fs.fsyncs
        for i in range(1, 21):
            wal.sync(wal.append(RecordType.WRITE, i, b"q"))
        assert fs.fsyncs == before
        wal.sync_all()
        assert fs.fsyncs == before + 1
        wal.close()
    with pytest.raises(ValueError):
        WriteAheadLog(str(tmp_path / "x"), OsFileSystem(), "sometimes")


def test_segments_removed_before_rotation_point(tmp_path):
    wal, _, _ = _open(tmp_path)
    wal.sync(wal.append(RecordType.WRITE, 1, b"a"))
    keep_from = wal.rotate()
    wal.sync(wal.append(RecordType.WRITE, 2, b"b"))
    assert wal.remove_segments_before(keep_from) >= 1
    wal.close()
    _, records, _ = _open(tmp_path)
    assert [r.index for r in records] == [2]
