"""`pulsar admin restore`: rebuild data directories from a backup, offline (servers stopped).

Order (docs/operations.md, "Restore"):

1. Pick the backup: `--backup ID`, else with `--until T` the newest backup whose every shard's
   latest accepted time is <= T, else the newest. Its manifest lists every file of every shard,
   wherever its bytes are (incremental backups reference their parents' files).
2. Verify everything before writing anything: every referenced file exists with its size and
   SHA-256; with `--until`, the archived WAL segments are read too. Any mismatch: a clear error
   and nothing is written.
3. Per target directory (the standalone data dir, or each node's), build the content in
   `TARGET.restoring/` (or `TARGET/.restoring/` when TARGET exists, empty, e.g. a mount
   point): each shard's engine files (MANIFEST, sst/, wal/); with `--until`, one extra WAL
   segment holding the archived records after the backup's index accepted at or
   before T (in index order, duplicates across replicas' archives dropped). The engine is then
   opened once (it replays the WAL, which also checks it) and closed; then the directory is
   renamed to TARGET (or its entries moved into it). A target that exists and holds anything
   but `lost+found` is refused.
4. Cluster nodes: the Raft state starts fresh (no journal), and for each shard a pysyncobj dump
   (node/raft/snapshot.py `write_restored_dump`) starts the Raft log at the engine's last
   index L, identical on every replica: new entries get L+1.., so the engine, which skips
   indexes <= L as replays, applies every new write. (The alternative, renumbering the
   engine's indexes to 0, would rewrite every table's meta.) `cluster.json` is not written:
   the node records it at its first start, so the restored cluster may use new addresses.
"""

from __future__ import annotations

import glob
import hashlib
import os
import shutil
import sys
from dataclasses import dataclass, field
from typing import TextIO

from node.engine.engine import Engine, EngineOptions
from node.engine.fs import OsFileSystem
from node.engine.wal import RecoveryReport, WalRecord, read_segment_file, write_segment_file
from node.raft.snapshot import write_restored_dump
from pulsar_cluster.backupclient import Progress, list_backups
from pulsar_cluster.backupmanifest import BackupManifest, ShardBackup
from pulsar_cluster.errors import BadRequestError, CorruptionError, NotFoundError
from pulsar_cluster.shardmap import ShardMap, parse_peers, static_shard_map
from pulsar_cluster.timeutil import format_rfc3339

__all__ = ["RestoreOptions", "restore", "choose_backup", "verify_backup", "archived_records"]

_CHUNK = 1 << 20
_RESTORING = ".restoring"


@dataclass(slots=True)
class RestoreOptions:
    src: str
    data_dir: str
    node_ids: list[str] = field(default_factory=list)
    all_nodes: bool = False
    peers: str | None = None
    shards: int | None = None
    replication_factor: int | None = None
    until_ns: int | None = None
    backup_id: str | None = None
    wal_archives: list[str] = field(default_factory=list)


def choose_backup(
    backups: list[BackupManifest], backup_id: str | None, until_ns: int | None
) -> BackupManifest:
    if not backups:
        raise NotFoundError("no complete backup in the source directory")
    if backup_id is not None:
        chosen = [b for b in backups if b.id == backup_id]
        if not chosen:
            raise NotFoundError(f"no backup {backup_id!r} (have: {[b.id for b in backups]})")
        pick = chosen[0]
        if until_ns is not None and _latest(pick) > until_ns:
            raise BadRequestError(
                f"backup {pick.id} holds writes accepted after --until "
                f"({format_rfc3339(_latest(pick))}); pick an older backup"
            )
        return pick
    if until_ns is None:
        return backups[-1]
    fitting = [b for b in backups if _latest(b) <= until_ns]
    if not fitting:
        raise BadRequestError(
            f"every backup holds writes accepted after {format_rfc3339(until_ns)}: "
            "point-in-time recovery needs a backup taken before that time"
        )
    return fitting[-1]


def _latest(manifest: BackupManifest) -> int:
    return max((s.max_accepted_ns for s in manifest.shards), default=0)


def _file_path(src: str, shard: int, stored_in: str, rel: str) -> str:
    return os.path.join(src, stored_in, f"shard-{shard}", rel)


