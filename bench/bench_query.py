"""Query latency on TSBS devops data: p50/p99 per TSBS query type, in process and over HTTP.

    .venv/bin/python -m bench.bench_query --hosts 100 --hours 24 --queries 30

Data: TSBS's `cpu` measurement (10 tags, 10 float fields usage_*, one point per host every
10 s), written straight into an engine directory (no HTTP ingest: this measures queries). Then:
1. in process: InfluxQL text -> parse -> plan -> node executor -> merge -> finalise, on a
   LocalNode (what one coordinator + one node do, without HTTP and JSON);
2. over HTTP: GET /query?db=&q=&epoch=ns against a real `pulsar standalone` on the same data.
Query texts are TSBS's (tsbs cmd/tsbs_generate_queries/databases/influx), with random hosts and
windows from a seeded RNG. Speed is reported, never asserted.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.parse
from collections.abc import Callable

import httpx
import numpy as np

from node.engine.engine import Engine, EngineOptions
from node.local import LocalNode
from pulsar_cluster.batch import Column, FieldType, WriteBatch
from pulsar_cluster.query.influxql.parser import parse_query
from pulsar_cluster.query.influxql.planner import execute_statement
from pulsar_cluster.series import make_series_key
from pulsar_cluster.timeutil import format_rfc3339

__all__ = ["main"]

S = 1_000_000_000
START = 1_767_225_600 * S  # 2026-01-01T00:00:00Z
FIELDS = [
    "usage_user", "usage_system", "usage_idle", "usage_nice", "usage_iowait",
    "usage_irq", "usage_softirq", "usage_steal", "usage_guest", "usage_guest_nice",
]  # fmt: skip
TYPES = (
    "single-groupby-1-1-1",
    "single-groupby-5-1-12",
    "double-groupby-1",
    "high-cpu-1",
    "lastpoint",
    "groupby-orderby-limit",
)


def host_tags(i: int) -> dict[str, str]:
    return {
        "hostname": f"host_{i}",
        "region": f"region_{i % 9}",
        "datacenter": f"dc_{i % 27}",
        "rack": str(i % 100),
        "os": f"Ubuntu{14 + i % 3}.04LTS",
        "arch": "x64" if i % 2 else "x86",
        "team": ["SF", "NYC", "LON", "CHI"][i % 4],
        "service": str(i % 20),
        "service_version": str(i % 2),
        "service_environment": ["production", "staging", "test"][i % 3],
    }


def generate(data_dir: str, hosts: int, hours: int, interval_s: int) -> int:
    engine = Engine(data_dir, EngineOptions(fsync="never"))
    rng = np.random.default_rng(1)
    state = rng.uniform(0, 100, size=(hosts, len(FIELDS)))
    per_hour = 3600 // interval_s
    points = 0
    try:
        for h in range(hours):
            ts = START + (h * 3600 + np.arange(per_hour) * interval_s) * S
            batch = WriteBatch("benchmark")
            for i in range(hosts):
                steps = rng.normal(0, 1, size=(per_hour, len(FIELDS)))
                walk = np.clip(state[i] + np.cumsum(steps, axis=0), 0, 100)
                state[i] = walk[-1]
                key = make_series_key("cpu", host_tags(i))
                batch.series[key] = {
                    f: Column(FieldType.FLOAT, ts, np.round(walk[:, j], 2))
                    for j, f in enumerate(FIELDS)
                }
                points += per_hour
            engine.apply(batch)
        engine.flush()
    finally:
        engine.close()
    return points


def queries(qtype: str, count: int, hosts: int, hours: int, seed: int = 7) -> list[str]:
    rng = np.random.default_rng([seed, TYPES.index(qtype)])
    end_all = START + hours * 3600 * S

    def window(length_h: int) -> tuple[str, str]:
        length = min(length_h, hours) * 3600 * S
        a = START + int(rng.integers(0, (end_all - length - START) // S + 1)) * S
        return format_rfc3339(a), format_rfc3339(a + length)

    out = []
    for _ in range(count):
        host = f"host_{int(rng.integers(0, hosts))}"
        if qtype == "single-groupby-1-1-1":
            a, b = window(1)
            q = (f"SELECT max(usage_user) FROM cpu WHERE (hostname = '{host}') "
                 f"AND time >= '{a}' AND time < '{b}' GROUP BY time(1m)")  # fmt: skip
        elif qtype == "single-groupby-5-1-12":
            a, b = window(12)
            sel = ", ".join(f"max({f})" for f in FIELDS[:5])
            q = (f"SELECT {sel} FROM cpu WHERE (hostname = '{host}') "
                 f"AND time >= '{a}' AND time < '{b}' GROUP BY time(1m)")  # fmt: skip
        elif qtype == "double-groupby-1":
            a, b = window(12)
            q = (f"SELECT mean(usage_user) FROM cpu WHERE time >= '{a}' "
                 f"AND time < '{b}' GROUP BY time(1h), hostname")  # fmt: skip
        elif qtype == "high-cpu-1":
            a, b = window(12)
            q = (f"SELECT * FROM cpu WHERE usage_user > 90.0 AND time >= '{a}' "
                 f"AND time < '{b}' AND (hostname = '{host}')")  # fmt: skip
        elif qtype == "lastpoint":
            q = 'SELECT last(*) FROM cpu GROUP BY "hostname"'
        else:
            b = START + 5 * 60 * S + int(rng.integers(0, (end_all - START) // S - 300)) * S
            q = (f"SELECT max(usage_user) FROM cpu WHERE time < '{format_rfc3339(b)}' "
                 f"AND time >= '{format_rfc3339(START)}' "
                 "GROUP BY time(1m) ORDER BY time DESC LIMIT 5")  # fmt: skip
        out.append(q)
    return out


def percentiles(samples: list[float]) -> tuple[float, float]:
    arr = np.array(samples) * 1000
    return float(np.percentile(arr, 50)), float(np.percentile(arr, 99))


def measure(run: Callable[[str], object], texts: list[str], warmup: int = 2) -> tuple[float, float]:
    for q in texts[:warmup]:
        run(q)
    samples = []
    for q in texts:
        t0 = time.perf_counter()
        run(q)
        samples.append(time.perf_counter() - t0)
    return percentiles(samples)


def in_process(data_dir: str, workload: dict[str, list[str]]) -> dict[str, tuple[float, float]]:
    node = LocalNode(data_dir, EngineOptions(fsync="never"))
    loop = asyncio.new_event_loop()
    now = time.time_ns()

    def run(q: str) -> object:
        async def go() -> list:
            return [await execute_statement(s, "benchmark", node, now) for s in parse_query(q)]

        return loop.run_until_complete(go())  # errors raise

    try:
        return {t: measure(run, qs) for t, qs in workload.items()}
    finally:
        loop.run_until_complete(node.close())
        loop.close()


def over_http(data_dir: str, workload: dict[str, list[str]]) -> dict[str, tuple[float, float]]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    pulsar = os.path.join(os.path.dirname(sys.executable), "pulsar")
    cmd = [pulsar, "standalone", "--data-dir", data_dir, "--host", "127.0.0.1", "--port", str(port)]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            try:
                if httpx.get(url + "/ready", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.2)
        else:
            raise RuntimeError("server did not become ready")
        with httpx.Client(base_url=url, timeout=120) as client:

            def run(q: str) -> object:
                params = urllib.parse.urlencode({"db": "benchmark", "q": q, "epoch": "ns"})
                r = client.get("/query?" + params)
                body = r.json()
                if r.status_code != 200 or "error" in body["results"][0]:
                    raise RuntimeError(f"{q}: {r.status_code} {r.text[:300]}")
                return body

            return {t: measure(run, qs) for t, qs in workload.items()}
    finally:
        proc.terminate()
        proc.wait(timeout=60)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--hosts", type=int, default=100)
    p.add_argument("--hours", type=int, default=24)
    p.add_argument("--interval", type=int, default=10, help="seconds between points")
    p.add_argument("--queries", type=int, default=30, help="per query type")
    p.add_argument("--types", default=",".join(TYPES))
    p.add_argument("--data-dir", help="keep the data here (default: a temporary directory)")
    p.add_argument("--no-http", action="store_true")
    args = p.parse_args(argv)
    data_dir = args.data_dir or tempfile.mkdtemp(prefix="pulsar-bench-query-")
    try:
        if not os.path.exists(os.path.join(data_dir, "sst")) or not os.listdir(
            os.path.join(data_dir, "sst")
        ):
            t0 = time.perf_counter()
            n = generate(data_dir, args.hosts, args.hours, args.interval)
            took = time.perf_counter() - t0
            print(
                f"data: {args.hosts} hosts x {args.hours} h every {args.interval} s = {n} rows "
                f"x {len(FIELDS)} fields, written in {took:.1f} s"
            )
        types = [t for t in args.types.split(",") if t]
        workload = {t: queries(t, args.queries, args.hosts, args.hours) for t in types}
        results = {"in process": in_process(data_dir, workload)}
        if not args.no_http:
            results["HTTP /query"] = over_http(data_dir, workload)
        print(f"\n{'query type':24} " + " ".join(f"{k + ' p50/p99 ms':>28}" for k in results))
        for t in types:
            cells = " ".join(
                f"{results[k][t][0]:>13.2f} / {results[k][t][1]:>10.2f}" for k in results
            )
            print(f"{t:24} {cells}")
    finally:
        if not args.data_dir:
            shutil.rmtree(data_dir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
