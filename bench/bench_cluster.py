"""Cluster benchmark (report only, never asserted): ingest and failover of real processes.

    .venv/bin/python -m bench.bench_cluster [--seconds 10] [--clients 8] [--trials 5]

1. Ingest: the same line-protocol requests (100 series x 10 fields x 500 timestamps = 500,000
   values each) sent by N concurrent clients for a fixed time to `pulsar standalone` and to a
   `pulsar local --nodes 3` cluster (RF 3, fsync=always on every replica); values/s acknowledged.
2. Failover: a writer sends small writes back to back; the leader of shard 0 is SIGKILLed; the
   time from the kill to the first acknowledgement of a write *sent after* the kill (each write
   touches every shard) is measured;
   the supervisor restarts the node and the next trial waits until the cluster is ready.
"""

from __future__ import annotations

import argparse
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx

T0 = 1_767_225_600_000_000_000
SECRET = "bench-secret"


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _pulsar() -> list[str]:
    script = Path(sys.executable).with_name("pulsar")
    return [str(script)] if script.exists() else [sys.executable, "-m", "pulsar_cluster.cli"]


def _wait_ready(url: str, timeout_s: float = 60.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            if httpx.get(url + "/ready", timeout=3).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise TimeoutError(f"{url} not ready after {timeout_s}s")


def _payload(request_no: int, series: int = 100, fields: int = 10, rows: int = 500) -> bytes:
    base = T0 + request_no * rows * 1_000_000
    lines = []
    for r in range(rows):
        ts = base + r * 1_000_000
        for s in range(series):
            vals = ",".join(f"f{f}={(s * 31 + r * 7 + f) % 1000 / 10}" for f in range(fields))
            lines.append(f"bench,host=h{s},dc=d{s % 4} {vals} {ts}")
    return ("\n".join(lines) + "\n").encode()


def ingest(url: str, seconds: float, clients: int, payloads: list[bytes]) -> float:
    """Acknowledged values per second over `seconds` with `clients` concurrent writers."""
    values_per_request = 100 * 10 * 500
    acked = [0] * clients
    stop = time.monotonic() + seconds

    def run(i: int) -> None:
        with httpx.Client(timeout=120) as client:
            n = i
            while time.monotonic() < stop:
                body = payloads[n % len(payloads)]
                r = client.post(f"{url}/write", params={"db": "bench"}, content=body)
                if r.status_code == 204:
                    acked[i] += 1
                n += clients

    started = time.monotonic()
    threads = [threading.Thread(target=run, args=(i,)) for i in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.monotonic() - started
    return sum(acked) * values_per_request / elapsed


def failover_trials(url: str, node_urls: list[str], trials: int) -> list[float]:
    headers = {"Authorization": f"Bearer {SECRET}"}
    results: list[float] = []
    # Up to twice the trials: a round without a known leader of shard 0 is retried, not counted.
    for trial in range(2 * trials):
        if len(results) >= trials:
            break
        _wait_ready(url)
        leader_pid = None
        for node in node_urls:
            try:
                st = httpx.get(node + "/v1/status", headers=headers, timeout=3).json()
            except httpx.HTTPError:
                continue
            if st["shards"].get("0", {}).get("role") == "leader":
                leader_pid = st["pid"]
        if leader_pid is None:
            print(f"  round {trial + 1}: no leader of shard 0 found, retried", flush=True)
            time.sleep(1)
            continue
        acked_after: list[float] = []
        killed_at = [0.0]
        stop = threading.Event()

        def writer(
            trial: int = trial,
            stop: threading.Event = stop,
            killed_at: list[float] = killed_at,
            acked_after: list[float] = acked_after,
        ) -> None:
            seq = 0
            with httpx.Client(timeout=60) as client:
                while not stop.is_set():
                    seq += 1
                    body = "".join(
                        f"fo,s=s{s} v={seq}i {T0 + trial * 10**9 + seq}\n" for s in range(32)
                    )
                    # Only a write *sent* after the kill counts: one in flight at the kill may
                    # have committed before it and be acknowledged at once (that measured 0 s).
                    sent = time.monotonic()
                    try:
                        r = client.post(f"{url}/write", params={"db": "fo"}, content=body)
                    except httpx.HTTPError:
                        continue
                    ok = r.status_code == 204 and killed_at[0] and sent >= killed_at[0]
                    if ok and not acked_after:
                        acked_after.append(time.monotonic())

        t = threading.Thread(target=writer)
        t.start()
        time.sleep(1.0)
        killed_at[0] = time.monotonic()
        os.kill(leader_pid, signal.SIGKILL)
        deadline = time.monotonic() + 30
        while not acked_after and time.monotonic() < deadline:
            time.sleep(0.01)
        stop.set()
        t.join(timeout=90)
        if acked_after:
            results.append(acked_after[0] - killed_at[0])
            print(f"  trial {len(results)}: first ack {results[-1]:.2f}s after SIGKILL", flush=True)
        time.sleep(3)  # let the supervisor restart the node
    return results


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--clients", type=int, default=8)
    ap.add_argument("--trials", type=int, default=5)
    ap.add_argument("--shards", type=int, default=16)
    ap.add_argument("--election-ms", type=int, default=1500)
    args = ap.parse_args()
    payloads = [_payload(i) for i in range(8)]
    print(f"payload: {len(payloads[0]) / 1e6:.1f} MB per request, 500,000 values", flush=True)
    root = Path(tempfile.mkdtemp(prefix="pulsar-bench-cluster-"))
    env = {**os.environ, "PULSAR_CLUSTER_SECRET": SECRET}

    port = _free_port()
    standalone = subprocess.Popen(
        [*_pulsar(), "standalone", "--data-dir", str(root / "standalone"), "--port", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        _wait_ready(f"http://127.0.0.1:{port}")
        rate = ingest(f"http://127.0.0.1:{port}", args.seconds, args.clients, payloads)
        print(f"standalone (RF1, fsync=always): {rate:,.0f} values/s", flush=True)
    finally:
        standalone.send_signal(signal.SIGINT)
        standalone.wait(timeout=120)

    port = _free_port()
    node_base = 21100 + os.getpid() % 500 * 4
    raft_base = 30000 + os.getpid() % 500 * 60
    local = subprocess.Popen(
        [
            *_pulsar(), "local", "--nodes", "3", "--data-dir", str(root / "cluster"),
            "--port", str(port), "--node-port-base", str(node_base),
            "--raft-port-base", str(raft_base), "--shards", str(args.shards),
            "--raft-election-timeout-ms", str(args.election_ms), "--log-level", "warning",
        ],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        started = time.monotonic()
        _wait_ready(url, 120)
        print(f"cluster ready in {time.monotonic() - started:.1f}s", flush=True)
        rate = ingest(url, args.seconds, args.clients, payloads)
        print(
            f"cluster (3 nodes, {args.shards} shards, RF3, fsync=always): {rate:,.0f} values/s",
            flush=True,
        )
        nodes = [f"http://127.0.0.1:{node_base + i}" for i in range(3)]
        print(f"failover (election timeout {args.election_ms} ms):", flush=True)
        times = failover_trials(url, nodes, args.trials)
        if times:
            print(
                f"failover: p50 {statistics.median(times):.2f}s max {max(times):.2f}s "
                f"over {len(times)} trials",
                flush=True,
            )
    finally:
        local.send_signal(signal.SIGINT)
        local.wait(timeout=120)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