def verify_backup(
    src: str, manifest: BackupManifest, out: TextIO | None, shards: set[int] | None = None
) -> None:
    """Check size and SHA-256 of every file the backup references (of `shards`, default all);
    CorruptionError naming the first bad file (after checking all, so the message can say how
    many are bad)."""
    files = [
        (s.shard, f)
        for s in manifest.shards
        if shards is None or s.shard in shards
        for f in s.files
    ]
    progress = Progress(len(files), sum(f.size for _, f in files), out, "verify")
    bad: list[CorruptionError] = []
    for shard, f in files:
        path = _file_path(src, shard, f.stored_in, f.path)
        if not os.path.isfile(path):
            bad.append(CorruptionError(path, 0, "file missing from the backup"))
            continue
        size = os.path.getsize(path)
        if size != f.size:
            bad.append(CorruptionError(path, 0, f"size {size}, the manifest says {f.size}"))
            continue
        digest = hashlib.sha256()
        with open(path, "rb") as fh:
            while chunk := fh.read(_CHUNK):
                digest.update(chunk)
                progress.add(len(chunk))
        progress.add(0, file_done=True)
        if digest.hexdigest() != f.sha256:
            bad.append(CorruptionError(path, 0, "SHA-256 mismatch (the file is damaged)"))
    progress.finish()
    if bad:
        first = bad[0]
        more = f" (and {len(bad) - 1} more bad files)" if len(bad) > 1 else ""
        raise CorruptionError(first.path, 0, f"{first.cause}; backup {manifest.id} refused{more}")


def archived_records(
    archives: list[str], shard: int | None, after_index: int, until_ns: int
) -> tuple[list[WalRecord], int, list[str]]:
    """Records of archived WAL segments with index > after_index accepted at or before
    until_ns, by index, one per index; plus the latest accepted time seen in the archive and
    the problems found. `shard` None: standalone (segments directly in each archive
    directory); else ARCHIVE/<node>/shard-<shard>/*.wal.

    Standalone indexes are the engine's own counter, consecutive: a missing index after
    after_index means a missing archived segment, and is refused (CorruptionError) rather than
    recovered inexactly. (Raft indexes of a shard have holes by design: no-op and membership
    entries never reach the engine, so there the archive's completeness cannot be checked.)"""
    pattern = "*.wal" if shard is None else os.path.join("*", f"shard-{shard}", "*.wal")
    report = RecoveryReport()
    chosen: dict[int, WalRecord] = {}
    seen: set[int] = set()
    newest = 0
    for root in archives:
        for path in sorted(glob.glob(os.path.join(root, pattern))):
            for record in read_segment_file(path, report):
                newest = max(newest, record.time_ns)
                if record.index > after_index:
                    seen.add(record.index)
                    if record.time_ns <= until_ns:
                        chosen.setdefault(record.index, record)
    if shard is None and seen:
        missing = sorted(set(range(after_index + 1, max(seen) + 1)) - seen)
        if missing:
            raise CorruptionError(
                archives[0],
                0,
                f"the WAL archive lacks records {missing[0]}..{missing[-1]} "
                f"({len(missing)} missing) after the backup's index {after_index}: "
                "point-in-time recovery would not be exact",
            )
    return [chosen[i] for i in sorted(chosen)], newest, list(report.problems)


def _targets(opts: RestoreOptions, manifest: BackupManifest) -> tuple[ShardMap | None, dict]:
    """(shard map or None for standalone, {target dir: node id or None})."""
    if manifest.mode == "standalone":
        if opts.node_ids or opts.all_nodes or opts.peers:
            raise BadRequestError("this is a standalone backup: restore it without node flags")
        return None, {opts.data_dir: None}
    if opts.peers:
        peers = parse_peers(opts.peers)
        shard_map = static_shard_map(
            peers,
            opts.shards or manifest.shard_count,
            opts.replication_factor or manifest.replication_factor,
        )
    elif manifest.shard_map is not None:
        shard_map = ShardMap.from_dict(manifest.shard_map)
    else:
        raise BadRequestError("the backup records no cluster layout: give --peers")
    if shard_map.shard_count != manifest.shard_count:
        raise BadRequestError(
            f"the backup has {manifest.shard_count} shards, the target cluster "
            f"{shard_map.shard_count}: the shard count must be the same"
        )
    ids = [p.id for p in shard_map.peers]
    if opts.all_nodes:
        return shard_map, {os.path.join(opts.data_dir, n): n for n in ids}
    if len(opts.node_ids) != 1:
        raise BadRequestError("a cluster backup: give one --node-id (or --all-nodes)")
    node = opts.node_ids[0]
    if node not in ids:
        raise BadRequestError(f"--node-id {node!r} is not in the cluster ({ids})")
    return shard_map, {opts.data_dir: node}


