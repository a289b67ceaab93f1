"""Real server processes for integration tests: start, wait until ready, kill, restart.

Every wait is bounded in time; every process is killed at teardown.
"""

from __future__ import annotations

import os
import random
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

__all__ = [
    "ephemeral_ports",
    "free_port",
    "free_port_range",
    "ports_free",
    "ServerProcess",
    "pulsar_command",
    "wait_until",
]


#: Test ports come from below the kernel's ephemeral range. A port from bind(0) is free at
#: that moment, but it is an ephemeral port: any outgoing connection of any process may take
#: it as its local port before our server binds it, and a listening socket cannot share a port
#: with a connected one. pysyncobj then retries its bind silently for ever (a move's target
#: that never hears from its leader: node/raft/binding.py). Below the range only explicit
#: binds compete, and those are checked.
_LOW_PORT = 10_000
_random = random.SystemRandom()  # independent of any seeding done by tests


def ephemeral_ports() -> tuple[int, int]:
    try:
        low, high = Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()
        return int(low), int(high)
    except (OSError, ValueError):
        return 32768, 60999  # Linux's default


def ports_free(base: int, count: int = 1) -> bool:
    """base..base+count-1 can be bound on 127.0.0.1 right now."""
    socks = []
    try:
        for port in range(base, base + count):
            s = socket.socket()
            socks.append(s)
            s.bind(("127.0.0.1", port))
        return True
    except OSError:
        return False
    finally:
        for s in socks:
            s.close()


def free_port_range(count: int, attempts: int = 200) -> int:
    """A base port such that base..base+count-1 are free now, below the ephemeral range."""
    top = ephemeral_ports()[0] - count
    for _ in range(attempts):
        base = _random.randrange(_LOW_PORT, top)
        if ports_free(base, count):
            return base
    raise RuntimeError(f"no {count} free ports in {_LOW_PORT}..{top + count}")


def free_port() -> int:
    return free_port_range(1)


def pulsar_command() -> list[str]:
    """The installed `pulsar` console script of this venv."""
    script = Path(sys.executable).with_name("pulsar")
    return [str(script)] if script.exists() else [sys.executable, "-m", "pulsar_cluster.cli"]


def wait_until(predicate, timeout_s: float, interval_s: float = 0.05, what: str = "condition"):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        result = predicate()
        if result:
            return result
        time.sleep(interval_s)
    raise TimeoutError(f"timed out after {timeout_s}s waiting for {what}")


class ServerProcess:
    """`pulsar standalone` (or any pulsar role) as a child process on 127.0.0.1."""

    def __init__(
        self,
        data_dir: Path,
        port: int | None = None,
        extra_args: list[str] | None = None,
        role: str = "standalone",
        env: dict[str, str] | None = None,
    ) -> None:
        self.data_dir = data_dir
        self.port = port or free_port()
        self.extra_args = extra_args or []
        self.role = role
        self.env = env
        self.proc: subprocess.Popen[bytes] | None = None
        self.log_path = data_dir.parent / f"{data_dir.name}-{self.port}.log"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, ready_timeout_s: float = 30.0) -> ServerProcess:
        args = [
            *pulsar_command(),
            self.role,
            "--data-dir",
            str(self.data_dir),
            "--host",
            "127.0.0.1",
            "--port",
            str(self.port),
            *self.extra_args,
        ]
        env = {**os.environ, **(self.env or {})}
        log = open(self.log_path, "ab")  # noqa: SIM115 - handed to the child process
        self.proc = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, env=env)
        log.close()
        self.wait_ready(ready_timeout_s)
        return self

    def wait_ready(self, timeout_s: float) -> None:
        def ready() -> bool:
            if self.proc is not None and self.proc.poll() is not None:
                raise RuntimeError(f"server exited with {self.proc.returncode}: {self.log()}")
            try:
                return httpx.get(self.url + "/ready", timeout=1.0).status_code == 200
            except httpx.HTTPError:
                return False

        wait_until(ready, timeout_s, 0.1, "server readiness")

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-4000:]
        except FileNotFoundError:
            return ""

    def kill(self, sig: int = signal.SIGKILL) -> int:
        assert self.proc is not None
        self.proc.send_signal(sig)
        return self.proc.wait(timeout=60)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=30)
