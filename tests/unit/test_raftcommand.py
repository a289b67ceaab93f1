"""Raft commands: header round trip, and splitting a batch under the size limit losslessly."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pulsar_cluster.batch import Column, FieldType, WriteBatch
from pulsar_cluster.batchcodec import decode_batch
from pulsar_cluster.raftcommand import (
    MAX_COMMAND_BYTES,
    CommandKind,
    RaftCommandError,
    decode_command,
    encode_command,
    split_write,
)
from pulsar_cluster.series import make_series_key
from tests.unit.test_batchcodec import batches


def _points(batch: WriteBatch) -> list[tuple[bytes, str, int, int, str]]:
    """Every (series, field, type, timestamp, value) of a batch: the naive reference."""
    out = []
    for key, name, col in batch.columns():
        for ts, value in zip(col.timestamps.tolist(), col.values.tolist(), strict=True):
            out.append((key, name, int(col.type), ts, repr(value)))
    return sorted(out)


def _decode_all(commands: list[bytes], database: str) -> list[tuple[bytes, str, int, int, str]]:
    out = []
    for command in commands:
        kind, body = decode_command(command)
        assert kind is CommandKind.WRITE
        part = decode_batch(body)
        assert part.database == database
        out.extend(_points(part))
    return sorted(out)


@given(batches(), st.integers(200, 4000))
@settings(max_examples=150, deadline=None)
def test_split_keeps_every_point_and_respects_the_limit(batch: WriteBatch, limit: int) -> None:
    try:
        commands = split_write(batch, limit)
    except RaftCommandError:
        # Only legitimate when one value (a long string) cannot fit at all.
        assert any(col.type is FieldType.STRING for _, _, col in batch.columns())
        return
    assert all(len(c) <= limit for c in commands)
    assert _decode_all(commands, batch.database) == _points(batch)
    if not any(len(col) for _, _, col in batch.columns()) and not batch:
        assert commands == []


def test_one_huge_series_is_split_by_rows() -> None:
    n = 200_000
    rng = np.random.default_rng(1)
    ts = np.arange(n, dtype=np.int64) * 1000
    batch = WriteBatch(
        "db",
        {make_series_key("m", {"h": "a"}): {"v": Column(FieldType.FLOAT, ts, rng.random(n))}},
    )
    commands = split_write(batch)
    assert len(commands) > 10
    assert all(len(c) <= MAX_COMMAND_BYTES for c in commands)
    assert _decode_all(commands, "db") == _points(batch)


@given(st.binary(max_size=64))
def test_garbage_is_rejected_clearly(data: bytes) -> None:
    if data.startswith(b"PLRC\x01\x01"):
        return
    with pytest.raises(RaftCommandError):
        decode_command(data)


def test_header_round_trip_and_unknown_kind() -> None:
    kind, body = decode_command(encode_command(CommandKind.WRITE, b"xyz"))
    assert kind is CommandKind.WRITE and bytes(body) == b"xyz"
    with pytest.raises(RaftCommandError, match="kind 9"):
        decode_command(b"PLRC\x01\x09\x00\x00")
    with pytest.raises(RaftCommandError, match="version"):
        decode_command(b"PLRC\x02\x01\x00\x00")
