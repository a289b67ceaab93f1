"""Server CPU per query over HTTP, A/B comparable on a shared machine.

    python -m bench.cpu_query --types single-groupby-1-1-1,high-cpu-1 --queries 1000 \\
        --code base=/tmp/pulsar-base --code new=. --rounds 2

Data: bench/bench_query.py's TSBS-like data set (100 hosts x 12 h, float fields), written once
into `--data-dir` (kept between runs). Each run starts `pulsar standalone` on a copy-free view of
that directory (the same directory: queries do not change it, background compaction may), sends
50 warm-up queries and then `--queries` TSBS queries of one type one at a time over one
keep-alive connection (GET /query, epoch=ns), and reports the p50 latency and the CPU time
(user + system, /proc) the server process spent per query. `--code LABEL=DIR` runs the server
with PYTHONPATH=DIR; labels take turns within each round.

`--spec FILE.json` (bench/run.py's data set spec, e.g. /work/data/base/cpu-int-1000h-12h.lp.json)
runs bench/tsbs_queries.make_queries' queries for that data set instead; `--data-dir` must then
hold a loaded PulsarDB data directory of it (a copy: the server may compact it).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import time
import urllib.parse
from pathlib import Path

import httpx

from bench.bench_query import generate, queries
from bench.cpu_ingest import tree_cpu_s
from bench.pulsarproc import start_standalone
from bench.tsbs import DatasetSpec
from bench.tsbs_queries import make_queries

__all__ = ["main"]


def query_paths(qtype: str, count: int, spec: DatasetSpec | None) -> list[str]:
    """`count` GET paths of `qtype`: bench_query's data set, or the TSBS one of `spec`."""
    if spec is not None:
        return [q.path for q in make_queries(spec, qtype, count, "influxql")]
    return [
        "/query?" + urllib.parse.urlencode({"db": "benchmark", "q": q, "epoch": "ns"})
        for q in queries(qtype, count, 100, 12)
    ]


def one_run(
    data_dir: str, qtype: str, count: int, code: str | None, spec: DatasetSpec | None = None
) -> tuple[float, float, float]:
    """(p50 ms, mean ms, server CPU ms per query)."""
    proc, port = start_standalone(data_dir, code)
    url = f"http://127.0.0.1:{port}"
    try:
        paths = query_paths(qtype, count + 50, spec)
        with httpx.Client(base_url=url, timeout=60) as client:
            for path in paths[:50]:
                client.get(path)
            own0, rest0 = tree_cpu_s(proc.pid)
            latencies = []
            for path in paths[50:]:
                t = time.perf_counter()
                r = client.get(path)
                latencies.append(time.perf_counter() - t)
                if r.status_code != 200 or b'"error"' in r.content[:200]:
                    raise RuntimeError(f"{r.status_code}: {r.text[:200]}")
            own1, rest1 = tree_cpu_s(proc.pid)
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=60)
    mean = sum(latencies) / len(latencies)
    latencies.sort()
    cpu = (own1 - own0) + (rest1 - rest0)
    return latencies[len(latencies) // 2] * 1e3, mean * 1e3, cpu / count * 1e3


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description="server CPU per query over HTTP")
    p.add_argument("--data-dir", default="/tmp/pulsar-bench-query-data")
    p.add_argument("--types", default="single-groupby-1-1-1,high-cpu-1")
    p.add_argument("--queries", type=int, default=1000)
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--code", action="append", default=[], help="LABEL=DIR")
    p.add_argument("--spec", help="TSBS data set spec (JSON) of the data in --data-dir")
    args = p.parse_args(argv)
    spec = None
    if args.spec:
        spec = DatasetSpec(**json.loads(Path(args.spec).read_text()))
        if not Path(args.data_dir).exists():
            raise SystemExit(f"--spec needs a loaded data directory; {args.data_dir} is missing")
    elif not Path(args.data_dir).exists():
        generate(args.data_dir, 100, 12, 10)
    codes = [tuple(c.split("=", 1)) for c in args.code] or [("current", "")]
    for rnd in range(args.rounds):
        for qtype in args.types.split(","):
            for label, code in codes:
                p50, mean, cpu = one_run(args.data_dir, qtype, args.queries, code or None, spec)
                print(
                    f"round {rnd} {label:8s} {qtype}: p50 {p50:.3f} ms, mean {mean:.3f} ms "
                    f"({1000 / mean:.0f} q/s), server CPU {cpu:.3f} ms "
                    f"per query (load {os.getloadavg()[0]:.1f})",
                    flush=True,
                )
    return 0


if __name__ == "__main__":
    sys.exit(main())
