"""A real cluster for integration tests: `pulsar node` processes and a `pulsar coordinator`.

All on 127.0.0.1 with short Raft timeouts (so elections take well under a second); every wait
is bounded; `stop()` kills whatever is still running.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

import httpx

from tests.support.netns import NetNamespaces
from tests.support.processes import free_port, free_port_range, pulsar_command, wait_until

__all__ = ["Cluster", "SECRET", "free_port_range"]

SECRET = "integration-test-secret"


class Cluster:
    def __init__(
        self,
        root: Path,
        nodes: int = 3,
        shards: int = 4,
        replication_factor: int = 3,
        election_ms: int = 400,
        fsync: str = "always",
        env: dict[str, str] | None = None,
        shard_deadline_s: float = 8.0,
        netns: NetNamespaces | None = None,
    ) -> None:
        self.root = root
        self.n = nodes
        self.shards = shards
        self.netns = netns
        if netns is None:
            self.hosts = ["127.0.0.1"] * nodes
            self.api_ports = [free_port() for _ in range(nodes)]
            self.raft_ports = [free_port_range(shards + 1) for _ in range(nodes)]
        else:  # one private namespace (and address) per node: the default ports are free there
            self.hosts = list(netns.addresses)
            self.api_ports = [7100] * nodes
            self.raft_ports = [7200] * nodes
        self.peers = ",".join(
            f"node-{i}={self.hosts[i]}:{self.api_ports[i]}:{self.raft_ports[i]}"
            for i in range(nodes)
        )
        self.common = [
            "--peers", self.peers,
            "--shards", str(shards),
            "--replication-factor", str(replication_factor),
            "--raft-election-timeout-ms", str(election_ms),
            "--fsync", fsync,
            "--leader-balance-interval-s", "1",
            "--log-level", "warning",
        ]  # fmt: skip
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        self.coordinator_port = free_port()
        self.shard_deadline_s = shard_deadline_s
        self.env = {**os.environ, "PULSAR_CLUSTER_SECRET": SECRET, **(env or {})}
        self.headers = {"Authorization": f"Bearer {SECRET}"}

    # --- processes -------------------------------------------------------------------------------

    def _spawn(self, name: str, args: list[str], prefix: list[str] | None = None) -> None:
        with open(self.root / f"{name}.log", "ab") as log:
            # `ip netns exec` execs the command: the pid stays the pulsar process's.
            self.procs[name] = subprocess.Popen(
                [*(prefix or []), *pulsar_command(), *args],
                stdout=log,
                stderr=subprocess.STDOUT,
                env=self.env,
            )

    def start_node(self, i: int) -> None:
        self._spawn(
            f"node-{i}",
            [
                "node", "--node-id", f"node-{i}",
                "--data-dir", str(self.root / f"node-{i}"),
                "--host", self.hosts[i], "--port", str(self.api_ports[i]),
                "--raft-port", str(self.raft_ports[i]),
                *self.common,
            ],
            None if self.netns is None else self.netns.exec_prefix(i),
        )  # fmt: skip

    def start(self, timeout_s: float = 30.0) -> Cluster:
        for i in range(self.n):
            self.start_node(i)
        self._spawn(
            "coordinator",
            [
                "coordinator", "--host", "127.0.0.1", "--port", str(self.coordinator_port),
                "--nodes", ",".join(
                    f"{h}:{p}" for h, p in zip(self.hosts, self.api_ports, strict=True)
                ),
                "--log-level", "warning",
                "--shard-deadline-s", str(self.shard_deadline_s),
            ],
        )  # fmt: skip
        self.wait_ready(timeout_s)
        return self

    def wait_ready(self, timeout_s: float = 30.0) -> None:
        def ready() -> bool:
            for name, proc in self.procs.items():
                if proc.poll() is not None:
                    raise RuntimeError(f"{name} exited with {proc.returncode}: {self.log(name)}")
            try:
                return httpx.get(self.url + "/ready", timeout=3).status_code == 200
            except httpx.HTTPError:
                return False

        wait_until(ready, timeout_s, 0.1, "cluster readiness")
        for i in range(self.n):
            if self.procs[f"node-{i}"].poll() is None:
                self.wait_node_ready(i, timeout_s)

    def wait_node_ready(self, i: int, timeout_s: float = 30.0) -> None:
        """Node i serves its API and every shard it holds knows a leader."""

        def ready() -> bool:
            proc = self.procs[f"node-{i}"]
            if proc.poll() is not None:
                raise RuntimeError(
                    f"node-{i} exited with {proc.returncode}: {self.log(f'node-{i}')}"
                )
            try:
                return httpx.get(self.node_url(i) + "/ready", timeout=3).status_code == 200
            except httpx.HTTPError:
                return False

        wait_until(ready, timeout_s, 0.1, f"node-{i} readiness")

    def kill(self, name: str, sig: int = signal.SIGKILL) -> None:
        proc = self.procs[name]
        proc.send_signal(sig)
        proc.wait(timeout=30)

    def stop(self) -> None:
        for proc in self.procs.values():
            if proc.poll() is None:
                proc.kill()
        for proc in self.procs.values():
            proc.wait(timeout=30)

    def log(self, name: str) -> str:
        try:
            return (self.root / f"{name}.log").read_text(errors="replace")[-3000:]
        except FileNotFoundError:
            return ""

    # --- HTTP ------------------------------------------------------------------------------------

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.coordinator_port}"

    def node_url(self, i: int) -> str:
        return f"http://{self.hosts[i]}:{self.api_ports[i]}"

    def node_get(self, i: int, path: str) -> Any:
        r = httpx.get(self.node_url(i) + path, headers=self.headers, timeout=5)
        r.raise_for_status()
        return r.json()

    def leader_of(self, shard: int, timeout_s: float = 15.0) -> int:
        """Index of the node that leads `shard` (agreed by that node itself)."""

        def find() -> int | None:
            for i in range(self.n):
                if self.procs[f"node-{i}"].poll() is not None:
                    continue
                try:
                    st = self.node_get(i, "/v1/status")["shards"].get(str(shard))
                except httpx.HTTPError:
                    continue
                if st and st["role"] == "leader":
                    return i
            return None

        # One look decides: leadership may move between two looks (the nodes hand it to each
        # shard's preferred replica every few seconds), so the answer is the look that found it.
        seen: list[int] = []

        def look() -> bool:
            leader = find()
            if leader is not None:
                seen.append(leader)
            return leader is not None

        wait_until(look, timeout_s, 0.05, f"leader of {shard}")
        return seen[-1]

    def checksums(self, shard: int, timeout_s: float = 20.0) -> dict[int, dict[str, Any]]:
        """Checksum of every replica of `shard` once they agree (or the last seen, on timeout)."""
        seen: dict[int, dict[str, Any]] = {}
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            seen = {i: self.node_get(i, f"/v1/shards/{shard}/checksum") for i in range(self.n)}
            if len({s["checksum"] for s in seen.values()}) == 1:
                return seen
            time.sleep(0.2)
        return seen
