"""TSBS lastpoint against a running server: warm latency, and cold latency after emptying the
last-value cache (and optionally the block cache) before each query.

    python -m bench.bench_lastpoint --url http://127.0.0.1:8080 [--count 100] [--cold 10]
        [--cold-cache last_value|all] [--db benchmark] [--group hostname]

One keep-alive connection, queries one after another (latency, like bench/query_driver.py).
Every answer must be HTTP 200 without an `error`, and all warm answers must be identical
(the cache never changes an answer). Prints p50/p99/min in ms and the answer digest.
"""

from __future__ import annotations

import argparse
import hashlib
import http.client
import statistics
import time
import urllib.parse

__all__ = ["main"]


def _get(conn: http.client.HTTPConnection, path: str, method: str = "GET") -> bytes:
    conn.request(method, path)
    r = conn.getresponse()
    body = r.read()
    if r.status != 200 or b'"error"' in body[:200]:
        raise SystemExit(f"{method} {path}: HTTP {r.status}: {body[:300]!r}")
    return body


def _stats(label: str, ms: list[float]) -> str:
    ordered = sorted(ms)
    p99 = ordered[min(len(ordered) - 1, int(0.99 * len(ordered)))]
    return (
        f"{label}: n={len(ms)} p50 {statistics.median(ms):.1f} ms, p99 {p99:.1f} ms, "
        f"min {ordered[0]:.1f} ms"
    )


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--url", required=True)
    ap.add_argument("--db", default="benchmark")
    ap.add_argument("--group", default="hostname")
    ap.add_argument("--count", type=int, default=100, help="warm queries")
    ap.add_argument("--cold", type=int, default=5, help="cold queries (cache emptied first)")
    ap.add_argument("--cold-cache", default="last_value", choices=["last_value", "all"])
    args = ap.parse_args(argv)
    url = urllib.parse.urlsplit(args.url)
    conn = http.client.HTTPConnection(url.hostname or "127.0.0.1", url.port or 80, timeout=120)
    q = f'SELECT last(*) FROM cpu GROUP BY "{args.group}"'
    path = "/query?" + urllib.parse.urlencode({"db": args.db, "epoch": "ns", "q": q})
    cold: list[float] = []
    for _ in range(args.cold):
        _get(conn, f"/api/v1/admin/caches/clear?cache={args.cold_cache}", "POST")
        t = time.perf_counter()
        _get(conn, path)
        cold.append((time.perf_counter() - t) * 1000)
    warm: list[float] = []
    digests = set()
    for _ in range(args.count):
        t = time.perf_counter()
        body = _get(conn, path)
        warm.append((time.perf_counter() - t) * 1000)
        digests.add(hashlib.sha256(body).hexdigest()[:16])
    if len(digests) > 1:
        raise SystemExit(f"warm answers differ: {sorted(digests)}")
    if cold:
        print(_stats(f"cold ({args.cold_cache} cache emptied)", cold))
    print(_stats("warm", warm) + f"; answer {digests.pop() if digests else '-'}")


if __name__ == "__main__":
    main()
