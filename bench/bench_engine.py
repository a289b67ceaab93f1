"""Engine benchmark (report only, never asserted): ingest, full scan, bytes/value, peak RSS.

Data: TSBS "cpu-only"-like: HOSTS hosts, each with 10 integer fields (usage_user ...), one
point every 10 s, values a bounded random walk (seeded). Writes go straight to the engine API
(`Engine.apply`) in batches of BATCH_TS timestamps x all hosts, fsync=always (one fsync per
batch). Then flush, full compaction, and a full scan of every field of every series.

    .venv/bin/python bench/bench_engine.py [--hosts 100] [--hours 24] [--batch-ts 60]

Rates are given per wall second and per CPU second of this process (the latter is the
one-core figure on a shared, loaded machine; wall time also includes fsync waits).

Targets (issue 4): ingest >= 2M values/s, decode (full scan) >= 20M values/s on one core.
"""

from __future__ import annotations

import argparse
import resource
import shutil
import tempfile
import time

import numpy as np

from bench.tsbs import FIELDS  # the TSBS cpu fields, one list for every bench
from node.engine.engine import Engine, EngineOptions
from pulsar_cluster.batch import Column, FieldType, WriteBatch
from pulsar_cluster.series import make_series_key

START = 1_767_225_600_000_000_000
STEP = 10 * 10**9


def generate(hosts: int, points: int, seed: int = 1) -> np.ndarray:
    """values[host, field, t]: int64 random walks in [0, 100]."""
    rng = np.random.default_rng(seed)
    steps = rng.integers(-2, 3, size=(hosts, len(FIELDS), points), dtype=np.int64)
    start = rng.integers(0, 100, size=(hosts, len(FIELDS), 1), dtype=np.int64)
    return np.clip(start + np.cumsum(steps, axis=2), 0, 100)


def batches(values: np.ndarray, batch_ts: int):  # type: ignore[no-untyped-def]
    hosts, _, points = values.shape
    keys = [
        make_series_key("cpu", {"hostname": f"host_{h}", "region": f"r{h % 8}", "os": "Ubuntu"})
        for h in range(hosts)
    ]
    for lo in range(0, points, batch_ts):
        hi = min(points, lo + batch_ts)
        ts = START + np.arange(lo, hi, dtype=np.int64) * STEP
        batch = WriteBatch("benchmark")
        for h, key in enumerate(keys):
            batch.series[key] = {
                name: Column(FieldType.INTEGER, ts, values[h, f, lo:hi])
                for f, name in enumerate(FIELDS)
            }
        yield batch, hosts * len(FIELDS) * (hi - lo)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--hosts", type=int, default=100)
    ap.add_argument("--hours", type=float, default=24)
    ap.add_argument("--batch-ts", type=int, default=60, help="timestamps per batch")
    ap.add_argument("--memtable-mb", type=int, default=64)
    ap.add_argument("--dir", default=None)
    args = ap.parse_args()
    points = int(args.hours * 360)
    values = generate(args.hosts, points)
    total = values.size
    directory = args.dir or tempfile.mkdtemp(prefix="pulsar-bench-")
    options = EngineOptions(memtable_bytes=args.memtable_mb * 1024 * 1024)
    engine = Engine(directory, options)
    # Batches are built lazily (small batches would otherwise dominate RSS) and only the
    # engine calls are timed.
    ingest_s = ingest_cpu = 0.0
    n_batches = 0
    for batch, _ in batches(values, args.batch_ts):
        t0, c0 = time.perf_counter(), time.process_time()
        engine.apply(batch)
        if engine.needs_flush():  # what the background worker does, inline for one core
            engine.flush()
            if engine.needs_compaction():
                engine.compact()
        ingest_s += time.perf_counter() - t0
        ingest_cpu += time.process_time() - c0
        n_batches += 1
    t0 = time.perf_counter()
    engine.flush()
    flush_s = time.perf_counter() - t0
    tables_before = engine.status()["sstables"]
    t0 = time.perf_counter()
    engine.compact(full=True)
    compact_s = time.perf_counter() - t0
    status = engine.status()
    engine.close()
    t0 = time.perf_counter()
    engine = Engine(directory, EngineOptions(block_cache_bytes=0))  # cold: every block decoded
    open_s = time.perf_counter() - t0
    t0, c0 = time.perf_counter(), time.process_time()
    scanned = 0
    for _, fields in engine.scan("benchmark", "cpu", {}, None, START, START + points * STEP):
        for data in fields.values():
            scanned += len(data.values)
    scan_s, scan_cpu = time.perf_counter() - t0, time.process_time() - c0
    engine.close()
    rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"values           {total:,} ({args.hosts} hosts x 10 fields x {points} points)")
    print(
        f"ingest           {total / ingest_s / 1e6:.2f} M values/s ({ingest_s:.2f} s, "
        f"{n_batches} batches, fsync=always, flushes and compactions inline); "
        f"{total / ingest_cpu / 1e6:.2f} M values per CPU second"
    )
    print(
        f"final flush      {flush_s:.2f} s; full compaction {compact_s:.2f} s "
        f"({tables_before} -> {status['sstables']} tables)"
    )
    print(
        f"full scan        {scanned / scan_s / 1e6:.2f} M values/s ({scan_s:.2f} s, "
        f"{scanned:,} values, cold cache); {scanned / scan_cpu / 1e6:.2f} M values per CPU second"
    )
    print(
        f"bytes/value      {status['sstable_bytes'] / total:.3f} (after compaction, "
        f"{status['sstables']} tables)"
    )
    print(f"reopen           {open_s * 1000:.0f} ms (table indexes loaded, series index rebuilt)")
    print(f"peak RSS         {rss_mb:.0f} MB (includes the generated input)")
    if args.dir is None:
        shutil.rmtree(directory)


if __name__ == "__main__":
    main()
