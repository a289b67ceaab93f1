"""The engine manifest: the little state that lives in no SSTable. Format: docs/format/manifest.md.

    magic "PULSRMAN" | u32 version (1) | u32 body length | body (UTF-8 JSON) | u32 crc32(body)

The body holds the seq of the last completed flush (the commit point of a flush), the
applied-index floor (Raft indexes whose effects need no table, e.g. a flush
of deletes only, or a restored snapshot), the live tombstones and the next tombstone id, and the
database registry (CREATE DATABASE, retention policies). The set
of tables is NOT here: the directory listing is authoritative (see engine.py, "Open").

It is rewritten whole with `write_atomic` (temporary file, fsync, rename, directory fsync), so it
is either the old or the new version, never a mix. A manifest that fails its checksum raises
CorruptionError: tombstones cannot be recovered from elsewhere, so the engine refuses to guess.
"""

from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass, field

import orjson

from node.engine.fs import FileSystem
from pulsar_cluster.errors import CorruptionError

__all__ = [
    "Manifest",
    "Tombstone",
    "DatabaseEntry",
    "read_manifest",
    "write_manifest",
    "MANIFEST_NAME",
]

MAGIC = b"PULSRMAN"
VERSION = 1
MANIFEST_NAME = "MANIFEST"
_HEAD = struct.Struct("<8sII")


@dataclass(slots=True)
class Tombstone:
    """Points of `series` (storage keys) in [start, end) written before the delete are gone.

    It applies to a memtable or table with seq < `seq` whose `deletes_applied` < `id`: data
    written after the delete lives in memtables (and tables) with seq >= `seq`.
    `series` None means every series of the database (DROP DATABASE). `drop` marks a DROP
    (SERIES, MEASUREMENT or DATABASE): the series are also gone from the index, so at open
    they are not registered from the tables the tombstone still applies to.
    """

    id: int
    seq: int
    index: int  # Raft index of the delete (0 for engine-made ones, e.g. retention)
    database: str
    start: int
    end: int
    series: frozenset[bytes] | None
    drop: bool = False

    def covers(self, skey: bytes) -> bool:
        return self.series is None or skey in self.series

    def to_json(self) -> dict[str, object]:
        return {
            "id": self.id,
            "seq": self.seq,
            "index": self.index,
            "database": self.database,
            "start": self.start,
            "end": self.end,
            "series": None if self.series is None else sorted(s.hex() for s in self.series),
            "drop": self.drop,
        }

    @classmethod
    def from_json(cls, obj: dict) -> Tombstone:  # type: ignore[type-arg]
        series = obj["series"]
        return cls(
            int(obj["id"]),
            int(obj["seq"]),
            int(obj["index"]),
            str(obj["database"]),
            int(obj["start"]),
            int(obj["end"]),
            None if series is None else frozenset(bytes.fromhex(s) for s in series),
            bool(obj.get("drop", False)),  # absent in manifests written before DROP existed
        )


@dataclass(frozen=True, slots=True)
class DatabaseEntry:
    """A registered database and its one retention policy (name, duration; 0 = forever,
    None = the node's configured retention)."""

    policy: str = "autogen"
    duration_ns: int | None = None

    def to_json(self) -> dict[str, object]:
        return {"policy": self.policy, "duration_ns": self.duration_ns}

    @classmethod
    def from_json(cls, obj: dict) -> DatabaseEntry:  # type: ignore[type-arg]
        duration = obj["duration_ns"]
        return cls(str(obj["policy"]), None if duration is None else int(duration))


@dataclass(slots=True)
class Manifest:
    applied_index: int = 0
    next_tombstone_id: int = 1
    tombstones: list[Tombstone] = field(default_factory=list)
    #: The highest memtable seq whose flush completed (all its tables renamed).
    flushed_seq: int = 0
    #: The database registry: name -> entry (docs/format/manifest.md, "databases").
    databases: dict[str, DatabaseEntry] = field(default_factory=dict)
    #: Latest accepted time (ns) of any write or delete applied (point-in-time recovery picks
    #: its base backup with it); 0 = unknown. Optional key: absent in older manifests.
    max_accepted_ns: int = 0

    def encode(self) -> bytes:
        body = orjson.dumps(
            {
                "applied_index": self.applied_index,
                "next_tombstone_id": self.next_tombstone_id,
                "tombstones": [t.to_json() for t in self.tombstones],
                "flushed_seq": self.flushed_seq,
                "databases": {n: e.to_json() for n, e in sorted(self.databases.items())},
                "max_accepted_ns": self.max_accepted_ns,
            }
        )
        return _HEAD.pack(MAGIC, VERSION, len(body)) + body + struct.pack("<I", zlib.crc32(body))


def decode_manifest(data: bytes, path: str) -> Manifest:
    if len(data) < _HEAD.size + 4:
        raise CorruptionError(path, 0, "manifest shorter than its header")
    magic, version, length = _HEAD.unpack_from(data, 0)
    if magic != MAGIC:
        raise CorruptionError(path, 0, "bad manifest magic")
    if version != VERSION:
        raise CorruptionError(path, 8, f"unsupported manifest version {version}")
    if _HEAD.size + length + 4 != len(data):
        raise CorruptionError(path, 12, "manifest length does not match the file size")
    body = data[_HEAD.size : _HEAD.size + length]
    (crc,) = struct.unpack_from("<I", data, _HEAD.size + length)
    if zlib.crc32(body) != crc:
        raise CorruptionError(path, _HEAD.size, "manifest checksum mismatch")
    try:
        obj = orjson.loads(body)
        return Manifest(
            int(obj["applied_index"]),
            int(obj["next_tombstone_id"]),
            [Tombstone.from_json(t) for t in obj["tombstones"]],
            int(obj["flushed_seq"]),
            # absent in manifests written before the registry existed
            {str(n): DatabaseEntry.from_json(e) for n, e in obj.get("databases", {}).items()},
            int(obj.get("max_accepted_ns", 0)),
        )
    except (orjson.JSONDecodeError, KeyError, TypeError, ValueError, AttributeError) as exc:
        raise CorruptionError(path, _HEAD.size, f"malformed manifest body: {exc}") from exc


def read_manifest(fs: FileSystem, path: str) -> Manifest:
    """The manifest at `path`, or an empty one when the file does not exist."""
    if not fs.exists(path):
        return Manifest()
    with fs.open_read(path) as f:
        data = f.read()
    return decode_manifest(data, path)


def write_manifest(fs: FileSystem, path: str, manifest: Manifest) -> None:
    fs.write_atomic(path, [manifest.encode()])
