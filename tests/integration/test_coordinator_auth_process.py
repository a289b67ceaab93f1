"""A real `pulsar standalone` process: admin token from the environment (as the Helm chart sets
it), the `pulsar admin` client sending it, and request ids in the JSON request log."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import httpx

from tests.support.processes import ServerProcess, pulsar_command

TOKEN = "tok-" + "x" * 36


def _admin_cli(url: str, token: str | None) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "PULSAR_ADMIN_TOKEN"}
    if token is not None:
        env["PULSAR_ADMIN_TOKEN"] = token
    return subprocess.run(
        [*pulsar_command(), "admin", "status", "--url", url],
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )


def test_admin_token_from_env_and_request_log(tmp_path: Path) -> None:
    server = ServerProcess(tmp_path / "data", env={"PULSAR_ADMIN_TOKEN": TOKEN})
    try:
        server.start()
        status = server.url + "/api/v1/admin/status"
        assert httpx.get(status, timeout=5).status_code == 401
        bad = httpx.get(status, headers={"Authorization": "Bearer wrong"}, timeout=5)
        assert bad.status_code == 401
        good = httpx.get(
            status, headers={"Authorization": f"Bearer {TOKEN}", "X-Request-ID": "rq-7"}, timeout=5
        )
        assert good.status_code == 200 and good.headers["x-request-id"] == "rq-7"

        denied = _admin_cli(server.url, None)
        assert denied.returncode == 1 and "HTTP 401" in denied.stderr
        allowed = _admin_cli(server.url, TOKEN)
        assert allowed.returncode == 0, allowed.stderr
        assert isinstance(json.loads(allowed.stdout), dict)
    finally:
        server.stop()
    events = [
        json.loads(line)
        for line in server.log_path.read_text().splitlines()
        if line.startswith("{") and '"http_request"' in line
    ]
    (logged,) = [e for e in events if e.get("request_id") == "rq-7"]
    assert logged["path"] == "/api/v1/admin/status" and logged["status"] == 200
    assert logged["level"] == "info" and logged["timestamp"]
    assert TOKEN not in server.log_path.read_text(), "the token must never be logged"


def test_without_token_loopback_clients_may_administer(tmp_path: Path) -> None:
    env = {"PULSAR_ADMIN_TOKEN": ""}  # set but empty: configures nothing
    server = ServerProcess(tmp_path / "data", env=env)
    try:
        server.start()
        r = httpx.post(server.url + "/api/v1/admin/flush?wait=true", timeout=30)
        assert r.status_code == 200, r.text
    finally:
        server.stop()
