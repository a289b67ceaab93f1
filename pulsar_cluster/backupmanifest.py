"""The backup manifest: what one backup in a backup directory holds. docs/format/backup.md.

A backup directory (DEST_DIR of `pulsar admin backup`) holds one sub-directory per backup,
`DEST_DIR/<backup id>/`, with the file `BACKUP` (this manifest) and the bytes of the files that
backup copied, `shard-<s>/<path>`. An incremental backup copies only files that are new since
its parent and references the others: each file entry names the backup directory (`stored_in`)
that holds its bytes, so a manifest alone lists the complete content of its backup.

    u8[8] magic "PULSRBAK" | u32 version (1) | u32 body length n | body (UTF-8 JSON, n bytes) |
    u32 CRC-32 of the body          (all integers little-endian)

Pure: encoding, decoding and validation; no file system access beyond `read_manifest_file`.
"""

from __future__ import annotations

import re
import struct
import zlib
from dataclasses import dataclass, field
from typing import Any

import orjson

from pulsar_cluster.errors import CorruptionError

__all__ = [
    "MAGIC",
    "VERSION",
    "MANIFEST_NAME",
    "BackupFile",
    "ShardBackup",
    "BackupManifest",
    "encode_manifest",
    "decode_manifest",
    "read_manifest_file",
    "check_file_path",
    "check_backup_id",
]

MAGIC = b"PULSRBAK"
VERSION = 1
MANIFEST_NAME = "BACKUP"
_HEAD = struct.Struct("<8sII")
_CRC = struct.Struct("<I")
#: Paths a shard's files may have (the engine layout): nothing else is ever written.
_FILE_PATH = re.compile(r"^(MANIFEST|sst/[A-Za-z0-9_.\-]+\.sst|wal/[A-Za-z0-9_.\-]+\.wal)$")
_BACKUP_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,99}$")
_HEX64 = re.compile(r"^[0-9a-f]{64}$")
_MODES = ("standalone", "cluster")


def check_file_path(path: str) -> str:
    """`path` if it is a valid engine file path (MANIFEST, sst/NAME.sst, wal/NAME.wal)."""
    if not isinstance(path, str) or not _FILE_PATH.match(path) or ".." in path:
        raise ValueError(f"bad backup file path {path!r}")
    return path


def check_backup_id(backup_id: str) -> str:
    if not isinstance(backup_id, str) or not _BACKUP_ID.match(backup_id) or ".." in backup_id:
        raise ValueError(f"bad backup id {backup_id!r}")
    return backup_id


@dataclass(frozen=True, slots=True)
class BackupFile:
    path: str  # relative to the shard's engine directory: MANIFEST, sst/..., wal/...
    size: int
    sha256: str  # hex digest of the whole file
    fingerprint: str  # the node's identity of the file (docs/format/backup.md)
    stored_in: str  # id of the backup whose directory holds the bytes

    def to_json(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "size": self.size,
            "sha256": self.sha256,
            "fingerprint": self.fingerprint,
            "stored_in": self.stored_in,
        }

    @classmethod
    def from_json(cls, obj: dict[str, Any]) -> BackupFile:
        size = obj["size"]
        if not isinstance(size, int) or isinstance(size, bool) or size < 0:
            raise ValueError(f"bad file size {size!r}")
        sha = str(obj["sha256"])
        if not _HEX64.match(sha):
            raise ValueError(f"bad sha256 {sha!r}")
        return cls(
            check_file_path(obj["path"]),
            size,
            sha,
            str(obj["fingerprint"]),
            check_backup_id(obj["stored_in"]),
        )


@dataclass(frozen=True, slots=True)
class ShardBackup:
    shard: int
    node: str | None  # the replica it was taken from (None in standalone mode)
    applied_index: int  # every effect of Raft/write indexes <= this, nothing after
    max_accepted_ns: int  # latest accepted time of those records (0 = unknown)
    files: tuple[BackupFile, ...] = ()

    def to_json(self) -> dict[str, Any]:
        return {
            "shard": self.shard,
            "node": self.node,
            "applied_index": self.applied_index,
            "max_accepted_ns": self.max_accepted_ns,
            "files": [f.to_json() for f in self.files],
        }

    @classmethod
    def from_json(cls, obj: dict[str, Any]) -> ShardBackup:
        files = tuple(BackupFile.from_json(f) for f in obj["files"])
        paths = [f.path for f in files]
        if len(set(paths)) != len(paths):
            raise ValueError("duplicate file path in a shard")
        node = obj["node"]
        return cls(
            _nonneg(obj["shard"]),
            None if node is None else str(node),
            _nonneg(obj["applied_index"]),
            _nonneg(obj["max_accepted_ns"]),
            files,
        )


