"""Raft commands of a shard group: our own compact binary bytes, never pickled objects.

Byte layout: docs/format/raft-command.md. A command is an 8-byte header (magic `PLRC`, version,
kind, reserved) followed by the body; kind 1 (`WRITE`) carries one encoded WriteBatch
(docs/format/write-batch.md). pysyncobj wraps the bytes in its own framing (a pickled call),
which is documented there too.

Size: pysyncobj mishandles entries of 64 KB and more (its append-entries chunking picks the last
chunk by command length, not pickled length: truncated unpickles and 50 ms stalls, measured in
/work/shared/pysyncobj-notes.md). `split_write` therefore cuts a batch into commands of at most
`MAX_COMMAND_BYTES`, first by series, then, for a single huge series, by rows.
"""

from __future__ import annotations

import struct
from enum import IntEnum

from pulsar_cluster.batch import Column, WriteBatch
from pulsar_cluster.batchcodec import decode_batch, encode_batch
from pulsar_cluster.errors import BadRequestError

__all__ = [
    "CommandKind",
    "DDL_KINDS",
    "MAX_COMMAND_BYTES",
    "encode_command",
    "decode_command",
    "split_write",
    "decode_write",
    "RaftCommandError",
    "STAMP_BYTES",
    "STAMPABLE_KINDS",
    "command_kind",
    "stamp_command",
    "decode_stamped",
]

MAGIC = b"PLRC"
VERSION = 1
_HEADER = struct.Struct("<4sBBH")  # magic, version, kind, reserved (0)
#: 48 KB leaves room under pysyncobj's 64 KB threshold for its pickle framing and for the
#: ~0.1% zstd worst-case expansion of incompressible bodies.
MAX_COMMAND_BYTES = 48 * 1024


class CommandKind(IntEnum):
    """Command kinds: on disk (Raft journal) and on the wire. Never reuse a number."""

    WRITE = 1
    #: body: an encoded delete plan (docs/format/partials.md, magic PQPL); node/raft/deletes.py
    DELETE = 2
    #: body: a catalog operation, UTF-8 JSON (pulsar_cluster/catalogop.py); node/raft/ddl.py
    CATALOG = 3
    #: body: UTF-8 JSON {"database": str}; node/raft/ddl.py
    DROP_DATABASE = 4
    #: body: an encoded delete plan (magic PQPL) whose series are dropped; node/raft/ddl.py
    DROP_SERIES = 5
    # 6-9: reserved for query/DDL; 10-19 cluster metadata.
    # 20-29: backup and point-in-time recovery.
    #: body: i64 accepted time (ns, the leader's clock when it proposed) + a WRITE body
    WRITE_AT = 20
    #: body: i64 accepted time (ns) + a DELETE body
    DELETE_AT = 21


#: Kinds proposed on every shard group by the node API's /ddl route (docs/format/node-api.md).
DDL_KINDS = frozenset({CommandKind.CATALOG, CommandKind.DROP_DATABASE, CommandKind.DROP_SERIES})


#: Stamped kinds and the kind of the body they carry.
_UNSTAMPED = {CommandKind.WRITE_AT: CommandKind.WRITE, CommandKind.DELETE_AT: CommandKind.DELETE}
_STAMPED = {v: k for k, v in _UNSTAMPED.items()}
_TIME = struct.Struct("<q")
#: Kinds the leader stamps with its accepted time (DDL kinds are not stamped: their WAL records
#: carry the applying replica's clock, or 0 for CATALOG; docs/format/raft-command.md).
STAMPABLE_KINDS = frozenset(_STAMPED)
#: What stamping adds to a command.
STAMP_BYTES = _TIME.size


class RaftCommandError(BadRequestError):
    """Bytes that are not a valid Raft command."""


def encode_command(kind: CommandKind, body: bytes) -> bytes:
    return _HEADER.pack(MAGIC, VERSION, int(kind), 0) + body


