"""Aggregate-scan queries over HTTP on the TSBS data set: latency, server CPU and exact answers.

    python -m bench.scan_query --data-dir /work/data/scan/pulsar-int \\
        --spec /work/data/base/cpu-int-1000h-12h.lp.json \\
        --types double-groupby-1,groupby-orderby-limit --queries 100 \\
        --code base=/tmp/pulsar-base --code new=. --code 'off=.?PULSAR_ROLLUP_CACHE_MB=0' \\
        --rounds 2

For every `--code LABEL=DIR` (PYTHONPATH=DIR; labels take turns within each round) it starts
`pulsar standalone` on the data directory (queries do not change it; pass a copy of the bench's
data set, never the shared original), sends `--warmup` queries and then the TSBS queries of each
type (bench/tsbs_queries.make_queries, InfluxQL, epoch=ns) one at a time, and prints p50, p99,
the server's CPU time per query (user + system from /proc) and the load average. It also hashes
every answer body byte for byte: the last column says whether each label's answers are
identical to the first label's (the identical-answers check of a speed change).
"""

from __future__ import annotations

import argparse
import hashlib
import http.client
import json
import os
import signal
import sys
import time
from pathlib import Path

import numpy as np

from bench.cpu_ingest import tree_cpu_s
from bench.pulsarproc import start_standalone
from bench.tsbs import DatasetSpec
from bench.tsbs_queries import make_queries

__all__ = ["main"]


def _run(port: int, pid: int, paths: list[str], warmup: int) -> dict[str, float | str]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)

    def get(path: str) -> bytes:
        conn.request("GET", path)
        resp = conn.getresponse()
        body = resp.read()
        if resp.status != 200 or b'"error"' in body[:200]:
            raise RuntimeError(f"{resp.status}: {body[:300]!r}")
        return body

    try:
        for path in paths[:warmup]:
            get(path)
        digest = hashlib.sha1()
        own0, rest0 = tree_cpu_s(pid)
        latencies = []
        for path in paths:
            t = time.perf_counter()
            body = get(path)
            latencies.append(time.perf_counter() - t)
            digest.update(body)
        own1, rest1 = tree_cpu_s(pid)
    finally:
        conn.close()
    lat = np.array(latencies) * 1e3
    return {
        "p50": float(np.percentile(lat, 50)),
        "p99": float(np.percentile(lat, 99)),
        "mean": float(lat.mean()),
        "cpu": ((own1 - own0) + (rest1 - rest0)) / len(paths) * 1e3,
        "digest": digest.hexdigest()[:12],
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description="aggregate-scan query latency, CPU and answers")
    p.add_argument("--data-dir", required=True)
    p.add_argument("--spec", required=True, help="the data set's .lp.json spec")
    p.add_argument("--types", default="double-groupby-1")
    p.add_argument("--queries", type=int, default=100)
    p.add_argument("--warmup", type=int, default=10)
    p.add_argument("--rounds", type=int, default=1)
    p.add_argument(
        "--code",
        action="append",
        default=[],
        help="LABEL=DIR or LABEL=DIR?PULSAR_X=V&... (PYTHONPATH and environment of a server)",
    )
    args = p.parse_args(argv)
    spec = DatasetSpec(**json.loads(Path(args.spec).read_text()))
    codes = [tuple(c.split("=", 1)) for c in args.code] or [("current", "")]
    first: dict[str, str] = {}
    for rnd in range(args.rounds):
        for label, code in codes:
            proc, port = start_standalone(args.data_dir, code or None)
            try:
                for qtype in args.types.split(","):
                    paths = [q.path for q in make_queries(spec, qtype, args.queries, "influxql")]
                    r = _run(port, proc.pid, paths, args.warmup)
                    same = first.setdefault(qtype, str(r["digest"])) == r["digest"]
                    print(
                        f"round {rnd} {label:6s} {qtype:22s} p50 {r['p50']:8.2f} ms  "
                        f"p99 {r['p99']:8.2f} ms  mean {r['mean']:8.2f} ms  "
                        f"server CPU {r['cpu']:8.2f} ms/query  load "
                        f"{os.getloadavg()[0]:.1f}  answers {r['digest']} "
                        f"{'same' if same else 'DIFFERENT'}",
                        flush=True,
                    )
            finally:
                os.killpg(proc.pid, signal.SIGTERM)
                proc.wait(timeout=60)
    return 0


if __name__ == "__main__":
    sys.exit(main())
