"""The `pulsar` command: server roles and client commands.

    pulsar standalone --data-dir DIR --port 8080     coordinator + one node in one process
    pulsar node --node-id ID --peers LIST ...         a storage node (Raft shard replicas)
    pulsar coordinator --nodes HOST:PORT,... ...      a stateless coordinator of a cluster
    pulsar local --nodes N --data-dir DIR --port P    N node processes + a coordinator, supervised
    pulsar write --url URL --db DB [FILE]            line protocol from FILE or stdin
    pulsar query --url URL '{"db": ..., ...}'        native JSON query
    pulsar admin status|flush|caches|reload --url URL
    pulsar admin nodes|drain-node ID|remove-node ID|rebalance --url URL (membershipcli.py)
    pulsar admin backup --url URL DEST_DIR [--incremental]      (pulsar_cluster/backupcli.py)
    pulsar admin restore SRC_DIR --data-dir DIR [--until TIME]  (offline)

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
from pulsar_cluster.config import apply_config_sources, parse_retention

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
        help="memory for memtables, MB (default 64); a node divides it among its shard "
        "replicas; a memtable above its share is flushed to an SSTable",
    )
    p.add_argument(
        "--block-cache-mb",
        type=int,
        default=64,
        help="memory for decoded SSTable blocks, MB (default 64); a node divides it among its "
        "shard replicas (`pulsar admin caches` shows the hit ratio)",
    )
    p.add_argument(
        "--rollup-cache-mb",
        type=int,
        default=32,
        help="memory for the rollup cache (exact window states of GROUP BY time() aggregates), "
        "MB (default 32; 0 disables it); a node divides it among its shard replicas",
    )
    p.add_argument(
        "--retention",
        action="append",
        default=[],
        metavar="DB[/MEASUREMENT]=DURATION",
        help="keep a database's data this long, e.g. telemetry=30d, with per-measurement "
        "overrides telemetry/debug=1d (repeatable; env PULSAR_RETENTION, comma-separated); "
        "expired partitions are dropped whole; default: keep forever",
    )
    p.add_argument(
        "--wal-archive-dir",
        default=None,
        help="keep sealed WAL segments here instead of deleting them (point-in-time "
        "recovery; same file system as --data-dir); a node uses DIR/<node id>/shard-<s>/",
    )
    p.add_argument("--log-level", default="info", help="debug, info, warning, error")


def _engine_options(args: argparse.Namespace) -> Any:
    """EngineOptions from the engine flags (`_add_engine_flags`)."""
    engine_mod = _role("node.engine.engine")
    try:
        specs = parse_retention(args.retention)
    except ValueError as exc:
        raise SystemExit(f"pulsar: {exc}") from None
    retention = {
        db: engine_mod.RetentionPolicy(duration, overrides)
        for db, (duration, overrides) in specs.items()
    }
    return engine_mod.EngineOptions(
        fsync=args.fsync,
        memtable_bytes=args.memtable_mb * 1024 * 1024,
        block_cache_bytes=max(0, args.block_cache_mb) * 1024 * 1024,
        rollup_cache_bytes=max(0, args.rollup_cache_mb) * 1024 * 1024,
        retention=retention,
        wal_archive_dir=args.wal_archive_dir,
    )


def _add_admin_token_flag(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--admin-token",
        help="bearer token for /api/v1/admin/* (prefer env PULSAR_ADMIN_TOKEN); "
        "unset: admin API for loopback clients only",
    )


def _add_access_log_flag(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--access-log",
        default="on",
        help="one log line per HTTP request (on, the default); off: only failed requests "
        "(InfluxDB's [http] log-enabled)",
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
    _add_access_log_flag(p)
    _add_federation_flags(p)
    _add_engine_flags(p)
    _role("pulsar_cluster.querylimits").add_query_limit_flags(p)
    _role("pulsar_cluster.tracing").add_tracing_flag(p)
    commands["standalone"] = p

    p = sub.add_parser("node", help="storage node: Raft shard replicas and the node API")
    p.add_argument("--config", help="TOML configuration file")
    p.add_argument("--node-id", required=False, help="stable node name; must be in --peers")
    p.add_argument("--host", default="127.0.0.1", help="node API listen address")
    p.add_argument("--port", type=int, default=7100, help="node API port (default 7100)")
    p.add_argument("--raft-host", default=None, help="Raft listen address (default: advertised)")
    p.add_argument("--raft-port", type=int, default=7200, help="Raft base port (default 7200)")
    p.add_argument("--advertise-host", default=None, help="how others reach this node")
    p.add_argument(
        "--peers",
        default=None,
        help="initial members id=host:apiport:raftport,... identical on every node "
        "(default: this node alone)",
    )
    p.add_argument("--shards", type=int, default=16, help="shard count, fixed at creation")
    p.add_argument("--replication-factor", type=int, default=3, help="replicas per shard")
    p.add_argument("--cluster-secret", default=None, help="Raft password and node API token")
    p.add_argument(
        "--join",
        default=None,
        help="join an existing cluster through this node API URL (host:port); needs --node-id; "
        "ignored when --node-id is in --peers (an initial member)",
    )
    p.add_argument(
        "--rebalance-on-join",
        action="store_true",
        help="after joining (first start with --join only), rebalance replicas onto this node "
        "in rounds until balanced, as `pulsar admin rebalance` does",
    )
    p.add_argument(
        "--raft-time-stamps",
        choices=["on", "off"],
        default="on",
        help="leaders stamp each write's accepted time into the Raft command (point-in-time "
        "recovery); 'off' only while upgrading from a version without it (docs/operations.md)",
    )
    p.add_argument(
        "--raft-election-timeout-ms",
        type=int,
        default=1500,
        help="minimum Raft election timeout; the maximum is twice it (default 1500)",
    )
    p.add_argument(
        "--leader-balance-interval-s",
        type=float,
        default=5.0,
        help="move leadership to each shard's preferred replica this often (0: never)",
    )
    _add_engine_flags(p)
    _role("pulsar_cluster.tracing").add_tracing_flag(p)
    commands["node"] = p

    p = sub.add_parser("coordinator", help="stateless coordinator in front of storage nodes")
    p.add_argument("--config", help="TOML configuration file")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8080)
    p.add_argument("--nodes", default="127.0.0.1:7100", help="node API addresses host:port,...")
    p.add_argument("--cluster-secret", default=None, help="node API token")
    p.add_argument(
        "--shard-deadline-s",
        type=float,
        default=20.0,
        help="how long one request may retry a shard (leader changes) before 503 (default 20)",
    )
    _add_federation_flags(p)
    p.add_argument("--max-body-mb", type=int, default=25, help="largest write body (MB)")
    p.add_argument(
        "--parse-workers",
        type=int,
        default=-1,
        help="processes parsing write bodies (default: one per core; 0: none)",
    )
    _add_admin_token_flag(p)
    _add_access_log_flag(p)
    p.add_argument("--log-level", default="info")
    _role("pulsar_cluster.querylimits").add_query_limit_flags(p)
    _role("pulsar_cluster.tracing").add_tracing_flag(p)
    commands["coordinator"] = p

    p = sub.add_parser("local", help="N node processes and a coordinator on 127.0.0.1")
    p.add_argument("--config", help="TOML configuration file")
    p.add_argument("--nodes", type=int, default=3, help="node processes (default 3)")
    p.add_argument("--port", type=int, default=8080, help="coordinator port (default 8080)")
    p.add_argument("--node-port-base", type=int, default=7100, help="node i API: base + i")
    p.add_argument("--raft-port-base", type=int, default=7200, help="Raft ports from here up")
    p.add_argument("--shards", type=int, default=16)
    p.add_argument("--replication-factor", type=int, default=None, help="default min(3, nodes)")
    p.add_argument("--cluster-secret", default=None, help="default: generated, kept in DATA_DIR")
    p.add_argument("--raft-election-timeout-ms", type=int, default=1500)
    _add_federation_flags(p)
    _add_engine_flags(p)
    commands["local"] = p

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
    p.add_argument(
        "action",
        choices=[
            "status",
            "flush",
            "caches",
            "reload",
            "backup",
            "restore",
            *_membership_actions(),
        ],
    )
    p.add_argument("--no-wait", action="store_true", help="drain-node/rebalance: do not wait")
    p.add_argument("--json", action="store_true", help="status: print the raw JSON")
    _role("pulsar_cluster.opscli").add_ops_flags(p)
    p.add_argument(
        "--admin-token",
        default=os.environ.get("PULSAR_ADMIN_TOKEN"),
        help="admin bearer token (default: env PULSAR_ADMIN_TOKEN)",
    )
    _role("pulsar_cluster.backupcli").add_flags(p)
    commands["admin"] = p
    return parser, commands


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parse_command(argv)
    args.reload_argv = argv  # a configuration reload parses the same command line again
    handler = globals()[f"_cmd_{args.command}"]
    return int(handler(args) or 0)


def parse_command(argv: list[str], exit_on_error: bool = True) -> argparse.Namespace:
    """Flags, environment and TOML file -> the command's arguments (`config_file_values`: the
    file's own values). Without `exit_on_error`, a bad value raises ValueError (reload)."""
    parser, commands = build_parser()
    if not exit_on_error:
        for p in (parser, *commands.values()):
            p.error = _raise_value_error  # type: ignore[method-assign]
    file_values: dict[str, Any] = {}
    if argv and argv[0] in commands and argv[0] in ("standalone", "node", "coordinator", "local"):
        file_values = apply_config_sources(commands[argv[0]], argv[1:])
    args, extra = parser.parse_known_args(argv)
    # `admin backup --url URL DEST_DIR`: argparse binds the optional positional right after
    # the action, so a target given after the flags comes back as an extra argument.
    if args.command == "admin" and args.target is None and len(extra) == 1:
        args.target = extra.pop()
    if extra:
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    args.config_file_values = file_values
    return args