@dataclass(frozen=True, slots=True)
class BackupManifest:
    id: str
    parent: str | None  # None: a full backup
    created_ns: int
    mode: str  # "standalone" | "cluster"
    shard_count: int
    replication_factor: int
    #: The cluster's shard map when the backup was taken (pulsar_cluster.shardmap), or None.
    shard_map: dict[str, Any] | None
    shards: tuple[ShardBackup, ...] = field(default=())

    @property
    def total_bytes(self) -> int:
        return sum(f.size for s in self.shards for f in s.files)

    def shard(self, shard: int) -> ShardBackup:
        for s in self.shards:
            if s.shard == shard:
                return s
        raise KeyError(shard)

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "parent": self.parent,
            "created_ns": self.created_ns,
            "mode": self.mode,
            "shard_count": self.shard_count,
            "replication_factor": self.replication_factor,
            "shard_map": self.shard_map,
            "shards": [s.to_json() for s in self.shards],
        }

    @classmethod
    def from_json(cls, obj: dict[str, Any]) -> BackupManifest:
        mode = obj["mode"]
        if mode not in _MODES:
            raise ValueError(f"bad mode {mode!r}")
        shards = tuple(ShardBackup.from_json(s) for s in obj["shards"])
        count = _nonneg(obj["shard_count"])
        if sorted(s.shard for s in shards) != list(range(count)):
            raise ValueError(f"shards {[s.shard for s in shards]} do not match count {count}")
        parent = obj["parent"]
        shard_map = obj["shard_map"]
        if shard_map is not None and not isinstance(shard_map, dict):
            raise ValueError("shard_map must be an object or null")
        return cls(
            check_backup_id(obj["id"]),
            None if parent is None else check_backup_id(parent),
            _nonneg(obj["created_ns"]),
            mode,
            count,
            _nonneg(obj["replication_factor"]),
            shard_map,
            shards,
        )


def _nonneg(value: Any) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise ValueError(f"expected a non-negative integer, got {value!r}")
    return value


def encode_manifest(manifest: BackupManifest) -> bytes:
    body = orjson.dumps(manifest.to_json())
    return _HEAD.pack(MAGIC, VERSION, len(body)) + body + _CRC.pack(zlib.crc32(body))


def decode_manifest(data: bytes, path: str = MANIFEST_NAME) -> BackupManifest:
    """The manifest in `data`; CorruptionError naming `path` when anything is wrong."""
    if len(data) < _HEAD.size + _CRC.size:
        raise CorruptionError(path, 0, "backup manifest shorter than its header")
    magic, version, length = _HEAD.unpack_from(data, 0)
    if magic != MAGIC:
        raise CorruptionError(path, 0, "not a backup manifest (bad magic)")
    if version != VERSION:
        raise CorruptionError(path, 8, f"unsupported backup manifest version {version}")
    if _HEAD.size + length + _CRC.size != len(data):
        raise CorruptionError(path, 12, "backup manifest length does not match the file size")
    body = data[_HEAD.size : _HEAD.size + length]
    (crc,) = _CRC.unpack_from(data, _HEAD.size + length)
    if zlib.crc32(body) != crc:
        raise CorruptionError(path, _HEAD.size, "backup manifest checksum mismatch")
    try:
        return BackupManifest.from_json(orjson.loads(body))
    except (orjson.JSONDecodeError, KeyError, TypeError, ValueError, AttributeError) as exc:
        raise CorruptionError(path, _HEAD.size, f"malformed backup manifest: {exc}") from None


def read_manifest_file(path: str) -> BackupManifest:
    with open(path, "rb") as f:
        return decode_manifest(f.read(), path)
