"""WAL format version 2 (accepted time per record), version 1 still read, and the archive."""

from __future__ import annotations

import os
import struct
import zlib
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from node.engine.engine import Engine
from node.engine.fs import OsFileSystem
from node.engine.wal import (
    FILE_HEADER,
    RECORD_HEADER_V1,
    RecordType,
    RecoveryReport,
    WriteAheadLog,
    read_segment_file,
)
from pulsar_cluster.batch import BatchBuilder, FieldType, WriteBatch
from pulsar_cluster.batchcodec import encode_batch
from pulsar_cluster.series import make_series_key


def _build(value: float) -> WriteBatch:
    b = BatchBuilder("db")
    b.add(make_series_key("m", {"h": "x"}), "v", FieldType.FLOAT, 1_000, value)
    return b.build()


@settings(max_examples=30, deadline=None)
@given(st.lists(st.tuples(st.binary(max_size=200), st.integers(-(2**63), 2**63 - 1)), max_size=20))
def test_time_round_trips(tmp_path_factory, records) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path_factory.mktemp("wal")
    wal = WriteAheadLog(str(path), OsFileSystem())
    list(wal.replay(RecoveryReport()))
    wal.open_for_append()
    for i, (payload, t) in enumerate(records, start=1):
        wal.sync(wal.append(RecordType.WRITE, i, payload, t))
    wal.close()
    got = list(WriteAheadLog(str(path), OsFileSystem()).replay(RecoveryReport()))
    assert [(r.index, r.payload, r.time_ns) for r in got] == [
        (i, p, t) for i, (p, t) in enumerate(records, start=1)
    ]


def _v1_segment(path: Path, records: list[tuple[int, bytes]]) -> None:
    out = FILE_HEADER.pack(b"PULSRWAL", 1, 0)
    for index, payload in records:
        crc = zlib.crc32(payload, zlib.crc32(struct.pack("<BQ", 1, index)))
        out += RECORD_HEADER_V1.pack(len(payload), crc, 1, index) + payload
    path.write_bytes(out)


def _batch(value: float) -> bytes:
    return encode_batch(_build(value))


def test_version_1_segments_are_still_read(tmp_path: Path) -> None:
    """An engine directory written before the format change opens with all its data."""
    (tmp_path / "wal").mkdir()
    _v1_segment(tmp_path / "wal" / "0000000000000001.wal", [(1, _batch(1.0)), (2, _batch(2.0))])
    report = RecoveryReport()
    recs = list(read_segment_file(str(tmp_path / "wal" / "0000000000000001.wal"), report))
    assert [(r.index, r.time_ns) for r in recs] == [(1, 0), (2, 0)] and not report.problems
    engine = Engine(str(tmp_path))
    try:
        assert engine.last_index == 2
        (key,) = engine.match_series("db", "m", {})
        assert engine.read_field(key, "v", 0, 10**6).values.tolist() == [2.0]
    finally:
        engine.close()


def test_archive_keeps_flushed_segments_by_index_range(tmp_path: Path) -> None:
    from node.engine.engine import EngineOptions

    archive = tmp_path / "archive"
    engine = Engine(str(tmp_path / "e"), EngineOptions(wal_archive_dir=str(archive)))
    engine.apply(_build(1.0), accepted_ns=111)
    engine.apply(_build(2.0), accepted_ns=222)
    engine.flush()
    engine.apply(_build(3.0), accepted_ns=333)
    engine.flush()
    engine.close()
    names = sorted(os.listdir(archive))
    assert names == [f"{1:020d}-{2:020d}.wal", f"{3:020d}-{3:020d}.wal"]
    times = [
        r.time_ns for n in names for r in read_segment_file(str(archive / n), RecoveryReport())
    ]
    assert times == [111, 222, 333]
    assert engine.max_accepted_ns == 333


def test_archive_never_overwrites_another_timeline(tmp_path: Path) -> None:
    from node.engine.engine import EngineOptions

    archive = tmp_path / "archive"
    for name, value in (("old", 1.0), ("restored", 2.0)):
        engine = Engine(str(tmp_path / name), EngineOptions(wal_archive_dir=str(archive)))
        engine.apply(_build(value), accepted_ns=5)  # index 1 in both timelines
        engine.flush()
        engine.close()
    names = sorted(os.listdir(archive))
    assert names == [f"{1:020d}-{1:020d}.1.wal", f"{1:020d}-{1:020d}.wal"]
