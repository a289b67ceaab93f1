"""Commands of the metadata Raft group: our own compact bytes, never pickled objects.

Byte layout: docs/format/meta.md. A command is an 8-byte header (magic `PLMC`, version, kind,
reserved) followed by a UTF-8 JSON body. Kind 1 (`CAS_MAP`) replaces the whole shard map when
the group's current map has version `expect`; the new map must carry version `expect + 1`.
Every change to the cluster's shape (a node joins or leaves, a replica move advances) is one
such compare-and-set, so a writer that read a stale map is refused instead of overwriting a
concurrent change, and every replica of the group reaches the same state from the same log.

`apply_cas` is the state machine's transition function: pure, deterministic, and the same code
on every replica (property tests in tests/unit/test_metacommand.py).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from enum import IntEnum
from typing import Any

import orjson

from pulsar_cluster.errors import BadRequestError, PulsarError, UnavailableError
from pulsar_cluster.shardmap import PeersError, ShardMap

__all__ = [
    "MetaKind",
    "MetaCommandError",
    "CasMap",
    "encode_cas",
    "decode_meta_command",
    "apply_cas",
    "MAX_META_COMMAND_BYTES",
    "MapConflictError",
    "NotMetaMemberError",
]

MAGIC = b"PLMC"
VERSION = 1
_HEADER = struct.Struct("<4sBBH")  # magic, version, kind, reserved (0)
#: Under pysyncobj's 64 KB append-entries chunking bug (pysyncobj-notes.md). A map of 1024
#: shards x 3 replicas with 100 peers is about 40 KB of JSON.
MAX_META_COMMAND_BYTES = 48 * 1024


class MetaKind(IntEnum):
    CAS_MAP = 1  # numbers are never reused (docs/format/meta.md)


class MetaCommandError(BadRequestError):
    """Bytes that are not a valid metadata command."""


class MapConflictError(PulsarError):
    """A compare-and-set of the map lost to a concurrent change (re-read and retry)."""

    status_code = 409


class NotMetaMemberError(UnavailableError):
    """The node asked to change the map is not in the metadata group (ask a member)."""


@dataclass(frozen=True, slots=True)
class CasMap:
    expect: int
    map: ShardMap


def encode_cas(expect: int, new_map: ShardMap) -> bytes:
    if new_map.version != expect + 1:
        raise MetaCommandError(f"a map replacing version {expect} must have version {expect + 1}")
    body = orjson.dumps({"expect": expect, "map": new_map.to_dict()})
    data = _HEADER.pack(MAGIC, VERSION, MetaKind.CAS_MAP, 0) + body
    if len(data) > MAX_META_COMMAND_BYTES:
        raise MetaCommandError(f"shard map too large for one metadata command: {len(data)} bytes")
    return data


def decode_meta_command(data: bytes) -> CasMap:
    if len(data) < _HEADER.size:
        raise MetaCommandError("metadata command shorter than its header")
    magic, version, kind, reserved = _HEADER.unpack_from(data)
    if magic != MAGIC or version != VERSION or reserved != 0:
        raise MetaCommandError(f"bad metadata command header {bytes(data[:8])!r}")
    if kind != MetaKind.CAS_MAP:
        raise MetaCommandError(f"unknown metadata command kind {kind}")
    try:
        doc: Any = orjson.loads(data[_HEADER.size :])
        expect = doc["expect"]
        if not isinstance(expect, int) or isinstance(expect, bool):
            raise TypeError("expect must be an integer")
        new_map = ShardMap.from_dict(doc["map"])
    except PeersError as exc:
        raise MetaCommandError(exc.message) from None
    except (orjson.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
        raise MetaCommandError(f"malformed metadata command: {exc}") from None
    if new_map.version != expect + 1:
        raise MetaCommandError("metadata command: map version must be expect + 1")
    return CasMap(expect, new_map)


def apply_cas(current: ShardMap, data: bytes) -> tuple[ShardMap, str | None]:
    """(next state, None) when the command applies; (current, reason) when it is refused."""
    try:
        cas = decode_meta_command(data)
    except MetaCommandError as exc:
        return current, exc.message
    if cas.expect != current.version:
        return current, f"map version conflict: expected {cas.expect}, current {current.version}"
    if (
        cas.map.shard_count != current.shard_count
        or cas.map.replication_factor != current.replication_factor
        or cas.map.meta_members() != current.meta_members()
    ):
        return current, "shard count, replication factor and metadata members are fixed"
    return cas.map, None
