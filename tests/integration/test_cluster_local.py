"""`pulsar local`: starts node processes and a coordinator, restarts a killed node, and stops
everything on Ctrl-C (SIGINT), as `make run` uses it."""

from __future__ import annotations

import os
import signal
import subprocess
from pathlib import Path

import httpx

from tests.support.cluster import free_port_range
from tests.support.processes import free_port, pulsar_command, wait_until

SECRET = "local-test-secret"


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie still answers kill(0); it is gone for our purposes when its state is Z.
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split()[2] != "Z"
    except FileNotFoundError:
        return False


def test_local_cluster_restarts_a_killed_node_and_stops_on_ctrl_c(tmp_path: Path) -> None:
    shards = 2
    port = free_port()
    node_base = free_port_range(3)
    raft_base = free_port_range(3 * (shards + 1))
    log = open(tmp_path / "local.log", "wb")  # noqa: SIM115 - handed to the child
    proc = subprocess.Popen(
        [
            *pulsar_command(), "local", "--nodes", "3", "--data-dir", str(tmp_path / "data"),
            "--port", str(port), "--node-port-base", str(node_base),
            "--raft-port-base", str(raft_base), "--shards", str(shards),
            "--raft-election-timeout-ms", "400", "--cluster-secret", SECRET,
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
    )  # fmt: skip
    log.close()
    url = f"http://127.0.0.1:{port}"
    headers = {"Authorization": f"Bearer {SECRET}"}
    pids: list[int] = []
    try:

        def ready() -> bool:
            assert proc.poll() is None, (tmp_path / "local.log").read_text()
            try:
                return httpx.get(url + "/ready", timeout=3).status_code == 200
            except httpx.HTTPError:
                return False

        wait_until(ready, 60, 0.2, "local cluster readiness")
        line = "m,h=a v=1i 1767225600000000000\n"
        assert httpx.post(f"{url}/write", params={"db": "l"}, content=line).status_code == 204

        def node_pid(i: int) -> int | None:
            try:
                st = httpx.get(f"http://127.0.0.1:{node_base + i}/v1/status", headers=headers)
                return int(st.json()["pid"])
            except (httpx.HTTPError, KeyError, ValueError):
                return None

        first = wait_until(lambda: node_pid(1), 30, 0.1, "node-1 status")
        os.kill(first, signal.SIGKILL)
        wait_until(
            lambda: node_pid(1) not in (None, first), 60, 0.2, "the supervisor restarting node-1"
        )
        wait_until(ready, 60, 0.2, "readiness after the restart")
        pids = [p for p in (node_pid(i) for i in range(3)) if p is not None]
        assert len(pids) == 3
        out = httpx.post(f"{url}/api/v1/query", json={"db": "l", "measurement": "m"}, timeout=30)
        assert out.json()["series"][0]["values"] == [[1767225600000000000, 1]], out.text
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=90) == 0
        wait_until(lambda: not any(_pid_alive(p) for p in pids), 30, 0.1, "children gone")
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=30)
        for pid in pids:
            if _pid_alive(pid):
                os.kill(pid, signal.SIGKILL)
