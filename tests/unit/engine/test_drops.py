"""DROP SERIES / MEASUREMENT / DATABASE and the database registry in the engine: the index
forgets dropped series, their points are gone from memtable and tables, and neither WAL replay,
reopening with tables, nor compaction brings anything back; the registry is durable."""

from __future__ import annotations

import os
import struct
import zlib

import numpy as np
import orjson
import pytest

from node import ddl
from node.engine.engine import DeleteRequest, Engine, EngineOptions
from node.engine.fs import OsFileSystem
from node.engine.index import storage_key
from node.engine.manifest import MANIFEST_NAME, read_manifest
from node.engine.sstable import database_tag
from pulsar_cluster.batch import Column, FieldType, WriteBatch
from pulsar_cluster.catalogop import CatalogOp, decode_drop_database, encode_drop_database
from pulsar_cluster.errors import BadRequestError
from pulsar_cluster.query.conditions import TRUE
from pulsar_cluster.query.plan import MAX_TIME, MIN_TIME, Plan
from pulsar_cluster.series import make_series_key
from tests.unit.engine.helpers import I64_MAX, I64_MIN, batch_of, read_all

W = 100


def opts() -> EngineOptions:
    return EngineOptions(partition_ns=W)


def load(e: Engine) -> None:
    e.apply(batch_of([(h, "f", t, float(t)) for h in ("a", "b", "c") for t in range(0, 250, 10)]))
    e.apply(batch_of([("a", "g", 5, 1.0)], measurement="mem"))
    e.apply(batch_of([("x", "f", 7, 2.0)], database="other"))


def drop_plan(database: str, measurement: str = "", tags: list | None = None) -> Plan:  # type: ignore[type-arg]
    return Plan(
        kind="delete",
        database=database,
        measurement=measurement,
        start=MIN_TIME,
        end=MAX_TIME,
        tags=tags if tags is not None else list(TRUE),
    )


HOST_A = ["cmp", "host", "=", "a"]


def hosts(e: Engine, db: str = "db", m: str = "cpu") -> list[str]:
    return e.tag_values(db, m, "host")


def check(e: Engine) -> None:
    assert hosts(e) == ["b", "c"]
    assert {k[0] for k in read_all(e)} == {"b", "c"}
    assert e.measurements("db") == ["cpu"]
    assert e.databases() == ["db"]
    assert read_all(e, "other", "cpu") == {}


def reopen(e: Engine, flush: bool) -> Engine:
    e.close(flush=flush)
    return Engine(e.directory, opts())


@pytest.mark.parametrize("flush_before", [False, True], ids=["memtable", "tables"])
@pytest.mark.parametrize("flush_at_close", [False, True], ids=["wal-replay", "flushed"])
def test_drops_are_final(tmp_path, flush_before: bool, flush_at_close: bool) -> None:
    e = Engine(str(tmp_path), opts())
    load(e)
    if flush_before:
        e.flush()
    # the tag predicate of DROP SERIES is resolved like a query's (TRUE, AND, OR, regex ...)
    assert ddl.drop_series(e, drop_plan("db", "cpu", HOST_A)) == 1
    assert ddl.drop_series(e, drop_plan("db", "mem")) == 1
    ddl.drop_database(e, "other")
    check(e)
    if flush_before:  # the dropped database's tables are deleted at once
        tag = database_tag("other")
        assert not [n for n in os.listdir(tmp_path / "sst") if tag in n]
    e = reopen(e, flush_at_close)
    check(e)
    e.flush()
    e.compact(full=True)
    for tables in e._tables.values():  # compaction rewrote them without the dropped series
        for table in tables:
            assert storage_key("db", make_series_key("cpu", {"host": "a"})) not in (
                table.series_keys()
            )
    assert read_manifest(OsFileSystem(), str(tmp_path / MANIFEST_NAME)).tombstones == []
    e = reopen(e, False)
    check(e)
    e.close()


