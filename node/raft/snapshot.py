"""pysyncobj snapshots of a shard group made of the engine's snapshot, never of pickled data.

pysyncobj calls `serialize(path, (last_entry, prev_entry, nodes))` in the group's tick thread
when it compacts its log, and `deserialize(path)` when it loads the dump at start-up or after
receiving one from the leader (in 64 KiB chunks). We make the engine's snapshot (a flush, then
hard links of its SSTables, the manifest and the descriptor: node/engine/snapshot.py) and pack
that directory into the ONE file pysyncobj wants. Byte layout: docs/format/raft-snapshot.md.

Because applies run in the same tick thread, the engine holds the effects of every entry up to
`last_entry`'s index (and, right after a restart, possibly of later *committed* entries, which
is harmless: entries above the engine's index are skipped on replay).

Restoring: when the engine is already at or past the snapshot's index (our own dump, loaded at
start-up) nothing is replaced; otherwise the files are unpacked next to the engine and
`Engine.restore_snapshot` swaps them in (crash-safe). pysyncobj swallows a deserializer's
exceptions and resends the snapshot, so every failure here is logged loudly.
"""

from __future__ import annotations

import os
import shutil
import struct
import zlib
from typing import Any

import orjson
from pysyncobj.node import TCPNode

from node.engine.engine import Engine
from pulsar_cluster.errors import CorruptionError
from pulsar_cluster.logs import get_logger

__all__ = ["ShardSnapshotter", "MAGIC", "VERSION", "write_restored_dump"]

log = get_logger(__name__)

MAGIC = b"PLRS"
VERSION = 1
_HEAD = struct.Struct("<4sB3sI")  # magic, version, 3 reserved bytes (zero), header length
_CRC = struct.Struct("<I")
_COPY_CHUNK = 1 << 20


class ShardSnapshotter:
    """serializer/deserializer for the SyncObjConf of one shard group."""

    def __init__(self, engine: Engine, work_dir: str) -> None:
        self.engine = engine
        self.work_dir = work_dir  # scratch space on the same file system (hard links)

    # --- serialize (tick thread) -----------------------------------------------------------------

    def serialize(self, path: str, raft_data: tuple[Any, Any, Any]) -> None:
        last_entry, prev_entry, nodes = raft_data
        scratch = os.path.join(self.work_dir, "out")
        shutil.rmtree(scratch, ignore_errors=True)
        try:
            info = self.engine.create_snapshot(scratch)
            names = sorted(os.listdir(scratch))
            header = {
                "last": [int(last_entry[1]), int(last_entry[2]), len(last_entry[0])],
                "prev": [int(prev_entry[1]), int(prev_entry[2]), len(prev_entry[0])],
                "nodes": sorted(str(n.address) for n in nodes),
                "engine_last_index": info.last_index,
                "files": [[n, os.path.getsize(os.path.join(scratch, n))] for n in names],
            }
            head = orjson.dumps(header)
            with open(path, "wb") as out:
                out.write(_HEAD.pack(MAGIC, VERSION, b"\0\0\0", len(head)))
                out.write(head)
                out.write(_CRC.pack(zlib.crc32(head)))
                for command in (last_entry[0], prev_entry[0]):
                    out.write(command)
                    out.write(_CRC.pack(zlib.crc32(command)))
                for name in names:
                    crc = 0
                    with open(os.path.join(scratch, name), "rb") as f:
                        while chunk := f.read(_COPY_CHUNK):
                            crc = zlib.crc32(chunk, crc)
                            out.write(chunk)
                    out.write(_CRC.pack(crc))
                out.flush()
                os.fsync(out.fileno())
            log.info("raft_snapshot_written", index=last_entry[1], bytes=os.path.getsize(path))
        except Exception:
            log.exception("raft_snapshot_failed", path=path)
            raise
        finally:
            shutil.rmtree(scratch, ignore_errors=True)

    # --- deserialize (tick thread) ---------------------------------------------------------------

    def deserialize(self, path: str) -> tuple[Any, Any, Any]:
        try:
            return self._deserialize(path)
        except Exception:
            log.exception("raft_snapshot_load_failed", path=path)
            raise

    def _deserialize(self, path: str) -> tuple[Any, Any, Any]:
        with open(path, "rb") as f:
            raw = f.read(_HEAD.size)
            if len(raw) != _HEAD.size:
                raise CorruptionError(path, 0, "raft snapshot shorter than its header")
            magic, version, reserved, head_len = _HEAD.unpack(raw)
            if magic != MAGIC or version != VERSION:
                raise CorruptionError(path, 0, f"bad raft snapshot magic/version {magic!r}")
            if reserved != b"\0\0\0":
                raise CorruptionError(path, 5, "raft snapshot reserved bytes are not zero")
            head = _read_checked(f, head_len, path)
            header = orjson.loads(head)
            last_idx, last_term, last_len = header["last"]
            prev_idx, prev_term, prev_len = header["prev"]
            last_cmd = _read_checked(f, last_len, path)
            prev_cmd = _read_checked(f, prev_len, path)
            engine_index = int(header["engine_last_index"])
            if self.engine.last_index < engine_index:
                self._restore(f, header["files"], path)
            else:
                log.info(
                    "raft_snapshot_already_applied",
                    snapshot_index=engine_index,
                    engine_index=self.engine.last_index,
                )
        nodes = [TCPNode(addr) for addr in header["nodes"]]
        return (last_cmd, last_idx, last_term), (prev_cmd, prev_idx, prev_term), nodes

    def _restore(self, f: Any, files: list[list[Any]], path: str) -> None:
        stage = os.path.join(self.work_dir, "in")
        shutil.rmtree(stage, ignore_errors=True)
        os.makedirs(stage)
        try:
            for name, size in files:
                if os.path.basename(name) != name or name in ("", ".", ".."):
                    raise CorruptionError(path, f.tell(), f"bad file name {name!r}")
                crc = 0
                remaining = int(size)
                with open(os.path.join(stage, name), "wb") as out:
                    while remaining:
                        chunk = f.read(min(remaining, _COPY_CHUNK))
                        if not chunk:
                            raise CorruptionError(path, f.tell(), "raft snapshot truncated")
                        crc = zlib.crc32(chunk, crc)
                        out.write(chunk)
                        remaining -= len(chunk)
                    out.flush()
                    os.fsync(out.fileno())
                (want,) = _CRC.unpack(f.read(_CRC.size) or b"\0\0\0\0")
                if want != crc:
                    raise CorruptionError(path, f.tell(), f"checksum mismatch in {name}")
            info = self.engine.restore_snapshot(stage)
            log.info("raft_snapshot_restored", index=info.last_index, tables=len(info.tables))
        finally:
            shutil.rmtree(stage, ignore_errors=True)


