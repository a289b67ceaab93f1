"""`pulsar local`: N `pulsar node` OS processes and one `pulsar coordinator` on 127.0.0.1.

A small supervisor: it starts the processes, restarts any that exits unexpectedly (a crashed
or killed node rejoins its Raft groups and catches up from its journal and the leaders), and on
Ctrl-C / SIGTERM stops the coordinator first, then the nodes (SIGTERM: they flush and close),
killing whatever has not exited after a grace period.

Ports: node i serves its API on `node_port_base + i` and Raft on
`raft_port_base + i * (shards + 1)` up to `... + shards` (metadata group, then one per shard).
Data: DATA_DIR/node-<i>/. The cluster secret, when not given, is generated once and kept in
DATA_DIR/cluster-secret (mode 0600), so a restart of `pulsar local` rejoins the same cluster.
"""

from __future__ import annotations

import os
import secrets
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["LocalCluster", "LocalClusterOptions"]

_HOST = "127.0.0.1"
_GRACE_S = 30.0
_POLL_S = 0.25
#: A process that keeps crashing is restarted at most this often.
_MIN_RESTART_INTERVAL_S = 2.0


@dataclass(slots=True)
class LocalClusterOptions:
    nodes: int = 3
    data_dir: str = "./data"
    port: int = 8080
    node_port_base: int = 7100
    raft_port_base: int = 7200
    shards: int = 16
    replication_factor: int = 3
    secret: str | None = None
    election_timeout_ms: int = 1500
    passthrough: list[str] = field(default_factory=list)
    #: Extra flags of the coordinator (federation).
    coordinator_args: list[str] = field(default_factory=list)


@dataclass(slots=True)
class _Child:
    name: str
    args: list[str]
    log_path: Path
    proc: subprocess.Popen[bytes] | None = None
    started_at: float = 0.0
    restarts: int = 0


def _pulsar() -> list[str]:
    script = Path(sys.executable).with_name("pulsar")
    return [str(script)] if script.exists() else [sys.executable, "-m", "pulsar_cluster.cli"]


def _load_or_create_secret(data_dir: Path) -> str:
    path = data_dir / "cluster-secret"
    try:
        return path.read_text().strip()
    except FileNotFoundError:
        pass
    secret = secrets.token_urlsafe(32)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(secret + "\n")
    return secret


class LocalCluster:
    def __init__(self, options: LocalClusterOptions) -> None:
        if options.nodes < 1:
            raise SystemExit("pulsar: --nodes must be at least 1")
        self.options = options
        self._stopping = False
        self._children: list[_Child] = []

    def _plan(self) -> tuple[str, list[_Child]]:
        o = self.options
        data = Path(o.data_dir)
        data.mkdir(parents=True, exist_ok=True)
        secret = o.secret or _load_or_create_secret(data)
        stride = o.shards + 1
        peers = ",".join(
            f"node-{i}={_HOST}:{o.node_port_base + i}:{o.raft_port_base + i * stride}"
            for i in range(o.nodes)
        )
        children = []
        for i in range(o.nodes):
            args = [
                *_pulsar(), "node",
                "--node-id", f"node-{i}",
                "--data-dir", str(data / f"node-{i}"),
                "--host", _HOST,
                "--port", str(o.node_port_base + i),
                "--raft-port", str(o.raft_port_base + i * stride),
                "--peers", peers,
                "--shards", str(o.shards),
                "--replication-factor", str(o.replication_factor),
                "--raft-election-timeout-ms", str(o.election_timeout_ms),
                *o.passthrough,
            ]  # fmt: skip
            children.append(_Child(f"node-{i}", args, data / f"node-{i}.log"))
        nodes = ",".join(f"{_HOST}:{o.node_port_base + i}" for i in range(o.nodes))
        log_level = (
            o.passthrough[o.passthrough.index("--log-level") + 1]
            if ("--log-level" in o.passthrough)
            else "info"
        )
        coordinator = [
            *_pulsar(), "coordinator",
            "--host", _HOST,
            "--port", str(o.port),
            "--nodes", nodes,
            "--log-level", log_level,
            *o.coordinator_args,
        ]  # fmt: skip
        children.append(_Child("coordinator", coordinator, data / "coordinator.log"))
        return secret, children

    def _spawn(self, child: _Child, secret: str) -> None:
        env = {**os.environ, "PULSAR_CLUSTER_SECRET": secret}
        with open(child.log_path, "ab") as log:
            # Own process group: Ctrl-C reaches the supervisor only, which stops children in
            # order (coordinator first) instead of all at once.
            child.proc = subprocess.Popen(
                child.args, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True
            )
        child.started_at = time.monotonic()

    def run(self) -> int:
        secret, self._children = self._plan()
        signal.signal(signal.SIGINT, self._on_signal)
        signal.signal(signal.SIGTERM, self._on_signal)
        signal.signal(signal.SIGHUP, self._forward_hangup)
        for child in self._children:
            self._spawn(child, secret)
        print(
            f"PulsarDB local cluster: {self.options.nodes} nodes, coordinator on "
            f"http://{_HOST}:{self.options.port} (logs in {self.options.data_dir}/*.log; "
            "Ctrl-C stops)",
            file=sys.stderr,
            flush=True,
        )
        try:
            while not self._stopping:
                for child in self._children:
                    assert child.proc is not None
                    code = child.proc.poll()
                    if code is None or self._stopping:
                        continue
                    if time.monotonic() - child.started_at < _MIN_RESTART_INTERVAL_S:
                        continue  # crash loop: wait before the next restart
                    child.restarts += 1
                    print(
                        f"pulsar local: {child.name} exited with {code}; restarting "
                        f"(restart {child.restarts})",
                        file=sys.stderr,
                        flush=True,
                    )
                    self._spawn(child, secret)
                time.sleep(_POLL_S)
        finally:
            self._stop_all()
        return 0

    def _on_signal(self, signum: int, _frame: object) -> None:
        self._stopping = True

    def _forward_hangup(self, signum: int, _frame: object) -> None:
        """SIGHUP: every child reloads its configuration (pulsar_cluster/reload.py); children
        run in their own sessions, so they do not get the signal otherwise."""
        for child in self._children:
            if child.proc is not None and child.proc.poll() is None:
                child.proc.send_signal(signal.SIGHUP)

    def _stop_all(self) -> None:
        # Coordinator first (no new writes), then the nodes.
        for group in (self._children[-1:], self._children[:-1]):
            for child in group:
                if child.proc is not None and child.proc.poll() is None:
                    child.proc.terminate()
            deadline = time.monotonic() + _GRACE_S
            for child in group:
                if child.proc is None:
                    continue
                try:
                    child.proc.wait(timeout=max(0.1, deadline - time.monotonic()))
                except subprocess.TimeoutExpired:
                    child.proc.kill()
                    child.proc.wait(timeout=10)
        print("pulsar local: stopped", file=sys.stderr, flush=True)
