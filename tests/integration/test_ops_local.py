"""`pulsar local` forwards SIGHUP: its children reload the file named by PULSAR_CONFIG."""

from __future__ import annotations

import os
import signal
import subprocess
from pathlib import Path

import httpx

from tests.support.cluster import free_port_range
from tests.support.processes import free_port, pulsar_command, wait_until


def test_local_forwards_sighup_to_its_children(tmp_path: Path) -> None:
    config = tmp_path / "pulsar.toml"
    config.write_text('admin_token = "before"\n')
    port = free_port()
    log = open(tmp_path / "local.log", "wb")  # noqa: SIM115 - handed to the child
    proc = subprocess.Popen(
        [
            *pulsar_command(), "local", "--nodes", "1", "--data-dir", str(tmp_path / "data"),
            "--port", str(port), "--node-port-base", str(free_port_range(1)),
            "--raft-port-base", str(free_port_range(3)), "--shards", "2",
            "--raft-election-timeout-ms", "400", "--cluster-secret", "s",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
        env={**os.environ, "PULSAR_CONFIG": str(config)},
    )  # fmt: skip
    log.close()
    url = f"http://127.0.0.1:{port}"

    def status(token: str) -> int:
        try:
            headers = {"Authorization": f"Bearer {token}"}
            return httpx.get(f"{url}/api/v1/admin/status", headers=headers, timeout=3).status_code
        except httpx.HTTPError:
            return 0

    try:

        def ready() -> bool:
            assert proc.poll() is None, (tmp_path / "local.log").read_text()
            return status("before") == 200

        wait_until(ready, 60, 0.2, "local cluster readiness")
        config.write_text('admin_token = "after"\n')
        proc.send_signal(signal.SIGHUP)
        wait_until(lambda: status("after") == 200, 10, 0.1, "the coordinator's reload")
        assert status("before") == 401
        assert proc.poll() is None  # the supervisor survives SIGHUP
        node_log = (tmp_path / "data" / "node-0.log").read_text()
        assert '"event":"config_reloaded"' in node_log
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=30)
