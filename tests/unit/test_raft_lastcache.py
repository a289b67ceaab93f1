"""A shard replica's last-value cache is kept by its engine (node/engine/lastcache.py), so the
replicated apply path (node/raft/group.py `apply_command`) and snapshot restores
(node/raft/snapshot.py) keep it: writes move entries, a replayed entry does not, deletes, DDL
and restores empty it."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from pysyncobj.node import TCPNode

from node.engine.engine import Engine
from node.engine.lastcache import LastValueCache
from node.raft.group import apply_command
from node.raft.snapshot import ShardSnapshotter
from pulsar_cluster.batch import Column, FieldType, WriteBatch
from pulsar_cluster.catalogop import CatalogOp
from pulsar_cluster.query.partial import encode_plan
from pulsar_cluster.query.plan import MAX_TIME, Plan
from pulsar_cluster.raftcommand import CommandKind, encode_command, split_write, stamp_command
from pulsar_cluster.series import make_series_key

KEY = make_series_key("cpu", {"host": "a"})
SKEY = b"db\x00" + KEY


def _write(t: int, v: float) -> bytes:
    batch = WriteBatch("db", {KEY: {"v": Column(FieldType.FLOAT, np.array([t]), np.array([v]))}})
    (command,) = split_write(batch)
    return command


def _cached(cache: LastValueCache) -> tuple[int, float] | None:
    entry = cache.get(SKEY, "v")
    return None if entry is None else (entry[0], float(entry[1][0]))


def test_apply_path_keeps_the_cache(tmp_path: Path) -> None:
    engine = Engine(str(tmp_path / "e"))
    cache = engine.last_values
    assert apply_command(engine, _write(10, 1.0), 1) is None
    cache.store(SKEY, "v", cache.token(SKEY), 10, np.array([1.0]))  # a query filled it
    assert apply_command(engine, stamp_command(_write(20, 2.0), 5), 2) is None
    assert _cached(cache) == (20, 2.0)
    # A replayed older entry at the same time as the newest point changes nothing.
    assert apply_command(engine, _write(20, 9.0), 2) is None
    assert _cached(cache) == (20, 2.0)
    assert apply_command(engine, _write(15, 3.0), 3) is None  # older: no change
    assert _cached(cache) == (20, 2.0)
    plan = Plan("delete", "db", "cpu", start=18, end=MAX_TIME, tags=["cmp", "host", "=", "a"])
    assert apply_command(engine, encode_command(CommandKind.DELETE, encode_plan(plan)), 4) is None
    assert _cached(cache) is None
    cache.store(SKEY, "v", cache.token(SKEY), 15, np.array([3.0]))
    create = encode_command(CommandKind.CATALOG, CatalogOp("create", "other").encode())
    assert apply_command(engine, create, 5) is None
    assert _cached(cache) is None and len(cache) == 0
    engine.close()


def test_snapshot_restore_empties_the_cache(tmp_path: Path) -> None:
    source = Engine(str(tmp_path / "a"))
    assert apply_command(source, _write(30, 3.0), 1) is None
    dump = tmp_path / "dump"
    nodes = {TCPNode("10.0.0.1:7201")}
    entry = (b"\x02x", 1, 1)
    ShardSnapshotter(source, str(tmp_path / "wa")).serialize(str(dump), (entry, entry, nodes))
    source.close()
    target = Engine(str(tmp_path / "b"))
    cache = target.last_values
    cache.store(SKEY, "v", cache.token(SKEY), 5, np.array([0.5]))  # stale once restored
    (tmp_path / "wb").mkdir()
    ShardSnapshotter(target, str(tmp_path / "wb")).deserialize(str(dump))
    assert target.last_index == 1 and _cached(cache) is None
    target.close()
