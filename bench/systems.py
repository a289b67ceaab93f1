"""The systems under test, each started fresh in its own temp dir on 127.0.0.1.

- `PulsarStandalone`: `pulsar standalone` (coordinator + one node, replication factor 1).
- `PulsarCluster`: `pulsar local --nodes 3` (three Raft replicas per shard), when that exists.
- `InfluxDB`: Debian's `influxd` (1.6), phone-home reporting off, every listener on 127.0.0.1.
- `VictoriaMetrics`: Debian's `victoria-metrics` (single node), listening on 127.0.0.1 only.

Every server runs in its own session (process group), so `stop()` ends the whole tree it started
(SIGTERM, then SIGKILL after a grace period) and nothing else. Each system also knows how to make
its storage settle (flush, compact) before its bytes on disk are counted.
"""

from __future__ import annotations

import contextlib
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

__all__ = [
    "System",
    "PulsarStandalone",
    "PulsarCluster",
    "InfluxDB",
    "VictoriaMetrics",
    "free_port",
    "http",
    "dir_bytes",
    "SystemUnavailableError",
]

DB = "benchmark"


class SystemUnavailableError(RuntimeError):
    """The system is not installed or cannot run here (the runner reports it and moves on)."""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def http(
    method: str, url: str, body: bytes | None = None, timeout: float = 60.0
) -> tuple[int, bytes]:
    """One HTTP request; (status, body). Connection errors give status 0 and the error text."""
    req = urllib.request.Request(url, data=body, method=method)
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()
    except (OSError, urllib.error.URLError) as exc:
        return 0, str(exc).encode()


def dir_bytes(path: str | Path, exclude: tuple[str, ...] = (), apparent: bool = False) -> int:
    """Bytes on disk under `path`, like `du`: allocated blocks (st_blocks * 512), so sparse
    preallocated files (InfluxDB's 4 MB series segments) count what they use; `apparent=True`
    sums file sizes instead. Top-level names in `exclude` are skipped."""
    total = 0
    root = Path(path)
    if not root.exists():
        return 0
    for entry in root.iterdir():
        if entry.name in exclude:
            continue
        paths: list[str] = []
        if entry.is_file():
            paths.append(str(entry))
        elif entry.is_dir():
            for dirpath, _, files in os.walk(entry):
                paths.extend(os.path.join(dirpath, name) for name in files)
        for p in paths:
            try:
                st = os.stat(p)
            except FileNotFoundError:
                continue  # a compaction removed it while we walked
            total += st.st_size if apparent else st.st_blocks * 512
    return total


def _ephemeral_low() -> int:
    try:
        return int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768  # Linux's default


def free_port_range(count: int, tries: int = 50) -> int:
    """A base port such that base .. base+count-1 are all free on 127.0.0.1 right now, below
    the kernel's ephemeral range: a port in that range may be taken as the local port of any
    outgoing connection (another server's Raft links, a client) before our server binds it,
    and a Raft group whose port is taken never joins (docs/architecture.md, Raft ports)."""
    rng = random.Random()
    top = _ephemeral_low() - count
    for _ in range(tries):
        base = rng.randrange(10_000, top)
        socks = []
        try:
            for port in range(base, base + count):
                sock = socket.socket()
                socks.append(sock)
                sock.bind(("127.0.0.1", port))
            return base
        except OSError:
            continue
        finally:
            for sock in socks:
                sock.close()
    raise SystemUnavailableError(f"no {count} consecutive free ports found")


