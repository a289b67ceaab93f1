"""Column codecs one by one: integers (delta / delta-of-delta), floats (decimal / XOR), booleans,
strings. Every property compares with the input bit for bit."""

from __future__ import annotations

import math
import struct

import numpy as np
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from node.engine.codecs.base import BlockFormatError, ColumnEncoding, Reader
from node.engine.codecs.booleans import decode_bool_column, encode_bool_column
from node.engine.codecs.floats import (
    MAX_DECIMALS,
    decimal_exponent,
    decode_float_column,
    encode_float_column,
)
from node.engine.codecs.integers import common_divisor, decode_int_column, encode_int_column
from node.engine.codecs.strings import decode_string_column, encode_string_column

I64_MIN, I64_MAX = -(2**63), 2**63 - 1


def _decode(decoder, data: bytes, n: int):
    reader = Reader(memoryview(data), 0, len(data))
    out = decoder(reader, n)
    assert reader.pos == len(data)
    return out


def _bits(v: np.ndarray) -> list[int]:
    return np.asarray(v, dtype=np.float64).view(np.uint64).tolist()


# --- integers -------------------------------------------------------------------------------

int64s = st.integers(I64_MIN, I64_MAX)


@settings(max_examples=200)
@given(st.lists(int64s, max_size=300))
@example([I64_MIN, I64_MAX, I64_MIN, 0, I64_MAX])
@example([I64_MAX])
def test_int_column_roundtrip_any(values: list[int]) -> None:
    data = encode_int_column(np.array(values, dtype=np.int64), 3)
    out = _decode(decode_int_column, data, len(values))
    assert out.dtype == np.int64
    assert out.tolist() == values


@given(
    st.integers(-(2**62), 2**62),
    st.integers(1, 10**12),
    st.lists(st.integers(-1000, 1000), min_size=2, max_size=300),
)
def test_int_column_roundtrip_jittered_sequences(start: int, step: int, jitter: list[int]) -> None:
    values = [start + i * step + j for i, j in enumerate(jitter)]
    data = encode_int_column(np.array(values, dtype=np.int64), 3)
    assert _decode(decode_int_column, data, len(values)).tolist() == values


@settings(max_examples=200)
@given(
    st.integers(I64_MIN, I64_MAX),
    st.integers(1, 2**62) | st.sampled_from([10**6, 10**9, 2**62, 3]),
    st.lists(st.integers(-1000, 1000), max_size=200),
)
def test_int_column_roundtrip_multiples(start: int, g: int, steps: list[int]) -> None:
    # Values whose differences share a divisor, wrapping around int64 where they overflow.
    values = [((start + g * sum(steps[:i]) + 2**63) % 2**64) - 2**63 for i in range(len(steps))]
    data = encode_int_column(np.array(values, dtype=np.int64), 3)
    assert _decode(decode_int_column, data, len(values)).tolist() == values


@given(st.lists(int64s, max_size=100))
@example([I64_MIN, 0])
@example([I64_MIN, I64_MIN])
@example([I64_MIN] * 70 + [2**62])
def test_common_divisor_matches_reference(values: list[int]) -> None:
    expected = 0
    for v in values:
        expected = math.gcd(expected, v)
    expected = expected if 1 < expected <= 2**62 else 1
    assert common_divisor(np.array(values, dtype=np.int64)) == expected


def test_millisecond_jitter_timestamps_use_the_divisor() -> None:
    rng = np.random.default_rng(2)
    ms = 1_767_225_600_000 + 15_000 * np.arange(4096) + np.rint(rng.normal(0, 2, 4096))
    ts = ms.astype(np.int64) * 10**6
    data = encode_int_column(ts, 3)
    assert data[0] in (ColumnEncoding.INT_DELTA_GCD, ColumnEncoding.INT_DOD_GCD)
    assert len(data) < 0.6 * len(ts)
    assert np.array_equal(_decode(decode_int_column, data, len(ts)), ts)


def test_divisor_out_of_range_rejected() -> None:
    for g in (0, 1, 2**62 + 1):
        data = bytes((ColumnEncoding.INT_DELTA_GCD,)) + bytes(8) + g.to_bytes(8, "little") + b"\0"
        with pytest.raises(BlockFormatError, match="divisor"):
            _decode(decode_int_column, data, 2)


@pytest.mark.parametrize("width", [1, 2, 4, 8])
def test_int_column_deltas_at_width_boundaries(width: int) -> None:
    # Deltas at the edges of each narrow width the decoder undoes zigzag in.
    lo, hi = -(2 ** (8 * width - 1)), 2 ** (8 * width - 1) - 1
    deltas = np.array([lo, hi, 0, -1, 1, lo + 1, hi - 1] * 50, dtype=np.int64)
    x = np.cumsum(deltas)
    for form in (x, np.concatenate([[0], np.cumsum(x)])):  # deltas and delta-of-deltas
        data = encode_int_column(form, 3)
        assert np.array_equal(_decode(decode_int_column, data, len(form)), form)


def test_regular_timestamps_cost_a_constant() -> None:
    ts = 1_767_225_600 * 10**9 + 10**10 * np.arange(4096, dtype=np.int64)
    data = encode_int_column(ts, 3)
    assert data[0] == ColumnEncoding.INT_DOD
    assert len(data) == 1 + 8 + 8 + 1  # encoding, first, first delta, empty plane mask
    assert np.array_equal(_decode(decode_int_column, data, len(ts)), ts)


