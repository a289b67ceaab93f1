"""Corrupt blocks: truncation, bit flips and garbage raise BlockFormatError and nothing else."""

from __future__ import annotations

import zlib

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from node.engine.codecs.base import U32
from node.engine.codecs.legacy import encode_codec1
from node.engine.encoding import BlockFormatError, decode_block, encode_block
from pulsar_cluster.batch import FieldType


def _sample_blocks() -> list[bytes]:
    rng = np.random.default_rng(11)
    n = 300
    ts = 10**9 * np.arange(n, dtype=np.int64) + rng.integers(0, 3, n)
    strs = np.empty(n, dtype=object)
    strs[:] = [f"v{i % 17}é" for i in range(n)]
    columns = [
        (FieldType.FLOAT, np.round(rng.uniform(0, 100, n), 2)),
        (FieldType.FLOAT, rng.normal(size=n)),
        (FieldType.INTEGER, np.cumsum(rng.integers(-5, 6, n))),
        (FieldType.UNSIGNED, rng.integers(0, 2**63, n).astype(np.uint64)),
        (FieldType.BOOLEAN, rng.integers(0, 2, n).astype(bool)),
        (FieldType.STRING, strs),
    ]
    return [encode_block(t, ts, v, 3) for t, v in columns]


BLOCKS = _sample_blocks()


@pytest.mark.parametrize("block", BLOCKS, ids=lambda b: f"type{b[1]}-{len(b)}B")
def test_every_truncation_rejected(block: bytes) -> None:
    for cut in range(len(block)):
        with pytest.raises(BlockFormatError):
            decode_block(block[:cut])


@settings(max_examples=300)
@given(st.sampled_from(BLOCKS), st.data())
def test_any_bit_flip_rejected(block: bytes, data: st.DataObject) -> None:
    pos = data.draw(st.integers(0, len(block) - 1))
    flip = data.draw(st.integers(1, 255))
    corrupt = bytearray(block)
    corrupt[pos] ^= flip
    with pytest.raises(BlockFormatError):
        decode_block(bytes(corrupt))


@settings(max_examples=300)
@given(st.binary(max_size=200))
def test_garbage_raises_only_block_format_error(garbage: bytes) -> None:
    for data in (garbage, b"\x02" + garbage, b"\x01" + garbage):
        try:
            _, ts, values = decode_block(data)
        except BlockFormatError:
            continue
        # Only a codec-1 block (no checksum of its own) could decode from random bytes.
        assert data[0] == 1 and len(ts) == len(values)


@settings(max_examples=200)
@given(st.sampled_from(BLOCKS), st.data())
def test_structural_damage_behind_a_valid_checksum_rejected(
    block: bytes, data: st.DataObject
) -> None:
    # A block whose checksum was recomputed after damage (an encoder bug, not a disk error):
    # the structural checks alone must still refuse it or decode something self-consistent.
    body = bytearray(block[:-4])
    pos = data.draw(st.integers(6, len(body) - 1))
    body[pos] ^= data.draw(st.integers(1, 255))
    cut = data.draw(st.integers(6, len(body)))
    damaged = bytes(body[:cut])
    try:
        _, ts, values = decode_block(damaged + U32.pack(zlib.crc32(damaged)))
    except BlockFormatError:
        return
    assert len(ts) == len(values) == int.from_bytes(block[2:6], "little")


@pytest.mark.parametrize("field_type", list(FieldType))
def test_codec1_truncation_rejected(field_type: FieldType) -> None:
    ts = np.arange(50, dtype=np.int64)
    values = {
        FieldType.FLOAT: np.linspace(0, 1, 50),
        FieldType.INTEGER: np.arange(50),
        FieldType.UNSIGNED: np.arange(50, dtype=np.uint64),
        FieldType.BOOLEAN: np.arange(50) % 3 == 0,
        FieldType.STRING: np.array([f"s{i}" for i in range(50)], dtype=object),
    }[field_type]
    block = encode_codec1(field_type, ts, values, 3)
    for cut in range(len(block)):
        with pytest.raises(BlockFormatError):
            decode_block(block[:cut])


def test_codec1_huge_declared_size_rejected() -> None:
    block = bytearray(encode_codec1(FieldType.FLOAT, np.arange(3), np.zeros(3), 3))
    block[2:6] = (0).to_bytes(4, "little")  # 0 points but a body of 48 bytes
    with pytest.raises(BlockFormatError):
        decode_block(bytes(block))
