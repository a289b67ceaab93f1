"""Vectorised encoding of many small integer columns at once: the flush of high-cardinality data.

A flush of short-lived series (24,000 series of 30 points each in the TSBS high-cardinality
data) writes one tiny block per series and field. Encoded one at a time, every block costs
about 80 us of numpy call overhead (deltas, zigzag, gcd, planes, each a dozen calls on arrays of
30 values); the per-value work is nothing. Here the columns of equal length are stacked into
one (rows, n) array and every step runs once over all rows (`axis=1` reductions), so the cost
per block drops to a few microseconds of byte slicing.

The output is byte for byte what `encode_int_column` (node/engine/codecs/integers.py) writes
for each row: the same encoding choices (delta or delta-of-delta, plain or divided by the
greatest common divisor, the same tie rules) and the same plane streams
(node/engine/codecs/planes.py). That holds because a row has at most `MAX_POINTS` values: every
packed plane is then shorter than the size at which encode_planes tries zstd, so all planes are
raw and every candidate's length is known without compressing anything. No format changes:
docs/format/encoding.md describes these bytes already ("Integer column", "Plane stream").
"""

from __future__ import annotations

import numpy as np

from node.engine.codecs.base import I64, U32, U64, ColumnEncoding, zstd_compress
from node.engine.codecs.planes import _MIN_MATCH, _MIN_ZSTD, _MODE_RAW, _MODE_ZSTD, _looks_random

__all__ = ["MAX_POINTS", "encode_int_columns", "encode_int_columns_any"]

#: Longest column handled here: a plane of n - 1 <= 63 one-byte values packs to at most 63
#: bytes, below encode_planes' _MIN_ZSTD (64), so no plane of such a column is ever compressed.
MAX_POINTS = 64

_MAX_DIVISOR = 2**62  # as in integers.py: larger divisors are not used
_SHORT_STREAM = 256  # as in integers.py: shorter streams keep the smaller of plain and GCD form
_GCD_SAMPLE = 64
_BITS = np.array([1, 2, 4, 8], dtype=np.int64)
_LE_I64 = np.dtype("<i8")
_LE_U64 = np.dtype("<u8")


def _zigzag(d: np.ndarray) -> np.ndarray:
    d = d.astype(_LE_I64, copy=False)
    return (d.view(_LE_U64) << np.uint64(1)) ^ (d >> np.int64(63)).view(_LE_U64)


