"""Encoding of one block: the timestamps and values of one series field.

Format: docs/format/sstable.md, section "Block". A block starts with one codec byte, so that
better encodings can be added without breaking old files. Codec numbers are never reused.

Codec 1 (`DELTA_ZSTD`): timestamps as the first value followed by successive differences (int64),
values in their fixed-width little-endian form (strings: u32 lengths then UTF-8 bytes), the whole
compressed with zstd. Differencing turns regular timestamps into a run of equal numbers, which
zstd folds to almost nothing.
"""

from __future__ import annotations

import struct

import numpy as np
import zstandard

from pulsar_cluster.batch import FieldType, numpy_dtype

__all__ = ["encode_block", "decode_block", "BlockFormatError", "DEFAULT_ZSTD_LEVEL"]

CODEC_DELTA_ZSTD = 1
DEFAULT_ZSTD_LEVEL = 3
_HEAD = struct.Struct("<BBI")  # codec, field type, point count
_FIXED = {
    FieldType.FLOAT: "<f8",
    FieldType.INTEGER: "<i8",
    FieldType.UNSIGNED: "<u8",
    FieldType.BOOLEAN: "u1",
}


class BlockFormatError(ValueError):
    pass


def encode_block(
    field_type: FieldType,
    timestamps: np.ndarray,
    values: np.ndarray,
    level: int = DEFAULT_ZSTD_LEVEL,
) -> bytes:
    """Encode sorted, de-duplicated timestamps and their values."""
    count = len(timestamps)
    ts = np.asarray(timestamps, dtype=np.int64)
    deltas = np.empty(count, dtype="<i8")
    if count:
        deltas[0] = ts[0]
        np.subtract(ts[1:], ts[:-1], out=deltas[1:])
    if field_type is FieldType.STRING:
        encoded = [str(v).encode() for v in values]
        lengths = np.fromiter((len(e) for e in encoded), dtype="<u4", count=count)
        value_bytes = lengths.tobytes() + b"".join(encoded)
    else:
        value_bytes = np.ascontiguousarray(values, dtype=_FIXED[field_type]).tobytes()
    body = zstandard.ZstdCompressor(level=level).compress(deltas.tobytes() + value_bytes)
    return _HEAD.pack(CODEC_DELTA_ZSTD, int(field_type), count) + body


def decode_block(data: bytes) -> tuple[FieldType, np.ndarray, np.ndarray]:
    """Inverse of encode_block: (type, timestamps int64, values)."""
    if len(data) < _HEAD.size:
        raise BlockFormatError("block shorter than its header")
    codec, type_code, count = _HEAD.unpack_from(data, 0)
    if codec != CODEC_DELTA_ZSTD:
        raise BlockFormatError(f"unknown block codec {codec}")
    field_type = FieldType(type_code)
    try:
        raw = zstandard.ZstdDecompressor().decompress(data[_HEAD.size :])
    except zstandard.ZstdError as exc:
        raise BlockFormatError(f"zstd: {exc}") from exc
    if len(raw) < 8 * count:
        raise BlockFormatError("block body too short for its timestamps")
    ts = np.cumsum(np.frombuffer(raw, dtype="<i8", count=count), dtype=np.int64)
    rest = memoryview(raw)[8 * count :]
    if field_type is FieldType.STRING:
        lengths = np.frombuffer(rest, dtype="<u4", count=count)
        pos = 4 * count
        values = np.empty(count, dtype=object)
        for i, length in enumerate(lengths.tolist()):
            values[i] = bytes(rest[pos : pos + length]).decode()
            pos += length
        return field_type, ts, values
    width = np.dtype(_FIXED[field_type]).itemsize
    if len(rest) != width * count:
        raise BlockFormatError("block values do not match the point count")
    values = np.frombuffer(rest, dtype=_FIXED[field_type], count=count)
    return field_type, ts, values.astype(numpy_dtype(field_type), copy=False)