def decode_command(data: bytes) -> tuple[CommandKind, memoryview]:
    if len(data) < _HEADER.size:
        raise RaftCommandError("raft command shorter than its header")
    magic, version, kind, _ = _HEADER.unpack_from(data, 0)
    if magic != MAGIC:
        raise RaftCommandError(f"bad raft command magic {magic!r}")
    if version != VERSION:
        raise RaftCommandError(f"unsupported raft command version {version}")
    try:
        return CommandKind(kind), memoryview(data)[_HEADER.size :]
    except ValueError:
        raise RaftCommandError(f"unknown raft command kind {kind}") from None


def command_kind(data: bytes) -> CommandKind:
    """The kind of an encoded command (RaftCommandError when it is not one)."""
    return decode_command(data)[0]


def stamp_command(command: bytes, accepted_ns: int) -> bytes:
    """The WRITE_AT / DELETE_AT form of a WRITE / DELETE command: every replica applies the
    leader's accepted time (point-in-time recovery must agree on it)."""
    kind, body = decode_command(command)
    stamped = _STAMPED.get(kind)
    if stamped is None:
        raise RaftCommandError(f"command kind {kind.name} cannot be stamped")
    return encode_command(stamped, _TIME.pack(accepted_ns) + bytes(body))


def decode_stamped(data: bytes) -> tuple[CommandKind, int | None, memoryview]:
    """(WRITE or DELETE, accepted time or None for unstamped kinds, body)."""
    kind, body = decode_command(data)
    base = _UNSTAMPED.get(kind)
    if base is None:
        return kind, None, body
    if len(body) < _TIME.size:
        raise RaftCommandError(f"{kind.name} command shorter than its time stamp")
    return base, _TIME.unpack_from(body, 0)[0], body[_TIME.size :]


def split_write(batch: WriteBatch, max_bytes: int = MAX_COMMAND_BYTES) -> list[bytes]:
    """WRITE commands, each at most `max_bytes`, that together hold every point of `batch`.

    Each command is applied atomically; the batch as a whole is not (see docs/architecture.md).
    Raises RaftCommandError if a single point does not fit (a string value near `max_bytes`).
    """
    out: list[bytes] = []
    _split_into(batch, max_bytes - _HEADER.size, out)
    return out


def _split_into(batch: WriteBatch, limit: int, out: list[bytes]) -> None:
    if not batch:
        return
    body = encode_batch(batch)
    if len(body) <= limit:
        out.append(encode_command(CommandKind.WRITE, body))
        return
    table = batch.table_if_current()
    if table is not None and len(table.keys) > 1:
        # Halve by series ranges: views of the table, O(fields) each, never split per series.
        half = len(table.keys) // 2
        for lo, hi in ((0, half), (half, len(table.keys))):
            _split_into(WriteBatch(batch.database, table=table.slice_series(lo, hi)), limit, out)
        return
    keys = list(batch.series)
    if len(keys) > 1:
        half = len(keys) // 2
        for key_part in (keys[:half], keys[half:]):
            sub = {k: batch.series[k] for k in key_part}
            _split_into(WriteBatch(batch.database, sub), limit, out)
        return
    key = keys[0]
    fields = batch.series[key]
    if len(fields) > 1:
        field_names = list(fields)
        half = len(field_names) // 2
        for name_part in (field_names[:half], field_names[half:]):
            sub_fields = {n: fields[n] for n in name_part}
            _split_into(WriteBatch(batch.database, {key: sub_fields}), limit, out)
        return
    ((name, col),) = fields.items()
    if len(col) <= 1:
        raise RaftCommandError(
            f"one value of field '{name}' does not fit in a raft command of {limit} bytes"
        )
    half = len(col) // 2
    for sl in (slice(0, half), slice(half, None)):
        piece = Column(col.type, col.timestamps[sl], col.values[sl])
        _split_into(WriteBatch(batch.database, {key: {name: piece}}), limit, out)


def decode_write(body: memoryview) -> WriteBatch:
    """The WriteBatch of a WRITE command body."""
    return decode_batch(body)
