"""Federation overhead: a query over two clusters versus the same query on one cluster.

Two `pulsar standalone` clusters each hold half of a TSBS devops data set (hosts split by
parity); a third holds all of it. Each query runs on cluster A with `"clusters": ["*"]` (A's
half locally, B's half through federation) and on the third cluster without federation; the
report is p50/p99 latency of both and their ratio (federated / single).

    .venv/bin/python -m bench.bench_federation --hosts 100 --hours 2 --runs 40

Results go to docs/benchmarks.md ("Federation"). Nothing here is a test: it reports.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

import httpx

from bench.systems import PulsarStandalone
from bench.tsbs import DatasetSpec, generate_chunks

__all__ = ["main"]

TOKEN = "bench-federation"


class _Cluster(PulsarStandalone):
    def __init__(self, workdir: Path, extra: list[str]) -> None:
        super().__init__(workdir)
        self.extra = extra

    def command(self) -> list[str]:
        return [*super().command(), "--parse-workers", "0", *self.extra]


def _queries(start: int, end: int) -> dict[str, dict[str, object]]:
    base = {"db": "benchmark", "measurement": "cpu", "start": start, "end": end}
    return {
        "mean per host, 5m windows (1 field)": {
            **base,
            "fields": ["usage_user"],
            "aggregate": "mean",
            "every": "5m",
            "group_by": ["hostname"],
        },
        "max per region, 1h windows (5 fields)": {
            **base,
            "aggregate": "max",
            "every": "1h",
            "group_by": ["region"],
            "fields": ["usage_user", "usage_system", "usage_idle", "usage_nice", "usage_iowait"],
        },
        "p90 of one host (1 field)": {
            **base,
            "fields": ["usage_user"],
            "aggregate": "percentile_90",
            "where": "hostname = 'host_3'",
        },
        "count of everything": {**base, "fields": ["usage_user"], "aggregate": "count"},
    }


def _time(client: httpx.Client, url: str, query: dict[str, object], runs: int) -> list[float]:
    out = []
    for _ in range(runs):
        started = time.perf_counter()
        r = client.post(f"{url}/api/v1/query", json=query)
        out.append(time.perf_counter() - started)
        if r.status_code != 200:
            raise SystemExit(f"query failed on {url}: {r.status_code} {r.text[:300]}")
    return out


def _pct(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hosts", type=int, default=100)
    parser.add_argument("--hours", type=float, default=2.0)
    parser.add_argument("--runs", type=int, default=40)
    args = parser.parse_args(argv)

    spec = DatasetSpec(hosts=args.hosts, duration_s=int(args.hours * 3600)).resolved()
    with tempfile.TemporaryDirectory(prefix="pulsar-fed-bench-") as tmp:
        b = _Cluster(Path(tmp) / "b", ["--cluster-name", "b", "--federation-token", TOKEN])
        b.start()
        # The token for cluster b reaches a through the environment, as in production.
        os.environ["PULSAR_REMOTE_TOKEN_B"] = TOKEN
        a = _Cluster(Path(tmp) / "a", ["--cluster-name", "a", "--remote-cluster", f"b={b.url}"])
        a.start()
        whole = _Cluster(Path(tmp) / "all", [])
        whole.start()
        try:
            with httpx.Client(timeout=120) as client:
                for chunk in generate_chunks(spec):
                    lines = chunk.rstrip(b"\n").split(b"\n")
                    halves: list[list[bytes]] = [[], []]
                    for line in lines:
                        host = line.split(b"hostname=host_", 1)[1].split(b",", 1)[0]
                        halves[int(host) % 2].append(line)
                    for target, part in ((a, halves[0]), (b, halves[1]), (whole, lines)):
                        if part:
                            r = client.post(target.write_url(), content=b"\n".join(part))
                            assert r.status_code == 204, r.text
                for target in (a, b, whole):
                    target.settle(600)
                print(
                    f"data: {spec.hosts} hosts x {args.hours:g} h = {spec.values:,} values; "
                    f"{args.runs} runs per query\n"
                )
                print(
                    f"{'query':40} {'single p50':>11} {'fed p50':>9} {'p50 ratio':>10} "
                    f"{'single p99':>11} {'fed p99':>9}"
                )
                for name, query in _queries(spec.start_ns or 0, spec.end_ns).items():
                    _time(client, whole.url, query, 3)  # warm caches on both sides
                    _time(client, a.url, {**query, "clusters": ["*"]}, 3)
                    single = _time(client, whole.url, query, args.runs)
                    fed = _time(client, a.url, {**query, "clusters": ["*"]}, args.runs)
                    print(
                        f"{name:40} {_pct(single, 0.5):9.2f}ms {_pct(fed, 0.5):7.2f}ms "
                        f"{statistics.median(fed) / statistics.median(single):9.2f}x "
                        f"{_pct(single, 0.99):9.2f}ms {_pct(fed, 0.99):7.2f}ms"
                    )
        finally:
            for target in (a, b, whole):
                target.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
