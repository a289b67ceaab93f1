"""Integer columns: timestamps, integer and unsigned fields, and decimal-scaled floats.

Two encodings, chosen per column by trying both and keeping the smaller (delta-of-delta first:
when it is all zeros, as for regular timestamps, nothing can beat it and delta is not tried):

- INT_DELTA: first value, then zigzag(x[i] - x[i-1]) as a plane stream.
- INT_DOD: first value, first delta, then zigzag of the deltas' deltas as a plane stream.

All arithmetic is modulo 2**64 (numpy integer arrays wrap), so every int64 sequence round-trips,
including jumps between int64 min and max; unsigned columns are stored as their int64 bit
pattern. Decoding is one or two cumsums.

Byte layout: docs/format/encoding.md, sections "INT_DELTA" and "INT_DOD".
"""

from __future__ import annotations

import numpy as np

from node.engine.codecs.base import I64, BlockFormatError, ColumnEncoding, Reader
from node.engine.codecs.planes import decode_planes, encode_planes

__all__ = ["zigzag", "unzigzag", "encode_int_column", "decode_int_column"]

_ONE = np.uint64(1)
_SIGN_SHIFT = np.int64(63)


def zigzag(d: np.ndarray) -> np.ndarray:
    """int64 -> uint64 with small magnitudes first: 0, -1, 1, -2 -> 0, 1, 2, 3."""
    d = np.asarray(d, dtype=np.int64)
    return (d.view(np.uint64) << _ONE) ^ (d >> _SIGN_SHIFT).view(np.uint64)


def unzigzag(z: np.ndarray) -> np.ndarray:
    z = np.asarray(z, dtype=np.uint64)
    return ((z >> _ONE) ^ np.negative(z & _ONE)).view(np.int64)


def encode_int_column(x: np.ndarray, level: int) -> bytes:
    """A column section (encoding byte included) for an int64 array."""
    x = np.ascontiguousarray(x, dtype=np.int64)
    n = len(x)
    if n == 0:
        return bytes((ColumnEncoding.EMPTY,))
    first = I64.pack(int(x[0]))
    deltas = np.diff(x)
    delta_form = bytes((ColumnEncoding.INT_DELTA,)) + first
    if n < 3:
        return delta_form + encode_planes(zigzag(deltas), level)
    dod = zigzag(np.diff(deltas))
    dod_form = (
        bytes((ColumnEncoding.INT_DOD,))
        + first
        + I64.pack(int(deltas[0]))
        + encode_planes(dod, level)
    )
    if not dod.any():
        return dod_form
    delta_form += encode_planes(zigzag(deltas), level)
    return dod_form if len(dod_form) < len(delta_form) else delta_form


def decode_int_column(reader: Reader, n: int) -> np.ndarray:
    """Read an integer column section of n values (the encoding byte included)."""
    encoding = reader.u8()
    if encoding == ColumnEncoding.EMPTY:
        if n:
            raise BlockFormatError(f"empty column in a block of {n} points")
        return np.empty(0, dtype=np.int64)
    if n == 0:
        raise BlockFormatError("non-empty column in a block of 0 points")
    out = np.empty(n, dtype=np.int64)
    if encoding == ColumnEncoding.INT_DELTA:
        out[0] = reader.unpack(I64)
        out[1:] = unzigzag(decode_planes(reader, n - 1))
    elif encoding == ColumnEncoding.INT_DOD:
        if n < 2:
            raise BlockFormatError("delta-of-delta column of fewer than 2 values")
        out[0] = reader.unpack(I64)
        deltas = out[1:]
        deltas[0] = reader.unpack(I64)
        deltas[1:] = unzigzag(decode_planes(reader, n - 2))
        np.cumsum(deltas, out=deltas)
    else:
        raise BlockFormatError(f"unknown integer column encoding {encoding}")
    return np.cumsum(out, out=out)