def _raise_value_error(message: str) -> Any:
    raise ValueError(message)


def _attach_reloader(
    app: Any, args: argparse.Namespace, role: str, live: list[Any], registry: Any
) -> None:
    """SIGHUP and the reload routes re-read this command's configuration (reload.py)."""
    reload_mod = _role("pulsar_cluster.reload")

    def load() -> tuple[argparse.Namespace, dict[str, Any]]:
        new = parse_command(args.reload_argv, exit_on_error=False)
        return new, new.config_file_values

    reloader = reload_mod.Reloader(
        role, load, args, args.config_file_values, [reload_mod.log_level_setting(), *live]
    )
    app.state.reloader = reloader
    registry.register(reload_mod.ReloadCollector(reloader))


def _setup_tracing(app: Any, args: argparse.Namespace, instance: str | None = None) -> None:
    """--tracing: the tracer of this process and a span per request (pulsar_cluster/tracing)."""
    tracing = _role("pulsar_cluster.tracing")
    try:
        enabled = tracing.configure_tracing(args.tracing, f"pulsardb-{args.command}", instance)
    except (tracing.TracingUnavailableError, ValueError) as exc:
        raise SystemExit(f"pulsar: {exc}") from None
    if enabled:
        app.add_middleware(tracing.TracingMiddleware)  # outermost: spans cover everything


