"""Process-tree memory, disk usage, peer configuration, and a real PulsarDB under the harness."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import tomllib
from pathlib import Path

import pytest

from bench.procmem import RssSampler, status_kb, tree_kb, tree_pids
from bench.systems import (
    InfluxDB,
    PulsarCluster,
    PulsarStandalone,
    VictoriaMetrics,
    dir_bytes,
    free_port_range,
    http,
)


def test_tree_pids_and_memory_include_children() -> None:
    child = subprocess.Popen(
        [sys.executable, "-c", "import time; b = bytearray(64 << 20); time.sleep(30)"]
    )
    try:
        deadline = time.monotonic() + 20
        while status_kb(child.pid, "VmRSS") < 60_000 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert child.pid in tree_pids(os.getpid())
        assert tree_kb(os.getpid(), "VmHWM") >= status_kb(child.pid, "VmHWM") >= 60_000
        sampler = RssSampler(os.getpid(), 0.05).start()
        time.sleep(0.2)
        sampler.stop()
        assert sampler.hwm_kb >= 60_000 + status_kb(os.getpid(), "VmRSS") // 2
        assert sampler.sampled_peak_kb >= 60_000
    finally:
        child.kill()
        child.wait()
    assert status_kb(child.pid, "VmRSS") == 0  # gone: counted as nothing


def test_dir_bytes_counts_allocated_and_apparent(tmp_path: Path) -> None:
    (tmp_path / "a").write_bytes(b"x" * 10_000)
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "b").write_bytes(b"y" * 5000)
    with open(tmp_path / "sparse", "wb") as f:
        f.truncate(4 << 20)  # like InfluxDB's preallocated series segments
    assert dir_bytes(tmp_path, apparent=True) == 15_000 + (4 << 20)
    assert 15_000 <= dir_bytes(tmp_path) < 64 * 1024
    assert dir_bytes(tmp_path, exclude=("sub", "sparse"), apparent=True) == 10_000


def test_influxdb_config_binds_loopback_and_disables_reporting(tmp_path: Path) -> None:
    influx = InfluxDB(tmp_path)
    cmd = influx.command()
    cfg = tomllib.loads((tmp_path / "influxdb.conf").read_text())
    assert cmd[-2:] == ["-config", str(tmp_path / "influxdb.conf")]
    assert cfg["reporting-disabled"] is True and cfg["reporting-enabled"] is False
    assert cfg["bind-address"].startswith("127.0.0.1:")
    assert cfg["http"]["bind-address"] == f"127.0.0.1:{influx.port}"
    assert cfg["monitor"]["store-enabled"] is False
    assert str(tmp_path) in cfg["data"]["dir"]


def test_victoriametrics_listens_on_loopback(tmp_path: Path) -> None:
    vm = VictoriaMetrics(tmp_path)
    assert f"-httpListenAddr=127.0.0.1:{vm.port}" in vm.command()


@pytest.mark.parametrize("cls", [InfluxDB, VictoriaMetrics])
def test_peer_starts_takes_a_write_and_stops(cls, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    if not cls.available():
        pytest.skip(f"{cls.name} is not installed (make bench-peers installs it)")
    system = cls(tmp_path).start()
    try:
        status, body = http("POST", system.write_url(), b"cpu,hostname=a usage_user=1i 1\n")
        assert status == 204, body
    finally:
        system.stop()
    assert system.proc is not None and system.proc.poll() is not None


def test_pulsar_standalone_under_the_harness(tmp_path: Path) -> None:
    system = PulsarStandalone(tmp_path).start()
    try:
        assert "pulsar" in system.version()
        status, _ = http(
            "POST", system.write_url(), b"cpu,hostname=a usage_user=1i 1767225600000000000\n"
        )
        assert status == 204
        system.settle(60)
        assert system.data_bytes() > 0
    finally:
        system.stop()
    assert system.proc is not None and system.proc.poll() is not None


def test_cluster_command_uses_rf3_and_free_port_ranges(tmp_path: Path) -> None:
    cmd = PulsarCluster(tmp_path).command()
    assert cmd[cmd.index("local") + 1 : cmd.index("local") + 5] == [
        "--nodes",
        "3",
        "--replication-factor",
        "3",
    ]
    base = int(cmd[cmd.index("--raft-port-base") + 1])
    # Below the kernel's ephemeral range (an outgoing connection may take a port in it).
    ephemeral_low = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    assert base >= 10_000 and base + 64 <= ephemeral_low
    base = free_port_range(5)
    for port in range(base, base + 5):
        with socket.socket() as s:
            s.bind(("127.0.0.1", port))  # free: binds
