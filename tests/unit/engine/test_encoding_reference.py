"""A second decoder for codec 2, written from docs/format/encoding.md in plain Python (no numpy,
one value at a time), checked against encode_block: the documented layout is the real one."""

from __future__ import annotations

import math
import struct
import zlib

import numpy as np
import zstandard
from hypothesis import given, settings
from hypothesis import strategies as st

from node.engine.encoding import encode_block
from pulsar_cluster.batch import FieldType

M64 = 2**64


class _Cursor:
    def __init__(self, data: bytes) -> None:
        self.data = data
        self.pos = 0

    def read(self, n: int) -> bytes:
        out = self.data[self.pos : self.pos + n]
        assert len(out) == n
        self.pos += n
        return out

    def fmt(self, f: str) -> int:
        return struct.unpack("<" + f, self.read(struct.calcsize("<" + f)))[0]


def _planes(c: _Cursor, m: int) -> list[int]:
    values = [0] * m
    mask = c.fmt("B")
    for i in range(8):
        if not mask >> i & 1:
            continue
        desc = c.fmt("B")
        bits = (1, 2, 4, 8)[desc & 0x0F]
        size = math.ceil(m * bits / 8)
        if desc >> 4 == 0:
            packed = c.read(size)
        else:
            packed = zstandard.ZstdDecompressor().decompress(c.read(c.fmt("I")))
        assert len(packed) == size
        for j in range(m):
            bit = j * bits
            byte = packed[bit // 8] >> (bit % 8) & ((1 << bits) - 1)
            values[j] += byte << (8 * i)
    return values


def _signed(u: int) -> int:
    u %= M64
    return u - M64 if u >= 2**63 else u


def _unzigzag(z: int) -> int:
    return (z >> 1) ^ -(z & 1)


def _int_column(c: _Cursor, n: int) -> list[int]:
    enc = c.fmt("B")
    if enc == 0:
        return []
    first = c.fmt("q")
    if enc in (1, 7):
        g = c.fmt("Q") if enc == 7 else 1
        out = [first]
        for z in _planes(c, n - 1):
            out.append(_signed(out[-1] + _unzigzag(z) * g))
        return out
    assert enc in (2, 8)
    delta = c.fmt("q")
    g = c.fmt("Q") if enc == 8 else 1
    out = [first, _signed(first + delta)]
    for z in _planes(c, n - 2):
        delta = _signed(delta + _unzigzag(z) * g)
        out.append(_signed(out[-1] + delta))
    return out


def _value_column(c: _Cursor, field_type: FieldType, n: int) -> list:
    if field_type in (FieldType.INTEGER, FieldType.UNSIGNED):
        ints = _int_column(c, n)
        return ints if field_type is FieldType.INTEGER else [v % M64 for v in ints]
    enc = c.fmt("B")
    if enc == 0:
        return []
    if enc == 3:  # FLOAT_DECIMAL: as IEEE bits, so NaNs compare
        p = c.fmt("B")
        ints = _int_column(c, n)
        return [struct.unpack("<Q", struct.pack("<d", float(k) / 10.0**p))[0] for k in ints]
    if enc == 4:  # FLOAT_XOR
        bits = [c.fmt("Q")]
        for x in _planes(c, n - 1):
            bits.append(bits[-1] ^ x)
        return bits
    if enc == 5:
        return [bool(b) for b in _planes(c, n)]
    assert enc == 6
    lengths = _planes(c, n)
    mode, size = c.fmt("B"), c.fmt("I")
    blob = c.read(size)
    if mode == 1:
        blob = zstandard.ZstdDecompressor().decompress(blob)
    out, pos = [], 0
    for length in lengths:
        out.append(blob[pos : pos + length].decode("utf-8", "surrogatepass"))
        pos += length
    return out


def reference_decode(block: bytes) -> tuple[int, list[int], list]:
    assert block[0] == 2
    assert zlib.crc32(block[:-4]) == struct.unpack("<I", block[-4:])[0]
    c = _Cursor(block[:-4])
    c.read(1)
    field_type = FieldType(c.fmt("B"))
    n = c.fmt("I")
    ts = _int_column(c, n)
    values = _value_column(c, field_type, n)
    assert c.pos == len(block) - 4
    return field_type, ts, values


_values = {
    FieldType.FLOAT: st.integers(0, M64 - 1)
    | st.integers(-(10**7), 10**7).map(
        lambda m: struct.unpack("<Q", struct.pack("<d", m / 1e3))[0]
    ),
    FieldType.INTEGER: st.integers(-(2**63), 2**63 - 1) | st.integers(-5, 5),
    FieldType.UNSIGNED: st.integers(0, M64 - 1) | st.integers(0, 9),
    FieldType.BOOLEAN: st.booleans(),
    FieldType.STRING: st.text(max_size=8),
}


@st.composite
def _blocks(draw: st.DrawFn) -> tuple[FieldType, list[int], list]:
    field_type = draw(st.sampled_from(list(FieldType)))
    start = draw(st.integers(-(2**62), 2**62))
    steps = draw(st.lists(st.integers(1, 10**6) | st.just(10**9), max_size=400))
    ts = [start + sum(steps[:i]) for i in range(len(steps))]
    values = draw(st.lists(_values[field_type], min_size=len(ts), max_size=len(ts)))
    return field_type, ts, values


@settings(max_examples=60, deadline=None)
@given(_blocks())
def test_reference_decoder_agrees(block: tuple[FieldType, list[int], list]) -> None:
    field_type, ts, values = block
    if field_type is FieldType.FLOAT:
        arr = np.array(values, dtype=np.uint64).view(np.float64)
    elif field_type is FieldType.STRING:
        arr = np.empty(len(values), dtype=object)
        arr[:] = values
    else:
        arr = np.array(values, dtype={2: np.int64, 3: np.uint64, 4: np.bool_}[int(field_type)])
    data = encode_block(field_type, np.array(ts, dtype=np.int64), arr, 3)
    assert reference_decode(data) == (field_type, ts, values)


def test_reference_decoder_on_tsbs_like_blocks() -> None:
    rng = np.random.default_rng(9)
    ts = 10**10 * np.arange(4096, dtype=np.int64)
    floats = np.round(np.clip(50 + np.cumsum(rng.normal(0, 1, 4096)), 0, 100), 4)
    ints = np.cumsum(np.rint(rng.normal(0, 1, 4096))).astype(np.int64)
    jitter_ts = ts + 10**6 * rng.integers(-3, 4, 4096)
    for field_type, t, v in (
        (FieldType.FLOAT, ts, floats),
        (FieldType.INTEGER, ts, ints),
        (FieldType.INTEGER, jitter_ts, ints),
    ):
        got_type, got_ts, got_values = reference_decode(encode_block(field_type, t, v, 3))
        assert got_type is field_type and got_ts == t.tolist()
        expected = v.view(np.uint64).tolist() if field_type is FieldType.FLOAT else v.tolist()
        assert got_values == expected
