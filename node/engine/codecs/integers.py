"""Integer columns: timestamps, integer and unsigned fields, and decimal-scaled floats.

Encodings, chosen per column by trying delta and delta-of-delta and keeping the smaller:

- INT_DELTA: first value, then zigzag(x[i] - x[i-1]) as a plane stream.
- INT_DOD: first value, first delta, then zigzag of the deltas' deltas as a plane stream. When
  that stream is all zeros (regular timestamps) nothing can beat it and delta is not tried.
- INT_DELTA_GCD / INT_DOD_GCD: the same streams divided by their greatest common divisor g > 1
  (used instead of the plain form whenever there is such a g, except that streams shorter than
  256 values keep whichever form is smaller). Nanosecond timestamps of millisecond precision
  with jitter (Prometheus scrapes) have deltas that are multiples of 10**6; dividing first
  turns three-byte numbers into a few bits.

All arithmetic is modulo 2**64 (numpy integer arrays wrap), so every int64 sequence round-trips,
including jumps between int64 min and max; unsigned columns are stored as their int64 bit
pattern. Decoding is one or two cumsums (and a multiply for the GCD forms).

Byte layout: docs/format/encoding.md, sections "Integer column".
"""

from __future__ import annotations

import struct

import numpy as np

from node.engine.codecs.base import I64, U64, BlockFormatError, ColumnEncoding, Reader
from node.engine.codecs.planes import decode_planes_narrow, encode_planes

__all__ = [
    "zigzag",
    "unzigzag",
    "common_divisor",
    "encode_int_column",
    "decode_int_column",
    "decode_int_column_compact",
    "regular_sequence",
    "MAX_REGULAR_STEP",
]

_ONE = np.uint64(1)
_SIGN_SHIFT = np.int64(63)
# g is stored as u64 but used as an int64 multiplier; larger divisors never help anyway.
_MAX_DIVISOR = 2**62
_GCD_SAMPLE = 64
# Below this many values the 8 bytes that store g can outweigh what dividing saves: try both.
_SHORT_STREAM = 256
#: Arithmetic sequences are handed out as (first, step, count) only for |step| below this:
#: every difference of such a sequence's values, taken in int64, is then exact.
MAX_REGULAR_STEP = 2**62
_REGULAR_HEAD = struct.Struct("<qqB")  # first value, first delta, plane mask of the dods


def zigzag(d: np.ndarray) -> np.ndarray:
    """int64 -> uint64 with small magnitudes first: 0, -1, 1, -2 -> 0, 1, 2, 3."""
    d = np.asarray(d, dtype=np.int64)
    return (d.view(np.uint64) << _ONE) ^ (d >> _SIGN_SHIFT).view(np.uint64)


def unzigzag(z: np.ndarray) -> np.ndarray:
    z = np.asarray(z, dtype=np.uint64)
    return ((z >> _ONE) ^ np.negative(z & _ONE)).view(np.int64)


def common_divisor(s: np.ndarray) -> int:
    """The greatest common divisor of the int64 values (1 if all are zero or it is too big)."""
    nonzero = s[s != 0]
    if len(nonzero) == 0:
        return 1
    # The gcd of a sample is a multiple of the gcd of all; when it divides every value it is the
    # gcd of all. This keeps the common case (gcd 1, found from the sample) cheap.
    sample = np.abs(nonzero[:_GCD_SAMPLE]).view(np.uint64)  # abs(int64 min) wraps to 2**63
    g = int(np.gcd.reduce(sample))
    if g > _MAX_DIVISOR or (g > 1 and np.remainder(nonzero, np.int64(g)).any()):
        g = int(np.gcd.reduce(np.abs(nonzero).view(np.uint64)))
    return g if 1 < g <= _MAX_DIVISOR else 1