def restore(opts: RestoreOptions, out: TextIO | None = sys.stderr) -> dict[str, object]:
    """Restore per the module doc; returns a summary. Raises PulsarError subclasses."""
    manifest = choose_backup(list_backups(opts.src), opts.backup_id, opts.until_ns)
    shard_map, targets = _targets(opts, manifest)
    for target in targets:
        if os.path.exists(target) and (not os.path.isdir(target) or _entries(target)):
            raise BadRequestError(f"{target} exists and is not empty: refusing to overwrite it")
    needed = {s for node in targets.values() for s in _held(shard_map, node)}
    verify_backup(opts.src, manifest, out, needed)
    # PITR: the archived records of each shard, read (and checked) before writing anything.
    extra: dict[int, list[WalRecord]] = {}
    summary: dict[str, object] = {"backup": manifest.id, "shards": {}}
    if opts.until_ns is not None:
        for s in (s for s in manifest.shards if s.shard in needed):
            records, newest, problems = archived_records(
                opts.wal_archives,
                None if manifest.mode == "standalone" else s.shard,
                s.applied_index,
                opts.until_ns,
            )
            for problem in problems:
                _say(out, f"restore: warning: archived WAL: {problem}")
            if newest < opts.until_ns:
                _say(
                    out,
                    f"restore: warning: shard {s.shard}: the archive ends at "
                    f"{format_rfc3339(newest) if newest else 'nothing'}, before --until: writes "
                    "after that were not archived (still in a live WAL?)",
                )
            extra[s.shard] = records
    plan = {t: [manifest.shard(s) for s in _held(shard_map, n)] for t, n in targets.items()}
    files = [f for held in plan.values() for s in held for f in s.files]
    progress = Progress(len(files), sum(f.size for f in files), out, "restore")
    for target, node in targets.items():
        _restore_target(
            opts.src, target, node, plan[target], shard_map, extra, manifest, summary, progress
        )
    progress.finish()
    return summary


def _restore_target(
    src: str,
    target: str,
    node: str | None,
    held: list[ShardBackup],
    shard_map: ShardMap | None,
    extra: dict[int, list[WalRecord]],
    manifest: BackupManifest,
    summary: dict[str, object],
    progress: Progress,
) -> None:
    out = progress.out
    # A target that exists (empty) may be a mount point (a Kubernetes volume): build inside it
    # and move the entries up (same file system). Else build next to it and rename.
    inside = os.path.isdir(target)
    stage = os.path.join(target, _RESTORING) if inside else target.rstrip("/") + _RESTORING
    shutil.rmtree(stage, ignore_errors=True)
    os.makedirs(stage)
    fs = OsFileSystem()
    try:
        for s in held:
            engine_dir = stage if shard_map is None else os.path.join(stage, "shards", str(s.shard))
            for f in s.files:
                dst = os.path.join(engine_dir, f.path)
                os.makedirs(os.path.dirname(dst), exist_ok=True)
                shutil.copyfile(_file_path(src, s.shard, f.stored_in, f.path), dst)
                with open(dst, "rb+") as fh:
                    os.fsync(fh.fileno())
                progress.add(f.size, file_done=True)
            records = extra.get(s.shard, [])
            wal_dir = os.path.join(engine_dir, "wal")
            os.makedirs(wal_dir, exist_ok=True)
            if records:
                seqs = [int(n[:-4]) for n in os.listdir(wal_dir) if n.endswith(".wal")]
                name = f"{max(seqs, default=0) + 1:016d}.wal"
                write_segment_file(fs, os.path.join(wal_dir, name), records)
            engine = Engine(engine_dir, EngineOptions())
            try:
                last = engine.last_index
                problems = list(engine.stats.recovery.problems)
            finally:
                engine.close(flush=False)
            if problems:
                raise CorruptionError(
                    engine_dir, 0, "restored engine reported: " + "; ".join(problems)
                )
            if shard_map is not None and last >= 2:
                raft_dir = os.path.join(stage, "raft")
                os.makedirs(raft_dir, exist_ok=True)
                nodes = [
                    shard_map.peer(n).shard_raft_address(s.shard)
                    for n in shard_map.replicas[s.shard]
                ]
                write_restored_dump(os.path.join(raft_dir, f"shard-{s.shard}.dump"), last, nodes)
            shards = summary["shards"]
            assert isinstance(shards, dict)
            shards.setdefault(str(s.shard), {})[node or "standalone"] = {
                "backup_index": s.applied_index,
                "restored_index": last,
                "archived_records_replayed": len(records),
            }
            _say(
                out,
                f"restore: {node or 'standalone'} shard {s.shard}: index {s.applied_index} from "
                f"backup {manifest.id}, {len(records)} archived records replayed, now at {last}",
            )
        if inside:
            for name in os.listdir(stage):
                os.rename(os.path.join(stage, name), os.path.join(target, name))
            os.rmdir(stage)
        else:
            os.rename(stage, target)
        _fsync_dir(target)
        _fsync_dir(os.path.dirname(os.path.abspath(target)))
    except BaseException:
        shutil.rmtree(stage, ignore_errors=True)
        raise


def _held(shard_map: ShardMap | None, node: str | None) -> list[int]:
    """The shards a target holds: 0 for standalone, the node's replicas in a cluster."""
    if shard_map is None or node is None:
        return [0]
    return list(shard_map.shards_of(node))


def _entries(directory: str) -> list[str]:
    """What a target directory holds, ignoring a file system's lost+found and a debris stage."""
    return [n for n in os.listdir(directory) if n not in ("lost+found", _RESTORING)]


def _fsync_dir(path: str) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _say(out: TextIO | None, text: str) -> None:
    if out is not None:
        print(text, file=out, flush=True)
