"""The `pulsar` command: server roles and client commands.

    pulsar standalone --data-dir DIR --port 8080     coordinator + one node in one process
    pulsar write --url URL --db DB [FILE]            line protocol from FILE or stdin
    pulsar query --url URL '{"db": ..., ...}'        native JSON query
    pulsar admin status|flush --url URL

Server flags may also come from `PULSAR_<FLAG>` environment variables or a TOML file
(`--config`); see pulsar_cluster/config.py.

This module is the composition root: it is the one place that imports the roles (node,
coordinator) to start them, and it does so lazily, inside the command that needs them.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import sys
from typing import Any

from pulsar_cluster import __version__
from pulsar_cluster.config import apply_config_sources

__all__ = ["main", "build_parser"]


def _add_engine_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data-dir", default="./data", help="directory for all data (default ./data)")
    p.add_argument(
        "--fsync",
        choices=["always", "interval", "never"],
        default="always",
        help="WAL fsync policy; 'always' acknowledges only durable writes",
    )
    p.add_argument(
        "--memtable-mb",
        type=int,
        default=64,
        help="flush the memtable to an SSTable above this size (MB)",
    )
    p.add_argument("--log-level", default="info", help="debug, info, warning, error")


def _add_admin_token_flag(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--admin-token",
        help="bearer token for /api/v1/admin/* (prefer env PULSAR_ADMIN_TOKEN); "
        "unset: admin API for loopback clients only",
    )


def _add_federation_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--cluster-name",
        default="local",
        help="this cluster's name in federated queries (default 'local')",
    )
    p.add_argument(
        "--remote-cluster",
        action="append",
        default=[],
        metavar="NAME=URL",
        help="a remote cluster to federate queries to (repeatable; env "
        "PULSAR_REMOTE_CLUSTERS=a=URL,b=URL; token from PULSAR_REMOTE_TOKEN_<NAME>)",
    )
    p.add_argument(
        "--remote-timeout",
        type=float,
        default=10.0,
        help="seconds a remote cluster may take to answer (default 10)",
    )
    p.add_argument(
        "--federation-token",
        help="token remote coordinators must present to query this cluster "
        "(prefer env PULSAR_FEDERATION_TOKEN); unset: federation endpoint closed",
    )


def federation_settings(args: argparse.Namespace, file_values: dict[str, Any]) -> dict[str, Any]:
    """CoordinatorSettings keyword arguments for federation, from flags, env and TOML."""
    from pulsar_cluster.federation import parse_remote_clusters

    try:
        remotes = parse_remote_clusters(
            args.remote_cluster,
            os.environ,
            file_values.get("remote_clusters"),
            args.remote_timeout,
            args.cluster_name,
        )
    except ValueError as exc:
        raise SystemExit(f"pulsar: {exc}") from None
    return {
        "cluster_name": args.cluster_name,
        "remote_clusters": remotes,
        "federation_token": args.federation_token,
    }


def build_parser() -> tuple[argparse.ArgumentParser, dict[str, argparse.ArgumentParser]]:
    parser = argparse.ArgumentParser(prog="pulsar", description="PulsarDB time-series database")
    parser.add_argument("--version", action="version", version=f"pulsar {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    commands: dict[str, argparse.ArgumentParser] = {}

    p = sub.add_parser("standalone", help="coordinator and one storage node in one process")
    p.add_argument("--config", help="TOML configuration file")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=8080, help="HTTP port (default 8080)")
    p.add_argument("--max-body-mb", type=int, default=25, help="largest write body (MB)")
    p.add_argument(
        "--parse-workers",
        type=int,
        default=-1,
        help="processes parsing write bodies (default: one per core; 0: none)",
    )
    _add_admin_token_flag(p)
    _add_federation_flags(p)
    _add_engine_flags(p)
    commands["standalone"] = p

    p = sub.add_parser("write", help="write line protocol from a file or stdin")
    p.add_argument("--url", default="http://127.0.0.1:8080")
    p.add_argument("--db", required=True)
    p.add_argument("--precision", default="ns")
    p.add_argument("file", nargs="?", help="line protocol file (default: stdin)")
    commands["write"] = p

    p = sub.add_parser("query", help="run a native JSON query and print the JSON answer")
    p.add_argument("--url", default="http://127.0.0.1:8080")
    p.add_argument("query", help='JSON, e.g. \'{"db": "x", "measurement": "cpu"}\'')
    commands["query"] = p

    p = sub.add_parser("admin", help="operate a running server")
    p.add_argument("--url", default="http://127.0.0.1:8080")
    p.add_argument("action", choices=["status", "flush"])
    p.add_argument(
        "--admin-token",
        default=os.environ.get("PULSAR_ADMIN_TOKEN"),
        help="admin bearer token (default: env PULSAR_ADMIN_TOKEN)",
    )
    commands["admin"] = p
    return parser, commands


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser, commands = build_parser()
    file_values: dict[str, Any] = {}
    if argv and argv[0] in commands and argv[0] in ("standalone",):
        file_values = apply_config_sources(commands[argv[0]], argv[1:])
    args = parser.parse_args(argv)
    args.config_file_values = file_values
    handler = globals()[f"_cmd_{args.command}"]
    return int(handler(args) or 0)


def _role(module: str) -> Any:
    return importlib.import_module(module)


def _cmd_standalone(args: argparse.Namespace) -> int:
    from pulsar_cluster.logs import configure_logging

    configure_logging(args.log_level)
    engine_mod = _role("node.engine.engine")
    options = engine_mod.EngineOptions(
        fsync=args.fsync, memtable_bytes=args.memtable_mb * 1024 * 1024
    )
    node = _role("node.local").LocalNode(args.data_dir, options)
    app_mod = _role("coordinator.app")
    parse_workers = args.parse_workers
    if parse_workers < 0:
        parse_workers = _role("coordinator.parsepool").default_parse_workers()
    settings = app_mod.CoordinatorSettings(
        max_body_bytes=args.max_body_mb * 1024 * 1024,
        parse_workers=parse_workers,
        admin_token=args.admin_token,
        **federation_settings(args, args.config_file_values),
    )
    app = app_mod.create_app(node, settings)
    _role("coordinator.server").serve(app, args.host, args.port)
    return 0


def _client(url: str, token: str | None = None) -> Any:
    from pulsar_cluster.client import PulsarClient

    return PulsarClient(url, token=token)


def _run_client(func: Any) -> int:
    from pulsar_cluster.client import ClientError

    try:
        result = func()
    except ClientError as exc:
        print(f"pulsar: {exc}", file=sys.stderr)
        return 1
    except OSError as exc:
        print(f"pulsar: cannot reach the server: {exc}", file=sys.stderr)
        return 1
    if result is not None:
        print(json.dumps(result, indent=2))
    return 0


def _cmd_write(args: argparse.Namespace) -> int:
    if args.file:
        with open(args.file, "rb") as f:
            data = f.read()
    else:
        data = sys.stdin.buffer.read()
    with _client(args.url) as client:
        return _run_client(lambda: client.write_lines(args.db, data, args.precision))


def _cmd_query(args: argparse.Namespace) -> int:
    try:
        query = json.loads(args.query)
    except json.JSONDecodeError as exc:
        print(f"pulsar: the query is not valid JSON: {exc}", file=sys.stderr)
        return 2
    with _client(args.url) as client:
        return _run_client(lambda: client.query(query))


def _cmd_admin(args: argparse.Namespace) -> int:
    with _client(args.url, args.admin_token) as client:
        if args.action == "status":
            return _run_client(lambda: client.admin("GET", "status"))
        return _run_client(lambda: client.admin("POST", "flush", wait="true"))


if __name__ == "__main__":
    raise SystemExit(main())