class System:
    """A server process under test. Subclasses set `name`, `dialect` and the command."""

    name = "system"
    dialect = "influxql"  # query language: influxql | promql
    ready_path = "/ping"
    # Cores its process tree may use when it has nothing to do and still count as idle (the
    # runner waits for idle servers before each load and before the queries: bench/idle.py).
    idle_cores = 0.02

    def __init__(self, workdir: Path) -> None:
        self.workdir = Path(workdir)
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None
        self.notes: list[str] = []

    # --- what each system defines -------------------------------------------------------------
    def command(self) -> list[str]:
        raise NotImplementedError

    def write_url(self) -> str:
        return f"{self.url}/write?db={DB}"

    def prepare(self) -> None:
        """Called once the server is ready, before any write (e.g. create the database)."""

    def settle(self, timeout_s: float) -> None:
        """Make the storage reach its resting size (flush, compact)."""

    def data_bytes(self, apparent: bool = False) -> int:
        return dir_bytes(self.data_dir, apparent=apparent)

    def version(self) -> str:
        return ""

    def environment(self) -> dict[str, str]:
        """Variables added to the server's environment."""
        return {}

    # --- lifecycle ----------------------------------------------------------------------------
    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def data_dir(self) -> Path:
        return self.workdir / "data"

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    @property
    def log_path(self) -> Path:
        return self.workdir / "server.log"

    def start(self, ready_timeout_s: float = 60.0) -> System:
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.data_dir.mkdir(parents=True, exist_ok=True)
        cmd = self.command()
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(
                cmd,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                cwd=self.workdir,
                env={**os.environ, **self.environment()},
                start_new_session=True,  # its own process group: stop() ends exactly this tree
            )
        deadline = time.monotonic() + ready_timeout_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise SystemUnavailableError(
                    f"{self.name} exited with {self.proc.returncode}: {self.log_tail()}"
                )
            status, _ = http("GET", self.url + self.ready_path, timeout=2)
            if 200 <= status < 300:
                self.prepare()
                return self
            time.sleep(0.2)
        self.stop()
        raise SystemUnavailableError(f"{self.name} not ready after {ready_timeout_s:.0f} s")

    def log_tail(self, chars: int = 2000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-chars:]
        except FileNotFoundError:
            return ""

    def gone(self) -> str:
        """'' while the server runs, else how it ended."""
        if self.proc is None:
            return "not started"
        code = self.proc.poll()
        return "" if code is None else f"{self.name} exited with code {code}"

    def terminate(self) -> None:
        """Send SIGTERM to the server's process group and return (`stop` waits): several
        servers then shut down at the same time."""
        if self.proc is not None and self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGTERM)

    def stop(self, grace_s: float = 30.0) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        pgid = self.proc.pid  # session leader: its pgid is its pid
        try:
            os.killpg(pgid, signal.SIGTERM)
            self.proc.wait(timeout=grace_s)
        except subprocess.TimeoutExpired:
            pass
        except ProcessLookupError:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pgid, signal.SIGKILL)  # also children that outlived the leader
        self.proc.wait(timeout=10)


def _wait_stable(measure, timeout_s: float, quiet_s: float = 6.0, every_s: float = 1.0):  # type: ignore[no-untyped-def]
    """Poll `measure()` until it has not changed for `quiet_s` (or the timeout); last value."""
    deadline = time.monotonic() + timeout_s
    last, since = measure(), time.monotonic()
    while time.monotonic() < deadline:
        time.sleep(every_s)
        now = measure()
        if now != last:
            last, since = now, time.monotonic()
        elif time.monotonic() - since >= quiet_s:
            break
    return last


def pulsar_command() -> list[str]:
    script = Path(sys.executable).with_name("pulsar")
    return [str(script)] if script.exists() else [sys.executable, "-m", "pulsar_cluster.cli"]


class PulsarStandalone(System):
    name = "PulsarDB"
    ready_path = "/ready"

    def command(self) -> list[str]:
        return [
            *pulsar_command(),
            "standalone",
            "--data-dir",
            str(self.data_dir),
            "--host",
            "127.0.0.1",
            "--port",
            str(self.port),
        ]

    def environment(self) -> dict[str, str]:
        # No line per request, as InfluxDB runs here (`log-enabled = false` below): the same
        # work for both. The variable reaches `pulsar local`'s coordinator as well.
        return {"PULSAR_ACCESS_LOG": "off"}

    def settle(self, timeout_s: float) -> None:
        for action in ("flush", "compact"):
            status, body = http(
                "POST", f"{self.url}/api/v1/admin/{action}?wait=true", timeout=timeout_s
            )
            if status in (404, 405):
                self.notes.append(f"no /api/v1/admin/{action} endpoint yet")
            elif not 200 <= status < 300:
                self.notes.append(f"{action}: HTTP {status} {body[:200]!r}")

    def version(self) -> str:
        out = subprocess.run(
            [*pulsar_command(), "--version"], check=False, capture_output=True, text=True
        )
        return out.stdout.strip() or out.stderr.strip()


class PulsarCluster(PulsarStandalone):
    """`pulsar local --nodes 3`: three storage nodes (replication factor 3) + a coordinator."""

    name = "PulsarDB 3-node"
    nodes = 3
    # Three nodes' Raft ticks and heartbeats: 13-15 % of a core with no writes and no queries
    # (measured on this machine with bench/idle.py), far above the 2 % of a quiet server.
    idle_cores = 0.25

    @classmethod
    def available(cls) -> bool:
        out = subprocess.run(
            [*pulsar_command(), "local", "--help"], check=False, capture_output=True
        )
        return out.returncode == 0

    def command(self) -> list[str]:
        # Node APIs and Raft ports are ranges from a base: take free ranges, not the defaults
        # (7100, 7200), which a developer's `make run` or another test may be using.
        return [
            *pulsar_command(),
            "local",
            "--nodes",
            str(self.nodes),
            "--replication-factor",
            str(self.nodes),
            "--node-port-base",
            str(free_port_range(self.nodes)),
            "--raft-port-base",
            str(free_port_range(64)),
            "--data-dir",
            str(self.data_dir),
            "--port",
            str(self.port),
        ]


