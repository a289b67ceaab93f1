"""Engine.create_checkpoint and the node's checkpoint store: a checkpoint taken while writes
go on holds exactly the writes with index <= its last_index; stamped raft commands."""

from __future__ import annotations

import os
import shutil
import threading
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from node.backup import CheckpointStore
from node.engine.engine import Engine, EngineOptions
from pulsar_cluster.batch import BatchBuilder, FieldType, WriteBatch
from pulsar_cluster.errors import BadRequestError, NotFoundError
from pulsar_cluster.raftcommand import (
    CommandKind,
    RaftCommandError,
    decode_stamped,
    encode_command,
    stamp_command,
)
from pulsar_cluster.series import make_series_key


def _point(ts: int) -> WriteBatch:
    b = BatchBuilder("db")
    b.add(make_series_key("m", {"h": str(ts % 3)}), "v", FieldType.INTEGER, ts, ts)
    return b.build()


def _all_ts(engine: Engine) -> list[int]:
    out: list[int] = []
    for key in engine.match_series("db", "m", {}):
        data = engine.read_field(key, "v", 0, 10**12)
        assert data is not None
        out.extend(data.timestamps.tolist())
    return sorted(out)


def test_checkpoint_under_concurrent_writes_is_exact(tmp_path: Path) -> None:
    engine = Engine(str(tmp_path / "e"), EngineOptions(memtable_bytes=4096))
    stop = threading.Event()

    def writer() -> None:
        ts = 1
        while not stop.is_set() and ts < 20_000:
            engine.apply(_point(ts))  # index == ts (self-numbered)
            if ts % 97 == 0:
                engine.flush()
            ts += 1

    t = threading.Thread(target=writer)
    t.start()
    try:
        infos = []
        for i in range(5):
            info = engine.create_checkpoint(str(tmp_path / f"cp{i}"))
            infos.append(info)
    finally:
        stop.set()
        t.join(30)
    engine.close()
    for i, info in enumerate(infos):
        copy = tmp_path / f"copy{i}"
        shutil.copytree(tmp_path / f"cp{i}", copy)
        assert sorted(info.files) == sorted(
            os.path.relpath(os.path.join(d, f), copy) for d, _, fs in os.walk(copy) for f in fs
        )
        restored = Engine(str(copy))
        try:
            assert restored.last_index == info.last_index
            assert _all_ts(restored) == list(range(1, info.last_index + 1))
        finally:
            restored.close(flush=False)


def test_store_creates_streams_and_releases(tmp_path: Path) -> None:
    engine = Engine(str(tmp_path / "e"))
    for ts in range(1, 50):
        engine.apply(_point(ts))
    engine.flush()
    engine.apply(_point(99))
    store = CheckpointStore(str(tmp_path / "cps"))
    made = store.create({3: engine})
    shard = made["shards"]["3"]
    assert shard["applied_index"] == 50
    paths = {f["path"] for f in shard["files"]}
    assert "MANIFEST" in paths and any(p.startswith("sst/") for p in paths)
    assert any(p.startswith("wal/") for p in paths)
    for f in shard["files"]:
        assert os.path.getsize(store.file_path(made["checkpoint"], 3, f["path"])) == f["size"]
    again = store.create({3: engine})  # tables unchanged: same fingerprints
    fp = {f["path"]: f["fingerprint"] for f in shard["files"] if f["path"].startswith("sst/")}
    fp2 = {f["path"]: f["fingerprint"] for f in again["shards"]["3"]["files"]}
    assert all(fp2[p] == v for p, v in fp.items())
    with pytest.raises(BadRequestError):
        store.file_path(made["checkpoint"], 3, "../../e/MANIFEST")
    assert store.release(made["checkpoint"]) and store.release(again["checkpoint"])
    assert store.open_checkpoints() == []
    with pytest.raises(NotFoundError):
        store.file_path(made["checkpoint"], 3, "MANIFEST")
    engine.close()


@settings(max_examples=100, deadline=None)
@given(
    st.sampled_from([CommandKind.WRITE, CommandKind.DELETE]),
    st.binary(max_size=100),
    st.integers(-(2**63), 2**63 - 1),
)
def test_stamp_round_trip(kind: CommandKind, body: bytes, t: int) -> None:
    command = encode_command(kind, body)
    assert decode_stamped(command) == (kind, None, body)
    got_kind, got_t, got_body = decode_stamped(stamp_command(command, t))
    assert (got_kind, got_t, bytes(got_body)) == (kind, t, body)


def test_short_stamp_is_refused() -> None:
    with pytest.raises(RaftCommandError):
        decode_stamped(encode_command(CommandKind.WRITE_AT, b"1234"))


def test_applied_commands_record_the_leaders_stamp(tmp_path: Path) -> None:
    """Stamped commands put the leader's time in the WAL record; unstamped ones (older
    journals, --raft-time-stamps off) record 0 on every replica alike."""
    from node.engine.fs import OsFileSystem
    from node.engine.wal import RecoveryReport, WriteAheadLog
    from node.raft.group import apply_command
    from pulsar_cluster.batchcodec import encode_batch

    engine = Engine(str(tmp_path / "e"))
    plain = encode_command(CommandKind.WRITE, encode_batch(_point(1)))
    assert apply_command(engine, plain, 7) is None
    assert apply_command(engine, stamp_command(plain, 123_456), 9) is None
    assert apply_command(engine, stamp_command(plain, 1), 9) is None  # a replay: skipped
    engine.close(flush=False)
    records = list(
        WriteAheadLog(str(tmp_path / "e" / "wal"), OsFileSystem()).replay(RecoveryReport())
    )
    assert [(r.index, r.time_ns) for r in records] == [(7, 0), (9, 123_456)]
