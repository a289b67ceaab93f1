"""Write-ahead log: segmented files of checksummed records, with group commit.

Format: docs/format/wal.md. A record (segment format version 2) is

    u32 payload length | u32 crc32 of (type, index, time, payload) | u8 type | u64 index |
    i64 accepted time (ns since the epoch; 0 = unknown) | payload

Version 1 segments (no time field) are still read; their records report time 0.

Group commit: `append` only writes (under a short lock); `sync(ticket)` makes every byte up to
the ticket durable. When several writers wait, one of them runs fsync for all bytes written so
far and the others are released by it: concurrent writers share one fsync.

Recovery (`replay`) yields intact records in order. A record that fails its checksum in the last
segment is a torn tail: the file is cut there. One that fails in the middle of the log is
skipped when the next record verifies, else the rest of that segment is dropped. Everything cut
or dropped is reported in `RecoveryReport`, never silently ignored.
"""

from __future__ import annotations

import os
import struct
import threading
import zlib
from collections.abc import Generator, Iterator
from dataclasses import dataclass, field
from enum import IntEnum, StrEnum
from typing import BinaryIO

from node.engine.fs import FileSystem
from pulsar_cluster.errors import StorageError

__all__ = [
    "RecordType",
    "SyncPolicy",
    "WalRecord",
    "RecoveryReport",
    "WriteAheadLog",
    "FILE_HEADER",
    "RECORD_HEADER",
    "RECORD_HEADER_V1",
    "read_segment_file",
    "write_segment_file",
    "archive_name",
]

SEGMENT_MAGIC = b"PULSRWAL"
SEGMENT_VERSION = 2
FILE_HEADER = struct.Struct("<8sII")  # magic, version, reserved
RECORD_HEADER = struct.Struct("<IIBQq")  # length, crc, type, index, accepted time (version 2)
RECORD_HEADER_V1 = struct.Struct("<IIBQ")  # length, crc, type, index (version 1, read only)
_CRC_PART = struct.Struct("<BQq")
_CRC_PART_V1 = struct.Struct("<BQ")
#: A record larger than this is certainly a corrupt length field (batches are capped far below).
MAX_RECORD_BYTES = 256 * 1024 * 1024
_SUFFIX = ".wal"


class RecordType(IntEnum):
    """On-disk record types: never reuse a number."""

    WRITE = 1  # payload: an encoded write batch (docs/format/write-batch.md)
    DELETE = 2  # payload: an encoded delete request
    CATALOG = 3  # payload: an encoded catalog operation (pulsar_cluster/catalogop.py)


class SyncPolicy(StrEnum):
    ALWAYS = "always"  # fsync before acknowledging (default)
    INTERVAL = "interval"  # fsync at most every `sync_interval_s`; a crash loses that window
    NEVER = "never"  # leave it to the OS


@dataclass(frozen=True, slots=True)
class WalRecord:
    type: RecordType
    index: int
    payload: bytes
    segment: int
    #: When the write was accepted (ns since the epoch; 0 = unknown, version 1 segments).
    time_ns: int = 0


@dataclass(slots=True)
class RecoveryReport:
    records: int = 0
    problems: list[str] = field(default_factory=list)
    bytes_dropped: int = 0


def _crc(record_type: int, index: int, time_ns: int, payload: bytes | memoryview) -> int:
    return zlib.crc32(payload, zlib.crc32(_CRC_PART.pack(record_type, index, time_ns)))


def _crc_v1(record_type: int, index: int, payload: bytes | memoryview) -> int:
    return zlib.crc32(payload, zlib.crc32(_CRC_PART_V1.pack(record_type, index)))


def encode_record(record_type: int, index: int, time_ns: int, payload: bytes) -> bytes:
    """One version-2 record: header + payload."""
    crc = _crc(record_type, index, time_ns, payload)
    return RECORD_HEADER.pack(len(payload), crc, int(record_type), index, time_ns) + payload


def archive_name(first_index: int, last_index: int) -> str:
    """File name of an archived segment: the index range it holds (unique per replica log)."""
    return f"{first_index:020d}-{last_index:020d}{_SUFFIX}"


def _segment_name(seq: int) -> str:
    return f"{seq:016d}{_SUFFIX}"


