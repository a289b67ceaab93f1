"""Float columns: decimal-scaled integers when that is lossless, otherwise XOR of neighbours.

FLOAT_DECIMAL: find the smallest p in 0..MAX_DECIMALS such that every value equals
`int64(rint(v * 10**p)) / 10**p` bit for bit (the exact computation the decoder does), then
store those integers as an integer column. Metrics written with a few decimals (sensor readings,
percentages) become small integer deltas, far cheaper than any float bit trick. -0.0, NaN and
infinities never pass the check, so a block holding one falls back to XOR.

From p = 10 on the encoder also builds the XOR form and keeps the smaller.

FLOAT_XOR: the raw IEEE 754 bits XORed with the previous value's bits (Gorilla's idea, without
its per-value bit fiddling): neighbours share sign, exponent and top mantissa bits, so the high
byte planes are zero or nearly so. Exact for every bit pattern, NaN payloads included.

Byte layout: docs/format/encoding.md, sections "FLOAT_DECIMAL" and "FLOAT_XOR".
"""

from __future__ import annotations

import numpy as np

from node.engine.codecs.base import U8, U64, BlockFormatError, ColumnEncoding, Reader
from node.engine.codecs.integers import decode_int_column, encode_int_column
from node.engine.codecs.planes import decode_planes, encode_planes

__all__ = ["MAX_DECIMALS", "decimal_exponent", "encode_float_column", "decode_float_column"]

# 10**p is an exact double up to p = 22; beyond 18 decimals no double needs scaling to be
# integral in a way that helps (doubles carry about 17 significant digits).
MAX_DECIMALS = 18
_POW10 = np.array([10.0**p for p in range(MAX_DECIMALS + 1)])
# rint(v * 10**p) must convert to int64 exactly; stay clear of 2**63, whose float rounds up.
_INT_LIMIT = float(2**62)
_SAMPLE = 32
# With many decimals the scaled integers are wide and XOR may be the smaller form: try both.
_ALSO_TRY_XOR = 10


def _scaled(v: np.ndarray, p: int) -> np.ndarray | None:
    """The int64 integers for exponent p if they reproduce v exactly, else None.
    (Called with floating-point warnings off: inf and NaN are expected here.)"""
    r = np.rint(v * _POW10[p])
    if not (np.abs(r) <= _INT_LIMIT).all():  # also false for NaN
        return None
    ints = r.astype(np.int64)
    back = ints.astype(np.float64) / _POW10[p]
    if not np.array_equal(back.view(np.uint64), v.view(np.uint64)):
        return None
    return ints


def decimal_exponent(v: np.ndarray) -> tuple[int, np.ndarray] | None:
    """Smallest p with an exact decimal scaling of all of v, and the scaled integers."""
    with np.errstate(invalid="ignore", over="ignore"):
        # A few values against all exponents at once give a lower bound for p cheaply; the
        # full check then usually passes at that p at the first try.
        sample = v[:_SAMPLE]
        r = np.rint(sample[:, None] * _POW10[None, :])
        ok = np.abs(r) <= _INT_LIMIT
        back = np.where(ok, r, 0.0).astype(np.int64).astype(np.float64) / _POW10[None, :]
        ok &= back.view(np.uint64) == sample.view(np.uint64)[:, None]
        candidates = np.flatnonzero(ok.all(axis=0))
        if len(candidates) == 0:
            return None
        if len(v) <= _SAMPLE:
            p = int(candidates[0])
            return p, r[:, p].astype(np.int64)
        for p in range(int(candidates[0]), MAX_DECIMALS + 1):
            ints = _scaled(v, p)
            if ints is not None:
                return p, ints
    return None


def encode_float_column(v: np.ndarray, level: int) -> bytes:
    v = np.ascontiguousarray(v, dtype=np.float64)
    n = len(v)
    if n == 0:
        return bytes((ColumnEncoding.EMPTY,))
    found = decimal_exponent(v)
    decimal = None
    if found is not None:
        p, ints = found
        decimal = bytes((ColumnEncoding.FLOAT_DECIMAL, p)) + encode_int_column(ints, level)
        if p < _ALSO_TRY_XOR:
            return decimal
    bits = v.view(np.uint64)
    xor = (
        bytes((ColumnEncoding.FLOAT_XOR,))
        + U64.pack(int(bits[0]))
        + encode_planes(bits[1:] ^ bits[:-1], level)
    )
    return decimal if decimal is not None and len(decimal) <= len(xor) else xor


def decode_float_column(reader: Reader, n: int) -> np.ndarray:
    encoding = reader.u8()
    if encoding == ColumnEncoding.EMPTY:
        if n:
            raise BlockFormatError(f"empty column in a block of {n} points")
        return np.empty(0, dtype=np.float64)
    if n == 0:
        raise BlockFormatError("non-empty column in a block of 0 points")
    if encoding == ColumnEncoding.FLOAT_DECIMAL:
        p = reader.unpack(U8)
        if p > MAX_DECIMALS:
            raise BlockFormatError(f"decimal exponent {p} out of range")
        ints = decode_int_column(reader, n)
        return ints.astype(np.float64) / _POW10[p]
    if encoding == ColumnEncoding.FLOAT_XOR:
        bits = np.empty(n, dtype=np.uint64)
        bits[0] = reader.unpack(U64)
        bits[1:] = decode_planes(reader, n - 1)
        np.bitwise_xor.accumulate(bits, out=bits)
        return bits.view(np.float64)
    raise BlockFormatError(f"unknown float column encoding {encoding}")
