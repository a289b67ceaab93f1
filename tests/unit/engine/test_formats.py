"""Property tests of the engine's own encoders and parsers: SSTable, meta, manifest, deletes."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from node.engine.deletes import DeleteRequest
from node.engine.fs import OsFileSystem
from node.engine.manifest import DatabaseEntry, Manifest, Tombstone, decode_manifest
from node.engine.sstable import (
    SSTable,
    SSTableWriter,
    TableMeta,
    decode_meta,
    encode_meta,
    parse_table_file_name,
    table_file_name,
)
from pulsar_cluster.batch import FieldType
from pulsar_cluster.errors import CorruptionError

i64 = st.integers(-(2**63), 2**63 - 1)
u64 = st.integers(0, 2**64 - 1)
u32 = st.integers(0, 2**32 - 1)
text = st.text(st.characters(blacklist_characters="\x00", blacklist_categories=["Cs"]), max_size=20)

meta_st = st.builds(
    TableMeta,
    database=text,
    partition_start=i64,
    partition_end=i64,
    seq=u64,
    gen=u32,
    group_count=u32,
    last_index=u64,
    deletes_applied=u64,
    min_time=i64,
    max_time=i64,
    points=u64,
    replaced=st.lists(st.tuples(u64, u32), max_size=5),
)


@given(meta=meta_st)
def test_meta_round_trip(meta):
    back = decode_meta(encode_meta(meta))
    assert back == TableMeta(
        meta.database, meta.partition_start, meta.partition_end, meta.seq, meta.gen,
        meta.group_count, meta.last_index, meta.deletes_applied, meta.min_time, meta.max_time,
        meta.points, [tuple(r) for r in meta.replaced],
    )  # fmt: skip
    if meta.seq < 10**16 and meta.gen < 10**4:
        name = table_file_name(meta)
        parsed = parse_table_file_name(name)
        assert parsed is not None and parsed[:2] == (meta.seq, meta.gen)
        assert parsed[3] == meta.partition_start


def _values(field_type: FieldType, n: int, rng: np.random.Generator) -> np.ndarray:
    if field_type is FieldType.FLOAT:
        return rng.normal(size=n)
    if field_type is FieldType.INTEGER:
        return rng.integers(-(2**62), 2**62, size=n)
    if field_type is FieldType.UNSIGNED:
        return rng.integers(0, 2**63, size=n).astype(np.uint64)
    if field_type is FieldType.BOOLEAN:
        return rng.integers(0, 2, size=n).astype(bool)
    out = np.empty(n, dtype=object)
    out[:] = [f"s{int(x)}é" for x in rng.integers(0, 1000, size=n)]
    return out


@settings(
    deadline=None, max_examples=30, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    shape=st.lists(
        st.tuples(st.sampled_from(list(FieldType)), st.integers(1, 40)), min_size=1, max_size=6
    ),
    block_points=st.integers(1, 16),
    seed=st.integers(0, 1000),
)
def test_sstable_round_trip_and_block_pruning(tmp_path_factory, shape, block_points, seed):
    rng = np.random.default_rng(seed)
    directory = tmp_path_factory.mktemp("sst")
    meta = TableMeta("db", 0, 10**6, seq=7, last_index=42)
    writer = SSTableWriter(OsFileSystem(), str(directory), meta, block_points)
    expected = {}
    for i, (field_type, n) in enumerate(shape):
        skey = b"db\x00m\x00host\x00" + str(i).encode()
        ts = np.unique(rng.integers(0, 10**6, size=n)).astype(np.int64)
        values = _values(field_type, len(ts), rng)
        writer.add(skey, "f", field_type, ts, values)
        expected[skey] = (field_type, ts, values)
    path = writer.finish()
    table = SSTable(path)
    try:
        assert table.meta.last_index == 42 and table.meta.seq == 7
        assert table.meta.points == sum(len(e[1]) for e in expected.values())
        for skey, (field_type, ts, values) in expected.items():
            found = table.read(skey, "f", -(2**63), 2**63 - 1)
            assert found is not None and found[0] is field_type
            got_ts = np.concatenate([p[0] for p in found[1]])
            got_values = np.concatenate([p[1] for p in found[1]])
            assert got_ts.tolist() == ts.tolist() and got_values.tolist() == values.tolist()
            # Pruning: a range after the last point reads no block.
            assert table.read(skey, "f", int(ts[-1]) + 1, 2**62) == (field_type, [])
        table.verify()
    finally:
        table.close()


def test_writer_refuses_unsorted_entries(tmp_path):
    writer = SSTableWriter(OsFileSystem(), str(tmp_path), TableMeta("db", 0, 10, seq=1))
    ts = np.array([1], dtype=np.int64)
    writer.add(b"b", "f", FieldType.FLOAT, ts, np.array([1.0]))
    with pytest.raises(ValueError):
        writer.add(b"a", "f", FieldType.FLOAT, ts, np.array([1.0]))
    writer.abort()
    assert list(tmp_path.iterdir()) == []


tomb_st = st.builds(
    Tombstone,
    id=st.integers(1, 2**62),
    seq=st.integers(1, 2**62),
    index=st.integers(0, 2**62),
    database=text,
    start=i64,
    end=i64,
    series=st.none() | st.frozensets(st.binary(max_size=30), max_size=5),
    drop=st.booleans(),
)
db_entry_st = st.builds(
    DatabaseEntry, policy=text.filter(bool), duration_ns=st.none() | st.integers(0, 2**62)
)


@given(
    applied=st.integers(0, 2**63),
    next_id=st.integers(1, 2**62),
    tombs=st.lists(tomb_st, max_size=4),
    flushed=st.integers(0, 2**63),
    dbs=st.dictionaries(text, db_entry_st, max_size=3),
)
def test_manifest_round_trip_and_checksum(applied, next_id, tombs, flushed, dbs):
    m = Manifest(applied, next_id, tombs, flushed, dbs)
    data = m.encode()
    assert decode_manifest(data, "M") == m
    damaged = bytearray(data)
    damaged[len(data) // 2] ^= 0x10
    with pytest.raises(CorruptionError):
        decode_manifest(bytes(damaged), "M")
    with pytest.raises(CorruptionError):
        decode_manifest(data[:-1], "M")


@given(
    db=text.filter(bool),
    m=text,
    tags=st.dictionaries(text, text, max_size=3),
    start=i64,
    end=i64,
    series=st.none() | st.lists(st.binary(max_size=20), max_size=3).map(tuple),
)
def test_delete_request_round_trip(db, m, tags, start, end, series):
    req = DeleteRequest(db, m, start, end, tags, series, drop=bool(start % 2))
    assert DeleteRequest.decode(req.encode()) == req