def _role(module: str) -> Any:
    return importlib.import_module(module)


def _serve_coordinator(
    backend: Any, args: argparse.Namespace, live: list[Any] | None = None
) -> int:
    """The coordinator's HTTP API over `backend`, configured by the command's flags."""
    app_mod = _role("coordinator.app")
    parse_workers = args.parse_workers
    if parse_workers < 0:
        parse_workers = _role("coordinator.parsepool").default_parse_workers()
    try:
        limits = _role("pulsar_cluster.querylimits").query_limits(args)
    except ValueError as exc:
        raise SystemExit(f"pulsar: {exc}") from None
    try:
        access_log = _role("coordinator.requestlog").access_log_enabled(args.access_log)
    except ValueError as exc:
        raise SystemExit(f"pulsar: {exc}") from None
    settings = app_mod.CoordinatorSettings(
        max_body_bytes=args.max_body_mb * 1024 * 1024,
        access_log=access_log,
        parse_workers=parse_workers,
        admin_token=args.admin_token,
        query_limits=limits,
        **federation_settings(args, args.config_file_values),
    )
    app = app_mod.create_app(backend, settings)
    if hasattr(backend, "shard_metrics"):  # standalone: its engine's metrics, as a node has them
        storage = _role("pulsar_cluster.storagemetrics").StorageCollector(backend.shard_metrics)
        app.state.pulsar.metrics.registry.register(storage)
    app.state.metrics_registry = app.state.pulsar.metrics.registry  # serving.py adds to it
    live_settings = _role("coordinator.reloading").coordinator_live_settings(app.state.pulsar)
    _attach_reloader(
        app,
        args,
        args.command,
        [*live_settings, *(live or [])],
        app.state.pulsar.metrics.registry,
    )
    _setup_tracing(app, args)
    _role("coordinator.server").serve(app, args.host, args.port)
    return 0


