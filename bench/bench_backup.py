"""Backup and restore benchmark (report only, never asserted).

Fills a standalone data directory through the engine API (HOSTS hosts x 10 integer fields,
one point every 10 s for HOURS hours, flushed to tables), serves it with a real `pulsar
standalone` process, and times, with the real CLI:

1. `pulsar admin backup` (full): every byte streamed node -> coordinator -> CLI, SHA-256'd;
2. one small write, then `pulsar admin backup --incremental` (copies only the new files);
3. `pulsar admin restore` into a new directory (verifies every SHA-256, copies, opens).

    .venv/bin/python bench/bench_backup.py [--hosts 200] [--hours 24]
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import numpy as np

from node.engine.engine import Engine, EngineOptions
from pulsar_cluster.batch import Column, FieldType, WriteBatch
from pulsar_cluster.series import make_series_key

FIELDS = [f"f{i}" for i in range(10)]
T0 = 1_767_225_600_000_000_000


def fill(directory: str, hosts: int, hours: int) -> int:
    engine = Engine(directory, EngineOptions(fsync="never"))
    rng = np.random.default_rng(7)
    steps = hours * 360
    per = 360  # one hour per batch
    values = 0
    for start in range(0, steps, per):
        ts = T0 + (np.arange(start, start + per, dtype=np.int64) * 10 * 10**9)
        series = {}
        for h in range(hosts):
            key = make_series_key("cpu", {"host": f"h{h}"})
            series[key] = {
                f: Column(FieldType.INTEGER, ts, rng.integers(0, 100, per).astype(np.int64))
                for f in FIELDS
            }
            values += per * len(FIELDS)
        engine.apply(WriteBatch("bench", series))
    engine.flush()
    engine.close()
    return values


def pulsar(*args: str) -> float:
    exe = str(Path(sys.executable).with_name("pulsar"))
    t = time.perf_counter()
    proc = subprocess.run([exe, *args], capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise SystemExit(proc.stderr)
    return time.perf_counter() - t


def size_of(path: str) -> int:
    return sum(os.path.getsize(os.path.join(d, f)) for d, _, fs in os.walk(path) for f in fs)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--hosts", type=int, default=200)
    ap.add_argument("--hours", type=int, default=24)
    args = ap.parse_args()
    root = tempfile.mkdtemp(prefix="bench-backup-")
    try:
        data, dest = os.path.join(root, "data"), os.path.join(root, "backups")
        values = fill(data, args.hosts, args.hours)
        print(f"data: {values:,} values, {size_of(data) / 2**20:.1f} MB on disk")
        port = 18000 + os.getpid() % 1000
        url = f"http://127.0.0.1:{port}"
        exe = str(Path(sys.executable).with_name("pulsar"))
        server = subprocess.Popen(
            [exe, "standalone", "--data-dir", data, "--port", str(port), "--log-level", "error"],
        )
        try:
            for _ in range(300):
                try:
                    if httpx.get(url + "/ready", timeout=1).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                time.sleep(0.1)
            full_s = pulsar("admin", "backup", "--url", url, dest)
            full_mb = size_of(dest) / 2**20
            print(f"full backup: {full_mb:.1f} MB in {full_s:.2f} s = {full_mb / full_s:.1f} MB/s")
            httpx.post(f"{url}/write", params={"db": "bench"}, content=f"cpu,host=x f0=1i {T0}")
            httpx.post(f"{url}/api/v1/admin/flush")
            before = size_of(dest)
            inc_s = pulsar("admin", "backup", "--url", url, dest, "--incremental")
            inc_mb = (size_of(dest) - before) / 2**20
            print(f"incremental backup: {inc_mb:.3f} MB copied in {inc_s:.2f} s")
        finally:
            server.terminate()
            server.wait(60)
        restore_s = pulsar("admin", "restore", dest, "--data-dir", os.path.join(root, "r"))
        print(f"restore (verify + copy + open): {restore_s:.2f} s = {full_mb / restore_s:.1f} MB/s")
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
