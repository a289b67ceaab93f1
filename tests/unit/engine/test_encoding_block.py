"""encode_block / decode_block as a whole: every field type, edge-case timestamps and values,
golden bytes of both codecs, and use through an SSTable."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from node.engine.cache import BlockCache, compact
from node.engine.codecs.legacy import encode_codec1
from node.engine.encoding import (
    CODEC_COLUMNAR,
    BlockFormatError,
    decode_block,
    decode_block_compact,
    encode_block,
)
from node.engine.fs import OsFileSystem
from node.engine.sstable import SSTable, SSTableWriter, TableMeta
from pulsar_cluster.batch import FieldType, numpy_dtype

I64_MIN, I64_MAX = -(2**63), 2**63 - 1
U64_MAX = 2**64 - 1

timestamps_any = st.lists(st.integers(I64_MIN, I64_MAX), unique=True, max_size=200).map(sorted)
timestamps_regular = st.builds(
    lambda start, step, n, jitter: sorted(
        {start + i * step + (jitter if i % 7 == 3 else 0) for i in range(n)}
    ),
    st.integers(-(2**61), 2**61),
    st.sampled_from([1, 10**6, 10**9, 10**10]),
    st.integers(0, 300),
    st.integers(-5, 5),
)
timestamps = timestamps_any | timestamps_regular

_value_strategies = {
    FieldType.FLOAT: st.integers(0, U64_MAX).map(
        lambda b: float(np.array([b], np.uint64).view(np.float64)[0])
    )
    | st.floats()
    | st.integers(-(10**8), 10**8).map(lambda m: m / 10**4),
    FieldType.INTEGER: st.integers(I64_MIN, I64_MAX) | st.integers(-3, 3),
    FieldType.UNSIGNED: st.integers(0, U64_MAX) | st.integers(0, 5),
    FieldType.BOOLEAN: st.booleans(),
    FieldType.STRING: st.text(max_size=12) | st.sampled_from(["host-1", "ok", "\ud800"]),
}


def _as_array(field_type: FieldType, values: list) -> np.ndarray:
    if field_type is FieldType.STRING:
        arr = np.empty(len(values), dtype=object)
        arr[:] = values
        return arr
    if field_type is FieldType.FLOAT:
        # Build from bits so NaN payloads survive the list.
        return np.array(values, dtype=np.float64)
    return np.array(values, dtype=numpy_dtype(field_type))


def _same(field_type: FieldType, a: np.ndarray, b: np.ndarray) -> bool:
    if field_type is FieldType.FLOAT:
        return np.array_equal(a.view(np.uint64), b.view(np.uint64))
    return a.tolist() == b.tolist()


@st.composite
def blocks(draw: st.DrawFn) -> tuple[FieldType, np.ndarray, np.ndarray]:
    field_type = draw(st.sampled_from(list(FieldType)))
    ts = draw(timestamps)
    values = draw(st.lists(_value_strategies[field_type], min_size=len(ts), max_size=len(ts)))
    return field_type, np.array(ts, dtype=np.int64), _as_array(field_type, values)


# No deadline: on a machine shared by several test suites one example can take over 200 ms.
@settings(max_examples=300, deadline=None)
@given(blocks(), st.sampled_from([1, 3, 7]))
def test_block_roundtrip(block: tuple[FieldType, np.ndarray, np.ndarray], level: int) -> None:
    field_type, ts, values = block
    data = encode_block(field_type, ts, values, level)
    assert data[0] == CODEC_COLUMNAR
    got_type, got_ts, got_values = decode_block(data)
    assert got_type is field_type
    assert got_ts.dtype == np.int64 and got_ts.tolist() == ts.tolist()
    assert got_values.dtype == numpy_dtype(field_type)
    assert _same(field_type, got_values, values)


@settings(max_examples=300, deadline=None)
@given(blocks())
def test_compact_decode_is_the_block_as_the_cache_keeps_it(
    block: tuple[FieldType, np.ndarray, np.ndarray],
) -> None:
    """decode_block_compact hands out regular timestamps unbuilt exactly when the block
    cache would keep them so (cache.compact on the built array), and the same values."""
    field_type, ts, values = block
    data = encode_block(field_type, ts, values, 3)
    got_type, got_times, got_values = decode_block_compact(data)
    assert got_type is field_type
    kept = compact(ts.copy(), np.zeros(len(ts)))[0]
    if isinstance(kept, tuple):
        assert got_times == kept
    else:
        assert isinstance(got_times, np.ndarray) and got_times.tolist() == ts.tolist()
    assert _same(field_type, got_values, values)


def test_compact_decode_of_regular_timestamps_builds_none() -> None:
    ts = 10**10 + 10**9 * np.arange(4096, dtype=np.int64)
    data = encode_block(FieldType.INTEGER, ts, np.arange(4096) % 7)
    assert decode_block_compact(data)[1] == (10**10, 10**9, 4096)
    # A step of 2**62 or more is handed out built, as the cache would keep it.
    data = encode_block(FieldType.INTEGER, np.array([-(2**62), 0, 2**62]), np.zeros(3))
    assert isinstance(decode_block_compact(data)[1], np.ndarray)


@settings(max_examples=100)
@given(blocks())
def test_codec1_blocks_stay_readable(block: tuple[FieldType, np.ndarray, np.ndarray]) -> None:
    field_type, ts, values = block
    if field_type is FieldType.STRING:
        # Codec 1 wrote str.encode() (strict): strings with lone surrogates never reached disk.
        values = np.array([v.encode("utf-8", "replace").decode() for v in values] + [""])[:-1]
        values = values.astype(object)
    data = encode_codec1(field_type, ts, values, 3)
    got_type, got_ts, got_values = decode_block(data)
    assert got_type is field_type and got_ts.tolist() == ts.tolist()
    assert _same(field_type, got_values, values)


@pytest.mark.parametrize("field_type", list(FieldType))
def test_empty_and_one_point_blocks(field_type: FieldType) -> None:
    samples = {
        FieldType.FLOAT: [-0.0],
        FieldType.INTEGER: [I64_MIN],
        FieldType.UNSIGNED: [U64_MAX],
        FieldType.BOOLEAN: [True],
        FieldType.STRING: ["x"],
    }
    for ts, vals in (([], []), ([I64_MIN], samples[field_type]), ([-1], samples[field_type])):
        values = _as_array(field_type, vals)
        got_type, got_ts, got_values = decode_block(
            encode_block(field_type, np.array(ts, np.int64), values)
        )
        assert got_type is field_type and got_ts.tolist() == ts
        assert got_values.dtype == numpy_dtype(field_type) and _same(field_type, got_values, values)


def test_extreme_integers_and_timestamps() -> None:
    ts = np.array([I64_MIN, -1, 0, 1, I64_MAX], dtype=np.int64)
    ints = np.array([I64_MAX, I64_MIN, I64_MAX, 0, I64_MIN], dtype=np.int64)
    assert decode_block(encode_block(FieldType.INTEGER, ts, ints))[2].tolist() == ints.tolist()
    uints = np.array([U64_MAX, 0, U64_MAX, 2**63, 1], dtype=np.uint64)
    _, got_ts, got = decode_block(encode_block(FieldType.UNSIGNED, ts, uints))
    assert got_ts.tolist() == ts.tolist() and got.tolist() == uints.tolist()


def test_lists_accepted() -> None:
    ts = [1, 2, 3]
    for field_type, values in (
        (FieldType.STRING, ["a", "b", "c"]),
        (FieldType.FLOAT, [1.5, 2.0, -0.0]),
        (FieldType.INTEGER, [1, -2, 3]),
        (FieldType.BOOLEAN, [True, False, True]),
    ):
        _, got_ts, got = decode_block(encode_block(field_type, np.array(ts), values))
        assert got_ts.tolist() == ts and got.tolist() == values


def test_mismatched_lengths_rejected() -> None:
    with pytest.raises(ValueError, match="2 timestamps but 1 values"):
        encode_block(FieldType.FLOAT, np.array([1, 2]), np.array([1.0]))


# Golden blocks: bytes written by the skeleton's encoder (codec 1) and by this one (codec 2).
# Files on disk hold these forever; if a golden decode changes, the format was broken.
_GOLDEN_TS = [-5, 0, 10, 1000]
_GOLDEN = [
    (
        "01010400000028b52ffd2040250100c0fbff05000a00de0300f83f008000f07f0000000000000240061000"
        "028f61c6c0030f58",
        FieldType.FLOAT,
        [1.5, -0.0, float("inf"), 2.25],
    ),
    (
        "01020400000028b52ffd20400d0100a8fbff05000a00de030080ff7f00070000000000000006100019"
        "0f988f81071eb0",
        FieldType.INTEGER,
        [I64_MIN, I64_MAX, 0, 7],
    ),
    (
        "01040400000028b52ffd2024bd000068fbff05000a00de030001000001041000620c3cf08005",
        FieldType.BOOLEAN,
        [True, False, False, True],
    ),
    (
        "01050400000028b52ffd20393d0100e0fbff05000a00de0300010000000600020000006168c3a96c6c6f"
        "7a7a05100053ee1878e0010b",
        FieldType.STRING,
        ["a", "héllo", "", "zz"],
    ),
    (
        "02010400000001fbffffffffffffff03030a14bc02000704000000000000f83fc003f8f0f203bfff3f1d12"
        "05c1",
        FieldType.FLOAT,
        [1.5, -0.0, float("inf"), 2.25],
    ),
    (
        "02020400000001fbffffffffffffff03030a14bc020007010000000000000080ff0301fd0e0300ff0003"
        "00ff000300ff000300ff000300ff000300ff000300ff0024eaeb66",
        FieldType.INTEGER,
        [I64_MIN, I64_MAX, 0, 7],
    ),
    (
        "02040400000001fbffffffffffffff03030a14bc020007050100093e1b46c7",
        FieldType.BOOLEAN,
        [True, False, False, True],
    ),
    (
        "02050400000001fbffffffffffffff03030a14bc020007060102612000090000006168c3a96c6c6f7a7a"
        "37deefbc",
        FieldType.STRING,
        ["a", "héllo", "", "zz"],
    ),
]


@pytest.mark.parametrize(("hexdata", "field_type", "values"), _GOLDEN)
def test_golden_blocks_decode(hexdata: str, field_type: FieldType, values: list) -> None:
    got_type, got_ts, got_values = decode_block(bytes.fromhex(hexdata))
    assert got_type is field_type and got_ts.tolist() == _GOLDEN_TS
    assert _same(field_type, got_values, _as_array(field_type, values))


@pytest.mark.parametrize(("hexdata", "field_type", "values"), _GOLDEN[4:])
def test_encoder_is_stable(hexdata: str, field_type: FieldType, values: list) -> None:
    # Not a format requirement (any valid encoding would do) but a change here must be a
    # deliberate one: update docs/format/encoding.md with it.
    data = encode_block(field_type, np.array(_GOLDEN_TS), _as_array(field_type, values), 3)
    assert data.hex() == hexdata


def test_sstable_roundtrip_through_codec(tmp_path) -> None:
    rng = np.random.default_rng(5)
    ts = 10**10 * np.arange(10_000, dtype=np.int64)
    floats = np.round(rng.uniform(0, 100, 10_000), 4)
    ints = np.cumsum(rng.integers(-2, 3, 10_000))
    meta = TableMeta(database="db", partition_start=0, partition_end=2**62, seq=1)
    writer = SSTableWriter(OsFileSystem(), str(tmp_path), meta, block_points=4096)
    writer.add(b"cpu,host=a", "f", FieldType.FLOAT, ts, floats)
    writer.add(b"cpu,host=a", "i", FieldType.INTEGER, ts, ints)
    path = writer.finish()
    table = SSTable(path)
    try:
        for name, expected in (("f", floats), ("i", ints)):
            found = table.read(b"cpu,host=a", name, 0, 2**62)
            assert found is not None
            _, parts = found
            assert len(parts) == 3
            assert np.array_equal(np.concatenate([p[0] for p in parts]), ts)
            assert np.array_equal(np.concatenate([p[1] for p in parts]), expected)
    finally:
        table.close()


def test_only_the_query_read_fills_the_block_cache(tmp_path) -> None:
    """Compaction reads with SSTable.read: its pass over tables about to be replaced must not
    evict the blocks queries use. Queries read with read_range, which caches what it loads;
    both see the same points, from the file or from the cache."""
    ts = 10**10 * np.arange(10_000, dtype=np.int64)
    ints = np.cumsum(np.random.default_rng(7).integers(-2, 3, 10_000))
    meta = TableMeta(database="db", partition_start=0, partition_end=2**62, seq=1)
    writer = SSTableWriter(OsFileSystem(), str(tmp_path), meta, block_points=4096)
    writer.add(b"cpu,host=a", "i", FieldType.INTEGER, ts, ints)
    cache = BlockCache(1 << 20)
    table = SSTable(writer.finish(), cache)
    start, end = int(ts[100]), int(ts[9000]) + 1
    inside = (ts >= start) & (ts < end)
    try:
        for cached_before in (0, 3):  # from the file, then (read_range) from the cache
            found = table.read(b"cpu,host=a", "i", 0, 2**62)
            assert found is not None and len(found[1]) == 3
            assert np.array_equal(np.concatenate([p[1] for p in found[1]]), ints)
            assert len(cache) == cached_before  # read added nothing
            ranged = table.read_range(b"cpu,host=a", "i", start, end)
            assert ranged is not None and len(cache) == 3
            assert np.array_equal(np.concatenate([p[0] for p in ranged[1]]), ts[inside])
            assert np.array_equal(np.concatenate([p[1] for p in ranged[1]]), ints[inside])
        assert cache.stats()["misses"] == 6 and cache.stats()["hits"] == 6
    finally:
        table.close()


def test_unknown_codec_rejected() -> None:
    with pytest.raises(BlockFormatError, match="unknown block codec 9"):
        decode_block(b"\x09" + bytes(20))
