"""Compaction: merge tables of one time partition into one, dropping overwritten and deleted points.

Planning is pure (`plan_partition`); merging (`merge_tables`) streams one (series, field) at a
time through an `SSTableWriter`, so memory is bounded by the largest single field of one series
in one partition, never by the size of the tables.

Crash safety: the output is a complete table (temp name, fsync, rename) whose meta lists the
tables it replaces. The engine publishes it, then removes the inputs. A crash in between leaves
both; at open, a table listed in another table's `replaced` is deleted (engine.py, "Open").

Order: inside a partition, tables are ordered by (seq, gen) and later tables win. A run of
tables is merged only if it is contiguous in that order, and the output takes the newest
input's seq with gen + 1, so it sits exactly where its inputs were.
"""

from __future__ import annotations

import heapq

import numpy as np

from node.engine.columns import merge_last_wins
from node.engine.deletes import applicable, apply_tombstones
from node.engine.fs import FileSystem
from node.engine.manifest import Tombstone
from node.engine.sstable import SSTable, SSTableWriter, TableMeta
from pulsar_cluster.batch import FieldType

__all__ = ["plan_partition", "merge_tables", "SIZE_RATIO"]

#: A table joins a run of newer ones if it is at most this many times their largest: tiers grow
#: geometrically (Cassandra's size-tiered policy uses a similar bucket ratio).
SIZE_RATIO = 4
#: Below this size tables count as one tier (tiny flushes differ in size by noise alone).
_MIN_TIER_BYTES = 64 * 1024
#: Merged fields handed to the writer at a time, at most (bounds what a merge holds in memory:
#: about 16 bytes per point).
_PENDING_ITEMS = 4096
_PENDING_POINTS = 1 << 20


def plan_partition(
    tables: list[SSTable],
    trigger: int,
    small_bytes: int,
    full: bool,
    tombstones: list[Tombstone],
) -> list[SSTable]:
    """The run of tables (oldest first) to merge in one partition, or [] for nothing to do.

    Full: every table, if there are two or more or a tombstone still applies.
    Background (size-tiered): the newest contiguous run of small tables of similar size (each
    at most SIZE_RATIO times the largest newer one in the run), once it reaches `trigger`
    tables. Without the size rule the output, itself small, would be merged again with every
    few new flushes: quadratic rewriting. With it, each point is rewritten about
    log_SIZE_RATIO(partition size / flush size) times. When the partition has more than
    4 * trigger tables, all of them are merged (compaction fell behind).
    """
    if not tables:
        return []
    if full:
        if len(tables) > 1:
            return list(tables)
        t = tables[0]
        m = t.meta
        if applicable(tombstones, m.database, m.seq, m.deletes_applied, t.min_time, t.max_time):
            return [t]
        return []
    if len(tables) > 4 * trigger:
        return list(tables)
    run: list[SSTable] = []
    largest = 0
    for t in reversed(tables):
        if t.size > small_bytes or (run and t.size > SIZE_RATIO * max(largest, _MIN_TIER_BYTES)):
            break
        run.append(t)
        largest = max(largest, t.size)
    run.reverse()
    return run if len(run) >= trigger else []


def merge_tables(
    fs: FileSystem,
    directory: str,
    inputs: list[SSTable],
    tombstones: list[Tombstone],
    deletes_applied: int,
    block_points: int,
    zstd_level: int,
    drop_before: int | None = None,
) -> str | None:
    """Write the merge of `inputs` (oldest first); returns the new path, or None if empty.

    Tombstones with id <= `deletes_applied` that apply to an input are applied to its points;
    `drop_before` (retention) drops every point older than it.
    """
    first = inputs[0].meta
    newest = max(inputs, key=lambda t: t.table_id).meta
    meta = TableMeta(
        database=first.database,
        partition_start=first.partition_start,
        partition_end=first.partition_end,
        seq=newest.seq,
        gen=newest.gen + 1,
        group_count=1,
        last_index=max(t.last_index for t in inputs),
        deletes_applied=deletes_applied,
        replaced=[t.table_id for t in inputs],
    )
    live = [t for t in tombstones if t.id <= deletes_applied]
    per_input = [
        applicable(live, t.database, t.meta.seq, t.meta.deletes_applied, t.min_time, t.max_time)
        for t in inputs
    ]
    writer = SSTableWriter(fs, directory, meta, block_points, zstd_level)
    try:
        lo, hi = np.iinfo(np.int64).min, np.iinfo(np.int64).max
        pending: list[tuple[bytes, str, FieldType, np.ndarray, np.ndarray]] = []
        pending_points = 0
        # Every table's keys are sorted: a heap merge gives the union in order, one key at a time.
        for skey, name in _unique(heapq.merge(*(t.keys() for t in inputs))):
            parts = []
            field_type = None
            for table, tombs in zip(inputs, per_input, strict=True):
                found = table.read(skey, name, lo, hi)
                if found is None:
                    continue
                field_type = found[0]
                for block in found[1]:
                    part = apply_tombstones(skey, *block, tombs) if tombs else block
                    if len(part[0]):  # a dropped series leaves nothing, not even its type
                        parts.append(part)
            if field_type is None or not parts:
                continue
            ts, values = merge_last_wins(parts)
            if drop_before is not None and len(ts) and ts[0] < drop_before:
                cut = int(np.searchsorted(ts, drop_before, side="left"))
                ts, values = ts[cut:], values[cut:]
            # Buffered: add_many encodes small integer blocks many at a time (vectorised).
            pending.append((skey, name, field_type, ts, values))
            pending_points += len(ts)
            if len(pending) >= _PENDING_ITEMS or pending_points >= _PENDING_POINTS:
                writer.add_many(pending)
                pending = []
                pending_points = 0
        writer.add_many(pending)
        if writer.empty:
            writer.abort()
            return None
        return writer.finish()
    except BaseException:
        writer.abort()
        raise


def _unique(keys):  # type: ignore[no-untyped-def]
    last = None
    for key in keys:
        if key != last:
            yield key
            last = key
