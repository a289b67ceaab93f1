"""The binary write-batch codec: exact round trips and clear errors on malformed input."""

from __future__ import annotations

import contextlib

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pulsar_cluster.batch import Column, FieldType, WriteBatch, numpy_dtype
from pulsar_cluster.batchcodec import BatchFormatError, decode_batch, encode_batch
from pulsar_cluster.series import make_series_key

value_strategies = {
    FieldType.FLOAT: st.floats(allow_nan=True, allow_infinity=True),
    FieldType.INTEGER: st.integers(-(2**63), 2**63 - 1),
    FieldType.UNSIGNED: st.integers(0, 2**64 - 1),
    FieldType.BOOLEAN: st.booleans(),
    FieldType.STRING: st.text(max_size=30),
}


@st.composite
def columns(draw: st.DrawFn) -> Column:
    ftype = draw(st.sampled_from(list(FieldType)))
    n = draw(st.integers(0, 40))
    ts = draw(st.lists(st.integers(-(2**63), 2**63 - 1), min_size=n, max_size=n))
    vals = draw(st.lists(value_strategies[ftype], min_size=n, max_size=n))
    values = np.empty(n, dtype=object) if ftype is FieldType.STRING else None
    if values is not None:
        values[:] = vals
    else:
        values = np.array(vals, dtype=numpy_dtype(ftype))
    return Column(ftype, np.array(ts, dtype=np.int64), values)


@st.composite
def batches(draw: st.DrawFn) -> WriteBatch:
    batch = WriteBatch(draw(st.text(min_size=1, max_size=10)))
    for i in range(draw(st.integers(0, 5))):
        key = make_series_key(
            f"m{i}", draw(st.dictionaries(st.sampled_from("abc"), st.text("xyz", min_size=1)))
        )
        fields = draw(st.dictionaries(st.text(min_size=1, max_size=5), columns(), max_size=4))
        if draw(st.booleans()) and len(fields) > 1:
            # fields sharing one timestamp array, as the parser builds them
            first = next(iter(fields.values()))
            fields = {
                n: Column(c.type, first.timestamps, c.values[: len(first)])
                for n, c in fields.items()
                if len(c) >= len(first)
            }
        batch.series[key] = fields
    return batch


def assert_same(a: WriteBatch, b: WriteBatch) -> None:
    assert a.database == b.database
    assert list(a.series) == list(b.series)
    for key in a.series:
        assert list(a.series[key]) == list(b.series[key])
        for name, col in a.series[key].items():
            other = b.series[key][name]
            assert other.type is col.type
            assert other.timestamps.tolist() == col.timestamps.tolist()
            if col.type is FieldType.FLOAT:  # compare bits: NaN payloads and -0.0 survive
                assert other.values.view(np.uint64).tolist() == col.values.view(np.uint64).tolist()
            else:
                assert other.values.tolist() == col.values.tolist()


@settings(max_examples=200, deadline=None)
@given(batch=batches(), compress=st.booleans())
def test_round_trip(batch: WriteBatch, compress: bool) -> None:
    assert_same(batch, decode_batch(encode_batch(batch, compress=compress)))


@settings(max_examples=200, deadline=None)
@given(batch=batches(), cut=st.integers(0, 10_000), flip=st.integers(0, 10_000))
def test_truncated_or_flipped_bytes_never_decode_silently_wrong(batch, cut, flip) -> None:
    data = encode_batch(batch, compress=False)
    truncated = data[: cut % max(len(data), 1)]
    with pytest.raises(BatchFormatError):
        decode_batch(truncated)
    # A flipped byte either is detected or decodes to some batch: never another exception type.
    flipped = bytearray(data)
    flipped[flip % len(flipped)] ^= 0xFF
    with contextlib.suppress(BatchFormatError):
        decode_batch(bytes(flipped))


def test_bad_magic_and_version() -> None:
    data = encode_batch(WriteBatch("d"))
    with pytest.raises(BatchFormatError, match="magic"):
        decode_batch(b"XXXX" + data[4:])
    with pytest.raises(BatchFormatError, match="version"):
        decode_batch(data[:4] + b"\x09" + data[5:])
