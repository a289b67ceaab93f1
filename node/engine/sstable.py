"""SSTables: immutable files of compressed column blocks with an index and a checksummed footer.

Byte layout: docs/format/sstable.md.

    header  : magic "PULSRSST" | u32 version | u32 reserved
    blocks  : block bytes (node/engine/encoding.py), one series field, at most `block_points`
    index   : zstd( entries ), each entry
              u32 key len | key | u16 field len | field | u8 type | u32 block count |
              per block: i64 min t | i64 max t | u32 points | u64 offset | u32 length | u32 crc32
    footer  : u64 index offset | u64 index length | u32 index crc32 | u64 last write index |
              u32 entry count | u32 footer crc32 (of the preceding 32 bytes) | magic "PULSRSST"

Entries are sorted by (series key, field). A table is written whole through
`FileSystem.write_atomic` (temporary name, fsync, rename, directory fsync), so a table that is
visible under its final name is complete. Every read of a block checks its crc32 and raises
CorruptionError naming the file and offset.
"""

from __future__ import annotations

import os
import struct
import zlib
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
import zstandard

from node.engine.encoding import BlockFormatError, decode_block, encode_block
from node.engine.fs import FileSystem
from pulsar_cluster.batch import FieldType
from pulsar_cluster.errors import CorruptionError

__all__ = ["BlockRef", "SSTable", "write_sstable", "MAGIC", "VERSION"]

MAGIC = b"PULSRSST"
VERSION = 1
_HEADER = struct.Struct("<8sII")
_FOOTER_BODY = struct.Struct("<QQIQI")
_FOOTER = struct.Struct("<QQIQII8s")
_ENTRY_HEAD = struct.Struct("<BI")  # type, block count
_BLOCK_REF = struct.Struct("<qqIQII")


@dataclass(frozen=True, slots=True)
class BlockRef:
    min_time: int
    max_time: int
    points: int
    offset: int
    length: int
    crc: int


def write_sstable(
    fs: FileSystem,
    path: str,
    items: Iterable[tuple[bytes, str, FieldType, np.ndarray, np.ndarray]],
    last_index: int,
    block_points: int = 4096,
    zstd_level: int = 3,
) -> int:
    """Write sorted (series key, field, type, ts, values) items as one table; returns its size."""
    chunks: list[bytes] = [_HEADER.pack(MAGIC, VERSION, 0)]
    offset = _HEADER.size
    index_parts: list[bytes] = []
    entries = 0
    for skey, name, field_type, ts, values in items:
        if len(ts) == 0:
            continue
        refs: list[bytes] = []
        for lo in range(0, len(ts), block_points):
            block_ts = ts[lo : lo + block_points]
            block = encode_block(field_type, block_ts, values[lo : lo + block_points], zstd_level)
            refs.append(
                _BLOCK_REF.pack(
                    int(block_ts[0]),
                    int(block_ts[-1]),
                    len(block_ts),
                    offset,
                    len(block),
                    zlib.crc32(block),
                )
            )
            chunks.append(block)
            offset += len(block)
        name_b = name.encode()
        index_parts.append(struct.pack("<I", len(skey)) + skey)
        index_parts.append(struct.pack("<H", len(name_b)) + name_b)
        index_parts.append(_ENTRY_HEAD.pack(int(field_type), len(refs)))
        index_parts.extend(refs)
        entries += 1
    index = zstandard.ZstdCompressor(level=zstd_level).compress(b"".join(index_parts))
    body = _FOOTER_BODY.pack(offset, len(index), zlib.crc32(index), last_index, entries)
    footer = body + struct.pack("<I", zlib.crc32(body)) + MAGIC
    chunks.append(index)
    chunks.append(footer)
    fs.write_atomic(path, chunks)
    return offset + len(index) + len(footer)