def _plane_layout(u: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """For a (rows, m) uint64 array: byte planes (rows, m, 8), present (rows, 8) bool and the
    width code (rows, 8) of every plane, as encode_planes chooses them."""
    u = np.ascontiguousarray(u, dtype=_LE_U64)
    planes = u.view(np.uint8).reshape(len(u), -1, 8)
    # A plane's largest byte is below 2**k exactly when the OR of its bytes is: the width code
    # only needs the OR, which one reduction along the contiguous axis gives for all planes.
    top = np.bitwise_or.reduce(u, axis=1).astype(_LE_U64).view(np.uint8).reshape(len(u), 8)
    code = (top >= 2).astype(np.int64) + (top >= 4) + (top >= 16)
    return planes, top > 0, code


def _planes_len(u: np.ndarray) -> np.ndarray:
    """Length in bytes of each row's plane stream (all planes raw: see MAX_POINTS)."""
    m = u.shape[1]
    if m == 0:
        return np.ones(len(u), dtype=np.int64)
    _, present, code = _plane_layout(u)
    packed = (m * _BITS[code] + 7) // 8
    return 1 + (present * (1 + packed)).sum(axis=1)


def _pack(plane: np.ndarray, bits: int) -> np.ndarray:
    """(rows, m) uint8 values < 2**bits -> (rows, ceil(m * bits / 8)), as planes._pack per row."""
    if bits == 8:
        return plane
    if bits == 1:
        return np.packbits(plane, axis=1, bitorder="little")
    per = 8 // bits
    rows, m = plane.shape
    pad = -m % per
    if pad:
        plane = np.concatenate([plane, np.zeros((rows, pad), np.uint8)], axis=1)
    groups = plane.reshape(rows, -1, per)
    out = groups[:, :, 0].copy()
    for j in range(1, per):
        out |= groups[:, :, j] << np.uint8(j * bits)
    return out


def _planes_parts(u: np.ndarray) -> list[tuple[np.ndarray, list[np.ndarray]]]:
    """The plane streams of the rows of u (rows, m), grouped by layout: (row positions, parts),
    the parts being (group rows, width) uint8 arrays whose concatenation is each row's stream."""
    rows, m = u.shape
    if m == 0:
        return [(np.arange(rows), [np.zeros((rows, 1), np.uint8)])]
    planes, present, code = _plane_layout(u)
    # One number per layout: per plane 0 (absent) or code + 1, base 5.
    signature = ((code + 1) * present * (5 ** np.arange(8, dtype=np.int64))).sum(axis=1)
    uniq, inverse = np.unique(signature, return_inverse=True)
    out = []
    for j, sig in enumerate(uniq.tolist()):
        where = np.flatnonzero(inverse == j)
        n = len(where)
        mask = 0
        parts: list[np.ndarray] = []
        plane_parts: list[np.ndarray] = []
        for i in range(8):
            c = sig // 5**i % 5
            if not c:
                continue
            mask |= 1 << i
            plane_parts.append(np.full((n, 1), c - 1, np.uint8))  # descriptor: raw mode
            plane_parts.append(_pack(planes[where, :, i], int(_BITS[c - 1])))
        parts.append(np.full((n, 1), mask, np.uint8))
        parts.extend(plane_parts)
        out.append((where, parts))
    return out


def _head_bytes(*cols: np.ndarray) -> np.ndarray:
    """(rows, 8 * len(cols)) uint8: each column's int64 or uint64 values little-endian."""
    return np.concatenate(
        [
            np.ascontiguousarray(c.astype(_LE_I64 if c.dtype.kind == "i" else _LE_U64))
            .view(np.uint8)
            .reshape(len(c), 8)
            for c in cols
        ],
        axis=1,
    )


def _emit(
    out: list[bytes],
    rows: np.ndarray,
    encoding: int,
    head: np.ndarray,
    stream: np.ndarray,
) -> None:
    """Fill out[rows] with encoding byte | head | plane stream of `stream` (the selected rows)."""
    if not len(rows):
        return
    for where, parts in _planes_parts(stream):
        n = len(where)
        block = np.concatenate([np.full((n, 1), encoding, np.uint8), head[where], *parts], axis=1)
        width = block.shape[1]
        data = block.tobytes()
        targets = rows[where].tolist()
        for k, target in enumerate(targets):
            out[target] = data[k * width : (k + 1) * width]


def _divisors(s: np.ndarray) -> np.ndarray:
    """Per row the gcd of the values (abs as uint64, as common_divisor), 1 when it is 0 or
    above _MAX_DIVISOR."""
    if s.shape[1] > _GCD_SAMPLE:
        # The gcd of the first values is a multiple of the row's gcd: where it is 1 (the usual
        # case) so is the row's, and only the other rows need the full reduction.
        g = np.gcd.reduce(np.abs(s[:, :_GCD_SAMPLE]).view(_LE_U64), axis=1)
        rest = np.flatnonzero(g != 1)
        if len(rest):
            g[rest] = np.gcd.reduce(np.abs(s[rest]).view(_LE_U64), axis=1)
    else:
        g = np.gcd.reduce(np.abs(s).view(_LE_U64), axis=1)
    return np.where((g > 1) & (g <= _MAX_DIVISOR), g, 1).astype(_LE_U64)


def _rows(a: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """a[rows], without the copy when rows is every row in order."""
    return a if len(rows) == len(a) else a[rows]


def _choose(s: np.ndarray, head_len: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """For difference streams s (rows, m): total section length, divisor (1 = plain form) and
    the stream to store, following integers._stream (rows are shorter than _SHORT_STREAM, so
    the plain form is kept whenever it is not longer)."""
    g = _divisors(s)
    plain = _zigzag(s)
    plain_len = 1 + head_len + _planes_len(plain)
    scaled = _zigzag(s // g.view(_LE_I64)[:, None])
    scaled_len = 1 + head_len + 8 + _planes_len(scaled)
    use_scaled = (g > 1) & (scaled_len < plain_len)
    g = np.where(use_scaled, g, 1).astype(_LE_U64)
    stream = np.where(use_scaled[:, None], scaled, plain)
    return np.where(use_scaled, scaled_len, plain_len), g, stream


def encode_int_columns(x: np.ndarray) -> list[bytes]:
    """The column section `encode_int_column(row, level)` writes, for every row of x, an int64
    array of shape (rows, n) with 1 <= n <= MAX_POINTS (any zstd level: none is used)."""
    x = np.ascontiguousarray(x, dtype=np.int64)
    rows, n = x.shape
    if not 1 <= n <= MAX_POINTS:
        raise ValueError(f"columns of 1 to {MAX_POINTS} values, got {n}")
    out: list[bytes] = [b""] * rows
    every = np.arange(rows)
    first = x[:, 0]
    deltas = x[:, 1:] - x[:, :-1]
    if n < 3:
        _emit(out, every, ColumnEncoding.INT_DELTA, _head_bytes(first), _zigzag(deltas))
        return out
    dod = deltas[:, 1:] - deltas[:, :-1]
    regular = ~dod.any(axis=1)
    dod_head = _head_bytes(first, deltas[:, 0])
    # Regular rows: delta-of-delta with an all-zero stream (nothing can be shorter).
    sel = np.flatnonzero(regular)
    _emit(out, sel, ColumnEncoding.INT_DOD, dod_head[sel], _zigzag(dod[sel]))
    rest = np.flatnonzero(~regular)
    if not len(rest):
        return out
    d_len, d_g, d_stream = _choose(deltas[rest], 8)
    o_len, o_g, o_stream = _choose(dod[rest], 16)
    use_dod = o_len < d_len  # on a tie plain delta wins, as in encode_int_column
    for is_dod, stream, divisor, head in (
        (False, d_stream, d_g, _head_bytes(first[rest])),
        (True, o_stream, o_g, dod_head[rest]),
    ):
        chosen = use_dod if is_dod else ~use_dod
        plain_code = ColumnEncoding.INT_DOD if is_dod else ColumnEncoding.INT_DELTA
        scaled_code = ColumnEncoding.INT_DOD_GCD if is_dod else ColumnEncoding.INT_DELTA_GCD
        plain_rows = np.flatnonzero(chosen & (divisor == 1))
        _emit(out, rest[plain_rows], plain_code, head[plain_rows], stream[plain_rows])
        scaled_rows = np.flatnonzero(chosen & (divisor > 1))
        if len(scaled_rows):
            scaled_head = np.concatenate(
                [head[scaled_rows], _head_bytes(divisor[scaled_rows])], axis=1
            )
            _emit(out, rest[scaled_rows], scaled_code, scaled_head, stream[scaled_rows])
    return out


def _plane_streams(u: np.ndarray, level: int) -> list[bytes]:
    """Per row of u (rows, m) uint64, exactly `encode_planes(u[row], level)`: the packing is
    vectorised per (plane, width) over all rows; zstd (for packed planes of 64 bytes or more)
    and the choice between its frame and the raw plane are made row by row, as there."""
    rows, m = u.shape
    if m == 0 or rows == 0:
        return [b"\x00"] * rows
    planes, present, code = _plane_layout(u)
    masks = (present * (1 << np.arange(8, dtype=np.int64))).sum(axis=1).tolist()
    pieces: list[list[bytes]] = [[] for _ in range(rows)]
    for i in range(8):
        has = present[:, i]
        if not has.any():
            continue
        for c in range(4):
            where = np.flatnonzero(has & (code[:, i] == c))
            if not len(where):
                continue
            plane_rows = planes[where, :, i]
            packed = _pack(plane_rows, int(_BITS[c]))
            width = packed.shape[1]
            data = packed.tobytes()
            raw_desc = bytes((c | _MODE_RAW << 4,))
            if width < _MIN_ZSTD:
                for k, row in enumerate(where.tolist()):
                    pieces[row].append(raw_desc + data[k * width : (k + 1) * width])
                continue
            zstd_desc = bytes((c | _MODE_ZSTD << 4,))
            for k, row in enumerate(where.tolist()):
                chunk = data[k * width : (k + 1) * width]
                if not _looks_random(plane_rows[k], c):
                    frame = zstd_compress(chunk, level, _MIN_MATCH)
                    if len(frame) + U32.size < width:
                        pieces[row].append(zstd_desc + U32.pack(len(frame)) + frame)
                        continue
                pieces[row].append(raw_desc + chunk)
    return [bytes((mask,)) + b"".join(p) for mask, p in zip(masks, pieces, strict=True)]


def _stream_forms(
    s: np.ndarray, plain: int, scaled: int, heads: list[bytes], level: int
) -> list[bytes]:
    """Per row of the difference streams s (rows, m): what integers._stream returns."""
    rows, m = s.shape
    g = _divisors(s)
    has_g = g > 1
    need_plain = ~has_g | (m < _SHORT_STREAM)
    plain_rows = np.flatnonzero(need_plain)
    scaled_rows = np.flatnonzero(has_g)
    plain_streams = dict(
        zip(
            plain_rows.tolist(),
            _plane_streams(_zigzag(_rows(s, plain_rows)), level),
            strict=True,
        )
    )
    g_sel = g[scaled_rows]
    scaled_streams = dict(
        zip(
            scaled_rows.tolist(),
            _plane_streams(_zigzag(s[scaled_rows] // g_sel.view(_LE_I64)[:, None]), level),
            strict=True,
        )
    )
    g_list = g.tolist()
    plain_b, scaled_b = bytes((plain,)), bytes((scaled,))
    out = []
    for row in range(rows):
        head = heads[row]
        if g_list[row] <= 1:
            out.append(plain_b + head + plain_streams[row])
            continue
        scaled_form = scaled_b + head + U64.pack(g_list[row]) + scaled_streams[row]
        if m >= _SHORT_STREAM:
            out.append(scaled_form)
            continue
        plain_form = plain_b + head + plain_streams[row]
        out.append(plain_form if len(plain_form) <= len(scaled_form) else scaled_form)
    return out


def encode_int_columns_any(x: np.ndarray, level: int) -> list[bytes]:
    """`encode_int_column(row, level)` for every row of x (rows, n), any n >= 1: columns of at
    most MAX_POINTS values go through encode_int_columns, longer ones through the same
    vectorised steps with zstd applied per row and plane (the flush of long-lived series:
    thousands of blocks of a few hundred points)."""
    x = np.ascontiguousarray(x, dtype=np.int64)
    rows, n = x.shape
    if n <= MAX_POINTS:
        return encode_int_columns(x)
    out: list[bytes] = [b""] * rows
    first = x[:, 0]
    deltas = x[:, 1:] - x[:, :-1]
    dod = deltas[:, 1:] - deltas[:, :-1]
    regular = ~dod.any(axis=1)
    dod_head = _head_bytes(first, deltas[:, 0])
    sel = np.flatnonzero(regular)
    _emit(out, sel, ColumnEncoding.INT_DOD, dod_head[sel], np.zeros((len(sel), 0), _LE_U64))
    rest = np.flatnonzero(~regular)
    if not len(rest):
        return out
    firsts = first[rest].tolist()
    seconds = deltas[rest, 0].tolist()
    delta_heads = [I64.pack(v) for v in firsts]
    dod_heads = [I64.pack(a) + I64.pack(b) for a, b in zip(firsts, seconds, strict=True)]
    delta_forms = _stream_forms(
        _rows(deltas, rest),
        ColumnEncoding.INT_DELTA,
        ColumnEncoding.INT_DELTA_GCD,
        delta_heads,
        level,
    )
    dod_forms = _stream_forms(
        _rows(dod, rest), ColumnEncoding.INT_DOD, ColumnEncoding.INT_DOD_GCD, dod_heads, level
    )
    for row, d_form, o_form in zip(rest.tolist(), delta_forms, dod_forms, strict=True):
        out[row] = o_form if len(o_form) < len(d_form) else d_form
    return out