def test_random_walk_prefers_delta() -> None:
    rng = np.random.default_rng(7)
    walk = np.cumsum(rng.integers(-3, 4, size=4096))
    data = encode_int_column(walk, 3)
    assert data[0] == ColumnEncoding.INT_DELTA
    assert np.array_equal(_decode(decode_int_column, data, len(walk)), walk)


def test_small_deltas_use_under_half_a_byte() -> None:
    rng = np.random.default_rng(8)
    walk = 50 + np.cumsum(np.rint(rng.normal(0, 1, size=4096))).astype(np.int64)
    assert len(encode_int_column(walk, 3)) < 0.4 * len(walk)


# --- floats ---------------------------------------------------------------------------------


def _naive_exponent(values: list[float]) -> int | None:
    """Reference: the smallest p with float(round(v * 10**p)) / 10**p == v bit for bit."""
    for p in range(MAX_DECIMALS + 1):
        scale = 10.0**p
        ok = True
        for v in values:
            scaled = v * scale
            if not math.isfinite(scaled) or abs(round(scaled)) > 2**62:
                ok = False
                break
            back = float(round(scaled)) / scale
            if struct.pack("<d", back) != struct.pack("<d", v):
                ok = False
                break
        if ok:
            return p
    return None


@settings(max_examples=200)
@given(
    st.lists(st.integers(-(10**12), 10**12), min_size=1, max_size=100),
    st.integers(0, MAX_DECIMALS),
)
def test_decimal_exponent_matches_reference_on_decimals(mantissas: list[int], p: int) -> None:
    values = [m / 10.0**p for m in mantissas]
    found = decimal_exponent(np.array(values))
    expected = _naive_exponent(values)
    assert (found[0] if found else None) == expected


@given(st.lists(st.floats(allow_nan=True, allow_infinity=True), min_size=1, max_size=50))
def test_decimal_exponent_matches_reference_on_any_floats(values: list[float]) -> None:
    found = decimal_exponent(np.array(values, dtype=np.float64))
    assert (found[0] if found else None) == _naive_exponent(values)


def test_four_decimals_scale_by_ten_thousand() -> None:
    values = np.round(np.random.default_rng(3).uniform(0, 100, 4096), 4)
    found = decimal_exponent(values)
    assert found is not None and found[0] <= 4
    data = encode_float_column(values, 3)
    assert data[0] == ColumnEncoding.FLOAT_DECIMAL


@settings(max_examples=300)
@given(st.lists(st.integers(0, 2**64 - 1), max_size=300))
def test_float_column_roundtrip_any_bit_pattern(bit_patterns: list[int]) -> None:
    # Every uint64 viewed as a double: NaNs with any payload, signalling NaNs, infinities,
    # subnormals, -0.0.
    values = np.array(bit_patterns, dtype=np.uint64).view(np.float64)
    data = encode_float_column(values, 3)
    assert _bits(_decode(decode_float_column, data, len(values))) == bit_patterns


@settings(max_examples=200)
@given(st.lists(st.floats(allow_nan=False, width=64), max_size=300))
def test_float_column_roundtrip_any_floats(values: list[float]) -> None:
    arr = np.array(values, dtype=np.float64)
    data = encode_float_column(arr, 3)
    assert _bits(_decode(decode_float_column, data, len(arr))) == _bits(arr)


def test_special_floats_roundtrip() -> None:
    nan_payloads = [0x7FF8000000000001, 0x7FF0000000000001, 0xFFF8000000000000, 0x7FFFFFFFFFFFFFFF]
    specials = np.array(
        [
            0.0,
            -0.0,
            np.inf,
            -np.inf,
            5e-324,
            -5e-324,
            2.2250738585072009e-308,
            1.7976931348623157e308,
        ]
    )
    values = np.concatenate([np.array(nan_payloads, dtype=np.uint64).view(np.float64), specials])
    for arr in (values, values[::-1], np.repeat(values, 3)):
        data = encode_float_column(arr, 3)
        assert data[0] == ColumnEncoding.FLOAT_XOR
        assert _bits(_decode(decode_float_column, data, len(arr))) == _bits(arr)


def test_integral_floats_beyond_2_53_roundtrip() -> None:
    values = np.array([2.0**60, -(2.0**62), 2.0**53 + 2, 1e18])
    data = encode_float_column(values, 3)
    assert data[0] == ColumnEncoding.FLOAT_DECIMAL
    assert _bits(_decode(decode_float_column, data, len(values))) == _bits(values)


# --- booleans and strings -------------------------------------------------------------------


@given(st.lists(st.booleans(), max_size=500))
def test_bool_column_roundtrip(values: list[bool]) -> None:
    data = encode_bool_column(np.array(values, dtype=np.bool_), 3)
    out = _decode(decode_bool_column, data, len(values))
    assert out.dtype == np.bool_ and out.tolist() == values


def test_bool_column_is_one_bit_per_value() -> None:
    values = np.random.default_rng(1).integers(0, 2, 8000).astype(np.bool_)
    assert len(encode_bool_column(values, 3)) <= 1 + 1 + 1 + 1000


strings = st.text(alphabet=st.characters(codec="utf-8"), max_size=30) | st.sampled_from(
    ["", "\ud800", "a\udfffb", "\x00", "😀", "héllo"]
)


@settings(max_examples=200)
@given(st.lists(strings, max_size=200))
def test_string_column_roundtrip(values: list[str]) -> None:
    arr = np.empty(len(values), dtype=object)
    arr[:] = values
    data = encode_string_column(arr, 3)
    out = _decode(decode_string_column, data, len(values))
    assert out.dtype == object and out.tolist() == values
