"""Query driver: runs a list of HTTP queries one after another and reports their latency.

One client, one keep-alive connection, queries sequential (latency, not throughput, is the
question; queries/s is then 1 / mean latency). Bounded by `count` and by `time_limit_s` per
query type. `QueryRun` sends a type's queries in rounds (a slice and a time limit each) and pools
them, so that the runner can let several systems take turns on the same query type.
Answers are checked, not just timed: a non-200 status, an `error` in the JSON
(InfluxDB puts it inside `results`), or an answer that is not JSON counts as an error; an answer
with no series counts as `empty` (a sign of a wrong query or missing data, shown in the report).
"""

from __future__ import annotations

import contextlib
import hashlib
import http.client
import time
from dataclasses import asdict, dataclass, field
from urllib.parse import urlsplit

import numpy as np
import orjson

from bench.tsbs_queries import HttpQuery

__all__ = ["QueryStats", "QueryRun", "RoundStats", "run_queries", "answer_problem", "answer_digest"]


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
    # One digest per query in query order (answer_digest; "" for an error, None for a query
    # not sent, skipped at a round's time limit): equal digests = the same answer.
    digests: list[str | None] = field(default_factory=list)
    # Per round (when the runner takes turns): RoundStats as dicts, in round order.
    rounds: list[dict[str, object]] = field(default_factory=list)

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


@dataclass
class RoundStats:
    """One round of one system on one query type: how many it answered in how long."""

    round: int
    position: int  # its place in the round's order (0: first)
    first: int  # index (in the type's query list) of the round's first query
    count: int = 0
    seconds: float = 0.0  # sum of latencies
    qps: float = 0.0

    def to_dict(self) -> dict[str, object]:
        return asdict(self)


class QueryRun:
    """One system's run of one query type, possibly in several rounds (the runner lets the
    systems take turns): latencies, errors and digests of all rounds are pooled into one
    `QueryStats`. Digests stay in query order: `digests[i]` is query i's (None for a query that
    a round's time limit skipped), so two systems' answers compare query by query even when
    they answered different numbers of queries per round."""

    def __init__(self, base_url: str, queries: list[HttpQuery], time_limit_s: float) -> None:
        if not queries:
            raise ValueError("no queries")
        self.queries = queries
        self.stats = QueryStats(queries[0].type, example=queries[0].text)
        self.rounds: list[RoundStats] = []
        self._latencies: list[float] = []
        self._digests: list[str | None] = [None] * len(queries)
        parts = urlsplit(base_url)
        self._host, self._port = parts.hostname or "127.0.0.1", parts.port or 80
        self._timeout = max(10.0, time_limit_s)

    def _connect(self) -> http.client.HTTPConnection:
        conn = http.client.HTTPConnection(self._host, self._port, timeout=self._timeout)
        # Connect before the clock starts (a failure here shows as the first query's error):
        # a fresh connection per round, as a server may close one left idle during the
        # others' turns, which would count as an error.
        with contextlib.suppress(OSError):
            conn.connect()
        return conn

    def run_round(
        self, first: int, stop: int, time_limit_s: float, round_no: int = 0, position: int = 0
    ) -> RoundStats:
        """Send queries[first:stop] one after another; stop early after `time_limit_s`."""
        rs = RoundStats(round_no, position, first)
        conn = self._connect()
        deadline = time.monotonic() + time_limit_s
        try:
            for i in range(first, min(stop, len(self.queries))):
                if time.monotonic() > deadline:
                    break
                q = self.queries[i]
                t0 = time.perf_counter()
                try:
                    conn.request("GET", q.path)
                    resp = conn.getresponse()
                    body = resp.read()
                    status = resp.status
                except (OSError, http.client.HTTPException) as exc:
                    conn.close()
                    conn = http.client.HTTPConnection(self._host, self._port, timeout=self._timeout)
                    status, body = 0, f"{type(exc).__name__}: {exc}".encode()
                latency = time.perf_counter() - t0
                self._latencies.append(latency)
                rs.seconds += latency
                rs.count += 1
                problem, empty = answer_problem(status, body)
                self._digests[i] = "" if problem else answer_digest(body)
                self.stats.count += 1
                if problem:
                    self.stats.errors += 1
                    self.stats.first_error = self.stats.first_error or problem
                elif empty:
                    self.stats.empty += 1
        finally:
            conn.close()
        rs.qps = rs.count / rs.seconds if rs.seconds > 0 else 0.0
        self.rounds.append(rs)
        return rs

    def result(self) -> QueryStats:
        """The pooled stats of all rounds so far: qps = queries / total time."""
        stats = self.stats
        # Digests up to the last query sent (a prefix when there was only one round).
        sent = [i for i, d in enumerate(self._digests) if d is not None]
        stats.digests = self._digests[: sent[-1] + 1] if sent else []
        if self._latencies:
            lat = np.array(self._latencies) * 1000.0
            stats.p50_ms = float(np.percentile(lat, 50))
            stats.p99_ms = float(np.percentile(lat, 99))
            stats.mean_ms = float(lat.mean())
            stats.qps = float(len(lat) / (lat.sum() / 1000.0)) if lat.sum() > 0 else 0.0
        stats.rounds = [r.to_dict() for r in self.rounds]
        return stats


def run_queries(base_url: str, queries: list[HttpQuery], time_limit_s: float = 60.0) -> QueryStats:
    """Run `queries` (all of one type) against `base_url` in one round; stop early after
    `time_limit_s`."""
    run = QueryRun(base_url, queries, time_limit_s)
    run.run_round(0, len(queries), time_limit_s)
    return run.result()
