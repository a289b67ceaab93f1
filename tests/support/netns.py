"""Linux network namespaces for partition tests: one namespace per node on a private bridge.

Needs root (CAP_NET_ADMIN) and `ip`; `available()` says why not otherwise, and the tests skip
with that reason. Addresses: 10.<net>.0.<i+1>/24 in namespace i, the bridge is .254 in the host
namespace (coordinators there reach every node). Everything is private to this host; the
tests' own coordinators still bind 127.0.0.1. A partition takes a node's host-side veth down:
the node then reaches no one, and no one reaches it.
"""

from __future__ import annotations

import os
import shutil
import subprocess

__all__ = ["NetNamespaces", "available"]


def available() -> str | None:
    """None when namespaces can be used, else the reason they cannot."""
    if shutil.which("ip") is None:
        return "the `ip` command (iproute2) is not installed"
    if os.geteuid() != 0:
        return "network partitions need root (ip netns, veth, bridge)"
    name = f"plprobe{os.getpid() % 100000}"
    probe = subprocess.run(
        ["ip", "netns", "add", name], capture_output=True, text=True, check=False
    )
    if probe.returncode != 0:
        return f"cannot create network namespaces: {probe.stderr.strip()}"
    subprocess.run(["ip", "netns", "del", name], capture_output=True, check=False)
    return None


def _ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True, text=True, timeout=10)


class NetNamespaces:
    def __init__(self, count: int) -> None:
        tag = os.getpid() % 10000
        self.net = 100 + os.getpid() % 100
        self.bridge = f"plbr{tag}"
        self.names = [f"pl{tag}n{i}" for i in range(count)]
        self.host_veths = [f"pl{tag}h{i}" for i in range(count)]
        self.addresses = [f"10.{self.net}.0.{i + 1}" for i in range(count)]

    def create(self) -> NetNamespaces:
        try:
            _ip("link", "add", self.bridge, "type", "bridge")
            _ip("addr", "add", f"10.{self.net}.0.254/24", "dev", self.bridge)
            _ip("link", "set", self.bridge, "up")
            for ns, host, addr in zip(self.names, self.host_veths, self.addresses, strict=True):
                _ip("netns", "add", ns)
                _ip("link", "add", host, "type", "veth", "peer", "name", f"{host}p")
                _ip("link", "set", f"{host}p", "netns", ns)
                _ip("link", "set", host, "master", self.bridge)
                _ip("link", "set", host, "up")
                _ip("-n", ns, "addr", "add", f"{addr}/24", "dev", f"{host}p")
                _ip("-n", ns, "link", "set", f"{host}p", "up")
                _ip("-n", ns, "link", "set", "lo", "up")
        except subprocess.CalledProcessError as exc:
            self.destroy()
            raise RuntimeError(f"network namespace set-up failed: {exc.stderr}") from exc
        return self

    def exec_prefix(self, i: int) -> list[str]:
        return ["ip", "netns", "exec", self.names[i]]

    def isolate(self, i: int) -> None:
        _ip("link", "set", self.host_veths[i], "down")

    def heal(self, i: int) -> None:
        _ip("link", "set", self.host_veths[i], "up")

    def destroy(self) -> None:
        for ns in self.names:
            subprocess.run(["ip", "netns", "del", ns], capture_output=True, timeout=10, check=False)
        for host in self.host_veths:
            subprocess.run(
                ["ip", "link", "del", host], capture_output=True, timeout=10, check=False
            )
        subprocess.run(
            ["ip", "link", "del", self.bridge], capture_output=True, timeout=10, check=False
        )