def test_writes_after_a_drop_recreate_with_any_type(tmp_path) -> None:
    e = Engine(str(tmp_path), opts())
    load(e)
    e.flush()
    ddl.drop_database(e, "other")
    ddl.drop_series(e, drop_plan("db", "cpu", HOST_A))
    batch = WriteBatch("other", {})
    batch.series[make_series_key("cpu", {"host": "x"})] = {
        "f": Column(FieldType.INTEGER, np.array([7, 8], np.int64), np.array([1, 2], np.int64))
    }
    e.apply(batch)
    batch = WriteBatch("db", {})
    batch.series[make_series_key("cpu", {"host": "a"})] = {
        "f": Column(FieldType.STRING, np.array([1], np.int64), np.array(["s"], object))
    }
    e.apply(batch)
    for _ in range(2):
        assert e.databases() == ["db", "other"]
        skey = storage_key("other", make_series_key("cpu", {"host": "x"}))
        data = e.read_field(skey, "f", I64_MIN, I64_MAX)
        assert data is not None and data.type is FieldType.INTEGER
        assert data.values.tolist() == [1, 2]
        a = storage_key("db", make_series_key("cpu", {"host": "a"}))
        data = e.read_field(a, "f", I64_MIN, I64_MAX)
        assert data is not None and data.values.tolist() == ["s"]
        e.flush()
        e.compact(full=True)
        e = reopen(e, False)
    e.close()


def test_registry_is_durable_and_replays_idempotently(tmp_path) -> None:
    e = Engine(str(tmp_path), opts())
    assert e.catalog(CatalogOp("create", "empty"), index=3) == 3
    assert e.catalog(CatalogOp("create", "ret", "week", 7 * 86_400 * 10**9), index=4) == 4
    assert e.catalog(CatalogOp("retention", "ret", "week", 10**12), index=5) == 5
    assert e.catalog(CatalogOp("create", "ret"), index=5) == 5  # a replayed index: skipped
    assert e.catalog(CatalogOp("create", "ret"), index=6) == 6  # exists: left as it is
    assert e.databases() == ["empty", "ret"]
    assert e.retention_policy("ret") == ("week", 10**12)
    assert e.retention_policy("empty") == ("autogen", 0)
    assert e.retention_policy("nope") is None
    assert e.options.retention["ret"].duration_ns == 10**12
    for flush in (False, True):
        e = reopen(e, flush)  # from the WAL, then from the manifest
        assert e.databases() == ["empty", "ret"]
        assert e.retention_policy("ret") == ("week", 10**12)
        assert e.options.retention["ret"].duration_ns == 10**12
        assert e.last_index == 6
    e.delete(DeleteRequest("ret", "", MIN_TIME, MAX_TIME, drop=True), index=7)
    assert e.databases() == ["empty"] and "ret" not in e.options.retention
    e = reopen(e, False)
    assert e.databases() == ["empty"] and "ret" not in e.options.retention
    e.close()


def test_bad_operations_change_nothing(tmp_path) -> None:
    e = Engine(str(tmp_path), opts())
    for op in (
        CatalogOp("create", ""),
        CatalogOp("create", "a\x00b"),
        CatalogOp("bogus", "db"),
        CatalogOp("retention", "db"),
        CatalogOp("create", "db", "p", -1),
    ):
        with pytest.raises(BadRequestError):
            e.catalog(op)
    assert e.databases() == [] and e.last_index == 0
    for body in (b"", b"{}", b'{"op":"create","database":"d","policy":"p","duration_ns":"1"}'):
        with pytest.raises(BadRequestError):
            CatalogOp.decode(body)
    with pytest.raises(BadRequestError):
        decode_drop_database(b'{"database": 5}')
    assert decode_drop_database(encode_drop_database("db")) == "db"
    with pytest.raises(BadRequestError, match="time"):
        ddl.drop_series(e, Plan(kind="delete", database="db", measurement="m", start=0))
    e.close()


def test_a_manifest_from_before_the_registry_still_opens(tmp_path) -> None:
    body = orjson.dumps(
        {
            "applied_index": 4,
            "next_tombstone_id": 2,
            "flushed_seq": 0,
            "tombstones": [
                {
                    "id": 1,
                    "seq": 1,
                    "index": 2,
                    "database": "db",
                    "start": 0,
                    "end": 9,
                    "series": [],
                }
            ],
        }
    )
    data = struct.pack("<8sII", b"PULSRMAN", 1, len(body)) + body
    (tmp_path / MANIFEST_NAME).write_bytes(data + struct.pack("<I", zlib.crc32(body)))
    e = Engine(str(tmp_path), opts())
    assert e.last_index == 4 and e.databases() == []
    e.close()
