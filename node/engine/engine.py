"""The storage engine of one shard replica: WAL + memtables + partitioned SSTables.

Pure and synchronous: it knows nothing of HTTP, Raft or threads beyond its own locks (the
background thread that calls `flush`, `compact` and `enforce_retention` is node/background.py).
The replication layer calls `apply(batch, index)` / `delete(request, index)`; the engine records
the last applied index with the data (WAL records, SSTable meta, manifest) and skips what it
already has, so replaying a Raft log after a restart is harmless.

Directory layout:

    DIR/wal/0000000000000001.wal ...     write-ahead log segments (docs/format/wal.md)
    DIR/sst/SEQ-GEN-DBTAG-PSTART.sst ... immutable tables, one database and time partition each
                                         (docs/format/sstable.md)
    DIR/MANIFEST                         applied-index floor, tombstones and the database
                                         registry (manifest.md)
    DIR/corrupt/                         tables that failed their checks at open (quarantine)
    DIR/RESTORE, DIR/restore.tmp/        only while a snapshot restore is in progress

Write path (`apply`): under the write lock, check field types and the series limit, append the
WAL record, insert into the active memtable; then, outside the lock, `wal.sync` (group commit).
The write is acknowledged only after sync returns.

Flush: the active memtable becomes immutable and the WAL rotates under the lock; the tables
(one per database and partition touched, all with the memtable's seq) are written outside it;
then the manifest records the seq as flushed (the commit point of the flush), the tables are
published together, and WAL segments that held only flushed data are removed.

Open: debris (`*.tmp`) is removed; each table is loaded and checked (footer, meta and index
checksums); a table that fails is moved to DIR/corrupt/ and reported in `status()` rather than
refusing to start (its data may still be in the WAL or on other replicas; blocks are checked on
every read anyway). Tables named in another table's `replaced` list are leftovers of a compaction
and are deleted. Gen-0 tables with a seq above the manifest's `flushed_seq` are from a flush
that did not reach its commit point: they are deleted and the WAL (never trimmed before that
point) replays the data.
Then the WAL is replayed from the highest index any table or the manifest covers.

Databases: the registry (CREATE DATABASE, retention policies; pulsar_cluster/catalogop.py) is in
the manifest; a catalog change is a WAL record (type CATALOG) first, then a manifest rewrite, so
a crash between the two replays it. A database also exists while it has series (created on
first write). DROP SERIES / MEASUREMENT / DATABASE are deletes with `drop` set (deletes.py):
the series leave the index and the memtable at once, and a `drop` tombstone keeps them out of
the index rebuilt at the next open until compaction has rewritten the tables without them;
tables of a dropped database are deleted outright.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import numpy as np

from node.engine.batchread import FieldBatch, read_field_batch
from node.engine.cache import BlockCache
from node.engine.columns import merge_last_wins, time_slice
from node.engine.compaction import merge_tables, plan_partition
from node.engine.deletes import DeleteRequest, applicable, apply_tombstones, overlaps
from node.engine.fs import TMP_SUFFIX, FileSystem, OsFileSystem
from node.engine.index import SeriesIndex, split_storage_key, storage_key, storage_key_database
from node.engine.lastcache import LastValueCache
from node.engine.manifest import (
    MANIFEST_NAME,
    DatabaseEntry,
    Manifest,
    Tombstone,
    read_manifest,
    write_manifest,
)
from node.engine.memtable import Memtable
from node.engine.rollups import RollupCache
from node.engine.snapshot import SnapshotInfo, link_or_copy, read_descriptor, write_descriptor
from node.engine.sstable import (
    SST_SUFFIX,
    SSTable,
    SSTableWriter,
    TableMeta,
    database_tag,
    parse_table_file_name,
)
from node.engine.wal import RecordType, RecoveryReport, SyncPolicy, WriteAheadLog
from pulsar_cluster.batch import FieldType, WriteBatch
from pulsar_cluster.batchcodec import decode_batch, encode_batch
from pulsar_cluster.catalogop import CatalogOp
from pulsar_cluster.errors import (
    CorruptionError,
    FieldTypeConflictError,
    LimitExceededError,
    OverloadedError,
    StorageError,
)
from pulsar_cluster.logs import get_logger
from pulsar_cluster.series import SEP, format_series_key

__all__ = [
    "Engine",
    "EngineOptions",
    "FieldData",
    "RetentionPolicy",
    "DeleteRequest",
    "CheckpointInfo",
]

log = get_logger(__name__)
_NS_PER_DAY = 86_400 * 10**9
_I64_MIN = int(np.iinfo(np.int64).min)
_I64_MAX = int(np.iinfo(np.int64).max)
_RESTORE_MARKER = "RESTORE"
_RESTORE_STAGE = "restore.tmp"


@dataclass(slots=True)
class RetentionPolicy:
    """Keep data of a database for `duration_ns` (0 = forever); per-measurement overrides."""

    duration_ns: int = 0
    measurements: dict[str, int] = field(default_factory=dict)

    def for_measurement(self, measurement: str) -> int:
        return self.measurements.get(measurement, self.duration_ns)


@dataclass(slots=True)
class EngineOptions:
    fsync: str = SyncPolicy.ALWAYS
    #: Interval between background WAL syncs with fsync="interval".
    sync_interval_s: float = 1.0
    #: A memtable above this many (estimated) bytes is flushed to SSTables.
    memtable_bytes: int = 64 * 1024 * 1024
    #: Writes are refused with 503 while this many full memtables wait for their flush.
    max_immutable_memtables: int = 2
    block_points: int = 4096
    zstd_level: int = 3
    wal_segment_bytes: int = 64 * 1024 * 1024
    #: Width of a time partition: one table per database and partition per flush.
    partition_ns: int = _NS_PER_DAY
    #: Background compaction merges a run of this many small tables of one partition ...
    compaction_trigger: int = 4
    #: ... where "small" is at most this size (bigger tables are only rewritten by a full one).
    compaction_small_bytes: int = 64 * 1024 * 1024
    #: Writes get 429 while any partition has more tables than this (compaction is behind).
    max_tables_per_partition: int = 64
    #: Decoded-block LRU cache size.
    block_cache_bytes: int = 64 * 1024 * 1024
    #: Rollup (window partial-aggregate) cache size (node/engine/rollups.py); 0 disables it.
    #: An entry of one series, field and aggregate over 12 hourly windows is about 1.6 KB.
    rollup_cache_bytes: int = 32 * 1024 * 1024
    #: Last-value cache bound (node/engine/lastcache.py), entries of about 150 bytes.
    last_value_entries: int = 1_000_000
    #: Series per database this replica accepts; 0 = unlimited. LimitExceededError (422) beyond.
    max_series_per_database: int = 0
    #: Retention per database; absent = keep forever.
    retention: dict[str, RetentionPolicy] = field(default_factory=dict)
    #: Clock for retention (ns since the epoch); injectable for tests.
    clock: Callable[[], int] = time.time_ns
    #: Keep sealed WAL segments here instead of deleting them after a flush (point-in-time
    #: recovery, docs/operations.md); None: delete. Same file system as the data directory.
    wal_archive_dir: str | None = None


@dataclass(frozen=True, slots=True)
class CheckpointInfo:
    """A backup checkpoint (`Engine.create_checkpoint`): every effect of indexes <= last_index."""

    last_index: int
    #: Latest accepted time of any record applied up to last_index (0 = unknown).
    max_accepted_ns: int
    #: Paths relative to the checkpoint directory: MANIFEST, sst/*.sst, wal/*.wal.
    files: list[str]


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
    compactions: int = 0
    #: Bytes of the tables compaction merged away, and of the tables it wrote.
    compaction_bytes_read: int = 0
    compaction_bytes_written: int = 0
    deletes: int = 0
    partitions_dropped: int = 0
    skipped_applies: int = 0
    recovery: RecoveryReport = field(default_factory=RecoveryReport)
    quarantined: list[str] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class _View:
    """What a read needs, captured at once: replaced (never mutated) on every change."""

    # database -> [(partition start, partition end, tables oldest first)]
    partitions: dict[str, list[tuple[int, int, tuple[SSTable, ...]]]]
    memtables: tuple[Memtable, ...]  # immutable ones oldest first, then the active one
    tombstones: tuple[Tombstone, ...]


class Engine:
    def __init__(
        self, directory: str, options: EngineOptions | None = None, fs: FileSystem | None = None
    ) -> None:
        self.directory = directory
        self.options = options or EngineOptions()
        if self.options.partition_ns <= 0:
            raise ValueError("partition_ns must be positive")
        self._fs = fs or OsFileSystem()
        self._lock = threading.Lock()  # guards memtables, index, tables, manifest, last index
        self._flush_lock = threading.Lock()  # one flush at a time
        self._compact_lock = threading.Lock()  # one compaction / retention / restore at a time
        # Held while table files are removed (compaction, retention, restore) and while a
        # snapshot links them: a snapshot never waits for a whole compaction, only for its
        # last step. Lock order: compact -> flush -> files -> write lock.
        self._files_lock = threading.Lock()
        self._manifest_lock = threading.Lock()  # serialises manifest file writes
        self.flush_wanted = threading.Event()  # set when a memtable is full
        self._cache = BlockCache(self.options.block_cache_bytes)
        #: Exact window states of aggregate queries; kept in step with every write (`_insert`)
        #: and cleared by deletes, catalog changes and restores.
        self.rollups = RollupCache(self.options.rollup_cache_bytes)
        #: The latest point of each series field, for last() over all time; kept like the
        #: rollup cache: moved by every applied write, emptied by deletes, catalog changes and
        #: restores (one place for standalone and every Raft replica alike).
        self.last_values = LastValueCache(self.options.last_value_entries)
        self._sst_dir = os.path.join(directory, "sst")
        self._wal_dir = os.path.join(directory, "wal")
        self._manifest_path = os.path.join(directory, MANIFEST_NAME)
        self._closed = False
        #: Retention from the configuration; the registry's policies are laid over it.
        self._configured_retention = dict(self.options.retention)
        self._open()

    def _open(self) -> None:
        self.stats = EngineStats()
        self._index = SeriesIndex()
        self._tables: dict[tuple[str, int, int], list[SSTable]] = {}
        self._immutables: list[Memtable] = []
        self._next_seq = 1
        self._last_index = 0
        self._retention_marks: dict[tuple[str, str], int] = {}
        self._fs.makedirs(self._sst_dir)
        if self._fs.exists(os.path.join(self.directory, _RESTORE_MARKER)):
            self._finish_restore()
        self._manifest = read_manifest(self._fs, self._manifest_path)
        self._wal = self._open_wal()
        self._recover()

    def _open_wal(self) -> WriteAheadLog:
        return WriteAheadLog(
            self._wal_dir,
            self._fs,
            self.options.fsync,
            self.options.wal_segment_bytes,
            self.options.wal_archive_dir,
        )

    # --- open and recovery ---------------------------------------------------------------------

    def _recover(self) -> None:
        report = self.stats.recovery
        loaded: list[SSTable] = []
        quarantined: list[tuple[int, int, str, int]] = []
        for name in self._fs.listdir(self._sst_dir):
            path = os.path.join(self._sst_dir, name)
            if name.endswith(TMP_SUFFIX):
                self._fs.remove(path)  # debris of a flush or compaction that crashed
                report.problems.append(f"{path}: unfinished table from a crash removed")
                continue
            parsed = parse_table_file_name(name)
            if parsed is None:
                continue
            try:
                loaded.append(SSTable(path, self._cache))
            except CorruptionError as exc:
                self._quarantine(path, exc)
                quarantined.append(parsed)
        loaded = self._drop_superseded(loaded)
        max_seq = max([self._manifest.flushed_seq, *(p[0] for p in quarantined)])
        drops = [t for t in self._manifest.tombstones if t.drop]
        for table in loaded:
            max_seq = max(max_seq, table.meta.seq)
            m = table.meta
            dead = [
                t
                for t in drops
                if t.database == m.database and t.seq > m.seq and t.id > m.deletes_applied
            ]
            if any(t.series is None for t in dead):
                # Every point of it belongs to a dropped database: the drop's removal did not
                # happen before a crash (or compaction was busy). Not a problem to report.
                table.close()
                self._fs.remove(table.path)
                self._fs.fsync_dir(self._sst_dir)
                continue
            self._tables.setdefault(table.partition, []).append(table)
            for skey in table.series_keys():
                if dead and any(t.covers(skey) for t in dead):
                    continue  # dropped: the index forgets it (its points are tombstoned)
                self._index.add_series(skey).update(table.field_types(skey))
        for tables in self._tables.values():
            tables.sort(key=lambda t: t.table_id)
        max_seq = max([max_seq, *(t.seq for t in self._manifest.tombstones)])
        self._next_seq = max_seq + 1
        flushed = max([self._manifest.applied_index, *(t.last_index for t in loaded)], default=0)
        self._last_index = flushed
        self._max_accepted = self._manifest.max_accepted_ns
        self._memtable = self._new_memtable()
        known_deletes = {t.index for t in self._manifest.tombstones if t.index}
        for record in self._wal.replay(report):
            if record.index <= flushed:
                continue  # already in an SSTable, or a duplicate: applies are idempotent
            if record.type is RecordType.WRITE:
                self._insert(decode_batch(record.payload), record.index)
            elif record.type is RecordType.DELETE:
                request = DeleteRequest.decode(record.payload)
                self._delete_locked(request, record.index, record.index not in known_deletes)
            elif record.type is RecordType.CATALOG:
                self._catalog_locked(CatalogOp.decode(record.payload), record.index)
            self._last_index = max(self._last_index, record.index)
            self._max_accepted = max(self._max_accepted, record.time_ns)
        self._wal.open_for_append()
        self._apply_registry_retention()
        self._rebuild_view()

    def _quarantine(self, path: str, exc: CorruptionError) -> None:
        corrupt_dir = os.path.join(self.directory, "corrupt")
        self._fs.makedirs(corrupt_dir)
        target = os.path.join(corrupt_dir, os.path.basename(path))
        self._fs.rename(path, target)
        self._fs.fsync_dir(self._sst_dir)
        msg = f"{exc.message}; table moved to {target}"
        self.stats.recovery.problems.append(msg)
        self.stats.quarantined.append(target)
        log.error("sstable_quarantined", file=path, offset=exc.offset, cause=exc.cause)

    def _drop_superseded(self, loaded: list[SSTable]) -> list[SSTable]:
        """Delete compaction inputs that outlived their output, and tables of torn flushes."""
        replaced: set[tuple[str, int, int, int]] = set()  # (db tag, pstart, seq, gen)
        for t in loaded:
            tag = database_tag(t.database)
            for seq, gen in t.meta.replaced:
                replaced.add((tag, t.meta.partition_start, seq, gen))
        keep: list[SSTable] = []
        for t in loaded:
            if (database_tag(t.database), t.meta.partition_start, *t.table_id) in replaced:
                self._remove_table_file(t, "compaction input left by a crash removed")
            else:
                keep.append(t)
        # A flush is complete once the manifest records its seq (written after every table of
        # the flush is renamed, before the tables are published or the WAL is trimmed). Tables
        # of a later seq are from a flush that crashed: the WAL still holds their data.
        out = []
        for t in keep:
            if t.meta.gen == 0 and t.meta.seq > self._manifest.flushed_seq:
                self._remove_table_file(t, "table of an unfinished flush removed (WAL replays it)")
            else:
                out.append(t)
        return out

    def _remove_table_file(self, table: SSTable, why: str) -> None:
        self.stats.recovery.problems.append(f"{table.path}: {why}")
        table.close()
        self._fs.remove(table.path)
        self._fs.fsync_dir(self._sst_dir)

    def _new_memtable(self) -> Memtable:
        seq = self._next_seq
        self._next_seq += 1
        return Memtable(seq)

    def _rebuild_view(self) -> None:
        """Publish a new read view; call with the write lock held (or during open)."""
        partitions: dict[str, list[tuple[int, int, tuple[SSTable, ...]]]] = {}
        most = 0
        for (db, pstart, pend), tables in sorted(self._tables.items()):
            if tables:
                partitions.setdefault(db, []).append((pstart, pend, tuple(tables)))
                most = max(most, len(tables))
        self._most_tables = most
        self._view = _View(
            partitions,
            (*self._immutables, self._memtable),
            tuple(self._manifest.tombstones),
        )

    # --- writes --------------------------------------------------------------------------------

    @property
    def last_index(self) -> int:
        return self._last_index

    def apply(
        self,
        batch: WriteBatch,
        index: int | None = None,
        encoded: bytes | None = None,
        accepted_ns: int | None = None,
    ) -> int:
        """Make a batch durable and visible; returns its index.

        `index` is the Raft log index of the command; None lets the engine number writes itself
        (replication factor 1). An index at or below the last applied one is skipped: that is
        a replay. `accepted_ns` is when the write was accepted (the Raft leader's stamp; None:
        now), kept in the WAL for point-in-time recovery. Raises FieldTypeConflictError or
        LimitExceededError (nothing written), OverloadedError when flushes or compactions are
        behind, StorageError when the disk fails.
        """
        if not batch:
            return self._last_index
        if accepted_ns is None:
            accepted_ns = time.time_ns()
        payload = encoded if encoded is not None else encode_batch(batch)
        with self._lock:
            if self._closed:
                raise StorageError("engine is closed")
            if index is not None and index <= self._last_index:
                self.stats.skipped_applies += 1
                return index
            self._check_backpressure()
            self._check_types(batch)
            self._check_cardinality(batch)
            index = self._last_index + 1 if index is None else index
            ticket = self._wal.append(RecordType.WRITE, index, payload, accepted_ns)
            self._insert(batch, index)
            self.last_values.observe(batch)  # not in _insert: WAL replay finds it empty
            self._last_index = index
            self._max_accepted = max(self._max_accepted, accepted_ns)
            if self._memtable.bytes >= self.options.memtable_bytes:
                self.flush_wanted.set()
        self._wal.sync(ticket)
        self.stats.writes += 1
        return index

    def _check_backpressure(self) -> None:
        if len(self._immutables) >= self.options.max_immutable_memtables:
            raise OverloadedError(
                "memtable flushes are behind; retry shortly", retry_after_s=1.0, status_code=503
            )
        if self._most_tables > self.options.max_tables_per_partition:
            raise OverloadedError(
                "compaction is behind (too many tables in a partition); retry shortly",
                retry_after_s=2.0,
                status_code=429,
            )

    def _check_types(self, batch: WriteBatch) -> None:
        prefix = batch.database.encode() + SEP
        field_types = self._index.field_types
        table = batch.table_if_current()
        if table is not None:
            # Every series of a table has the same fields: compare whole type maps (C-level
            # dict-view comparisons); only a series that differs is examined field by field.
            expected = {name: ftype for name, ftype, _ in table.fields}
            wanted = expected.items()
            for key in table.keys:
                known = field_types(prefix + key)
                if not known or known.items() >= wanted:
                    continue
                for name, ftype in expected.items():
                    existing = known.get(name)
                    if existing is not None and existing is not ftype:
                        raise FieldTypeConflictError(
                            format_series_key(key), name, existing.label, ftype.label
                        )
            return
        for key, fields in batch.series.items():
            known = field_types(prefix + key)
            if not known:
                continue
            for name, col in fields.items():
                existing = known.get(name)
                if existing is not None and existing is not col.type:
                    raise FieldTypeConflictError(
                        format_series_key(key), name, existing.label, col.type.label
                    )

    def _check_cardinality(self, batch: WriteBatch) -> None:
        limit = self.options.max_series_per_database
        if not limit:
            return
        db = batch.database
        table = batch.table_if_current()
        keys = table.keys if table is not None else batch.series
        new = sum(1 for key in keys if storage_key(db, key) not in self._index)
        if new and self._index.series_count(db) + new > limit:
            raise LimitExceededError(
                f"database '{db}' would exceed its limit of {limit} series "
                f"({self._index.series_count(db)} exist, the write adds {new})",
                database=db,
                limit=limit,
            )

    def _insert(self, batch: WriteBatch, index: int) -> None:
        memtable = self._memtable
        prefix = batch.database.encode() + SEP
        add_series = self._index.add_series
        points = 0
        table = batch.table_if_current()
        if table is not None:
            # One O(series) pass for the index; the memtable keeps the table whole.
            expected = {name: ftype for name, ftype, _ in table.fields}
            for key in table.keys:
                types = add_series(prefix + key)
                if not types.keys() >= expected.keys():
                    for name, ftype in expected.items():
                        types.setdefault(name, ftype)
            points = memtable.insert_table(prefix, table)
            memtable.note_index(index)
            self.stats.points_written += points
            if self.rollups.active and len(table.timestamps):
                ts = table.timestamps
                self.rollups.written((prefix + k for k in table.keys), int(ts.min()), int(ts.max()))
            return
        for key, fields in batch.series.items():
            skey = prefix + key
            types = add_series(skey)
            if len(types) < len(fields) or not types.keys() >= fields.keys():
                for name, col in fields.items():
                    types.setdefault(name, col.type)
            points += memtable.insert_series(skey, fields)
        memtable.note_index(index)
        self.stats.points_written += points
        self._rollups_written(prefix, batch)

    def _rollups_written(self, prefix: bytes, batch: WriteBatch) -> None:
        """Tell the rollup cache which series got points, and the batch's time range."""
        if not self.rollups.active:
            return
        tmin, tmax = _I64_MAX, _I64_MIN
        for fields in batch.series.values():
            for col in fields.values():
                if len(col.timestamps):
                    tmin = min(tmin, int(col.timestamps.min()))
                    tmax = max(tmax, int(col.timestamps.max()))
        if tmin <= tmax:
            self.rollups.written((prefix + k for k in batch.series), tmin, tmax)

    def sync_wal(self) -> None:
        """fsync the WAL now (the interval syncer's job with fsync='interval')."""
        self._wal.sync_all()

    # --- deletes -------------------------------------------------------------------------------

    def delete(
        self, request: DeleteRequest, index: int | None = None, accepted_ns: int | None = None
    ) -> int:
        """Delete points of matching series in [start, end); durable on return. Returns the index.

        Idempotent by index like `apply`. The data disappears from reads at once; the space is
        reclaimed by compaction.
        """
        request.validate()
        if accepted_ns is None:
            accepted_ns = time.time_ns()
        with self._lock:
            if self._closed:
                raise StorageError("engine is closed")
            if index is not None and index <= self._last_index:
                self.stats.skipped_applies += 1
                return index
            index = self._last_index + 1 if index is None else index
            ticket = self._wal.append(RecordType.DELETE, index, request.encode(), accepted_ns)
            self._delete_locked(request, index, create_tombstone=True)
            self._last_index = index
            self._max_accepted = max(self._max_accepted, accepted_ns)
            self._rebuild_view()
        self._wal.sync(ticket)
        self._persist_manifest()
        self.stats.deletes += 1
        if request.whole_database:
            self._remove_dropped_tables(request.database)
        return index

    def _delete_locked(self, request: DeleteRequest, index: int, create_tombstone: bool) -> None:
        self.rollups.clear()  # deletes are rare: forgetting everything is exact and simple
        self.last_values.clear()
        db = request.database
        if request.whole_database:
            skeys = frozenset(self._index.all_series(db))
        elif request.series is not None:
            skeys = frozenset(storage_key(db, k) for k in request.series)
            skeys = frozenset(k for k in skeys if k in self._index)
        else:
            skeys = frozenset(self._index.match(db, request.measurement, request.tags))
        if request.drop:
            self._memtable.drop_series(skeys)
            self._index.remove_database_series(list(skeys))
        else:
            self._memtable.delete(skeys, request.start, request.end)
        self._memtable.note_index(index)
        if request.whole_database:
            self._manifest.databases.pop(db, None)
            self._retention_marks = {k: v for k, v in self._retention_marks.items() if k[0] != db}
            self._apply_registry_retention()
            older = any(key[0] == db for key in self._tables) or any(
                m.points for m in self._immutables
            )
            if create_tombstone and (skeys or older):
                self._add_tombstone(db, request.start, request.end, None, index, drop=True)
        elif create_tombstone and skeys:
            self._add_tombstone(db, request.start, request.end, skeys, index, drop=request.drop)

    def _add_tombstone(
        self,
        db: str,
        start: int,
        end: int,
        skeys: frozenset[bytes] | None,
        index: int,
        drop: bool = False,
    ) -> None:
        m = self._manifest
        m.tombstones.append(
            Tombstone(m.next_tombstone_id, self._memtable.seq, index, db, start, end, skeys, drop)
        )
        m.next_tombstone_id += 1

    def _remove_dropped_tables(self, database: str) -> None:
        """Delete the tables of a dropped database now (its tombstone already hides them).

        Only if no compaction runs: waiting for one could stall the caller (a Raft apply);
        otherwise the next compaction or open removes them.
        """
        if not self._compact_lock.acquire(blocking=False):
            return
        try:
            with self._files_lock:
                with self._lock:
                    drops = [
                        t
                        for t in self._manifest.tombstones
                        if t.drop and t.series is None and t.database == database
                    ]
                    gone: list[SSTable] = []
                    for key in [k for k in self._tables if k[0] == database]:
                        keep = []
                        for table in self._tables[key]:
                            m = table.meta
                            if any(t.seq > m.seq and t.id > m.deletes_applied for t in drops):
                                gone.append(table)
                            else:
                                keep.append(table)
                        if keep:
                            self._tables[key] = keep
                        else:
                            del self._tables[key]
                    self._rebuild_view()
                for table in gone:
                    self._fs.remove(table.path)
                if gone:
                    self._fs.fsync_dir(self._sst_dir)
        finally:
            self._compact_lock.release()
        if gone:
            self._collect_tombstones()

    # --- the database registry -----------------------------------------------------------------

    def catalog(self, op: CatalogOp, index: int | None = None) -> int:
        """Apply a registry change (CREATE DATABASE, retention policy); durable on return.

        Idempotent by index like `apply`; replaying the operation is harmless too (see
        pulsar_cluster/catalogop.py). Returns the index.
        """
        op.validate()
        with self._lock:
            if self._closed:
                raise StorageError("engine is closed")
            if index is not None and index <= self._last_index:
                self.stats.skipped_applies += 1
                return index
            index = self._last_index + 1 if index is None else index
            ticket = self._wal.append(RecordType.CATALOG, index, op.encode())
            self._catalog_locked(op, index)
            self._last_index = index
        self._wal.sync(ticket)
        self._persist_manifest()
        return index

    def _catalog_locked(self, op: CatalogOp, index: int) -> None:
        self.rollups.clear()  # a retention policy may change what reads return
        self.last_values.clear()
        databases = self._manifest.databases
        if op.op == "create":
            if op.database not in databases:
                databases[op.database] = DatabaseEntry(op.policy, op.duration_ns)
        else:
            databases[op.database] = DatabaseEntry(op.policy, op.duration_ns)
        self._memtable.note_index(index)
        self._apply_registry_retention()

    def _apply_registry_retention(self) -> None:
        """options.retention = the configured retention with the registry's policies laid over
        it (per-measurement overrides of the configuration are kept). Under the write lock."""
        retention = dict(self._configured_retention)
        for db, entry in self._manifest.databases.items():
            if entry.duration_ns is None:
                continue
            base = retention.get(db)
            measurements = dict(base.measurements) if base is not None else {}
            if entry.duration_ns == 0 and not measurements:
                retention.pop(db, None)
            else:
                retention[db] = RetentionPolicy(entry.duration_ns, measurements)
        self.options.retention = retention  # replaced, never mutated: readers hold the old

    def registered_databases(self) -> dict[str, DatabaseEntry]:
        """The registry (a copy): databases created explicitly, with their policies."""
        with self._lock:
            return dict(self._manifest.databases)

    def retention_policy(self, database: str) -> tuple[str, int] | None:
        """(policy name, duration ns; 0 = forever) of an existing database, else None."""
        with self._lock:
            entry = self._manifest.databases.get(database)
            if entry is None and not self._index.series_count(database):
                return None
            policy = self.options.retention.get(database)
            duration = policy.duration_ns if policy is not None else 0
            return (entry.policy if entry is not None else "autogen", duration)

    def _persist_manifest(self) -> None:
        with self._manifest_lock:
            with self._lock:
                m = self._manifest
                data = Manifest(
                    m.applied_index,
                    m.next_tombstone_id,
                    list(m.tombstones),
                    m.flushed_seq,
                    databases=dict(m.databases),
                    max_accepted_ns=max(m.max_accepted_ns, self._max_accepted),
                )
            write_manifest(self._fs, self._manifest_path, data)

    # --- flush ---------------------------------------------------------------------------------

    def needs_flush(self) -> bool:
        return self._memtable.bytes >= self.options.memtable_bytes or bool(self._immutables)

    def flush(self) -> int:
        """Write the active memtable (and any waiting immutable ones) to SSTables.

        Returns the number of tables written. Safe to call from any thread; concurrent calls
        serialise. Writes continue into a new memtable meanwhile.
        """
        with self._flush_lock:
            return self._flush_locked()

    def _flush_locked(self) -> int:
        with self._lock:
            if self._closed:
                raise StorageError("engine is closed")
            mem = self._memtable
            if mem.points or mem.max_index:
                self._immutables.append(mem)
                self._memtable = self._new_memtable()
                keep_from = self._wal.rotate()
                self._rebuild_view()
            else:
                keep_from = None
            pending = list(self._immutables)
        written = 0
        for memtable in pending:
            tables = self._write_memtable(memtable)
            with self._lock:
                self._manifest.flushed_seq = max(self._manifest.flushed_seq, memtable.seq)
                if not tables:
                    # Nothing to write (deletes only): the manifest records the index instead.
                    self._manifest.applied_index = max(
                        self._manifest.applied_index, memtable.max_index
                    )
            self._persist_manifest()  # the commit point of this memtable's flush
            with self._lock:
                for table in tables:
                    self._tables.setdefault(table.partition, []).append(table)
                self._immutables.remove(memtable)
                self._rebuild_view()
            written += len(tables)
        if keep_from is not None and not self._immutables:
            self._wal.remove_segments_before(keep_from)
        self.flush_wanted.clear()
        self.stats.flushes += written
        return written

    def _write_memtable(self, memtable: Memtable) -> list[SSTable]:
        """One table per (database, partition) of the memtable, written one after the other.

        The merged columns are grouped by partition first (slices are views), so that one file
        is open at a time however many partitions a backfill touches; the cost is holding the
        merged columns of one memtable (bounded by `memtable_bytes`) during the flush. On error
        the tables already written are removed (they would also be at the next open, as their
        seq is above the manifest's flushed_seq).
        """
        width = self.options.partition_ns
        groups: dict[tuple[str, int], list[tuple[bytes, str, FieldType, np.ndarray, np.ndarray]]]
        groups = {}
        last_skey = None
        db = ""
        for skey, name, field_type, ts, values in memtable.sorted_items():
            if not len(ts):
                continue
            if skey is not last_skey:  # a series' fields come one after the other
                db = storage_key_database(skey)
                last_skey = skey
            first_pid = int(ts[0]) // width
            if first_pid == int(ts[-1]) // width:  # sorted: all in one partition (the usual)
                groups.setdefault((db, first_pid * width), []).append(
                    (skey, name, field_type, ts, values)
                )
                continue
            pids = ts // width
            cuts = np.flatnonzero(pids[1:] != pids[:-1]) + 1
            bounds = [0, *cuts.tolist(), len(ts)]
            for lo, hi in itertools.pairwise(bounds):
                pstart = int(pids[lo]) * width
                groups.setdefault((db, pstart), []).append(
                    (skey, name, field_type, ts[lo:hi], values[lo:hi])
                )
        paths: list[str] = []
        indexes = []
        try:
            for (db, pstart), items in groups.items():
                meta = TableMeta(db, pstart, pstart + width, memtable.seq, 0, len(groups))
                meta.last_index = memtable.max_index
                writer = SSTableWriter(
                    self._fs,
                    self._sst_dir,
                    meta,
                    self.options.block_points,
                    self.options.zstd_level,
                )
                try:
                    writer.add_many(items)
                    paths.append(writer.finish())
                    indexes.append(writer.entries)
                except BaseException:
                    writer.abort()
                    raise
        except BaseException:
            for path in paths:
                with contextlib.suppress(OSError):
                    self._fs.remove(path)
            raise
        # The writers' indexes: opening a table just written need not parse its index again.
        return [SSTable(p, self._cache, e) for p, e in zip(paths, indexes, strict=True)]

    # --- compaction ----------------------------------------------------------------------------

    def needs_compaction(self) -> bool:
        return self._most_tables >= self.options.compaction_trigger

    def compact(self, full: bool = False) -> int:
        """Merge tables per partition (background policy, or everything with `full`).

        Returns the number of tables merged away. Never holds the write lock while merging.
        """
        with self._compact_lock:
            merged = 0
            with self._lock:
                plans = []
                tombstones = list(self._manifest.tombstones)
                deletes_applied = self._manifest.next_tombstone_id - 1
                for key, tables in self._tables.items():
                    run = plan_partition(
                        tables,
                        self.options.compaction_trigger,
                        self.options.compaction_small_bytes,
                        full,
                        tombstones,
                    )
                    if run:
                        plans.append((key, run))
            for key, run in plans:
                path = merge_tables(
                    self._fs,
                    self._sst_dir,
                    run,
                    tombstones,
                    deletes_applied,
                    self.options.block_points,
                    self.options.zstd_level,
                    self._drop_before(key[0]),
                )
                output = SSTable(path, self._cache) if path is not None else None
                with self._lock:
                    tables = self._tables[key]
                    position = tables.index(run[0])
                    remaining = [t for t in tables if t not in run]
                    if output is not None:
                        remaining.insert(position, output)
                    self._tables[key] = remaining
                    self._rebuild_view()
                with self._files_lock:
                    for table in run:
                        self._fs.remove(table.path)
                    self._fs.fsync_dir(self._sst_dir)
                merged += len(run)
                self.stats.compactions += 1
                self.stats.compaction_bytes_read += sum(t.size for t in run)
                self.stats.compaction_bytes_written += output.size if output is not None else 0
            if plans or full:  # full: also tombstones that only applied to flushed memtables
                self._collect_tombstones()
            return merged

    def _drop_before(self, database: str) -> int | None:
        policy = self.options.retention.get(database)
        if policy is None or not policy.duration_ns:
            return None
        longest = max([policy.duration_ns, *policy.measurements.values()])
        if 0 in policy.measurements.values():
            return None
        return self.options.clock() - longest

    def _collect_tombstones(self) -> None:
        """Forget tombstones that no longer apply to any table or memtable."""
        with self._lock:
            keep = []
            for t in self._manifest.tombstones:
                if any(m.seq < t.seq for m in self._immutables) or any(
                    table.meta.seq < t.seq
                    and table.meta.deletes_applied < t.id
                    and overlaps(t, table.min_time, table.max_time)
                    for (db, _, _), tables in self._tables.items()
                    if db == t.database
                    for table in tables
                ):
                    keep.append(t)
            if len(keep) == len(self._manifest.tombstones):
                return
            self._manifest.tombstones = keep
            self._rebuild_view()
        self._persist_manifest()

    # --- retention -----------------------------------------------------------------------------

    def set_retention(self, database: str, policy: RetentionPolicy | None) -> None:
        """Set (or with None remove) a database's retention; reads apply it at once, the
        background worker drops partitions on its next retention pass."""
        with self._lock:
            configured = dict(self._configured_retention)
            if policy is None:
                configured.pop(database, None)
            else:
                configured[database] = policy
            self._configured_retention = configured
            self._apply_registry_retention()

    def enforce_retention(self, now_ns: int | None = None) -> int:
        """Drop partitions past every retention of their database; returns tables dropped.

        Measurements whose retention is shorter than the longest of their database get a
        tombstone up to their cutoff (compaction removes the points). Reads hide expired
        points at once either way.
        """
        now = self.options.clock() if now_ns is None else now_ns
        dropped: list[SSTable] = []
        with self._compact_lock, self._lock:
            for db, policy in self.options.retention.items():
                durations = [policy.duration_ns, *policy.measurements.values()]
                # None: something of this database is kept forever.
                forever = not policy.duration_ns or 0 in durations
                cutoff = None if forever else now - max(durations)
                for key in list(self._tables):
                    if key[0] == db and cutoff is not None and key[2] <= cutoff:
                        dropped.extend(self._tables.pop(key))
                longest = max(durations) if 0 not in durations else 0
                for measurement in self._index.measurements(db):
                    keep_ns = policy.for_measurement(measurement)
                    if not keep_ns or (longest and keep_ns >= longest):
                        continue
                    mcut = now - keep_ns
                    # One tombstone per partition width of progress, not one per pass.
                    mark = mcut // self.options.partition_ns
                    if self._retention_marks.get((db, measurement)) == mark:
                        continue
                    self._retention_marks[(db, measurement)] = mark
                    skeys = frozenset(self._index.series_of_measurement(db, measurement))
                    self._memtable.delete(skeys, _I64_MIN, mcut)
                    self._add_tombstone(db, _I64_MIN, mcut, skeys, 0)
            if dropped:
                self.stats.partitions_dropped += len(dropped)
            self._rebuild_view()
        with self._files_lock:
            for table in dropped:
                self._fs.remove(table.path)
            if dropped:
                self._fs.fsync_dir(self._sst_dir)
        self._persist_manifest()
        return len(dropped)

    def retention_start(self, skey: bytes) -> int:
        """The oldest timestamp reads may return for the series (retention hides the rest)."""
        if not self.options.retention:
            return _I64_MIN
        db, key = split_storage_key(skey)
        policy = self.options.retention.get(db)
        if policy is None:
            return _I64_MIN
        keep_ns = policy.for_measurement(key.split(SEP, 1)[0].decode())
        return self.options.clock() - keep_ns if keep_ns else _I64_MIN

    # --- reads ---------------------------------------------------------------------------------

    def read_view(self) -> _View:
        """One consistent set of tables and memtables; pass it to `read_field` calls that must
        see the same state (a whole query)."""
        with self._lock:
            return self._view

    def read_field(
        self,
        skey: bytes,
        name: str,
        start: int,
        end: int,
        sources: _View | None = None,
        on_block: Callable[[int], None] | None = None,
    ) -> FieldData | None:
        """Points of one field in [start, end), sorted, last write wins; None if absent.

        `on_block(points)` runs before each stored block is decoded and for each memtable's
        part; it may raise (query limits) to stop the read after at most one more block.
        """
        view = sources or self.read_view()
        start = max(start, self.retention_start(skey))
        db = storage_key_database(skey)
        parts: list[tuple[np.ndarray, np.ndarray]] = []
        field_type: FieldType | None = None
        holders = 0  # tables and memtables holding the field
        tombstones = view.tombstones
        for pstart, pend, tables in view.partitions.get(db, ()):
            if pend <= start or pstart >= end:
                continue  # partition pruning
            for table in tables:  # oldest first: later sources win
                m = table.meta
                if m.max_time < start or m.min_time >= end:
                    continue
                found = table.read_range(skey, name, start, end, on_block)
                if found is None:
                    continue
                field_type = found[0]
                holders += 1
                tombs = (
                    applicable(tombstones, db, m.seq, m.deletes_applied, start, end - 1)
                    if tombstones
                    else []
                )
                if tombs:
                    parts.extend(apply_tombstones(skey, ts, x, tombs) for ts, x in found[1])
                else:
                    parts.extend(found[1])
        for memtable in view.memtables:
            got = memtable.read(skey, name)
            if got is None:
                continue
            field_type = got[0]
            holders += 1
            ts, values = time_slice(got[1], got[2], start, end)
            if on_block is not None:
                on_block(len(ts))
            if tombstones:
                tombs = applicable(tombstones, db, memtable.seq, 0, start, end - 1)
                ts, values = apply_tombstones(skey, ts, values, tombs)
            parts.append((ts, values))
        if field_type is None:
            return None
        if len(parts) > 1:
            parts = [p for p in parts if len(p[0])] or parts[:1]
        elif not parts:
            return FieldData(field_type, np.empty(0, np.int64), np.empty(0))
        if len(parts) == 1 and holders == 1:
            # One source's points of a field are sorted and unique (a table's blocks in order:
            # docs/format/sstable.md; a memtable's merged read): nothing to merge or check.
            ts, values = parts[0]
        else:
            ts, values = merge_last_wins(parts)
        return FieldData(field_type, ts, values)

    def read_field_batch(
        self,
        skeys: list[bytes],
        name: str,
        start: int,
        end: int,
        sources: _View | None = None,
        on_block: Callable[[int], None] | None = None,
        max_points: int | None = None,
    ) -> FieldBatch | None:
        """`read_field` of many series at once, as one array (node/engine/batchread.py)."""
        view = sources or self.read_view()
        return read_field_batch(self, view, skeys, name, start, end, on_block, max_points)

    def match_series(self, database: str, measurement: str, tags: dict[str, str]) -> list[bytes]:
        with self._lock:
            return self._index.match(database, measurement, tags)

    def series_fields(self, skey: bytes) -> dict[str, FieldType]:
        with self._lock:
            return dict(self._index.field_types(skey))

    def field_types_of(self, skeys: list[bytes], name: str) -> set[FieldType]:
        """The types field `name` has in these series (series without it add none)."""
        with self._lock:
            return self._index.field_types_of(skeys, name)

    @property
    def index(self) -> SeriesIndex:
        """The series index itself. Not thread-safe: call its methods under the engine's lock,
        or use the locked wrappers below (series_of_measurement, series_with_tag, tag_keys,
        tag_values), which return copies."""
        return self._index

    def series_of_measurement(self, database: str, measurement: str) -> set[bytes]:
        with self._lock:
            return self._index.series_of_measurement(database, measurement)

    def series_with_tag(self, database: str, measurement: str, key: str, value: str) -> set[bytes]:
        with self._lock:
            return self._index.series_with_tag(database, measurement, key, value)

    def tag_keys(self, database: str, measurement: str) -> list[str]:
        with self._lock:
            return self._index.tag_keys(database, measurement)

    def tag_values(self, database: str, measurement: str, key: str) -> list[str]:
        with self._lock:
            return self._index.tag_values(database, measurement, key)

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
        sources = self.read_view()
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
        """Databases with series, and those created explicitly (even when empty)."""
        with self._lock:
            return sorted({*self._index.databases(), *self._manifest.databases})

    def measurements(self, database: str) -> list[str]:
        with self._lock:
            return self._index.measurements(database)

    # --- snapshots -----------------------------------------------------------------------------

    def create_snapshot(self, target_dir: str) -> SnapshotInfo:
        """Flush, then hard-link every table into `target_dir` (created; must be empty).

        The snapshot holds exactly the effects of Raft indexes <= `info.last_index`. Writes go
        on meanwhile (into the next memtable); a running compaction is not waited for (only its
        final file removal is held back while the snapshot links).
        """
        self._fs.makedirs(target_dir)
        if self._fs.listdir(target_dir):
            raise StorageError(f"snapshot target {target_dir} is not empty")
        with self._flush_lock:
            self._flush_locked()
            # Still under the flush lock (no newer tables) and under the files lock (no table
            # of the list is removed while we link): a compaction may swap its output in
            # meanwhile, which holds the same data as its inputs.
            with self._files_lock:
                info, manifest = self._link_snapshot_tables(target_dir)
        write_manifest(self._fs, os.path.join(target_dir, MANIFEST_NAME), manifest)
        write_descriptor(self._fs, info)
        return info

    def _link_snapshot_tables(self, target_dir: str) -> tuple[SnapshotInfo, Manifest]:
        """Link the current tables into `target_dir`; call under the flush and files locks."""
        with self._lock:
            tables = [t for ts in self._tables.values() for t in ts]
            last = max([self._manifest.applied_index, *(t.last_index for t in tables)])
            manifest = Manifest(
                last,
                self._manifest.next_tombstone_id,
                [t for t in self._manifest.tombstones if t.index <= last],
                self._manifest.flushed_seq,
                databases=dict(self._manifest.databases),
                max_accepted_ns=self._max_accepted,
            )
        names = []
        size = 0
        for table in tables:
            name = os.path.basename(table.path)
            link_or_copy(self._fs, table.path, os.path.join(target_dir, name))
            names.append(name)
            size += table.size
        info = SnapshotInfo(target_dir, last, sorted(names), size, time.time_ns())
        return info, manifest

    def create_checkpoint(self, target_dir: str) -> CheckpointInfo:
        """Hard-link a consistent copy of this engine into `target_dir` for a backup, without
        a flush: the tables, the sealed WAL segments and the manifest (docs/format/backup.md).

        Under the flush lock (no table published, no segment removed) and the files lock (no
        table removed), and briefly under the write lock: the WAL is rotated, so every record
        applied so far is in a sealed segment, and `last_index` is read. The copy holds exactly
        the effects of indexes <= last_index: tables plus the segments not yet trimmed cover
        everything applied (segments are trimmed only after their tables are published).
        Opening an engine on the copy replays those segments.
        """
        self._fs.makedirs(target_dir)
        if self._fs.listdir(target_dir):
            raise StorageError(f"checkpoint target {target_dir} is not empty")
        sst_dir = os.path.join(target_dir, "sst")
        wal_dir = os.path.join(target_dir, "wal")
        self._fs.makedirs(sst_dir)
        self._fs.makedirs(wal_dir)
        with self._flush_lock, self._files_lock:
            with self._lock:
                if self._closed:
                    raise StorageError("engine is closed")
                keep_from = self._wal.rotate()
                last = self._last_index
                max_accepted = self._max_accepted
                tables = [t for ts in self._tables.values() for t in ts]
                m = self._manifest
                manifest = Manifest(
                    m.applied_index,
                    m.next_tombstone_id,
                    list(m.tombstones),
                    m.flushed_seq,
                    databases=dict(m.databases),  # the registry travels with the data
                    max_accepted_ns=max(m.max_accepted_ns, max_accepted),
                )
            files = [MANIFEST_NAME]
            for table in tables:
                name = os.path.basename(table.path)
                link_or_copy(self._fs, table.path, os.path.join(sst_dir, name))
                files.append(f"sst/{name}")
            for seq in sorted(self._wal.segments()):
                if seq < keep_from:
                    name = os.path.basename(self._wal.segment_path(seq))
                    link_or_copy(self._fs, self._wal.segment_path(seq), os.path.join(wal_dir, name))
                    files.append(f"wal/{name}")
        write_manifest(self._fs, os.path.join(target_dir, MANIFEST_NAME), manifest)
        return CheckpointInfo(last, max_accepted, files)

    @property
    def max_accepted_ns(self) -> int:
        return self._max_accepted

    def restore_snapshot(self, snapshot_dir: str) -> SnapshotInfo:
        """Replace this engine's whole content with a snapshot (crash-safe; see module doc).

        Everything the engine held is discarded, including the WAL: afterwards `last_index` is
        the snapshot's and the replication layer replays its log from there.
        """
        info = read_descriptor(self._fs, snapshot_dir)
        with self._compact_lock, self._flush_lock, self._files_lock, self._lock:
            stage = os.path.join(self.directory, _RESTORE_STAGE)
            if self._fs.exists(stage):
                for name in self._fs.listdir(stage):
                    self._fs.remove(os.path.join(stage, name))
            self._fs.makedirs(stage)
            for name in [*info.tables, MANIFEST_NAME]:
                link_or_copy(self._fs, os.path.join(snapshot_dir, name), os.path.join(stage, name))
            self._fs.fsync_dir(stage)
            # From here on the restore completes even after a crash: the marker lists the files.
            marker = os.path.join(self.directory, _RESTORE_MARKER)
            self._fs.write_atomic(marker, ["\n".join(info.tables).encode()])
            self._wal.close()
            for tables in self._tables.values():
                for table in tables:
                    table.close()
            self._cache.clear()
            self.rollups.clear()
            self.last_values.clear()
            self._finish_restore()
            self._manifest = read_manifest(self._fs, self._manifest_path)
            self._wal = self._open_wal()
            stats = self.stats
            self.stats = EngineStats()
            self.stats.writes, self.stats.points_written = stats.writes, stats.points_written
            self._index = SeriesIndex()
            self._tables = {}
            self._immutables = []
            self._recover()
        return info

    def _finish_restore(self) -> None:
        """Move a staged snapshot in place. Idempotent: safe to rerun after a crash."""
        marker = os.path.join(self.directory, _RESTORE_MARKER)
        stage = os.path.join(self.directory, _RESTORE_STAGE)
        with self._fs.open_read(marker) as f:
            wanted = set(f.read().decode().split("\n")) - {""}
        for name in self._fs.listdir(self._sst_dir):
            if name not in wanted:
                self._fs.remove(os.path.join(self._sst_dir, name))
        if self._fs.exists(stage):
            for name in self._fs.listdir(stage):
                src = os.path.join(stage, name)
                if name == MANIFEST_NAME:
                    dst = self._manifest_path
                elif name.endswith(SST_SUFFIX):
                    dst = os.path.join(self._sst_dir, name)
                else:
                    self._fs.remove(src)
                    continue
                # rename() between two links of one file does nothing: drop the target first
                # (a crash here is fine: the staged link still exists, and a rerun moves it).
                if self._fs.exists(dst):
                    self._fs.remove(dst)
                self._fs.rename(src, dst)
        if self._fs.exists(self._wal_dir):
            for name in self._fs.listdir(self._wal_dir):
                self._fs.remove(os.path.join(self._wal_dir, name))
            self._fs.fsync_dir(self._wal_dir)
        self._fs.fsync_dir(self._sst_dir)
        self._fs.fsync_dir(self.directory)
        if self._fs.exists(stage):
            os.rmdir(stage)
        self._fs.remove(marker)
        self._fs.fsync_dir(self.directory)

    def verify(self) -> list[str]:
        """Check every block of every table; returns the problems found (empty: all intact)."""
        problems = []
        for _, _, tables in (p for parts in self.read_view().partitions.values() for p in parts):
            for table in tables:
                try:
                    table.verify()
                except CorruptionError as exc:
                    problems.append(exc.message)
        return problems

    # --- status and lifecycle ------------------------------------------------------------------

    def status(self) -> dict[str, object]:
        with self._lock:
            tables = [t for ts in self._tables.values() for t in ts]
            return {
                "last_index": self._last_index,
                "series": len(self._index),
                "memtable_bytes": self._memtable.bytes,
                "memtable_points": self._memtable.points,
                "immutable_memtables": len(self._immutables),
                "sstables": len(tables),
                "sstable_bytes": sum(t.size for t in tables),
                "sstable_points": sum(t.meta.points for t in tables),
                "partitions": len(self._tables),
                "max_tables_per_partition": self._most_tables,
                "tombstones": len(self._manifest.tombstones),
                "wal_bytes": self._wal.total_bytes(),
                "block_cache_bytes": self._cache.bytes,
                "block_cache_hits": self._cache.hits,
                "block_cache_misses": self._cache.misses,
                "flushes": self.stats.flushes,
                "compactions": self.stats.compactions,
                "compaction_bytes_read": self.stats.compaction_bytes_read,
                "compaction_bytes_written": self.stats.compaction_bytes_written,
                "recovered_wal_records": self.stats.recovery.records,
                "recovery_problems": list(self.stats.recovery.problems),
                "quarantined_tables": list(self.stats.quarantined),
            }

    def block_cache_stats(self) -> dict[str, int]:
        """Entries, bytes, capacity, hits and misses of the decoded-block cache."""
        return self._cache.stats()

    def clear_block_cache(self) -> None:
        """Drop every cached block (reads then decode from the tables again)."""
        self._cache.clear()

    def partition_stats(self) -> list[tuple[str, int, int, int]]:
        """(database, partition start ns, tables, bytes) of every time partition on disk."""
        with self._lock:
            return [
                (db, start, len(tables), sum(t.size for t in tables))
                for (db, start, _), tables in sorted(self._tables.items())
            ]

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
        with self._compact_lock, self._flush_lock, self._lock:
            self._closed = True
            self._wal.close()
            for tables in self._tables.values():
                for table in tables:
                    table.close()