def _stream(
    plain: ColumnEncoding, scaled: ColumnEncoding, head: bytes, s: np.ndarray, level: int
) -> bytes:
    """A difference stream in its GCD form when it has a divisor > 1, else in its plain form.
    Dividing never widens a value, so on long streams the plain form is not worth trying next
    to the GCD form; on short ones the 8 bytes of g can make it the larger."""
    g = common_divisor(s)
    if g == 1:
        return bytes((plain,)) + head + encode_planes(zigzag(s), level)
    scaled_form = (
        bytes((scaled,)) + head + U64.pack(g) + encode_planes(zigzag(s // np.int64(g)), level)
    )
    if len(s) >= _SHORT_STREAM:
        return scaled_form
    plain_form = bytes((plain,)) + head + encode_planes(zigzag(s), level)
    return plain_form if len(plain_form) <= len(scaled_form) else scaled_form


def encode_int_column(x: np.ndarray, level: int) -> bytes:
    """A column section (encoding byte included) for an int64 array."""
    x = np.ascontiguousarray(x, dtype=np.int64)
    n = len(x)
    if n == 0:
        return bytes((ColumnEncoding.EMPTY,))
    first = I64.pack(int(x[0]))
    deltas = x[1:] - x[:-1]
    if n < 3:
        return bytes((ColumnEncoding.INT_DELTA,)) + first + encode_planes(zigzag(deltas), level)
    dod = deltas[1:] - deltas[:-1]
    dod_head = first + I64.pack(int(deltas[0]))
    if not dod.any():
        return bytes((ColumnEncoding.INT_DOD,)) + dod_head + encode_planes(zigzag(dod), level)
    delta_form = _stream(
        ColumnEncoding.INT_DELTA, ColumnEncoding.INT_DELTA_GCD, first, deltas, level
    )
    dod_form = _stream(ColumnEncoding.INT_DOD, ColumnEncoding.INT_DOD_GCD, dod_head, dod, level)
    # On a tie plain delta wins: one cumsum fewer to decode.
    return dod_form if len(dod_form) < len(delta_form) else delta_form


def _divisor(reader: Reader) -> np.int64:
    g = reader.unpack(U64)
    if not 1 < g <= _MAX_DIVISOR:
        raise BlockFormatError(f"integer column divisor {g} out of range")
    return np.int64(g)


def _read_diffs(reader: Reader, out: np.ndarray, g: np.int64 | None) -> None:
    """Fill out (int64) with the differences of a plane stream of len(out) values."""
    z = decode_planes_narrow(reader, len(out))
    if z is None:
        out[:] = 0
        return
    # Undo zigzag at the stream's own width (a value that fits w bits zigzagged fits w bits
    # signed); assigning the narrow signed array sign-extends it to int64.
    one = z.dtype.type(1)
    out[:] = ((z >> one) ^ np.negative(z & one)).view(z.dtype.str.replace("u", "i"))
    if g is not None:
        out *= g


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
    if encoding in (ColumnEncoding.INT_DELTA, ColumnEncoding.INT_DELTA_GCD):
        out[0] = reader.unpack(I64)
        g = _divisor(reader) if encoding == ColumnEncoding.INT_DELTA_GCD else None
        _read_diffs(reader, out[1:], g)
    elif encoding in (ColumnEncoding.INT_DOD, ColumnEncoding.INT_DOD_GCD):
        if n < 2:
            raise BlockFormatError("delta-of-delta column of fewer than 2 values")
        first = reader.unpack(I64)
        delta = reader.unpack(I64)
        g = _divisor(reader) if encoding == ColumnEncoding.INT_DOD_GCD else None
        if g is None and reader.pos < reader.end and reader.data[reader.pos] == 0:
            # All deltas equal (regular timestamps): an arithmetic sequence, no cumsum needed.
            reader.pos += 1
            return regular_sequence(first, delta, n)
        out[0] = first
        deltas = out[1:]
        deltas[0] = delta
        _read_diffs(reader, deltas[1:], g)
        np.cumsum(deltas, out=deltas)
    else:
        raise BlockFormatError(f"unknown integer column encoding {encoding}")
    return np.cumsum(out, out=out)


def regular_sequence(first: int, step: int, n: int) -> np.ndarray:
    """first + i * step for i < n, in int64 arithmetic (wrapping, as every column decodes)."""
    out = np.arange(n, dtype=np.int64)
    out *= np.int64(step)
    out += np.int64(first)
    return out


def decode_int_column_compact(reader: Reader, n: int) -> np.ndarray | tuple[int, int, int]:
    """decode_int_column, except that an arithmetic sequence of 3 or more values with
    |step| < MAX_REGULAR_STEP, stored as the encoder stores one (delta-of-delta, no plane),
    comes back as (first, step, n), unbuilt: regular timestamps, which the block cache keeps
    in that form and a read cuts by arithmetic (node/engine/cache.py)."""
    pos = reader.pos
    if n >= 3 and pos + 1 + _REGULAR_HEAD.size <= reader.end:
        data = reader.data
        if data[pos] == ColumnEncoding.INT_DOD:
            first, step, mask = _REGULAR_HEAD.unpack_from(data, pos + 1)
            if mask == 0 and -MAX_REGULAR_STEP < step < MAX_REGULAR_STEP:
                reader.pos = pos + 1 + _REGULAR_HEAD.size
                return first, step, n
    return decode_int_column(reader, n)