class SSTable:
    """An open table: its index in memory, blocks read on demand with pread."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._fd = os.open(path, os.O_RDONLY)
        try:
            self.size = os.fstat(self._fd).st_size
            self._load()
        except BaseException:
            os.close(self._fd)
            raise

    def _corrupt(self, offset: int, cause: str) -> CorruptionError:
        return CorruptionError(self.path, offset, cause)

    def _load(self) -> None:
        if self.size < _HEADER.size + _FOOTER.size:
            raise self._corrupt(0, "file shorter than header and footer")
        magic, version, _ = _HEADER.unpack(os.pread(self._fd, _HEADER.size, 0))
        if magic != MAGIC:
            raise self._corrupt(0, "bad magic")
        if version != VERSION:
            raise self._corrupt(8, f"unsupported version {version}")
        footer_at = self.size - _FOOTER.size
        raw = os.pread(self._fd, _FOOTER.size, footer_at)
        index_off, index_len, index_crc, last_index, entries, footer_crc, tail = _FOOTER.unpack(raw)
        if tail != MAGIC:
            raise self._corrupt(footer_at, "bad footer magic (truncated file?)")
        if zlib.crc32(raw[: _FOOTER_BODY.size]) != footer_crc:
            raise self._corrupt(footer_at, "footer checksum mismatch")
        if index_off + index_len != footer_at:
            raise self._corrupt(footer_at, "index position does not match the file size")
        index = os.pread(self._fd, index_len, index_off)
        if zlib.crc32(index) != index_crc:
            raise self._corrupt(index_off, "index checksum mismatch")
        self.last_index = last_index
        self.entries: dict[bytes, dict[str, tuple[FieldType, list[BlockRef]]]] = {}
        self.min_time = np.iinfo(np.int64).max
        self.max_time = np.iinfo(np.int64).min
        data = memoryview(zstandard.ZstdDecompressor().decompress(index))
        pos = 0
        for _ in range(entries):
            (klen,) = struct.unpack_from("<I", data, pos)
            pos += 4
            skey = bytes(data[pos : pos + klen])
            pos += klen
            (nlen,) = struct.unpack_from("<H", data, pos)
            pos += 2
            name = bytes(data[pos : pos + nlen]).decode()
            pos += nlen
            type_code, nblocks = _ENTRY_HEAD.unpack_from(data, pos)
            pos += _ENTRY_HEAD.size
            refs = []
            for _ in range(nblocks):
                refs.append(BlockRef(*_BLOCK_REF.unpack_from(data, pos)))
                pos += _BLOCK_REF.size
            self.entries.setdefault(skey, {})[name] = (FieldType(type_code), refs)
            if refs:
                self.min_time = min(self.min_time, refs[0].min_time)
                self.max_time = max(self.max_time, refs[-1].max_time)

    def series_keys(self) -> list[bytes]:
        return list(self.entries)

    def field_types(self, skey: bytes) -> dict[str, FieldType]:
        fields = self.entries.get(skey)
        return {} if fields is None else {n: t for n, (t, _) in fields.items()}

    def read(
        self, skey: bytes, name: str, start: int, end: int
    ) -> tuple[FieldType, list[tuple[np.ndarray, np.ndarray]]] | None:
        """Blocks of one field that overlap [start, end), decoded; None if the field is absent."""
        fields = self.entries.get(skey)
        if fields is None or name not in fields:
            return None
        field_type, refs = fields[name]
        parts = []
        for ref in refs:
            if ref.max_time < start or ref.min_time >= end:
                continue
            parts.append(self._read_block(ref, field_type))
        return field_type, parts

    def _read_block(self, ref: BlockRef, field_type: FieldType) -> tuple[np.ndarray, np.ndarray]:
        data = os.pread(self._fd, ref.length, ref.offset)
        if len(data) != ref.length:
            raise self._corrupt(ref.offset, "block truncated")
        if zlib.crc32(data) != ref.crc:
            raise self._corrupt(ref.offset, "block checksum mismatch")
        try:
            stored_type, ts, values = decode_block(data)
        except BlockFormatError as exc:
            raise self._corrupt(ref.offset, str(exc)) from exc
        if stored_type is not field_type or len(ts) != ref.points:
            raise self._corrupt(ref.offset, "block does not match its index entry")
        return ts, values

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1