def _cmd_standalone(args: argparse.Namespace) -> int:
    from pulsar_cluster.logs import configure_logging

    configure_logging(args.log_level)
    node = _role("node.local").LocalNode(args.data_dir, _engine_options(args))
    retention = _role("node.reloading").retention_setting(lambda: [node.engine])
    return _serve_coordinator(node, args, [retention])


def _secret(args: argparse.Namespace) -> str:
    if not args.cluster_secret:
        raise SystemExit(
            "pulsar: a cluster secret is required (--cluster-secret or PULSAR_CLUSTER_SECRET): "
            "it authenticates and encrypts Raft traffic and the node API"
        )
    return str(args.cluster_secret)


def _cmd_node(args: argparse.Namespace) -> int:
    import dataclasses
    import os

    from pulsar_cluster.errors import PulsarError
    from pulsar_cluster.logs import configure_logging
    from pulsar_cluster.shardmap import Peer, parse_peers, static_shard_map

    configure_logging(args.log_level)
    secret = _secret(args)
    advertise = args.advertise_host or args.host
    # --join with --peers: an initial peer starts as one (the flag is ignored), any other node
    # joins. One set of flags for every pod of a StatefulSet (deploy/helm).
    if args.join and args.peers and args.node_id:
        try:
            if args.node_id in {p.id for p in parse_peers(args.peers)}:
                args.join = None
        except PulsarError as exc:
            raise SystemExit(f"pulsar: {exc}") from None
    first_join = False
    try:
        if args.join:
            from pulsar_cluster.membershipcli import join_cluster, joined_before

            if not args.node_id:
                raise SystemExit("pulsar: --join needs --node-id")
            me = Peer(args.node_id, advertise, args.port, args.raft_port)
            peers = []
            # Only a first join rebalances: a drained node restarted before its removal must
            # not take replicas back.
            first_join = not joined_before(os.path.abspath(args.data_dir), me.id)
            shard_map = join_cluster(args.join, secret, me, os.path.abspath(args.data_dir))
            node_id = me.id
        elif args.peers:
            peers = parse_peers(args.peers)
        else:
            peers = [Peer(args.node_id or "node-0", advertise, args.port, args.raft_port)]
        if not args.join:
            wanted = args.node_id or (peers[0].id if len(peers) == 1 else None)
            if wanted not in {p.id for p in peers}:
                raise SystemExit(f"pulsar: --node-id {wanted!r} is not in --peers")
            node_id = str(wanted)
            shard_map = static_shard_map(peers, args.shards, args.replication_factor)
    except PulsarError as exc:
        raise SystemExit(f"pulsar: {exc}") from None
    raft_settings = _role("node.raft.settings")
    service_mod = _role("node.service")
    server_mod = _role("node.server")
    election = args.raft_election_timeout_ms / 1000.0
    settings = service_mod.NodeSettings(
        node_id=node_id,
        data_dir=args.data_dir,
        secret=secret,
        engine=_engine_options(args),
        raft=dataclasses.replace(
            raft_settings.RaftSettings.from_env(),
            election_min_s=election,
            election_max_s=2 * election,
            leader_fallback_s=max(2 * election, 1.0),
        ),
        raft_bind_host=args.raft_host,
        raft_time_stamps=args.raft_time_stamps == "on",
    )
    try:
        if not args.join:  # a joined node's shape comes from the cluster (DIR/map.json)
            service_mod.check_cluster_file(os.path.abspath(args.data_dir), shard_map, node_id)
    except PulsarError as exc:
        raise SystemExit(f"pulsar: {exc}") from None
    service = service_mod.NodeService(settings, shard_map)
    service.start()
    app = server_mod.create_node_app(
        service,
        secret,
        args.leader_balance_interval_s,
        rebalance_after_start=bool(args.rebalance_on_join and first_join),
    )
    _attach_reloader(
        app,
        args,
        "node",
        [_role("node.reloading").retention_setting(service.engines)],
        app.state.metrics_registry,
    )
    _setup_tracing(app, args, node_id)
    server_mod.serve_node(app, args.host, args.port)
    return 0


