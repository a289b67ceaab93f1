"""The image's exact command line (ENTRYPOINT + CMD + ENV of the Dockerfile) serves /health, its
HEALTHCHECK script passes against it, and SIGTERM stops it cleanly (what `docker stop` and the
kubelet send to PID 1).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import httpx

from tests.support.dockerfile import ROOT, image_process, parse_dockerfile
from tests.support.processes import free_port, wait_until

HEALTHCHECK = ROOT / "deploy/docker/healthcheck.py"


def _healthcheck(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(HEALTHCHECK)],
        check=False,
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=20,
    )


def test_image_command_serves_health_and_stops_on_sigterm(tmp_path: Path) -> None:
    port = free_port()
    data = tmp_path / "volume"
    data.mkdir()
    argv, env = image_process(
        parse_dockerfile()[-1],
        replace={"/var/lib/pulsardb": str(data), "0.0.0.0": "127.0.0.1", "8080": str(port)},
    )
    assert env["PULSAR_DATA_DIR"] == str(data)
    # before the server is up the health check fails (exit 1), as Docker would see it
    down = _healthcheck({"PULSAR_PORT": str(port)})
    assert down.returncode == 1, down.stderr

    log = open(tmp_path / "server.log", "wb")  # noqa: SIM115 - handed to the child
    proc = subprocess.Popen(
        argv, env={**os.environ, **env}, stdout=log, stderr=subprocess.STDOUT, cwd=data
    )
    log.close()
    try:

        def healthy() -> bool:
            assert proc.poll() is None, (tmp_path / "server.log").read_text()
            try:
                return httpx.get(f"http://127.0.0.1:{port}/health", timeout=1).status_code == 200
            except httpx.HTTPError:
                return False

        wait_until(healthy, 30, 0.1, "the image command's /health")
        up = _healthcheck({"PULSAR_PORT": str(port)})
        assert up.returncode == 0, up.stderr
        url = _healthcheck({"PULSAR_HEALTHCHECK_URL": f"http://127.0.0.1:{port}/health"})
        assert url.returncode == 0, url.stderr
        # the data volume is where the image says it is
        r = httpx.post(
            f"http://127.0.0.1:{port}/api/v1/write?db=docker",
            content=b'{"measurement": "m", "fields": {"v": 1}, "timestamp": 1}',
        )
        assert r.status_code in (200, 204), r.text
        proc.send_signal(signal.SIGTERM)
        # uvicorn shuts down gracefully, then re-raises the signal it caught (exit -15 / 143)
        code = proc.wait(timeout=40)
        text = (tmp_path / "server.log").read_text()
        assert code in (0, -signal.SIGTERM, 128 + signal.SIGTERM), text
        assert "storage_closed" in text, "SIGTERM must close storage (flush + WAL sync)"
        assert any(data.iterdir()), "the server wrote nothing under the data volume"
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=30)
