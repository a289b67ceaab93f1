"""Boolean columns: one bit per value (BOOL_BITS).

The values go through the plane stream as 0/1 integers; its narrowest packing is 1 bit per
value (np.packbits, little bit order), zstd-compressed when that is smaller (long runs).
An all-false column stores no plane at all.

Byte layout: docs/format/encoding.md, section "BOOL_BITS".
"""

from __future__ import annotations

import numpy as np

from node.engine.codecs.base import BlockFormatError, ColumnEncoding, Reader
from node.engine.codecs.planes import decode_planes, encode_planes

__all__ = ["encode_bool_column", "decode_bool_column"]


def encode_bool_column(v: np.ndarray, level: int) -> bytes:
    v = np.asarray(v, dtype=np.bool_)
    if len(v) == 0:
        return bytes((ColumnEncoding.EMPTY,))
    return bytes((ColumnEncoding.BOOL_BITS,)) + encode_planes(v.view(np.uint8), level)


def decode_bool_column(reader: Reader, n: int) -> np.ndarray:
    encoding = reader.u8()
    if encoding == ColumnEncoding.EMPTY:
        if n:
            raise BlockFormatError(f"empty column in a block of {n} points")
        return np.empty(0, dtype=np.bool_)
    if n == 0:
        raise BlockFormatError("non-empty column in a block of 0 points")
    if encoding != ColumnEncoding.BOOL_BITS:
        raise BlockFormatError(f"unknown boolean column encoding {encoding}")
    bits = decode_planes(reader, n)
    if n and int(bits.max()) > 1:
        raise BlockFormatError("boolean column holds a value other than 0 and 1")
    return bits.astype(np.bool_)