class InfluxDB(System):
    name = "InfluxDB"
    binary = "influxd"

    @classmethod
    def available(cls) -> bool:
        return shutil.which(cls.binary) is not None

    def config_text(self) -> str:
        d = self.data_dir
        # Every listener on 127.0.0.1 (the RPC/backup service binds 8088 on all addresses by
        # default); no usage reporting (Debian's key is reporting-enabled, upstream's
        # reporting-disabled: set both); no _internal monitor database (it would add its own
        # writes and bytes). The two cold durations only shorten the wait for the final
        # snapshot and full compaction after the load; they change nothing while loading.
        # Series limits off: the high-cardinality variant exceeds the 1M default.
        return f"""
reporting-enabled = false
reporting-disabled = true
bind-address = "127.0.0.1:{self.rpc_port}"

[meta]
  dir = "{d}/meta"

[data]
  dir = "{d}/data"
  wal-dir = "{d}/wal"
  query-log-enabled = false
  cache-snapshot-write-cold-duration = "5s"
  compact-full-write-cold-duration = "10s"
  max-series-per-database = 0
  max-values-per-tag = 0

[monitor]
  store-enabled = false

[http]
  enabled = true
  bind-address = "127.0.0.1:{self.port}"
  log-enabled = false
  flux-enabled = false

[subscriber]
  enabled = false

[continuous_queries]
  enabled = false
"""

    def command(self) -> list[str]:
        self.rpc_port = free_port()
        cfg = self.workdir / "influxdb.conf"
        cfg.write_text(self.config_text())
        return [self.binary, "run", "-config", str(cfg)]

    def prepare(self) -> None:
        q = urllib.parse.urlencode({"q": f"CREATE DATABASE {DB}"})
        status, body = http("POST", f"{self.url}/query?{q}")
        if status != 200:
            raise SystemUnavailableError(
                f"InfluxDB: CREATE DATABASE failed: {status} {body[:200]!r}"
            )

    def settle(self, timeout_s: float) -> None:
        # No compaction API in 1.x: wait until the WAL is snapshotted (cold after 5 s) and the
        # full compaction (cold after 10 s) has left the data directory unchanged for a while.
        wal = self.data_dir / "wal"
        _wait_stable(lambda: (dir_bytes(wal) > 1024, dir_bytes(self.data_dir)), timeout_s, 12.0)
        if dir_bytes(wal) > 1024:
            self.notes.append("WAL not empty after the settle timeout")

    def version(self) -> str:
        out = subprocess.run([self.binary, "version"], check=False, capture_output=True, text=True)
        return out.stdout.strip()


class VictoriaMetrics(System):
    name = "VictoriaMetrics"
    dialect = "promql"
    binary = "victoria-metrics"
    ready_path = "/health"

    @classmethod
    def available(cls) -> bool:
        return shutil.which(cls.binary) is not None

    def command(self) -> list[str]:
        return [
            self.binary,
            f"-storageDataPath={self.data_dir}",
            f"-httpListenAddr=127.0.0.1:{self.port}",
            "-retentionPeriod=1",  # months (the default): the data set must be recent
            "-loggerLevel=WARN",
            # Answer queries up to now: the default 30 s offset hides the newest samples.
            "-search.latencyOffset=0s",
        ]

    def settle(self, timeout_s: float) -> None:
        for path in ("/internal/force_flush", "/internal/force_merge"):
            status, body = http("GET", self.url + path, timeout=timeout_s)
            if status != 200:
                self.notes.append(f"{path}: HTTP {status} {body[:200]!r}")
        _wait_stable(self.data_bytes, timeout_s, 6.0)

    def data_bytes(self, apparent: bool = False) -> int:
        # data/ (samples) and indexdb/ (series index); cache/ is a restart cache, not storage.
        return dir_bytes(self.data_dir, ("cache", "snapshots", "flock.lock"), apparent)

    def version(self) -> str:
        out = subprocess.run(  # noqa: PLW1510 - the return code is checked
            ["dpkg-query", "-W", "-f", "${Version}", "victoria-metrics"],
            capture_output=True,
            text=True,
        )
        return f"victoria-metrics {out.stdout.strip()}" if out.returncode == 0 else ""