#: pysyncobj's NO_OP command byte (_COMMAND_TYPE.NO_OP); never applied (index <= last applied).
_NO_OP = b"\x01"


def write_restored_dump(path: str, last_index: int, nodes: list[str]) -> None:
    """A pysyncobj dump file that starts a shard group's Raft log at `last_index` (restore from
    a backup, node/restore.py): two NO_OP entries at `last_index - 1` and `last_index` of term
    0 and no engine files. At start-up pysyncobj loads it (our deserializer sees that the
    engine already holds `last_index` and replaces nothing), sets its last applied index to
    `last_index`, and the next entry gets `last_index + 1`. Every replica of the shard gets the
    same file, so their logs agree."""
    if last_index < 2:
        raise ValueError("a restored Raft log starts at index 2 or later")
    header = {
        "last": [last_index, 0, len(_NO_OP)],
        "prev": [last_index - 1, 0, len(_NO_OP)],
        "nodes": sorted(nodes),
        "engine_last_index": last_index,
        "files": [],
    }
    head = orjson.dumps(header)
    tmp = path + ".tmp"
    with open(tmp, "wb") as out:
        out.write(_HEAD.pack(MAGIC, VERSION, b"\0\0\0", len(head)))
        out.write(head)
        out.write(_CRC.pack(zlib.crc32(head)))
        for command in (_NO_OP, _NO_OP):
            out.write(command)
            out.write(_CRC.pack(zlib.crc32(command)))
        out.flush()
        os.fsync(out.fileno())
    os.replace(tmp, path)


def _read_checked(f: Any, length: int, path: str) -> bytes:
    data = f.read(length)
    crc = f.read(_CRC.size)
    if len(data) != length or len(crc) != _CRC.size:
        raise CorruptionError(path, f.tell(), "raft snapshot truncated")
    if _CRC.unpack(crc)[0] != zlib.crc32(data):
        raise CorruptionError(path, f.tell(), "raft snapshot checksum mismatch")
    return data
