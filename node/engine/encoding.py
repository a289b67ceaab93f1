"""Encoding of one block: the timestamps and values of one series field.

Byte layout of every codec: docs/format/encoding.md. A block starts with one codec byte, so that
better encodings can be added without breaking old files. Codec numbers are never reused:

- 1 `DELTA_ZSTD` (node/engine/codecs/legacy.py): the skeleton's format, read only.
- 2 `COLUMNAR`: what encode_block writes. Header (codec, field type, point count), a timestamp
  column, a value column, and a crc32 of everything before it. Each column section starts with
  its own encoding byte (node/engine/codecs/base.py ColumnEncoding), chosen per block:
  timestamps delta-of-delta (or delta when smaller); floats decimal-scaled when exact, else
  XOR; integers and unsigned zigzag delta or delta-of-delta; booleans one bit each; strings
  length-prefixed. Integer streams are stored as byte planes at the narrowest width that fits
  (node/engine/codecs/planes.py), each plane zstd-compressed at the caller's level when smaller.

Contract: decode_block(encode_block(t, ts, v, level)) gives back ts and v bit for bit (floats
compared as their IEEE bits), for any int64 timestamps (sorted or not) and any values of the
type. decode_block raises BlockFormatError, and nothing else, for bytes that are not a block.
Both functions are pure and thread-safe.
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Callable

import numpy as np

from node.engine.codecs.base import U32, BlockFormatError, Reader
from node.engine.codecs.booleans import decode_bool_column, encode_bool_column
from node.engine.codecs.floats import decode_float_column, encode_float_column
from node.engine.codecs.integers import (
    decode_int_column,
    decode_int_column_compact,
    encode_int_column,
    regular_sequence,
)
from node.engine.codecs.legacy import CODEC_DELTA_ZSTD, decode_codec1
from node.engine.codecs.smallbatch import MAX_POINTS, encode_int_columns_any
from node.engine.codecs.strings import decode_string_column, encode_string_column
from pulsar_cluster.batch import FieldType, numpy_dtype

__all__ = [
    "encode_block",
    "encode_blocks",
    "SMALL_BLOCK_POINTS",
    "decode_block",
    "decode_block_compact",
    "BlockFormatError",
    "DEFAULT_ZSTD_LEVEL",
    "CODEC_DELTA_ZSTD",
    "CODEC_COLUMNAR",
]

CODEC_COLUMNAR = 2
#: Blocks up to this many points store no plane compressed (smallbatch.MAX_POINTS).
SMALL_BLOCK_POINTS = MAX_POINTS
DEFAULT_ZSTD_LEVEL = 3
_HEAD = struct.Struct("<BBI")  # codec, field type, point count
_MAX_POINTS = 2**32 - 1


def _encode_unsigned(v: np.ndarray, level: int) -> bytes:
    # Unsigned values are stored as their int64 bit pattern: deltas modulo 2**64 are the same.
    return encode_int_column(np.ascontiguousarray(v, dtype=np.uint64).view(np.int64), level)


def _decode_unsigned(reader: Reader, n: int) -> np.ndarray:
    return decode_int_column(reader, n).view(np.uint64)


def _encode_integer(v: np.ndarray, level: int) -> bytes:
    return encode_int_column(np.asarray(v, dtype=np.int64), level)


_ENCODERS: dict[FieldType, Callable[[np.ndarray, int], bytes]] = {
    FieldType.FLOAT: encode_float_column,
    FieldType.INTEGER: _encode_integer,
    FieldType.UNSIGNED: _encode_unsigned,
    FieldType.BOOLEAN: encode_bool_column,
    FieldType.STRING: encode_string_column,
}
_FIELD_TYPES = {int(t): t for t in FieldType}
_DECODERS: dict[FieldType, Callable[[Reader, int], np.ndarray]] = {
    FieldType.FLOAT: decode_float_column,
    FieldType.INTEGER: decode_int_column,
    FieldType.UNSIGNED: _decode_unsigned,
    FieldType.BOOLEAN: decode_bool_column,
    FieldType.STRING: decode_string_column,
}


def encode_block(
    field_type: FieldType,
    timestamps: np.ndarray,
    values: np.ndarray,
    level: int = DEFAULT_ZSTD_LEVEL,
) -> bytes:
    """Encode timestamps (int64, normally sorted and unique) and their values as one block."""
    field_type = FieldType(field_type)
    n = len(timestamps)
    if len(values) != n:
        raise ValueError(f"{n} timestamps but {len(values)} values")
    if n > _MAX_POINTS:
        raise ValueError(f"a block holds at most {_MAX_POINTS} points, got {n}")
    # Lists are accepted too; every type is converted to its numpy dtype (strings: object).
    if field_type is FieldType.STRING and not isinstance(values, np.ndarray):
        strings = np.empty(n, dtype=object)
        strings[:] = list(values)
        values = strings
    elif field_type is not FieldType.STRING:
        values = np.asarray(values, dtype=numpy_dtype(field_type))
    body = b"".join(
        (
            _HEAD.pack(CODEC_COLUMNAR, int(field_type), n),
            encode_int_column(np.asarray(timestamps, dtype=np.int64), level),
            _ENCODERS[field_type](values, level),
        )
    )
    return body + U32.pack(zlib.crc32(body))


def decode_block(data: bytes | bytearray | memoryview) -> tuple[FieldType, np.ndarray, np.ndarray]:
    """Inverse of encode_block: (type, timestamps int64, values of numpy_dtype(type))."""
    field_type, times, values = decode_block_compact(data)
    if isinstance(times, tuple):
        times = regular_sequence(*times)
    return field_type, times, values


def decode_block_compact(
    data: bytes | bytearray | memoryview,
) -> tuple[FieldType, np.ndarray | tuple[int, int, int], np.ndarray]:
    """decode_block, with regular timestamps as (first, step, count) when the block stores them
    as such (codecs.integers.decode_int_column_compact): the form the block cache keeps, so a
    read that misses it never builds the 4096 timestamps of a block to keep 360 of them."""
    view = memoryview(data).cast("B")
    if len(view) < _HEAD.size:
        raise BlockFormatError("block shorter than its header")
    codec = view[0]
    if codec == CODEC_DELTA_ZSTD:
        return decode_codec1(view)
    if codec != CODEC_COLUMNAR:
        raise BlockFormatError(f"unknown block codec {codec}")
    end = len(view) - U32.size
    if end < _HEAD.size:
        raise BlockFormatError("block shorter than its header and checksum")
    (stored_crc,) = U32.unpack_from(view, end)
    if zlib.crc32(view[:end]) != stored_crc:
        raise BlockFormatError("block checksum mismatch")
    _, type_code, n = _HEAD.unpack_from(view, 0)
    field_type = _FIELD_TYPES.get(type_code)  # a dict look-up: an Enum call costs a few us
    if field_type is None:
        raise BlockFormatError(f"unknown field type {type_code}")
    reader = Reader(view, _HEAD.size, end)
    times = decode_int_column_compact(reader, n)
    values = _DECODERS[field_type](reader, n)
    if reader.pos != end:
        raise BlockFormatError(f"{end - reader.pos} unread bytes before the block checksum")
    return field_type, times, values


def encode_blocks(
    field_type: FieldType,
    timestamps: np.ndarray,
    values: np.ndarray,
    level: int = DEFAULT_ZSTD_LEVEL,
) -> list[bytes] | None:
    """encode_block for every row of (rows, n) timestamps and values at once, byte for byte,
    for integer and unsigned fields (node/engine/codecs/smallbatch.py: the numeric work is
    vectorised across rows; zstd, for blocks of more than SMALL_BLOCK_POINTS points, is applied
    per row); None for other types, which are encoded one block at a time."""
    field_type = FieldType(field_type)
    rows, n = timestamps.shape
    if field_type not in (FieldType.INTEGER, FieldType.UNSIGNED) or not 1 <= n <= _MAX_POINTS:
        return None
    if values.shape != (rows, n):
        raise ValueError(f"timestamps of shape {timestamps.shape} but values {values.shape}")
    as_int = np.ascontiguousarray(values, dtype=numpy_dtype(field_type)).view(np.int64)
    head = _HEAD.pack(CODEC_COLUMNAR, int(field_type), n)
    crc32 = zlib.crc32
    pack = U32.pack
    out = []
    for ts_col, v_col in zip(
        encode_int_columns_any(timestamps, level),
        encode_int_columns_any(as_int, level),
        strict=True,
    ):
        body = b"".join((head, ts_col, v_col))
        out.append(body + pack(crc32(body)))
    return out
