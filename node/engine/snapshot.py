"""Snapshot directories: a consistent point-in-time copy of one engine. docs/format/snapshot.md.

A snapshot directory holds

    SNAPSHOT      descriptor: magic "PULSRSNP" | u32 version (1) | u32 body length |
                  body (UTF-8 JSON: last_index, tables, created_ns) | u32 crc32(body)
    MANIFEST      the engine manifest as of the snapshot (docs/format/manifest.md)
    *.sst         hard links of the tables (docs/format/sstable.md); copies across file systems

Everything up to and including Raft index `last_index` is in the tables and tombstones, and
nothing after it: the engine flushes, then links while no table file can be removed. The
descriptor is written last, so a directory without a valid SNAPSHOT is incomplete.
"""

from __future__ import annotations

import os
import shutil
import struct
import time
import zlib
from dataclasses import dataclass, field

import orjson

from node.engine.fs import FileSystem
from pulsar_cluster.errors import CorruptionError, NotFoundError

__all__ = ["SnapshotInfo", "write_descriptor", "read_descriptor", "link_or_copy", "DESCRIPTOR"]

MAGIC = b"PULSRSNP"
VERSION = 1
DESCRIPTOR = "SNAPSHOT"
_HEAD = struct.Struct("<8sII")


@dataclass(slots=True)
class SnapshotInfo:
    path: str
    last_index: int
    tables: list[str] = field(default_factory=list)
    bytes: int = 0
    created_ns: int = 0


def write_descriptor(fs: FileSystem, info: SnapshotInfo) -> None:
    body = orjson.dumps(
        {
            "last_index": info.last_index,
            "tables": info.tables,
            "bytes": info.bytes,
            "created_ns": info.created_ns or time.time_ns(),
        }
    )
    data = _HEAD.pack(MAGIC, VERSION, len(body)) + body + struct.pack("<I", zlib.crc32(body))
    fs.write_atomic(os.path.join(info.path, DESCRIPTOR), [data])


def read_descriptor(fs: FileSystem, directory: str) -> SnapshotInfo:
    """The snapshot in `directory`; NotFoundError if it has no descriptor, CorruptionError if
    the descriptor or a listed table is damaged or missing."""
    path = os.path.join(directory, DESCRIPTOR)
    if not fs.exists(path):
        raise NotFoundError(f"no snapshot in {directory} (no {DESCRIPTOR} file)")
    with fs.open_read(path) as f:
        data = f.read()
    if len(data) < _HEAD.size + 4:
        raise CorruptionError(path, 0, "snapshot descriptor too short")
    magic, version, length = _HEAD.unpack_from(data, 0)
    if magic != MAGIC or version != VERSION:
        raise CorruptionError(path, 0, "bad snapshot magic or version")
    if _HEAD.size + length + 4 != len(data):
        raise CorruptionError(path, 12, "snapshot descriptor length mismatch")
    body = data[_HEAD.size : _HEAD.size + length]
    if zlib.crc32(body) != struct.unpack_from("<I", data, _HEAD.size + length)[0]:
        raise CorruptionError(path, _HEAD.size, "snapshot descriptor checksum mismatch")
    obj = orjson.loads(body)
    info = SnapshotInfo(
        directory,
        int(obj["last_index"]),
        [str(t) for t in obj["tables"]],
        int(obj["bytes"]),
        int(obj["created_ns"]),
    )
    for name in info.tables:
        if not fs.exists(os.path.join(directory, name)):
            raise CorruptionError(os.path.join(directory, name), 0, "snapshot table missing")
    return info


def link_or_copy(fs: FileSystem, src: str, dst: str) -> None:
    """Hard link `src` to `dst` (tables are immutable); copy and fsync across file systems."""
    try:
        fs.link(src, dst)
    except OSError:
        shutil.copyfile(src, dst)
        with open(dst, "rb+") as f:
            os.fsync(f.fileno())
