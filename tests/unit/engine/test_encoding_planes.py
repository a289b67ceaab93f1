"""Plane streams and zigzag: round trips against naive references, narrow widths used."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from node.engine.codecs.base import BlockFormatError, Reader
from node.engine.codecs.integers import unzigzag, zigzag
from node.engine.codecs.planes import _unpack, decode_planes, encode_planes

U64_MAX = 2**64 - 1
I64_MIN, I64_MAX = -(2**63), 2**63 - 1


def _roundtrip(values: np.ndarray, level: int = 3) -> tuple[np.ndarray, bytes]:
    data = encode_planes(values, level)
    reader = Reader(memoryview(data), 0, len(data))
    out = decode_planes(reader, len(values))
    assert reader.pos == len(data), "decoder must consume exactly the stream"
    return out, data


@settings(max_examples=200)
@given(st.lists(st.integers(0, U64_MAX), max_size=300), st.sampled_from([1, 3, 9]))
def test_planes_roundtrip_any_uint64(values: list[int], level: int) -> None:
    arr = np.array(values, dtype=np.uint64)
    out, _ = _roundtrip(arr, level)
    assert out.dtype == np.uint64
    assert out.tolist() == values


@settings(max_examples=100)
@given(st.integers(0, 16), st.lists(st.integers(0, 2**16 - 1), min_size=1, max_size=600))
def test_planes_roundtrip_values_of_every_width(bits: int, raw: list[int]) -> None:
    values = [v & ((1 << bits) - 1) for v in raw]
    out, _ = _roundtrip(np.array(values, dtype=np.uint64))
    assert out.tolist() == values


@pytest.mark.parametrize("bits", [1, 2, 4])
def test_small_values_are_packed_below_one_byte(bits: int) -> None:
    rng = np.random.default_rng(bits)
    values = rng.integers(0, 1 << bits, size=4096).astype(np.uint64)
    out, data = _roundtrip(values)
    assert np.array_equal(out, values)
    # mask + descriptor (+ zstd length) + at most the packed size
    assert len(data) <= 1 + 1 + 4096 * bits // 8


def test_zero_planes_are_not_stored() -> None:
    assert encode_planes(np.zeros(4096, np.uint64), 3) == b"\x00"
    values = np.full(1000, 1 << 40, dtype=np.uint64)
    _, data = _roundtrip(values)
    assert data[0] == 1 << 5  # only plane 5 present


def test_empty_stream() -> None:
    out, data = _roundtrip(np.zeros(0, np.uint64))
    assert data == b"\x00" and len(out) == 0


def test_planes_for_zero_values_rejected() -> None:
    with pytest.raises(BlockFormatError):
        decode_planes(Reader(memoryview(b"\x01\x03"), 0, 2), 0)


def test_bad_descriptor_rejected() -> None:
    with pytest.raises(BlockFormatError):
        decode_planes(Reader(memoryview(b"\x01\x25" + bytes(8)), 0, 10), 8)


@given(st.lists(st.integers(I64_MIN, I64_MAX), max_size=200))
def test_zigzag_matches_reference(values: list[int]) -> None:
    z = zigzag(np.array(values, dtype=np.int64))
    # Reference: 0, -1, 1, -2, 2 ... -> 0, 1, 2, 3, 4 ...
    assert z.tolist() == [2 * v if v >= 0 else -2 * v - 1 for v in values]
    assert unzigzag(z).tolist() == values


@given(st.integers(0, 1200), st.sampled_from([1, 2, 4, 8]), st.data())
def test_unpack_reads_value_k_from_bits_k_times_width(
    m: int, bits: int, data: st.DataObject
) -> None:
    size = (m * bits + 7) // 8  # a packed plane of m values, as the decoder hands it over
    packed = data.draw(st.binary(min_size=size, max_size=size))
    mask = (1 << bits) - 1
    expected = [(packed[k * bits // 8] >> (k * bits % 8)) & mask for k in range(m)]
    assert _unpack(packed, bits, m).tolist() == expected
