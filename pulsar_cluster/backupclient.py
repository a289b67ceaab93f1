"""`pulsar admin backup`: copy a consistent backup of every shard into a local directory.

Flow (docs/operations.md, "Back up"): ask the coordinator for checkpoints of every shard
(POST /api/v1/admin/backup/checkpoints), stream every file the backup directory does not hold
yet through the coordinator (GET .../files/...), verify each file's size while computing its
SHA-256, write the backup manifest (docs/format/backup.md) last, then release the checkpoints
(POST .../release) whatever happened. The CLI needs no access to the nodes' file systems (it
runs anywhere the admin API is reachable, e.g. outside Kubernetes).

A backup is first written to `DEST_DIR/<id>.partial/` and renamed to `DEST_DIR/<id>/` once its
manifest is durable: a directory without the suffix is always complete.
"""

from __future__ import annotations

import hashlib
import os
import secrets
import shutil
import sys
import time
from dataclasses import dataclass
from typing import Any, TextIO

import httpx
import orjson

from pulsar_cluster.backupmanifest import (
    MANIFEST_NAME,
    BackupFile,
    BackupManifest,
    ShardBackup,
    check_file_path,
    encode_manifest,
    read_manifest_file,
)
from pulsar_cluster.client import ClientError
from pulsar_cluster.errors import BadRequestError, CorruptionError, PulsarError

__all__ = ["run_backup", "list_backups", "latest_backup", "Progress", "PARTIAL_SUFFIX"]

PARTIAL_SUFFIX = ".partial"
_CHUNK = 1 << 20
_PREFIX = "/api/v1/admin/backup"


def list_backups(root: str) -> list[BackupManifest]:
    """Every complete backup in `root`, oldest first. A damaged manifest raises
    CorruptionError (a backup directory is never guessed at)."""
    found = []
    if not os.path.isdir(root):
        return []
    for name in sorted(os.listdir(root)):
        path = os.path.join(root, name, MANIFEST_NAME)
        if name.endswith(PARTIAL_SUFFIX) or not os.path.isfile(path):
            continue
        manifest = read_manifest_file(path)
        if manifest.id != name:
            raise CorruptionError(path, 0, f"manifest id {manifest.id!r} != directory {name!r}")
        found.append(manifest)
    found.sort(key=lambda m: (m.created_ns, m.id))
    return found


def latest_backup(root: str) -> BackupManifest | None:
    backups = list_backups(root)
    return backups[-1] if backups else None


class Progress:
    """files/bytes done of total on a text stream, at most every `interval_s`, and at the end."""

    def __init__(
        self, files: int, total: int, out: TextIO | None, label: str, interval_s: float = 0.5
    ) -> None:
        self.files, self.total, self.out, self.label = files, total, out, label
        self.done_files = 0
        self.done_bytes = 0
        self.interval_s = interval_s
        self._last = 0.0
        self._t0 = time.monotonic()

    def add(self, nbytes: int, file_done: bool = False) -> None:
        self.done_bytes += nbytes
        self.done_files += int(file_done)
        now = time.monotonic()
        if now - self._last >= self.interval_s:
            self._last = now
            self._print()

    def finish(self) -> None:
        self._print()

    def _print(self) -> None:
        if self.out is None:
            return
        mb = 1024 * 1024
        elapsed = max(time.monotonic() - self._t0, 1e-9)
        print(
            f"{self.label}: {self.done_files}/{self.files} files, "
            f"{self.done_bytes / mb:.1f}/{self.total / mb:.1f} MB "
            f"({self.done_bytes / mb / elapsed:.1f} MB/s)",
            file=self.out,
            flush=True,
        )


@dataclass(slots=True)
class _Wanted:
    shard: int
    node: str | None
    checkpoint: str
    path: str
    size: int
    fingerprint: str


def _new_id() -> str:
    return time.strftime("%Y%m%dT%H%M%SZ", time.gmtime()) + "-" + secrets.token_hex(3)


def _check(response: httpx.Response) -> Any:
    if response.status_code >= 400:
        try:
            body = response.json()
        except ValueError:
            body = response.text
        raise ClientError(response.status_code, body)
    return response.json()


def run_backup(
    url: str,
    dest: str,
    incremental: bool = False,
    token: str | None = None,
    out: TextIO | None = sys.stderr,
    timeout_s: float = 600.0,
) -> BackupManifest:
    """Take one backup into `dest`; returns its manifest. Raises PulsarError subclasses."""
    os.makedirs(dest, exist_ok=True)
    for name in os.listdir(dest):  # debris of an interrupted backup: never referenced
        if name.endswith(PARTIAL_SUFFIX):
            shutil.rmtree(os.path.join(dest, name), ignore_errors=True)
    parent = latest_backup(dest) if incremental else None
    if incremental and parent is None:
        raise BadRequestError(f"--incremental: no complete backup in {dest} to build on")
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    with httpx.Client(base_url=url.rstrip("/"), headers=headers, timeout=timeout_s) as http:
        prefer = {str(s.shard): s.node for s in parent.shards if s.node} if parent else {}
        made = _check(http.post(f"{_PREFIX}/checkpoints", content=orjson.dumps({"prefer": prefer})))
        pairs = sorted({(s["node"], s["checkpoint"]) for s in made["shards"].values()}, key=str)
        try:
            return _copy(http, made, dest, parent, out)
        finally:
            try:
                http.post(
                    f"{_PREFIX}/release", content=orjson.dumps({"checkpoints": pairs})
                ).raise_for_status()
            except httpx.HTTPError as exc:  # the nodes expire them; say so, do not hide it
                if out is not None:
                    print(f"backup: releasing checkpoints failed: {exc}", file=out)