def _cmd_coordinator(args: argparse.Namespace) -> int:
    from pulsar_cluster.logs import configure_logging

    configure_logging(args.log_level)
    secret = _secret(args)
    seeds = [n.strip() for n in args.nodes.split(",") if n.strip()]
    cluster_mod = _role("coordinator.cluster")
    backend = cluster_mod.ClusterBackend(
        seeds,
        secret,
        cluster_mod.ClusterSettings(
            shard_deadline_s=args.shard_deadline_s,
            call_timeout_s=min(10.0, args.shard_deadline_s),
        ),
    )
    return _serve_coordinator(backend, args)


def _cmd_local(args: argparse.Namespace) -> int:
    from pulsar_cluster.localcluster import LocalCluster, LocalClusterOptions

    options = LocalClusterOptions(
        nodes=args.nodes,
        data_dir=args.data_dir,
        port=args.port,
        node_port_base=args.node_port_base,
        raft_port_base=args.raft_port_base,
        shards=args.shards,
        replication_factor=args.replication_factor or min(3, args.nodes),
        secret=args.cluster_secret,
        election_timeout_ms=args.raft_election_timeout_ms,
        passthrough=[
            "--fsync",
            args.fsync,
            "--memtable-mb",
            str(args.memtable_mb),
            "--block-cache-mb",
            str(args.block_cache_mb),
            "--rollup-cache-mb",
            str(args.rollup_cache_mb),
            "--log-level",
            args.log_level,
            *(x for spec in args.retention for x in ("--retention", spec)),
            *(["--wal-archive-dir", args.wal_archive_dir] if args.wal_archive_dir else []),
        ],
        coordinator_args=[
            "--cluster-name",
            args.cluster_name,
            "--remote-timeout",
            str(args.remote_timeout),
            *(x for r in args.remote_cluster for x in ("--remote-cluster", r)),
            # --federation-token travels in the environment (not visible in `ps`)
        ],
    )
    if args.federation_token:
        os.environ["PULSAR_FEDERATION_TOKEN"] = args.federation_token
    return LocalCluster(options).run()


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


def _status_view(status: Any) -> Any:
    """A cluster's status as a table (printed here); other status documents as JSON."""
    if isinstance(status, dict) and status.get("mode") == "cluster":
        from pulsar_cluster.statusview import format_cluster_status

        print(format_cluster_status(status))
        return None
    return status


def _membership_actions() -> tuple[str, ...]:
    from pulsar_cluster.membershipcli import ADMIN_ACTIONS

    return ADMIN_ACTIONS


def _cmd_admin(args: argparse.Namespace) -> int:
    if args.action in ("backup", "restore"):
        return int(_role("pulsar_cluster.backupcli").run(args))
    with _client(args.url, args.admin_token) as client:
        if args.action in _membership_actions():
            from pulsar_cluster.membershipcli import run_admin_action

            return _run_client(
                lambda: run_admin_action(client, args.action, args.target, not args.no_wait)
            )
        opscli = _role("pulsar_cluster.opscli")
        if args.action in opscli.OPS_ACTIONS:
            return _run_client(lambda: opscli.run_ops_action(args, client))
        if args.action == "status":
            if args.json:
                return _run_client(lambda: client.admin("GET", "status"))
            return _run_client(lambda: _status_view(client.admin("GET", "status")))
        return _run_client(lambda: client.admin("POST", "flush", wait="true"))


if __name__ == "__main__":
    raise SystemExit(main())