class WriteAheadLog:
    """Thread-safe append + group-commit sync over a directory of segments."""

    def __init__(
        self,
        directory: str,
        fs: FileSystem,
        policy: str = SyncPolicy.ALWAYS,
        segment_bytes: int = 64 * 1024 * 1024,
        archive_dir: str | None = None,
    ) -> None:
        if policy not in (SyncPolicy.ALWAYS, SyncPolicy.INTERVAL, SyncPolicy.NEVER):
            raise ValueError(f"unknown fsync policy '{policy}'")
        self.directory = directory
        self.policy = policy
        self.segment_bytes = segment_bytes
        #: Sealed segments are moved here instead of deleted (point-in-time recovery).
        self.archive_dir = archive_dir
        self._fs = fs
        fs.makedirs(directory)
        self._lock = threading.Lock()
        # Held during an fsync and while a segment is closed: closing a file while another
        # thread fsyncs its descriptor could make that fsync fail (EBADF) or hit a reused fd.
        self._fsync_lock = threading.Lock()
        self._synced_cond = threading.Condition(threading.Lock())
        self._written = 0  # bytes appended since open, over all segments: the ticket space
        self._synced = 0
        self._syncing = False
        self._failed: BaseException | None = None
        self._file: BinaryIO | None = None
        self._segment_seq = 0
        self._segment_size = 0

    # --- segments ------------------------------------------------------------------------------

    def segments(self) -> list[int]:
        names = self._fs.listdir(self.directory)
        return [int(n[: -len(_SUFFIX)]) for n in names if n.endswith(_SUFFIX)]

    def segment_path(self, seq: int) -> str:
        return os.path.join(self.directory, _segment_name(seq))

    def open_for_append(self) -> None:
        """Start a fresh segment after recovery (never append to a recovered one)."""
        existing = self.segments()
        self._start_segment((existing[-1] + 1) if existing else 1)

    def _start_segment(self, seq: int) -> None:
        if self._file is not None:
            with self._fsync_lock:
                self._fs.fsync(self._file)
                self._file.close()
        path = self.segment_path(seq)
        self._file = self._fs.open_append(path)
        self._file.write(FILE_HEADER.pack(SEGMENT_MAGIC, SEGMENT_VERSION, 0))
        self._fs.fsync(self._file)
        self._fs.fsync_dir(self.directory)
        self._segment_seq = seq
        self._segment_size = FILE_HEADER.size

    def rotate(self) -> int:
        """Close the current segment (durably) and start a new one; returns the new sequence.

        Every record appended before the call is in a segment older than the returned one.
        """
        with self._lock:
            self._start_segment(self._segment_seq + 1)
            with self._synced_cond:
                self._synced = self._written
                self._synced_cond.notify_all()
            return self._segment_seq

    def remove_segments_before(self, seq: int) -> int:
        """Delete (or, with an archive directory, archive) the sealed segments before `seq`."""
        removed = 0
        for s in self.segments():
            if s < seq:
                if self.archive_dir is not None:
                    self._archive(self.segment_path(s))
                else:
                    self._fs.remove(self.segment_path(s))
                removed += 1
        if removed:
            self._fs.fsync_dir(self.directory)
        return removed

    def _archive(self, path: str) -> None:
        """Move a sealed segment into the archive, named by its index range (the segment
        sequence restarts after a snapshot restore; indexes do not repeat with other content).
        A segment without records is deleted."""
        assert self.archive_dir is not None
        records = list(read_segment_file(path, RecoveryReport(), self._fs))
        if not records:
            self._fs.remove(path)
            return
        self._fs.makedirs(self.archive_dir)
        name = archive_name(records[0].index, records[-1].index)
        target = os.path.join(self.archive_dir, name)
        for n in range(1, 1000):
            if not self._fs.exists(target):
                break
            if _same_content(self._fs, target, path):
                self._fs.remove(path)  # archived already (a crash between rename and trim)
                return
            # Another timeline used the same indexes (the archive was not switched after a
            # restore): never overwrite or drop either; docs/operations.md says to switch.
            target = os.path.join(self.archive_dir, f"{name[: -len(_SUFFIX)]}.{n}{_SUFFIX}")
        self._fs.rename(path, target)  # same file system expected; else OSError is raised
        self._fs.fsync_dir(self.archive_dir)

    def total_bytes(self) -> int:
        return sum(self._fs.size(self.segment_path(s)) for s in self.segments())

    # --- writing -------------------------------------------------------------------------------

    def append(self, record_type: RecordType, index: int, payload: bytes, time_ns: int = 0) -> int:
        """Append one record; returns the ticket to pass to `sync`. Not yet durable.

        `time_ns` is when the write was accepted (point-in-time recovery filters on it)."""
        header = RECORD_HEADER.pack(
            len(payload),
            _crc(record_type, index, time_ns, payload),
            int(record_type),
            index,
            time_ns,
        )
        with self._lock:
            if self._failed is not None:
                raise StorageError(f"write-ahead log is failed: {self._failed}")
            if self._file is None:
                raise StorageError("write-ahead log is not open")
            if self._segment_size >= self.segment_bytes:
                self._start_segment(self._segment_seq + 1)
            try:
                written = self._file.write(header + payload)
                if written != len(header) + len(payload):
                    raise OSError(f"short write ({written} bytes)")
            except OSError as exc:
                self._undo_partial_write(exc)
                raise StorageError(f"write-ahead log append failed: {exc}") from exc
            size = len(header) + len(payload)
            self._segment_size += size
            self._written += size
            return self._written

    def _undo_partial_write(self, exc: OSError) -> None:
        """Cut a record that was partly written (disk full): the log stays usable.

        If the cut itself fails, the log is marked failed: appending after garbage would be
        recovered (recovery resynchronises), but we cannot promise what is on disk any more.
        """
        try:
            self._fs.truncate(self.segment_path(self._segment_seq), self._segment_size)
        except OSError as cut_exc:
            self._failed = cut_exc
            raise StorageError(f"write-ahead log failed: {exc}; then: {cut_exc}") from exc

    def sync(self, ticket: int) -> None:
        """Return once every byte up to `ticket` is durable (policy `always`).

        With `interval` and `never` it returns at once; the background syncer (or the OS) makes
        the bytes durable later.
        """
        if self.policy != SyncPolicy.ALWAYS:
            return
        cond = self._synced_cond
        with cond:
            while self._synced < ticket:
                if self._failed is not None:
                    raise StorageError(f"fsync of the write-ahead log failed: {self._failed}")
                if self._syncing:
                    cond.wait()
                    continue
                self._syncing = True
                cond.release()
                try:
                    target = self._sync_now()
                finally:
                    cond.acquire()
                    self._syncing = False
                    cond.notify_all()
                self._synced = max(self._synced, target)
            if self._failed is not None and self._synced < ticket:
                raise StorageError(f"fsync of the write-ahead log failed: {self._failed}")

    def sync_all(self) -> None:
        """fsync whatever was written (used by the interval syncer and at close)."""
        target = self._sync_now()
        with self._synced_cond:
            self._synced = max(self._synced, target)
            self._synced_cond.notify_all()

    def _sync_now(self) -> int:
        with self._lock:
            target = self._written
            f = self._file
        if f is None:
            return target
        try:
            with self._fsync_lock:
                self._fs.fsync(f)
        except ValueError:
            # The segment was closed by a rotation while we were about to sync it. Rotation
            # fsyncs a segment before closing it, so every byte up to `target` is durable.
            if not f.closed:
                raise
        except OSError as exc:
            # After a failed fsync the kernel may have dropped the dirty pages: nothing written
            # since the last good fsync can be trusted, so the log refuses all further writes.
            self._failed = exc
            raise StorageError(f"fsync of the write-ahead log failed: {exc}") from exc
        return target

    def close(self) -> None:
        with self._lock, self._fsync_lock:
            if self._file is not None:
                try:
                    self._fs.fsync(self._file)
                finally:
                    self._file.close()
                    self._file = None

    # --- recovery ------------------------------------------------------------------------------

    def replay(self, report: RecoveryReport) -> Iterator[WalRecord]:
        """Yield every intact record of every segment, oldest first. Repairs a torn tail."""
        segments = self.segments()
        for position, seq in enumerate(segments):
            is_last = position == len(segments) - 1
            yield from self._replay_segment(seq, is_last, report)

    def _replay_segment(
        self, seq: int, is_last: bool, report: RecoveryReport
    ) -> Iterator[WalRecord]:
        path = self.segment_path(seq)
        with self._fs.open_read(path) as f:
            data = f.read()
        if len(data) < FILE_HEADER.size:
            report.problems.append(f"{path}: segment shorter than its header; removed")
            report.bytes_dropped += len(data)
            self._fs.remove(path)
            return
        cut = yield from _parse_segment(data, path, seq, is_last, report)
        if cut is not None:
            self._fs.truncate(path, cut)


