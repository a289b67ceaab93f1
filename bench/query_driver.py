"""Query driver: runs a list of HTTP queries one after another and reports their latency.

One client, one keep-alive connection, queries sequential (latency, not throughput, is the
question; queries/s is then 1 / mean latency). Bounded by `count` and by `time_limit_s` per
query type. Answers are checked, not just timed: a non-200 status, an `error` in the JSON
(InfluxDB puts it inside `results`), or an answer that is not JSON counts as an error; an answer
with no series counts as `empty` (a sign of a wrong query or missing data, shown in the report).
"""

from __future__ import annotations

import hashlib
import http.client
import time
from dataclasses import asdict, dataclass, field
from urllib.parse import urlsplit

import numpy as np
import orjson

from bench.tsbs_queries import HttpQuery

__all__ = ["QueryStats", "run_queries", "answer_problem", "answer_digest"]


@dataclass
class QueryStats:
    type: str
    count: int = 0
    errors: int = 0
    empty: int = 0
    p50_ms: float = 0.0
    p99_ms: float = 0.0
    mean_ms: float = 0.0
    qps: float = 0.0
    first_error: str = ""
    example: str = ""
    # One digest per query (answer_digest; "" for an error): equal digests = the same answer.
    digests: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, object]:
        return asdict(self)


def answer_problem(status: int, body: bytes) -> tuple[str, bool]:
    """(error text or '', empty?) for an InfluxDB-style or Prometheus-style JSON answer."""
    if status != 200:
        return f"HTTP {status}: {body[:300].decode(errors='replace')}", False
    try:
        doc = orjson.loads(body)
    except orjson.JSONDecodeError:
        return f"not JSON: {body[:200].decode(errors='replace')}", False
    if not isinstance(doc, dict):
        return "answer is not a JSON object", False
    if doc.get("error"):
        return str(doc["error"])[:300], False
    if "results" in doc:  # InfluxQL
        results = doc["results"] or []
        for r in results:
            if isinstance(r, dict) and r.get("error"):
                return str(r["error"])[:300], False
        empty = not any(isinstance(r, dict) and r.get("series") for r in results)
        return "", empty
    if doc.get("status") == "success":  # Prometheus API
        return "", not doc.get("data", {}).get("result")
    if doc.get("status") == "error":
        return str(doc.get("error", "status error"))[:300], False
    return "unrecognised answer shape", False


def _num(v: object) -> object:
    # Integers and floats compare as numbers, to 9 significant digits (58 == 58.0; a mean
    # summed in another order may differ in the last bits).
    if isinstance(v, bool) or not isinstance(v, int | float):
        return v
    return float(f"{float(v):.9g}")


def answer_digest(body: bytes) -> str:
    """A digest of an InfluxQL answer that ignores what may legitimately differ between two
    servers: series order, column order, int vs float, float noise past 9 digits."""
    try:
        doc = orjson.loads(body)
    except orjson.JSONDecodeError:
        return ""
    canon = []
    for result in doc.get("results") or []:
        series = []
        for s in result.get("series") or []:
            cols = s.get("columns") or []
            order = sorted(range(len(cols)), key=lambda i: cols[i])
            rows = [[_num(row[i]) for i in order] for row in s.get("values") or []]
            tags = sorted((s.get("tags") or {}).items())
            series.append([s.get("name"), tags, [cols[i] for i in order], rows])
        series.sort(key=lambda x: orjson.dumps(x[:2]))
        canon.append(series)
    return hashlib.sha1(orjson.dumps(canon)).hexdigest()


def run_queries(base_url: str, queries: list[HttpQuery], time_limit_s: float = 60.0) -> QueryStats:
    """Run `queries` (all of one type) against `base_url`; stop early after `time_limit_s`."""
    if not queries:
        raise ValueError("no queries")
    stats = QueryStats(queries[0].type, example=queries[0].text)
    parts = urlsplit(base_url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    conn = http.client.HTTPConnection(host, port, timeout=max(10.0, time_limit_s))
    latencies: list[float] = []
    deadline = time.monotonic() + time_limit_s
    try:
        for q in queries:
            if time.monotonic() > deadline:
                break
            t0 = time.perf_counter()
            try:
                conn.request("GET", q.path)
                resp = conn.getresponse()
                body = resp.read()
                status = resp.status
            except (OSError, http.client.HTTPException) as exc:
                conn.close()
                conn = http.client.HTTPConnection(host, port, timeout=max(10.0, time_limit_s))
                status, body = 0, f"{type(exc).__name__}: {exc}".encode()
            latencies.append(time.perf_counter() - t0)
            problem, empty = answer_problem(status, body)
            stats.digests.append("" if problem else answer_digest(body))
            stats.count += 1
            if problem:
                stats.errors += 1
                stats.first_error = stats.first_error or problem
            elif empty:
                stats.empty += 1
    finally:
        conn.close()
    lat = np.array(latencies) * 1000.0
    stats.p50_ms = float(np.percentile(lat, 50))
    stats.p99_ms = float(np.percentile(lat, 99))
    stats.mean_ms = float(lat.mean())
    stats.qps = float(len(lat) / (lat.sum() / 1000.0)) if lat.sum() > 0 else 0.0
    return stats
