"""The storage engine of one shard replica: WAL + memtables + SSTables.

Pure and synchronous: it knows nothing of HTTP, Raft or threads beyond its own locks. The
replication layer calls `apply(batch, index)`; the engine records the last applied index with
the data (in WAL records and SSTable footers) and skips what it already has, so replaying a Raft
log after a restart is harmless.

Directory layout:

    DIR/wal/0000000000000001.wal ...   write-ahead log segments (docs/format/wal.md)
    DIR/sst/0000000000000001.sst ...   immutable tables (docs/format/sstable.md)

Write path (`apply`): under the write lock, check field types, append the WAL record, insert
into the active memtable; then, outside the lock, `wal.sync` (group commit). The write is
acknowledged only after sync returns.

Flush: the active memtable becomes immutable and the WAL rotates to a new segment under the
lock; the table is written outside it; then the table is published and the WAL segments that
only held flushed data are removed. A crash at any step leaves either the old WAL segments (and
the data is replayed) or the complete table (and the replay skips by index).
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field

import numpy as np

from node.engine.columns import merge_last_wins, time_slice
from node.engine.fs import TMP_SUFFIX, FileSystem, OsFileSystem
from node.engine.index import SeriesIndex, split_storage_key, storage_key
from node.engine.memtable import Memtable
from node.engine.sstable import SSTable, write_sstable
from node.engine.wal import RecordType, RecoveryReport, SyncPolicy, WriteAheadLog
from pulsar_cluster.batch import FieldType, WriteBatch
from pulsar_cluster.batchcodec import decode_batch, encode_batch
from pulsar_cluster.errors import (
    CorruptionError,
    FieldTypeConflictError,
    OverloadedError,
    StorageError,
)
from pulsar_cluster.logs import get_logger
from pulsar_cluster.series import format_series_key

__all__ = ["Engine", "EngineOptions", "FieldData"]

_SST_SUFFIX = ".sst"
log = get_logger(__name__)


@dataclass(slots=True)
class EngineOptions:
    fsync: str = SyncPolicy.ALWAYS
    #: Interval between background WAL syncs with fsync="interval".
    sync_interval_s: float = 1.0
    #: A memtable above this many (estimated) bytes is flushed to an SSTable.
    memtable_bytes: int = 64 * 1024 * 1024
    #: Writes are refused with 429 while this many full memtables wait for their flush.
    max_immutable_memtables: int = 2
    block_points: int = 4096
    zstd_level: int = 3
    wal_segment_bytes: int = 64 * 1024 * 1024


@dataclass(slots=True)
class FieldData:
    type: FieldType
    timestamps: np.ndarray
    values: np.ndarray


@dataclass(slots=True)
class EngineStats:
    writes: int = 0
    points_written: int = 0
    flushes: int = 0
    skipped_applies: int = 0
    recovery: RecoveryReport = field(default_factory=RecoveryReport)


class Engine:
    def __init__(
        self, directory: str, options: EngineOptions | None = None, fs: FileSystem | None = None
    ) -> None:
        self.directory = directory
        self.options = options or EngineOptions()
        self._fs = fs or OsFileSystem()
        self._lock = threading.Lock()  # guards memtables, index, table list, last index
        self._flush_lock = threading.Lock()  # one flush at a time
        self.flush_wanted = threading.Event()  # set when a memtable is full
        self.stats = EngineStats()
        self._index = SeriesIndex()
        self._memtable = Memtable()
        self._immutables: list[Memtable] = []
        self._tables: list[SSTable] = []
        self._next_table_seq = 1
        self._last_index = 0
        self._closed = False
        self._sst_dir = os.path.join(directory, "sst")
        self._fs.makedirs(self._sst_dir)
        self._wal = WriteAheadLog(
            os.path.join(directory, "wal"),
            self._fs,
            self.options.fsync,
            self.options.wal_segment_bytes,
        )
        self._recover()

    # --- open and recovery ---------------------------------------------------------------------

    def _recover(self) -> None:
        report = self.stats.recovery
        for name in self._fs.listdir(self._sst_dir):
            path = os.path.join(self._sst_dir, name)
            if name.endswith(TMP_SUFFIX):
                self._fs.remove(path)  # debris of a flush that crashed before its rename
                report.problems.append(f"{path}: unfinished table from a crash removed")
                continue
            if not name.endswith(_SST_SUFFIX):
                continue
            table = SSTable(path)  # raises CorruptionError naming the file
            self._tables.append(table)
            self._next_table_seq = max(self._next_table_seq, int(name[: -len(_SST_SUFFIX)]) + 1)
            for skey in table.series_keys():
                types = self._index.add_series(skey)
                types.update(table.field_types(skey))
        flushed = max((t.last_index for t in self._tables), default=0)
        self._last_index = flushed
        for record in self._wal.replay(report):
            if record.index <= self._last_index:
                continue  # already in an SSTable, or a duplicate: applies are idempotent
            if record.type is RecordType.WRITE:
                batch = decode_batch(record.payload)
                self._insert(batch, record.index)
            self._last_index = record.index
        self._wal.open_for_append()

    # --- writes --------------------------------------------------------------------------------

    @property
    def last_index(self) -> int:
        return self._last_index

    def apply(
        self, batch: WriteBatch, index: int | None = None, encoded: bytes | None = None
    ) -> int:
        """Make a batch durable and visible; returns its index.

        `index` is the Raft log index of the command; None lets the engine number writes itself
        (replication factor 1). An index at or below the last applied one is skipped: that is
        a replay. Raises FieldTypeConflictError (nothing written), OverloadedError when flushes
        are behind, StorageError when the disk fails.
        """
        if not batch:
            return self._last_index
        payload = encoded if encoded is not None else encode_batch(batch)
        with self._lock:
            if self._closed:
                raise StorageError("engine is closed")
            if index is not None and index <= self._last_index:
                self.stats.skipped_applies += 1
                return index
            if len(self._immutables) >= self.options.max_immutable_memtables:
                raise OverloadedError(
                    "memtable flushes are behind; retry shortly",
                    retry_after_s=1.0,
                    status_code=503,
                )
            self._check_types(batch)
            index = self._last_index + 1 if index is None else index
            ticket = self._wal.append(RecordType.WRITE, index, payload)
            self._insert(batch, index)
            self._last_index = index
            if self._memtable.bytes >= self.options.memtable_bytes:
                self.flush_wanted.set()
        self._wal.sync(ticket)
        self.stats.writes += 1
        return index

    def _check_types(self, batch: WriteBatch) -> None:
        for key, fields in batch.series.items():
            known = self._index.field_types(storage_key(batch.database, key))
            if not known:
                continue
            for name, col in fields.items():
                existing = known.get(name)
                if existing is not None and existing is not col.type:
                    raise FieldTypeConflictError(
                        format_series_key(key), name, existing.label, col.type.label
                    )

    def _insert(self, batch: WriteBatch, index: int) -> None:
        memtable = self._memtable
        points = 0
        for key, fields in batch.series.items():
            skey = storage_key(batch.database, key)
            types = self._index.add_series(skey)
            for name, col in fields.items():
                types.setdefault(name, col.type)
                memtable.insert(skey, name, col)
                points += len(col)
        memtable.note_index(index)
        self.stats.points_written += points

    def sync_wal(self) -> None:
        """fsync the WAL now (the interval syncer's job with fsync='interval')."""
        self._wal.sync_all()

    # --- flush ---------------------------------------------------------------------------------

    def needs_flush(self) -> bool:
        return self._memtable.bytes >= self.options.memtable_bytes or bool(self._immutables)

    def flush(self) -> int:
        """Write the active memtable (and any waiting immutable ones) to SSTables.

        Returns the number of tables written. Safe to call from any thread; concurrent calls
        serialise.
        """
        with self._flush_lock:
            with self._lock:
                if self._memtable.points:
                    self._immutables.append(self._memtable)
                    self._memtable = Memtable()
                    keep_from = self._wal.rotate()
                else:
                    keep_from = None
                pending = list(self._immutables)
            written = 0
            for memtable in pending:
                seq = self._next_table_seq
                self._next_table_seq += 1
                path = os.path.join(self._sst_dir, f"{seq:016d}{_SST_SUFFIX}")
                write_sstable(
                    self._fs,
                    path,
                    memtable.sorted_items(),
                    memtable.max_index,
                    self.options.block_points,
                    self.options.zstd_level,
                )
                table = SSTable(path)
                with self._lock:
                    self._tables.append(table)
                    self._immutables.remove(memtable)
                written += 1
            if keep_from is not None and not self._immutables:
                self._wal.remove_segments_before(keep_from)
            self.flush_wanted.clear()
            self.stats.flushes += written
            return written

    # --- reads ---------------------------------------------------------------------------------

    def _sources(self) -> tuple[list[SSTable], list[Memtable]]:
        with self._lock:
            return list(self._tables), [*self._immutables, self._memtable]

    def read_field(
        self,
        skey: bytes,
        name: str,
        start: int,
        end: int,
        sources: tuple[list[SSTable], list[Memtable]] | None = None,
    ) -> FieldData | None:
        """Points of one field in [start, end), sorted, last write wins; None if absent."""
        tables, memtables = sources or self._sources()
        parts: list[tuple[np.ndarray, np.ndarray]] = []
        field_type: FieldType | None = None
        for table in tables:  # oldest first: later sources win
            found = table.read(skey, name, start, end)
            if found is None:
                continue
            field_type = found[0]
            for ts, values in found[1]:
                parts.append(time_slice(ts, values, start, end))
        for memtable in memtables:
            got = memtable.read(skey, name)
            if got is None:
                continue
            field_type = got[0]
            parts.append(time_slice(got[1], got[2], start, end))
        if field_type is None:
            return None
        parts = [p for p in parts if len(p[0])] or parts[:1]
        if not parts:
            return FieldData(field_type, np.empty(0, np.int64), np.empty(0))
        ts, values = merge_last_wins(parts)
        return FieldData(field_type, ts, values)

    def match_series(self, database: str, measurement: str, tags: dict[str, str]) -> list[bytes]:
        with self._lock:
            return self._index.match(database, measurement, tags)

    def series_fields(self, skey: bytes) -> dict[str, FieldType]:
        with self._lock:
            return dict(self._index.field_types(skey))

    def scan(
        self,
        database: str,
        measurement: str,
        tags: dict[str, str],
        fields: list[str] | None,
        start: int,
        end: int,
    ) -> Iterator[tuple[bytes, dict[str, FieldData]]]:
        """(series key, {field: data}) for every matching series with data in the range."""
        sources = self._sources()
        for skey in self.match_series(database, measurement, tags):
            names = fields if fields is not None else sorted(self.series_fields(skey))
            out: dict[str, FieldData] = {}
            for name in names:
                data = self.read_field(skey, name, start, end, sources)
                if data is not None and len(data.timestamps):
                    out[name] = data
            if out:
                yield split_storage_key(skey)[1], out

    def databases(self) -> list[str]:
        with self._lock:
            return self._index.databases()

    def measurements(self, database: str) -> list[str]:
        with self._lock:
            return self._index.measurements(database)

    # --- status and lifecycle ------------------------------------------------------------------

    def status(self) -> dict[str, object]:
        with self._lock:
            return {
                "last_index": self._last_index,
                "series": len(self._index),
                "memtable_bytes": self._memtable.bytes,
                "memtable_points": self._memtable.points,
                "immutable_memtables": len(self._immutables),
                "sstables": len(self._tables),
                "sstable_bytes": sum(t.size for t in self._tables),
                "wal_bytes": self._wal.total_bytes(),
                "recovered_wal_records": self.stats.recovery.records,
                "recovery_problems": list(self.stats.recovery.problems),
            }

    def close(self, flush: bool = True) -> None:
        """Flush (optionally), sync and close. Idempotent."""
        if self._closed:
            return
        if flush:
            try:
                self.flush()
            except (OSError, CorruptionError, StorageError) as exc:
                # Not fatal: the WAL still holds every write, and the next open replays it.
                log.warning("flush_at_close_failed", directory=self.directory, error=str(exc))
        with self._lock:
            self._closed = True
        self._wal.close()
        for table in self._tables:
            table.close()