def _same_content(fs: FileSystem, a: str, b: str) -> bool:
    with fs.open_read(a) as fa, fs.open_read(b) as fb:
        return bool(fa.read() == fb.read())


def read_segment_file(
    path: str, report: RecoveryReport, fs: FileSystem | None = None
) -> Iterator[WalRecord]:
    """Every intact record of one segment file (a copy or an archived segment), read only:
    nothing is repaired; what is skipped is reported."""
    if fs is None:
        with open(path, "rb") as f:
            data = f.read()
    else:
        with fs.open_read(path) as f:
            data = f.read()
    if len(data) < FILE_HEADER.size:
        report.problems.append(f"{path}: segment shorter than its header")
        report.bytes_dropped += len(data)
        return
    yield from _parse_segment(data, path, 0, False, report)


def write_segment_file(fs: FileSystem, path: str, records: list[WalRecord]) -> None:
    """Write `records` as one new version-2 segment (temp name, fsync, rename)."""
    chunks = [FILE_HEADER.pack(SEGMENT_MAGIC, SEGMENT_VERSION, 0)]
    chunks += [encode_record(r.type, r.index, r.time_ns, r.payload) for r in records]
    fs.write_atomic(path, chunks)


@dataclass(frozen=True, slots=True)
class _Format:
    header: struct.Struct
    has_time: bool


