"""Backup checkpoints of a node's engines, held until the backup client has copied them.

A checkpoint (`Engine.create_checkpoint`) is a directory of hard links (tables, sealed WAL
segments) plus a manifest copy under `DATA/backup-checkpoints/<id>/shard-<s>/`. The files are
streamed out through the node API and the coordinator's admin API (docs/api.md) and the
directory is removed by `release`. Links are never leaked for long: a checkpoint older than
`ttl_s` is removed at the next `create`, and the whole directory is emptied at start-up (a
backup cannot span a node restart anyway).

Each file gets a fingerprint, the identity an incremental backup compares (docs/format/backup.md):
for a table, BLAKE2b over its name, size and 52-byte footer (the footer's CRCs cover the index,
whose CRCs cover every block: a Merkle root, read without reading the table); for WAL segments
and the manifest (small), BLAKE2b over the whole content.
"""

from __future__ import annotations

import hashlib
import os
import re
import secrets
import shutil
import time
from collections.abc import AsyncIterator
from typing import Any

import anyio

from node.engine.engine import Engine
from pulsar_cluster.backupmanifest import check_file_path
from pulsar_cluster.errors import BadRequestError, NotFoundError

__all__ = ["CheckpointStore", "fingerprint", "stream_file"]

_ID = re.compile(r"^[0-9a-f]{16}$")
_FOOTER_BYTES = 52  # docs/format/sstable.md, "Footer"
_CHUNK = 1 << 20


def fingerprint(path: str, rel: str) -> str:
    """The identity of one checkpoint file (see module doc)."""
    h = hashlib.blake2b(digest_size=16)
    size = os.path.getsize(path)
    h.update(rel.encode() + b"\0" + str(size).encode() + b"\0")
    with open(path, "rb") as f:
        if rel.endswith(".sst") and size >= _FOOTER_BYTES:
            f.seek(size - _FOOTER_BYTES)
            h.update(f.read(_FOOTER_BYTES))
        else:
            while chunk := f.read(_CHUNK):
                h.update(chunk)
    return h.hexdigest()


class CheckpointStore:
    def __init__(self, root: str, ttl_s: float = 6 * 3600.0) -> None:
        self.root = root
        self.ttl_s = ttl_s
        shutil.rmtree(root, ignore_errors=True)  # leftovers of a previous run: links only
        os.makedirs(root, exist_ok=True)

    def create(self, engines: dict[int, Engine]) -> dict[str, Any]:
        """Checkpoint every engine in `engines` (shard -> engine); returns the description."""
        self._expire()
        cid = secrets.token_hex(8)
        base = os.path.join(self.root, cid)
        shards: dict[str, Any] = {}
        try:
            for shard, engine in sorted(engines.items()):
                target = os.path.join(base, f"shard-{shard}")
                info = engine.create_checkpoint(target)
                shards[str(shard)] = {
                    "applied_index": info.last_index,
                    "max_accepted_ns": info.max_accepted_ns,
                    "files": [
                        {
                            "path": rel,
                            "size": os.path.getsize(os.path.join(target, rel)),
                            "fingerprint": fingerprint(os.path.join(target, rel), rel),
                        }
                        for rel in info.files
                    ],
                }
        except BaseException:
            shutil.rmtree(base, ignore_errors=True)
            raise
        return {"checkpoint": cid, "created_ns": time.time_ns(), "shards": shards}

    def file_path(self, cid: str, shard: int, rel: str) -> str:
        """The path of one file of a checkpoint; NotFoundError when it does not exist."""
        if not _ID.match(cid):
            raise BadRequestError(f"bad checkpoint id {cid!r}")
        try:
            check_file_path(rel)
        except ValueError as exc:
            raise BadRequestError(str(exc)) from None
        path = os.path.join(self.root, cid, f"shard-{int(shard)}", rel)
        if not os.path.isfile(path):
            raise NotFoundError(f"checkpoint {cid} has no file {rel} of shard {shard}")
        return path

    def release(self, cid: str) -> bool:
        """Remove a checkpoint's links; False when it did not exist."""
        if not _ID.match(cid):
            raise BadRequestError(f"bad checkpoint id {cid!r}")
        path = os.path.join(self.root, cid)
        existed = os.path.isdir(path)
        shutil.rmtree(path, ignore_errors=True)
        return existed

    def open_checkpoints(self) -> list[str]:
        return sorted(os.listdir(self.root))

    def _expire(self) -> None:
        now = time.time()
        for name in os.listdir(self.root):
            path = os.path.join(self.root, name)
            try:
                if now - os.path.getmtime(path) > self.ttl_s:
                    shutil.rmtree(path, ignore_errors=True)
            except FileNotFoundError:
                continue


async def stream_file(path: str, chunk: int = _CHUNK) -> AsyncIterator[bytes]:
    """The bytes of `path` in chunks, read in a worker thread (no blocking of the loop)."""
    f = await anyio.to_thread.run_sync(open, path, "rb")
    try:
        while data := await anyio.to_thread.run_sync(f.read, chunk):
            yield data
    finally:
        f.close()
