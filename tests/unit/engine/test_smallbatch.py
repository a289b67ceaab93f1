"""The vectorised encoder of small integer blocks (node/engine/codecs/smallbatch.py) against the
one-block-at-a-time reference: the bytes must be identical, block for block, and a table
written with SSTableWriter.add_many must be the same file as one written with add."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from node.engine.codecs.integers import encode_int_column
from node.engine.codecs.smallbatch import MAX_POINTS, encode_int_columns, encode_int_columns_any
from node.engine.encoding import decode_block, encode_block, encode_blocks
from node.engine.fs import OsFileSystem
from node.engine.memtable import Memtable
from node.engine.sstable import SSTable, SSTableWriter, TableMeta
from pulsar_cluster.batch import FieldType
from pulsar_cluster.errors import CorruptionError
from pulsar_cluster.lineprotocol import parse_line_protocol
from pulsar_cluster.series import SEP

I64_MIN, I64_MAX = -(2**63), 2**63 - 1


@st.composite
def int_matrices(draw: st.DrawFn, max_n: int = MAX_POINTS) -> np.ndarray:
    """(rows, n) int64 arrays shaped like real columns and like adversarial ones: regular and
    jittered timestamps, small random walks, multiples of a common divisor, constants, and
    arbitrary int64 values including both extremes."""
    rows = draw(st.integers(1, 6))
    n = draw(st.integers(1, max_n))
    kind = draw(st.sampled_from(["any", "walk", "regular", "multiples", "const", "extremes"]))
    if kind == "any":
        return draw(hnp.arrays(np.int64, (rows, n), elements=st.integers(I64_MIN, I64_MAX)))
    if kind == "extremes":
        pick = st.sampled_from([I64_MIN, I64_MAX, 0, 1, -1, 2**62, -(2**62)])
        return draw(hnp.arrays(np.int64, (rows, n), elements=pick))
    steps = draw(hnp.arrays(np.int64, (rows, n), elements=st.integers(-3, 3)))
    start = draw(st.integers(-(10**18), 10**18))
    if kind == "walk":
        return start + np.cumsum(steps, axis=1)
    if kind == "regular":
        step = draw(st.sampled_from([1, 10**9, 10**10, 60 * 10**9]))
        jitter = steps * draw(st.sampled_from([0, 0, 1, 10**6]))
        return start + np.arange(n, dtype=np.int64) * step + jitter
    if kind == "multiples":
        g = draw(st.sampled_from([2, 3, 1000, 10**6, 2**40]))
        return np.cumsum(steps, axis=1) * g
    return np.full((rows, n), start, dtype=np.int64)


@settings(max_examples=300, deadline=None)
@given(int_matrices())
@example(np.array([[I64_MIN, I64_MAX, I64_MIN]], dtype=np.int64))
@example(np.array([[5]], dtype=np.int64))
@example(np.array([[0, 3, 6, 9, 13]], dtype=np.int64))
def test_int_columns_identical_to_one_at_a_time(x: np.ndarray) -> None:
    got = encode_int_columns(x)
    assert got == [encode_int_column(row, 3) for row in x]


@settings(max_examples=150, deadline=None)
@given(
    int_matrices(max_n=300) | int_matrices(max_n=1100),
    st.sampled_from([1, 3]),
)
def test_long_int_columns_identical_to_one_at_a_time(x: np.ndarray, level: int) -> None:
    """Columns past MAX_POINTS: planes of 64 packed bytes or more are zstd-compressed (or kept
    raw when that is not smaller), streams of 256 values or more always use their divisor,
    8-bit planes of 1024 values or more are checked for randomness: all as one at a time."""
    got = encode_int_columns_any(x, level)
    assert got == [encode_int_column(row, level) for row in x]


@settings(max_examples=150, deadline=None)
@given(int_matrices(max_n=300), st.sampled_from([FieldType.INTEGER, FieldType.UNSIGNED]), st.data())
def test_blocks_identical_and_roundtrip(ts: np.ndarray, field_type: FieldType, data) -> None:
    values = data.draw(
        hnp.arrays(np.int64, ts.shape, elements=st.integers(I64_MIN, I64_MAX))
        | st.just(np.cumsum(np.ones(ts.shape, dtype=np.int64), axis=1))
    )
    if field_type is FieldType.UNSIGNED:
        values = values.view(np.uint64)
    blocks = encode_blocks(field_type, ts, values, 3)
    assert blocks is not None
    for r, block in enumerate(blocks):
        assert block == encode_block(field_type, ts[r], values[r], 3)
        out_type, out_ts, out_values = decode_block(block)
        assert out_type is field_type
        assert out_ts.tolist() == ts[r].tolist()
        assert out_values.tolist() == values[r].tolist()


def test_blocks_refuse_what_they_do_not_vectorise() -> None:
    ts = np.zeros((2, 3), dtype=np.int64)
    assert encode_blocks(FieldType.FLOAT, ts, np.zeros((2, 3))) is None
    assert encode_blocks(FieldType.BOOLEAN, ts, np.zeros((2, 3), bool)) is None
    with pytest.raises(ValueError):
        encode_blocks(FieldType.INTEGER, ts, np.zeros((2, 4), dtype=np.int64))
    with pytest.raises(ValueError):
        encode_int_columns(np.zeros((1, MAX_POINTS + 1), dtype=np.int64))


def _items(seed: int, count: int) -> list[tuple[bytes, str, FieldType, np.ndarray, np.ndarray]]:
    """Entries in key order: mostly small integer fields, some float, boolean and long ones."""
    rng = np.random.default_rng(seed)
    out = []
    for s in range(count):
        skey = f"cpu\x00host\x00h{s:05d}".encode()
        n = int(rng.choice([1, 2, 3, 30, 30, 30, 64, 65, 200]))
        ts = 10**18 + np.cumsum(rng.integers(1, 3, n)) * 10**10
        fields = [
            ("a", FieldType.INTEGER, np.cumsum(rng.integers(-2, 3, n))),
            ("b", FieldType.UNSIGNED, rng.integers(0, 2**63, n).astype(np.uint64)),
            ("c", FieldType.FLOAT, rng.random(n)),
            ("d", FieldType.BOOLEAN, rng.random(n) < 0.5),
        ]
        for name, field_type, values in fields:
            out.append((skey, name, field_type, ts, values))
    return out


@pytest.mark.parametrize("block_points", [4096, 16])
def test_add_many_writes_the_same_table_as_add(tmp_path, block_points: int) -> None:
    fs = OsFileSystem()
    items = _items(7, 300)
    paths = []
    for way in ("one", "many"):
        directory = tmp_path / way
        directory.mkdir()
        meta = TableMeta("db", 0, 2**62, seq=1)
        writer = SSTableWriter(fs, str(directory), meta, block_points, 3)
        if way == "one":
            for item in items:
                writer.add(*item)
        else:
            writer.add_many(items)
        paths.append(writer.finish())
    one, many = (Path(p).read_bytes() for p in paths)
    assert one == many
    # The writer's index is the one parsed from the file (what the flush hands to SSTable).
    parsed = SSTable(paths[1])
    assert writer.entries == parsed.entries
    parsed.close()
    handed = SSTable(paths[1], None, writer.entries)
    assert handed.entries is writer.entries
    handed.close()
    wrong = {k: v for i, (k, v) in enumerate(writer.entries.items()) if i}
    with pytest.raises(CorruptionError):
        SSTable(paths[1], None, wrong)
    table = SSTable(paths[1])
    for skey, name, field_type, ts, values in items[:40]:
        got = table.read(skey, name, -(2**63), 2**63 - 1)
        assert got is not None and got[0] is field_type
        assert np.concatenate([p[0] for p in got[1]]).tolist() == ts.tolist()
        assert np.concatenate([p[1] for p in got[1]]).tolist() == values.tolist()
    table.close()
    assert sorted(os.listdir(tmp_path / "many")) == [os.path.basename(paths[1])]


rows = st.lists(
    st.tuples(st.sampled_from("abc"), st.integers(0, 6), st.integers(0, 99)), min_size=1
)


@settings(max_examples=150, deadline=None)
@given(st.lists(st.tuples(rows, st.booleans()), min_size=1, max_size=6))
def test_flush_items_are_sorted_unique_last_write_wins(writes) -> None:
    """What a flush sees (sorted_items) after table writes, some followed by a read (which
    absorbs what is pending, so a field gets several chunks): sorted, unique, last wins."""
    memtable = Memtable()
    model: dict[tuple[str, int], int] = {}
    prefix = b"db" + SEP
    for rows_of_write, read_after in writes:
        body = "\n".join(f"cpu,host={h} f={v}i {t}" for h, t, v in rows_of_write)
        batch = parse_line_protocol(body.encode(), "db")
        table = batch.table_if_current()
        assert table is not None
        memtable.insert_table(prefix, table)
        for h, t, v in rows_of_write:
            model[(h, t)] = v
        if read_after:
            memtable.read(prefix + b"cpu\x00host\x00a", "f")
    got = {}
    for skey, name, _, ts, values in memtable.sorted_items():
        assert name == "f"
        assert np.all(ts[1:] > ts[:-1])
        host = skey.rsplit(SEP, 1)[1].decode()
        got.update({(host, t): v for t, v in zip(ts.tolist(), values.tolist(), strict=True)})
    assert got == model


def test_absorb_sorts_out_of_order_tables_and_drops_overwritten_rows() -> None:
    """Batches of concurrent clients arrive out of time order and may overwrite points: one
    absorb leaves one sorted, unique (clean) chunk per field, the last write winning, and the
    overwritten rows leave the size counters."""
    memtable = Memtable()
    prefix = b"db" + SEP
    bodies = [
        b"cpu,host=a f=3i,g=30i 30\ncpu,host=b f=4i,g=40i 30",
        b"cpu,host=a f=1i,g=10i 10\ncpu,host=a f=2i,g=20i 20\ncpu,host=b f=5i,g=50i 10",
        b"cpu,host=a f=9i,g=90i 20",  # overwrites host=a at 20
    ]
    for body in bodies:
        table = parse_line_protocol(body, "db").table_if_current()
        assert table is not None
        memtable.insert_table(prefix, table)
    items = {
        (skey, name): (ts.tolist(), v.tolist()) for skey, name, _, ts, v in memtable.sorted_items()
    }
    a, b = prefix + b"cpu\x00host\x00a", prefix + b"cpu\x00host\x00b"
    assert items[(a, "f")] == ([10, 20, 30], [1, 9, 3])
    assert items[(a, "g")] == ([10, 20, 30], [10, 90, 30])
    assert items[(b, "f")] == ([10, 30], [5, 4])
    assert memtable.points == 5 * 2  # 6 rows written, one overwritten, 2 fields each
    assert all(buf.clean for fields in memtable._series.values() for buf in fields.values())