_FORMATS = {1: _Format(RECORD_HEADER_V1, False), 2: _Format(RECORD_HEADER, True)}


def _parse_segment(
    data: bytes, path: str, seq: int, is_last: bool, report: RecoveryReport
) -> Generator[WalRecord, None, int | None]:
    """Yield the intact records of a segment's bytes; returns the offset to truncate the file
    at (a torn tail of the last segment) or None."""
    magic, version, _ = FILE_HEADER.unpack_from(data, 0)
    fmt = _FORMATS.get(version)
    if magic != SEGMENT_MAGIC or fmt is None:
        report.problems.append(f"{path}: not a WAL segment (magic/version); skipped")
        report.bytes_dropped += len(data)
        return None
    hsize = fmt.header.size
    pos = FILE_HEADER.size
    end = len(data)
    view = memoryview(data)
    while pos < end:
        good = _check_record(view, pos, fmt)
        if good is not None:
            length, rtype, index, time_ns = good
            body_start = pos + hsize
            payload = bytes(view[body_start : body_start + length])
            report.records += 1
            yield WalRecord(RecordType(rtype), index, payload, seq, time_ns)
            pos = body_start + length
            continue
        # A bad record. Skip it if its length field leads to a record that verifies, else
        # search forward for the next record that verifies (corruption inside a segment
        # must not cost the intact records after it).
        skip_to = _next_record_after(view, pos, fmt)
        if skip_to is None:
            skip_to = _resync(view, pos + 1, fmt)
        if skip_to is not None and skip_to < end:
            report.problems.append(
                f"{path}: corrupt record at offset {pos} ({skip_to - pos} bytes) dropped"
            )
            report.bytes_dropped += skip_to - pos
            pos = skip_to
            continue
        dropped = end - pos
        report.bytes_dropped += dropped
        if is_last:
            report.problems.append(f"{path}: torn tail at offset {pos}: {dropped} bytes cut off")
            return pos
        report.problems.append(
            f"{path}: corrupt record at offset {pos}: rest of segment ({dropped} bytes) dropped"
        )
        return None
    return None


def _check_record(view: memoryview, pos: int, fmt: _Format) -> tuple[int, int, int, int] | None:
    header = fmt.header
    if pos + header.size > len(view):
        return None
    if fmt.has_time:
        length, crc, rtype, index, time_ns = header.unpack_from(view, pos)
    else:
        length, crc, rtype, index = header.unpack_from(view, pos)
        time_ns = 0
    body_start = pos + header.size
    if length > MAX_RECORD_BYTES or body_start + length > len(view):
        return None
    if rtype not in RecordType._value2member_map_:
        return None
    body = view[body_start : body_start + length]
    want = _crc(rtype, index, time_ns, body) if fmt.has_time else _crc_v1(rtype, index, body)
    if want != crc:
        return None
    return length, rtype, index, time_ns


def _next_record_after(view: memoryview, pos: int, fmt: _Format) -> int | None:
    if pos + fmt.header.size > len(view):
        return None
    (length,) = struct.unpack_from("<I", view, pos)
    nxt = pos + fmt.header.size + length
    if length > MAX_RECORD_BYTES or nxt >= len(view):
        return None
    return nxt if _check_record(view, nxt, fmt) is not None else None


def _resync(view: memoryview, start: int, fmt: _Format) -> int | None:
    """The first offset >= start where a whole record verifies, or None.

    Only run after a checksum failure. A false match needs a plausible length, a known type and
    a matching crc32 at once (about 1 in 2**32 per position), so intact records are found and
    garbage is not taken for one.
    """
    end = len(view) - fmt.header.size
    for pos in range(start, end + 1):
        (length,) = struct.unpack_from("<I", view, pos)
        if length > MAX_RECORD_BYTES or pos + fmt.header.size + length > len(view):
            continue
        if _check_record(view, pos, fmt) is not None:
            return pos
    return None
