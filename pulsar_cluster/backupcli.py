"""The `pulsar admin backup` and `pulsar admin restore` subcommands (flags and dispatch).

    pulsar admin backup --url URL DEST_DIR [--incremental]
    pulsar admin restore SRC_DIR --data-dir DIR [--node-id ID | --all-nodes] [--peers LIST]
        [--shards N] [--replication-factor R] [--backup ID] [--until TIME --wal-archive DIR]

Restore runs offline and needs the node's storage code: it is imported lazily from node/ (the
CLI is the composition root, see pulsar_cluster/cli.py).
"""

from __future__ import annotations

import argparse
import importlib
import sys
from typing import Any

from pulsar_cluster.client import ClientError
from pulsar_cluster.errors import PulsarError
from pulsar_cluster.timeutil import parse_time

__all__ = ["add_flags", "run"]


def add_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "target",
        nargs="?",
        help="backup: DEST_DIR to write; restore: SRC_DIR to read; "
        "drain-node/remove-node: the node id",
    )
    p.add_argument(
        "--incremental",
        action="store_true",
        help="backup: copy only files new since the latest backup in DEST_DIR",
    )
    p.add_argument("--data-dir", help="restore: the data directory to create")
    p.add_argument(
        "--node-id",
        action="append",
        default=[],
        help="restore (cluster backup): the node whose data directory --data-dir is",
    )
    p.add_argument(
        "--all-nodes",
        action="store_true",
        help="restore (cluster backup): every node, into --data-dir/<node id>/",
    )
    p.add_argument("--peers", help="restore: the new cluster's --peers (default: the backup's)")
    p.add_argument("--shards", type=int, help="restore: shard count (must equal the backup's)")
    p.add_argument("--replication-factor", type=int, help="restore: replicas per shard")
    p.add_argument("--backup", dest="backup_id", help="restore: this backup id (default: newest)")
    p.add_argument(
        "--until",
        help="restore: point in time (RFC 3339 or int ns): writes accepted at or before it",
    )
    p.add_argument(
        "--wal-archive",
        action="append",
        default=[],
        help="restore --until: a WAL archive directory (repeatable)",
    )


def run(args: argparse.Namespace) -> int:
    try:
        if args.action == "backup":
            return _backup(args)
        return _restore(args)
    except ClientError as exc:
        print(f"pulsar: {exc}", file=sys.stderr)
    except PulsarError as exc:
        print(f"pulsar: {args.action} failed: {exc}", file=sys.stderr)
    except OSError as exc:
        print(f"pulsar: {args.action} failed: {exc}", file=sys.stderr)
    return 1


def _backup(args: argparse.Namespace) -> int:
    from pulsar_cluster.backupclient import run_backup

    if not args.target:
        print("pulsar: admin backup needs DEST_DIR", file=sys.stderr)
        return 2
    manifest = run_backup(args.url, args.target, args.incremental, args.admin_token)
    print(manifest.id)
    return 0


def _restore(args: argparse.Namespace) -> int:
    if not args.target or not args.data_dir:
        print("pulsar: admin restore needs SRC_DIR and --data-dir", file=sys.stderr)
        return 2
    until = None
    if args.until is not None:
        try:
            until = parse_time(args.until)
        except ValueError as exc:
            print(f"pulsar: --until: {exc}", file=sys.stderr)
            return 2
    restore_mod: Any = importlib.import_module("node.restore")
    opts = restore_mod.RestoreOptions(
        src=args.target,
        data_dir=args.data_dir,
        node_ids=args.node_id,
        all_nodes=args.all_nodes,
        peers=args.peers,
        shards=args.shards,
        replication_factor=args.replication_factor,
        until_ns=until,
        backup_id=args.backup_id,
        wal_archives=args.wal_archive,
    )
    restore_mod.restore(opts)
    return 0
