"""Codec 1 (DELTA_ZSTD), the skeleton's first block format: kept so old tables stay readable.

New blocks are never written with it (encode_codec1 exists for tests). Codec 1 has no checksum
of its own: the SSTable's per-block crc32 is what catches its corruption; this decoder checks
every length and turns malformed input into BlockFormatError.

Byte layout: docs/format/encoding.md, section "Codec 1".
"""

from __future__ import annotations

import struct

import numpy as np
import zstandard

from node.engine.codecs.base import BlockFormatError
from pulsar_cluster.batch import FieldType, numpy_dtype

__all__ = ["CODEC_DELTA_ZSTD", "encode_codec1", "decode_codec1"]

CODEC_DELTA_ZSTD = 1
_HEAD = struct.Struct("<BBI")  # codec, field type, point count
_FIXED = {
    FieldType.FLOAT: "<f8",
    FieldType.INTEGER: "<i8",
    FieldType.UNSIGNED: "<u8",
    FieldType.BOOLEAN: "u1",
}
# A codec-1 body of fixed-width values is exactly 16 bytes per point; strings may be longer.
# Refuse frames declaring more than this, so a corrupt size cannot exhaust memory.
_MAX_STRING_BODY = 1 << 30


def encode_codec1(
    field_type: FieldType, timestamps: np.ndarray, values: np.ndarray, level: int
) -> bytes:
    """The exact bytes the skeleton wrote (for compatibility tests)."""
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


def decode_codec1(data: bytes | memoryview) -> tuple[FieldType, np.ndarray, np.ndarray]:
    if len(data) < _HEAD.size:
        raise BlockFormatError("block shorter than its header")
    _, type_code, count = _HEAD.unpack_from(data, 0)
    try:
        field_type = FieldType(type_code)
    except ValueError:
        raise BlockFormatError(f"unknown field type {type_code}") from None
    frame = data[_HEAD.size :]
    try:
        declared = zstandard.frame_content_size(frame)
        limit = 16 * count if field_type is not FieldType.STRING else _MAX_STRING_BODY
        if declared < 0 or declared > limit:
            raise BlockFormatError(f"codec 1 body declares {declared} bytes")
        raw = zstandard.ZstdDecompressor().decompress(frame)
    except zstandard.ZstdError as exc:
        raise BlockFormatError(f"zstd: {exc}") from exc
    if len(raw) < 8 * count:
        raise BlockFormatError("block body too short for its timestamps")
    ts = np.cumsum(np.frombuffer(raw, dtype="<i8", count=count), dtype=np.int64)
    rest = memoryview(raw)[8 * count :]
    if field_type is FieldType.STRING:
        if len(rest) < 4 * count:
            raise BlockFormatError("block body too short for its string lengths")
        lengths = np.frombuffer(rest, dtype="<u4", count=count).astype(np.int64)
        ends = 4 * count + np.cumsum(lengths)
        if count and int(ends[-1]) != len(rest):
            raise BlockFormatError("string lengths do not match the block body")
        values = np.empty(count, dtype=object)
        starts = (ends - lengths).tolist()
        try:
            values[:] = [
                bytes(rest[a:b]).decode() for a, b in zip(starts, ends.tolist(), strict=True)
            ]
        except UnicodeDecodeError as exc:
            raise BlockFormatError(f"string is not valid UTF-8: {exc}") from exc
        return field_type, ts, values
    width = np.dtype(_FIXED[field_type]).itemsize
    if len(rest) != width * count:
        raise BlockFormatError("block values do not match the point count")
    values = np.frombuffer(rest, dtype=_FIXED[field_type], count=count)
    return field_type, ts, values.astype(numpy_dtype(field_type), copy=False)