def _copy(
    http: httpx.Client,
    made: dict[str, Any],
    dest: str,
    parent: BackupManifest | None,
    out: TextIO | None,
) -> BackupManifest:
    if parent is not None and (
        parent.mode != made["mode"] or parent.shard_count != made["shard_count"]
    ):
        raise BadRequestError(
            f"the server's shape ({made['mode']}, {made['shard_count']} shards) differs from "
            f"the parent backup's ({parent.mode}, {parent.shard_count}): take a full backup"
        )
    backup_id = _new_id()
    stage = os.path.join(dest, backup_id + PARTIAL_SUFFIX)
    os.makedirs(stage)
    known: dict[tuple[int, str, str, int], BackupFile] = {}
    if parent is not None:
        for s in parent.shards:
            for f in s.files:
                known[(s.shard, f.path, f.fingerprint, f.size)] = f
    wanted: list[_Wanted] = []
    shards: dict[int, tuple[dict[str, Any], list[BackupFile]]] = {}
    for key, info in made["shards"].items():
        shard = int(key)
        files: list[BackupFile] = []
        for f in info["files"]:
            path = check_file_path(f["path"])
            ref = known.get((shard, path, str(f["fingerprint"]), int(f["size"])))
            if ref is not None:
                files.append(ref)  # unchanged since the parent: reference its bytes
            else:
                wanted.append(
                    _Wanted(shard, info["node"], info["checkpoint"], path, int(f["size"]),
                            str(f["fingerprint"]))
                )  # fmt: skip
        shards[shard] = (info, files)
    progress = Progress(len(wanted), sum(w.size for w in wanted), out, "backup")
    try:
        for w in wanted:
            digest = _fetch(http, w, os.path.join(stage, f"shard-{w.shard}", w.path), progress)
            shards[w.shard][1].append(BackupFile(w.path, w.size, digest, w.fingerprint, backup_id))
        progress.finish()
        manifest = BackupManifest(
            backup_id,
            parent.id if parent is not None else None,
            int(made["created_ns"]),
            str(made["mode"]),
            int(made["shard_count"]),
            int(made["replication_factor"]),
            made["shard_map"],
            tuple(
                ShardBackup(
                    shard,
                    info["node"],
                    int(info["applied_index"]),
                    int(info["max_accepted_ns"]),
                    tuple(sorted(files, key=lambda f: f.path)),
                )
                for shard, (info, files) in sorted(shards.items())
            ),
        )
        _write_durable(os.path.join(stage, MANIFEST_NAME), encode_manifest(manifest))
        final = os.path.join(dest, backup_id)
        os.rename(stage, final)
        _fsync_dir(dest)
    except BaseException:
        shutil.rmtree(stage, ignore_errors=True)
        raise
    if out is not None:
        copied = sum(1 for s in manifest.shards for f in s.files if f.stored_in == backup_id)
        print(
            f"backup {backup_id}: {manifest.shard_count} shard(s), "
            f"{sum(len(s.files) for s in manifest.shards)} files ({copied} copied, "
            f"{manifest.total_bytes} bytes in all)"
            + (f", incremental on {parent.id}" if parent else ", full"),
            file=out,
        )
    return manifest


def _fetch(http: httpx.Client, w: _Wanted, target: str, progress: Progress) -> str:
    os.makedirs(os.path.dirname(target), exist_ok=True)
    url = f"{_PREFIX}/checkpoints/{w.checkpoint}/shards/{w.shard}/files/{w.path}"
    params = {"node": w.node} if w.node else {}
    digest = hashlib.sha256()
    size = 0
    with http.stream("GET", url, params=params) as response:
        if response.status_code >= 400:
            response.read()
            _check(response)
        with open(target, "wb") as f:
            for chunk in response.iter_bytes(_CHUNK):
                f.write(chunk)
                digest.update(chunk)
                size += len(chunk)
                progress.add(len(chunk))
            f.flush()
            os.fsync(f.fileno())
    if size != w.size:
        raise PulsarError(f"shard {w.shard} file {w.path}: got {size} bytes, expected {w.size}")
    progress.add(0, file_done=True)
    for d in {os.path.dirname(target), os.path.dirname(os.path.dirname(target))}:
        _fsync_dir(d)
    return digest.hexdigest()


def _write_durable(path: str, data: bytes) -> None:
    with open(path, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())


def _fsync_dir(path: str) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
