"""SSTables: immutable files of compressed column blocks of ONE database and ONE time partition.

Byte layout (every field, endianness, checksum coverage): docs/format/sstable.md.

    header  : magic "PULSRSST" | u32 version (2) | u32 flags (0)
    blocks  : block payloads (node/engine/encoding.py, docs/format/encoding.md)
    index   : zstd( entries ), entries sorted by (series key, field), each
              u32 key len | key | u16 field len | field | u8 type | u32 block count |
              per block: i64 min t | i64 max t | u32 points | u64 offset | u32 length | u32 crc32
    meta    : table identity and provenance (TableMeta, see _META)
    footer  : u64 index off | u64 index len | u32 index crc | u64 meta off | u32 meta len |
              u32 meta crc | u32 entry count | u32 footer crc32 | magic "PULSRSST"

A table is streamed to `NAME.tmp`, fsynced, renamed to its final name and the directory is
fsynced (`SSTableWriter.finish`), so a table visible under its final name is complete. Every
read of a block checks its crc32 and raises CorruptionError naming the file and offset; wrong
data is never returned.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import struct
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import BinaryIO, NamedTuple

import numpy as np
import xxhash
import zstandard

from node.engine.cache import BlockCache, Compact, compact, cut, expand
from node.engine.encoding import (
    BlockFormatError,
    decode_block_compact,
    encode_block,
    encode_blocks,
)
from node.engine.fs import TMP_SUFFIX, FileSystem
from pulsar_cluster.batch import FieldType
from pulsar_cluster.errors import CorruptionError

__all__ = [
    "BlockRef",
    "TableMeta",
    "TableId",
    "SSTable",
    "SSTableWriter",
    "table_file_name",
    "parse_table_file_name",
    "database_tag",
    "MAGIC",
    "VERSION",
    "SST_SUFFIX",
]

MAGIC = b"PULSRSST"
#: Version 1 (the walking skeleton: no meta section, one table per flush) is retired.
VERSION = 2
SST_SUFFIX = ".sst"
_HEADER = struct.Struct("<8sII")
_FOOTER_BODY = struct.Struct("<QQIQIII")
_FOOTER = struct.Struct("<QQIQIIII8s")
_ENTRY_HEAD = struct.Struct("<BI")  # type, block count
_KEY_LEN = struct.Struct("<I")
_NAME_LEN = struct.Struct("<H")
_BLOCK_REF = struct.Struct("<qqIQII")
# seq, gen, group count, partition start, partition end, last index, deletes applied,
# min time, max time, points
_META = struct.Struct("<QIIqqQQqqQ")
_REPLACED = struct.Struct("<QI")
_instance_ids = itertools.count(1)
#: (series key, field, type, timestamps, values): one `SSTableWriter.add`.
_Item = tuple[bytes, str, FieldType, np.ndarray, np.ndarray]
_VECTOR_TYPES = frozenset((FieldType.INTEGER, FieldType.UNSIGNED))
#: Items looked at together, and points stacked into one encode_blocks call, at most (bounds
#: the stacked copies to about 16 bytes x _STACK_POINTS; 64K points keep them in cache).
_ADD_MANY_CHUNK = 8192
_STACK_POINTS = 1 << 16


class BlockRef(NamedTuple):
    """Where one block is and what it holds (a named tuple: built straight from the unpacked
    index fields, tens of thousands of times per table open)."""

    min_time: int
    max_time: int
    points: int
    offset: int
    length: int
    crc: int


#: (seq, gen): the order of tables inside one partition; later tables win on equal timestamps.
TableId = tuple[int, int]


@dataclass(slots=True)
class TableMeta:
    """Identity and provenance of a table (the meta section, docs/format/sstable.md)."""

    database: str
    partition_start: int
    partition_end: int
    seq: int  # the memtable (flush) this data came from; compaction keeps the newest input's
    gen: int = 0  # 0 = written by a flush; compaction output = newest input's gen + 1
    group_count: int = 1  # tables written by the same flush (gen 0): detects a torn flush
    last_index: int = 0  # highest Raft index whose effects are in this table
    deletes_applied: int = 0  # tombstones with id <= this are already applied to the data
    min_time: int = 0
    max_time: int = 0
    points: int = 0
    replaced: list[TableId] = field(default_factory=list)  # compaction inputs (same partition)

    @property
    def table_id(self) -> TableId:
        return (self.seq, self.gen)


def database_tag(database: str) -> str:
    """16 hex digits naming a database in file names (names may hold any character)."""
    return xxhash.xxh64_hexdigest(database.encode())


def table_file_name(meta: TableMeta) -> str:
    return (
        f"{meta.seq:016d}-{meta.gen:04d}-{database_tag(meta.database)}"
        f"-{meta.partition_start}{SST_SUFFIX}"
    )


def parse_table_file_name(name: str) -> tuple[int, int, str, int] | None:
    """(seq, gen, database tag, partition start) of a table file name, or None."""
    if not name.endswith(SST_SUFFIX):
        return None
    parts = name[: -len(SST_SUFFIX)].split("-", 3)
    try:
        return int(parts[0]), int(parts[1]), parts[2], int(parts[3])
    except (IndexError, ValueError):
        return None


class SSTableWriter:
    """Streams one table to a temporary file; `finish` makes it durable under its final name.

    Entries must be added in (series key, field) order. Memory: one block at a time plus the
    (small) index, so compaction of any size stays bounded.
    """

    def __init__(
        self,
        fs: FileSystem,
        directory: str,
        meta: TableMeta,
        block_points: int = 4096,
        zstd_level: int = 3,
    ) -> None:
        self.meta = meta
        self.path = os.path.join(directory, table_file_name(meta))
        self._fs = fs
        self._directory = directory
        self._block_points = block_points
        self._zstd_level = zstd_level
        self._tmp = self.path + TMP_SUFFIX
        self._file: BinaryIO | None = fs.open_write(self._tmp)
        self._file.write(_HEADER.pack(MAGIC, VERSION, 0))
        self._offset = _HEADER.size
        self._index: list[bytes] = []
        self._entries = 0
        self._last_key: tuple[bytes, str] | None = None
        # (field, type) -> the index entry bytes after the series key, for one-block entries.
        self._entry_tails: dict[tuple[str, FieldType], bytes] = {}
        #: The index as SSTable holds it once loaded: handed to the SSTable that opens the
        #: finished file (`SSTable(path, cache, writer.entries)`), which then need not parse
        #: back what was just written.
        self.entries: dict[bytes, dict[str, tuple[FieldType, list[BlockRef]]]] = {}
        meta.min_time = np.iinfo(np.int64).max
        meta.max_time = np.iinfo(np.int64).min
        meta.points = 0

    def add_many(self, items: Sequence[_Item]) -> None:
        """`add` for every item, in order (the same bytes on disk).

        Integer and unsigned fields that fit one block (what a flush writes for most fields)
        are encoded together, all blocks of one type and length in one vectorised pass
        (encode_blocks); the others one by one.
        """
        limit = self._block_points  # one block per field: vectorised across fields
        for lo in range(0, len(items), _ADD_MANY_CHUNK):
            chunk = items[lo : lo + _ADD_MANY_CHUNK]
            same_shape: dict[tuple[FieldType, int], list[int]] = {}
            for i, (_, _, field_type, ts, _) in enumerate(chunk):
                n = len(ts)
                if n <= limit and field_type in _VECTOR_TYPES:
                    same_shape.setdefault((field_type, n), []).append(i)
            encoded: dict[int, tuple[bytes, int, int]] = {}
            for (field_type, n), group in same_shape.items():
                if n == 0 or len(group) < 2:
                    continue
                step = max(1, _STACK_POINTS // n)  # bounds the stacked copies
                for at in range(0, len(group), step):
                    where = group[at : at + step]
                    ts2d = np.stack([chunk[i][3] for i in where])
                    blocks = encode_blocks(
                        field_type,
                        ts2d,
                        np.stack([chunk[i][4] for i in where]),
                        self._zstd_level,
                    )
                    if blocks is None:
                        continue
                    firsts = ts2d[:, 0].tolist()
                    lasts = ts2d[:, -1].tolist()
                    encoded.update(zip(where, zip(blocks, firsts, lasts, strict=True), strict=True))
            for i, item in enumerate(chunk):
                done = encoded.get(i)
                if done is None:
                    self.add(*item)
                else:
                    self._add_encoded(item[0], item[1], item[2], len(item[3]), *done)

    def _add_encoded(
        self, skey: bytes, name: str, field_type: FieldType, n: int, block: bytes, t0: int, t1: int
    ) -> None:
        """Add one field of n points from t0 to t1, already encoded as one block."""
        assert self._file is not None, "writer already finished"
        key = (skey, name)
        if self._last_key is not None and key <= self._last_key:
            raise ValueError("table entries must be added in strictly increasing key order")
        self._last_key = key
        entry_tail = self._entry_tails.get((name, field_type))
        if entry_tail is None:
            name_b = name.encode()
            entry_tail = struct.pack("<H", len(name_b)) + name_b + _ENTRY_HEAD.pack(field_type, 1)
            self._entry_tails[(name, field_type)] = entry_tail
        ref = BlockRef(t0, t1, n, self._offset, len(block), zlib.crc32(block))
        self._index.append(
            b"".join((_KEY_LEN.pack(len(skey)), skey, entry_tail, _BLOCK_REF.pack(*ref)))
        )
        self._file.write(block)
        self._offset += ref.length
        self._entries += 1
        self._remember(skey, name, field_type, [ref])
        meta = self.meta
        meta.min_time = min(meta.min_time, t0)
        meta.max_time = max(meta.max_time, t1)
        meta.points += n

    def add(
        self, skey: bytes, name: str, field_type: FieldType, ts: np.ndarray, values: np.ndarray
    ) -> None:
        """Add the sorted, unique points of one field of one series."""
        if len(ts) == 0:
            return
        assert self._file is not None, "writer already finished"
        key = (skey, name)
        if self._last_key is not None and key <= self._last_key:
            raise ValueError("table entries must be added in strictly increasing key order")
        self._last_key = key
        refs: list[BlockRef] = []
        step = self._block_points
        for lo in range(0, len(ts), step):
            block_ts = ts[lo : lo + step]
            block = encode_block(field_type, block_ts, values[lo : lo + step], self._zstd_level)
            refs.append(
                BlockRef(
                    int(block_ts[0]),
                    int(block_ts[-1]),
                    len(block_ts),
                    self._offset,
                    len(block),
                    zlib.crc32(block),
                )
            )
            self._file.write(block)
            self._offset += len(block)
        name_b = name.encode()
        self._index.append(struct.pack("<I", len(skey)) + skey)
        self._index.append(struct.pack("<H", len(name_b)) + name_b)
        self._index.append(_ENTRY_HEAD.pack(int(field_type), len(refs)))
        self._index.extend(_BLOCK_REF.pack(*ref) for ref in refs)
        self._entries += 1
        self._remember(skey, name, field_type, refs)
        meta = self.meta
        meta.min_time = min(meta.min_time, int(ts[0]))
        meta.max_time = max(meta.max_time, int(ts[-1]))
        meta.points += len(ts)

    def _remember(
        self, skey: bytes, name: str, field_type: FieldType, refs: list[BlockRef]
    ) -> None:
        fields = self.entries.get(skey)
        if fields is None:
            fields = self.entries[skey] = {}
        fields[name] = (field_type, refs)

    @property
    def empty(self) -> bool:
        return self._entries == 0

    def finish(self) -> str:
        """Write index, meta and footer; fsync; rename; fsync the directory. Returns the path."""
        f = self._file
        assert f is not None, "writer already finished"
        index = zstandard.ZstdCompressor(level=self._zstd_level).compress(b"".join(self._index))
        meta_bytes = encode_meta(self.meta)
        index_off = self._offset
        meta_off = index_off + len(index)
        body = _FOOTER_BODY.pack(
            index_off,
            len(index),
            zlib.crc32(index),
            meta_off,
            len(meta_bytes),
            zlib.crc32(meta_bytes),
            self._entries,
        )
        f.write(index)
        f.write(meta_bytes)
        f.write(body + struct.pack("<I", zlib.crc32(body)) + MAGIC)
        self._fs.fsync(f)
        f.close()
        self._file = None
        self._fs.rename(self._tmp, self.path)
        self._fs.fsync_dir(self._directory)
        return self.path

    def abort(self) -> None:
        """Drop the temporary file (after an error); idempotent."""
        if self._file is not None:
            self._file.close()
            self._file = None
            with contextlib.suppress(FileNotFoundError):
                self._fs.remove(self._tmp)


def encode_meta(meta: TableMeta) -> bytes:
    db = meta.database.encode()
    out = [
        _META.pack(
            meta.seq,
            meta.gen,
            meta.group_count,
            meta.partition_start,
            meta.partition_end,
            meta.last_index,
            meta.deletes_applied,
            meta.min_time,
            meta.max_time,
            meta.points,
        ),
        struct.pack("<I", len(db)),
        db,
        struct.pack("<I", len(meta.replaced)),
    ]
    out.extend(_REPLACED.pack(seq, gen) for seq, gen in meta.replaced)
    return b"".join(out)


def decode_meta(data: bytes) -> TableMeta:
    """Inverse of encode_meta; raises ValueError (struct.error) on a malformed section."""
    values = _META.unpack_from(data, 0)
    pos = _META.size
    (dblen,) = struct.unpack_from("<I", data, pos)
    pos += 4
    database = data[pos : pos + dblen].decode()
    pos += dblen
    (count,) = struct.unpack_from("<I", data, pos)
    pos += 4
    replaced = []
    for _ in range(count):
        replaced.append(_REPLACED.unpack_from(data, pos))
        pos += _REPLACED.size
    if pos != len(data):
        raise ValueError("meta section has trailing bytes")
    seq, gen, group, pstart, pend, last, applied, tmin, tmax, points = values
    return TableMeta(
        database, pstart, pend, seq, gen, group, last, applied, tmin, tmax, points, replaced
    )


class SSTable:
    """An open table: its index in memory, blocks read on demand with pread (thread-safe)."""

    def __init__(
        self,
        path: str,
        cache: BlockCache | None = None,
        entries: dict[bytes, dict[str, tuple[FieldType, list[BlockRef]]]] | None = None,
    ) -> None:
        """Open the table at `path`. `entries`: the index of a table this process has just
        written (SSTableWriter.entries); the file's index is then checked (checksum, entry
        count) but not parsed again."""
        self.path = path
        self.uid = next(_instance_ids)  # cache key: never reused, unlike paths
        self._cache = cache
        self.entries: dict[bytes, dict[str, tuple[FieldType, list[BlockRef]]]] = {}
        self._fd = os.open(path, os.O_RDONLY)
        try:
            self.size = os.fstat(self._fd).st_size
            self._load(entries)
        except BaseException:
            os.close(self._fd)
            self._fd = -1  # or __del__ would close a descriptor number someone else now owns
            raise

    def _corrupt(self, offset: int, cause: str) -> CorruptionError:
        return CorruptionError(self.path, offset, cause)

    def _load(
        self, known: dict[bytes, dict[str, tuple[FieldType, list[BlockRef]]]] | None = None
    ) -> None:
        if self.size < _HEADER.size + _FOOTER.size:
            raise self._corrupt(0, "file shorter than header and footer")
        magic, version, _ = _HEADER.unpack(os.pread(self._fd, _HEADER.size, 0))
        if magic != MAGIC:
            raise self._corrupt(0, "bad magic")
        if version != VERSION:
            raise self._corrupt(8, f"unsupported version {version}")
        footer_at = self.size - _FOOTER.size
        raw = os.pread(self._fd, _FOOTER.size, footer_at)
        index_off, index_len, index_crc, meta_off, meta_len, meta_crc, entries, footer_crc, tail = (
            _FOOTER.unpack(raw)
        )
        if tail != MAGIC:
            raise self._corrupt(footer_at, "bad footer magic (truncated file?)")
        if zlib.crc32(raw[: _FOOTER_BODY.size]) != footer_crc:
            raise self._corrupt(footer_at, "footer checksum mismatch")
        if index_off + index_len != meta_off or meta_off + meta_len != footer_at:
            raise self._corrupt(footer_at, "section positions do not match the file size")
        meta_raw = os.pread(self._fd, meta_len, meta_off)
        if zlib.crc32(meta_raw) != meta_crc:
            raise self._corrupt(meta_off, "meta checksum mismatch")
        try:
            self.meta = decode_meta(meta_raw)
        except (ValueError, struct.error, UnicodeDecodeError) as exc:
            raise self._corrupt(meta_off, f"malformed meta section: {exc}") from exc
        index = os.pread(self._fd, index_len, index_off)
        if zlib.crc32(index) != index_crc:
            raise self._corrupt(index_off, "index checksum mismatch")
        if known is not None:
            if sum(len(fields) for fields in known.values()) != entries:
                raise self._corrupt(index_off, "index entry count does not match the writer's")
            self.entries = known
            return
        try:
            self._parse_index(index, entries)
        except (ValueError, struct.error, UnicodeDecodeError, zstandard.ZstdError) as exc:
            raise self._corrupt(index_off, f"malformed index: {exc}") from exc

    def _parse_index(self, index: bytes, entries: int) -> None:
        self.entries = {}
        data = zstandard.ZstdDecompressor().decompress(index)
        pos = 0
        # Field names and types repeat in every series: decode each distinct one once.
        names: dict[bytes, str] = {}
        types = {int(t): t for t in FieldType}
        unpack_u32 = _KEY_LEN.unpack_from
        unpack_u16 = _NAME_LEN.unpack_from
        unpack_head = _ENTRY_HEAD.unpack_from
        ref_size = _BLOCK_REF.size
        make_ref = BlockRef._make
        iter_refs = _BLOCK_REF.iter_unpack
        out = self.entries
        for _ in range(entries):
            (klen,) = unpack_u32(data, pos)
            pos += 4
            skey = data[pos : pos + klen]
            if len(skey) != klen:
                raise ValueError("index entry truncated")
            pos += klen
            (nlen,) = unpack_u16(data, pos)
            pos += 2
            raw_name = data[pos : pos + nlen]
            name = names.get(raw_name)
            if name is None:
                name = names[raw_name] = raw_name.decode()
            pos += nlen
            type_code, nblocks = unpack_head(data, pos)
            pos += _ENTRY_HEAD.size
            end = pos + nblocks * ref_size
            if end > len(data):
                raise ValueError("index entry truncated")
            refs = list(map(make_ref, iter_refs(data[pos:end])))
            pos = end
            field_type = types.get(type_code)
            if field_type is None:
                raise ValueError(f"unknown field type {type_code}")
            fields = out.get(skey)
            if fields is None:
                fields = out[skey] = {}
            fields[name] = (field_type, refs)
        if pos != len(data):
            raise ValueError("index has trailing bytes")

    # --- identity ------------------------------------------------------------------------------

    @property
    def table_id(self) -> TableId:
        return self.meta.table_id

    @property
    def database(self) -> str:
        return self.meta.database

    @property
    def partition(self) -> tuple[str, int, int]:
        m = self.meta
        return (m.database, m.partition_start, m.partition_end)

    @property
    def last_index(self) -> int:
        return self.meta.last_index

    @property
    def min_time(self) -> int:
        return self.meta.min_time

    @property
    def max_time(self) -> int:
        return self.meta.max_time

    # --- reads ---------------------------------------------------------------------------------

    def series_keys(self) -> list[bytes]:
        return list(self.entries)

    def field_types(self, skey: bytes) -> dict[str, FieldType]:
        fields = self.entries.get(skey)
        return {} if fields is None else {n: t for n, (t, _) in fields.items()}

    def keys(self) -> list[tuple[bytes, str]]:
        """Every (series key, field) of the table, sorted."""
        return sorted((s, n) for s, fields in self.entries.items() for n in fields)

    def _overlapping(
        self, skey: bytes, name: str, start: int, end: int
    ) -> tuple[FieldType, list[BlockRef]] | None:
        """The field's type and its blocks that overlap [start, end); None if it is absent."""
        fields = self.entries.get(skey)
        if fields is None or name not in fields:
            return None
        field_type, refs = fields[name]
        return field_type, [r for r in refs if r.max_time >= start and r.min_time < end]

    def read(
        self,
        skey: bytes,
        name: str,
        start: int,
        end: int,
        on_block: Callable[[int], None] | None = None,
    ) -> tuple[FieldType, list[tuple[np.ndarray, np.ndarray]]] | None:
        """Blocks of one field that overlap [start, end), decoded; None if the field is absent.
        Cached blocks are used, but blocks read from the file are not cached: this is the
        read of compaction, whose pass over every block of tables about to be replaced would
        otherwise evict the blocks queries use for ones nobody will read again.

        `on_block(points)` runs before each block is read (from its index entry): it may raise
        to stop the read before the block is decoded (query limits).
        """
        found = self._overlapping(skey, name, start, end)
        if found is None:
            return None
        field_type, refs = found
        cache = self._cache
        parts = []
        for ref in refs:
            if on_block is not None:
                on_block(ref.points)
            hit = None if cache is None else cache.get((self.uid, ref.offset))
            parts.append(expand(self._decode(ref, field_type)) if hit is None else hit)
        return field_type, parts

    def read_range(
        self,
        skey: bytes,
        name: str,
        start: int,
        end: int,
        on_block: Callable[[int], None] | None = None,
    ) -> tuple[FieldType, list[tuple[np.ndarray, np.ndarray]]] | None:
        """`read`, each block cut to its points with start <= t < end (the query read path),
        and blocks read from the file are cached. Only the points in range are built, from
        the block as the cache keeps it (cache.cut)."""
        found = self._overlapping(skey, name, start, end)
        if found is None:
            return None
        field_type, refs = found
        cache = self._cache
        parts = []
        for ref in refs:
            if on_block is not None:
                on_block(ref.points)
            hit = None if cache is None else cache.get_range((self.uid, ref.offset), start, end)
            if hit is None:
                hit = cut(self.load_compact(ref, field_type), start, end)
            parts.append(hit)
        return field_type, parts

    @property
    def block_cache(self) -> BlockCache | None:
        """The engine's shared block cache (None: reads are not cached)."""
        return self._cache

    def load_compact(self, ref: BlockRef, field_type: FieldType) -> Compact:
        """Read, check and decode one block from the file, and cache it; returned as the
        cache keeps it (cache.compact: regular timestamps unbuilt, integers narrowed)."""
        times, values = self._decode(ref, field_type)
        if self._cache is None:
            return compact(times, values)
        return self._cache.put((self.uid, ref.offset), times, values)

    def _decode(
        self, ref: BlockRef, field_type: FieldType
    ) -> tuple[np.ndarray | tuple[int, int, int], np.ndarray]:
        """One block read and checked: (timestamps, or (first, step, count), values)."""
        data = os.pread(self._fd, ref.length, ref.offset)
        if len(data) != ref.length:
            raise self._corrupt(ref.offset, "block truncated")
        if zlib.crc32(data) != ref.crc:
            raise self._corrupt(ref.offset, "block checksum mismatch")
        try:
            stored_type, times, values = decode_block_compact(data)
        except (BlockFormatError, ValueError) as exc:
            raise self._corrupt(ref.offset, str(exc)) from exc
        if stored_type is not field_type or len(values) != ref.points:
            raise self._corrupt(ref.offset, "block does not match its index entry")
        return times, values

    def verify(self) -> None:
        """Read and check every block, bypassing the cache (raises CorruptionError)."""
        for fields in self.entries.values():
            for _, refs in fields.values():
                for ref in refs:
                    data = os.pread(self._fd, ref.length, ref.offset)
                    if len(data) != ref.length or zlib.crc32(data) != ref.crc:
                        raise self._corrupt(ref.offset, "block checksum mismatch")

    def close(self) -> None:
        """Close the file. Only when no reader can still hold the table (engine close):
        tables retired by compaction are left to `__del__`, so a concurrent read never sees
        a closed (or reused) descriptor."""
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1

    def __del__(self) -> None:
        fd = getattr(self, "_fd", -1)
        if fd >= 0:
            os.close(fd)
            self._fd = -1
