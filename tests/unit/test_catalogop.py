"""Catalog operations and the DDL Raft commands: round trips (property tests), refusals, and
applying them to an engine the way a shard replica does (idempotent by Raft index)."""

from __future__ import annotations

import contextlib

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from node.engine.engine import Engine
from node.raft.ddl import check_ddl
from node.raft.group import apply_command
from pulsar_cluster.batch import Column, FieldType, WriteBatch
from pulsar_cluster.catalogop import CatalogOp, decode_drop_database, encode_drop_database
from pulsar_cluster.errors import BadRequestError
from pulsar_cluster.query.conditions import TRUE
from pulsar_cluster.query.partial import encode_plan
from pulsar_cluster.query.plan import MAX_TIME, MIN_TIME, Plan
from pulsar_cluster.raftcommand import CommandKind, decode_command, encode_command
from pulsar_cluster.series import make_series_key

name = st.text(
    st.characters(blacklist_characters="\x00", blacklist_categories=("Cs",)),
    min_size=1,
    max_size=40,
).filter(lambda s: len(s.encode()) <= 255)


@given(
    op=st.sampled_from(["create", "retention"]),
    db=name,
    policy=name,
    duration=st.none() | st.integers(0, 2**63 - 1),
)
def test_catalog_op_round_trip(op: str, db: str, policy: str, duration: int | None) -> None:
    value = CatalogOp(op, db, policy, duration)
    if op == "retention" and duration is None:
        with pytest.raises(BadRequestError):
            value.encode()
        return
    encoded = encode_command(CommandKind.CATALOG, value.encode())
    kind, body = decode_command(encoded)
    assert kind is CommandKind.CATALOG
    assert CatalogOp.decode(body) == value
    check_ddl(kind, body)


@given(db=name)
def test_drop_database_round_trip(db: str) -> None:
    kind, body = decode_command(encode_command(CommandKind.DROP_DATABASE, encode_drop_database(db)))
    assert kind is CommandKind.DROP_DATABASE and decode_drop_database(body) == db


@given(st.binary(max_size=64))
def test_garbage_bodies_are_refused_cleanly(data: bytes) -> None:
    for kind in (CommandKind.CATALOG, CommandKind.DROP_DATABASE, CommandKind.DROP_SERIES):
        with contextlib.suppress(BadRequestError):  # anything else would fail the test
            check_ddl(kind, data)


def test_replica_applies_ddl_commands_once(tmp_path) -> None:  # type: ignore[no-untyped-def]
    e = Engine(str(tmp_path))
    batch = WriteBatch("db", {})
    for host in ("a", "b"):
        batch.series[make_series_key("cpu", {"host": host})] = {
            "v": Column(FieldType.FLOAT, np.array([1], np.int64), np.array([1.0]))
        }
    from pulsar_cluster.raftcommand import split_write

    (write,) = split_write(batch)
    assert apply_command(e, write, 1) is None
    create = encode_command(CommandKind.CATALOG, CatalogOp("create", "empty").encode())
    assert apply_command(e, create, 2) is None
    plan = Plan(
        kind="delete", database="db", measurement="cpu", start=MIN_TIME, end=MAX_TIME,
        tags=["cmp", "host", "=", "a"],
    )  # fmt: skip
    drop = encode_command(CommandKind.DROP_SERIES, encode_plan(plan))
    assert apply_command(e, drop, 3) is None
    assert e.tag_values("db", "cpu", "host") == ["b"]
    assert apply_command(e, write, 1) is None  # a replayed journal: skipped by index
    assert e.tag_values("db", "cpu", "host") == ["b"]
    assert e.databases() == ["db", "empty"]
    dropdb = encode_command(CommandKind.DROP_DATABASE, encode_drop_database("db"))
    assert apply_command(e, dropdb, 4) is None
    assert e.databases() == ["empty"] and e.last_index == 4
    # what every replica refuses alike is a result, not a crash
    timed = encode_command(
        CommandKind.DROP_SERIES,
        encode_plan(Plan(kind="delete", database="db", start=0, tags=list(TRUE))),
    )
    rejected = apply_command(e, timed, 5)
    assert rejected is not None and "time" in rejected[0]
    bad = encode_command(CommandKind.CATALOG, b"{}")
    assert apply_command(e, bad, 6) is not None
    assert e.databases() == ["empty"]
    e.close()
