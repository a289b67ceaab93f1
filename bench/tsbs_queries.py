"""The TSBS devops query types as per-system HTTP requests (InfluxQL and PromQL/MetricsQL).

For each type, `make_queries` draws random parameters (host, time window) from a seeded RNG
inside the data set's time range, and renders the same logical query for each dialect:

| type                   | what TSBS asks                                    | window |
|------------------------|---------------------------------------------------|--------|
| single-groupby-1-1-1   | max of 1 field, 1 host, per minute                | 1 h    |
| single-groupby-5-1-12  | max of 5 fields, 1 host, per minute               | 12 h   |
| double-groupby-1       | mean of 1 field, per hour and per host, all hosts | 12 h   |
| high-cpu-1             | all fields of 1 host where usage_user > 90        | 12 h   |
| lastpoint              | the last value of every field of every host       | all    |
| groupby-orderby-limit  | the last 5 per-minute maxima before a random end  | <= end |

Windows longer than the data set are clamped to it. The InfluxQL text is TSBS's (tsbs
cmd/tsbs_generate_queries/databases/influx), with two notes: groupby-orderby-limit gets the data
set's start as lower time bound (same answer, but InfluxDB would otherwise open minute buckets
back to 1677), and lastpoint reads all time like TSBS.

PromQL has no exact equivalent of three types, which TSBS does not run on VictoriaMetrics; the
nearest queries are used and marked `approx` in the report: high-cpu-1 returns only
usage_user samples above 90 (10 s step), lastpoint is an instant query of every cpu_usage_*
series, groupby-orderby-limit is the per-minute max over the 5 minutes before the end.
VictoriaMetrics stores `cpu usage_user=..` as the metric `cpu_usage_user`.
"""

from __future__ import annotations

import datetime as dt
import urllib.parse
from dataclasses import dataclass

import numpy as np

from bench.tsbs import DatasetSpec

__all__ = ["QUERY_TYPES", "APPROX_PROMQL", "HttpQuery", "make_queries", "rfc3339"]

QUERY_TYPES = (
    "single-groupby-1-1-1",
    "single-groupby-5-1-12",
    "double-groupby-1",
    "high-cpu-1",
    "lastpoint",
    "groupby-orderby-limit",
)
APPROX_PROMQL = frozenset(("high-cpu-1", "lastpoint", "groupby-orderby-limit"))
_FIVE = ("usage_user", "usage_system", "usage_idle", "usage_nice", "usage_iowait")
_HOUR_NS = 3_600_000_000_000
_MIN_NS = 60_000_000_000


@dataclass(frozen=True)
class HttpQuery:
    """One request: GET `path` (with its query string) on the system's base URL."""

    type: str
    path: str
    text: str  # the query text, for the report


def rfc3339(ns: int) -> str:
    t = dt.datetime.fromtimestamp(ns // 1_000_000_000, tz=dt.UTC)
    return t.strftime("%Y-%m-%dT%H:%M:%SZ")


def _window(rng: np.random.Generator, spec: DatasetSpec, length_ns: int) -> tuple[int, int]:
    """A random [start, end) of `length_ns` (clamped to the data), aligned to the second."""
    assert spec.start_ns is not None
    span = spec.end_ns - spec.start_ns
    length = min(length_ns, span)
    slack = (span - length) // 1_000_000_000
    start = spec.start_ns + int(rng.integers(0, slack + 1)) * 1_000_000_000
    return start, start + length


def _influxql(db: str, q: str) -> str:
    return "/query?" + urllib.parse.urlencode({"db": db, "q": q, "epoch": "ns"})


def _promql(q: str, start: int | None, end: int, step_s: int | None) -> str:
    if start is None or step_s is None:
        return "/api/v1/query?" + urllib.parse.urlencode({"query": q, "time": end / 1e9})
    params = {"query": q, "start": start / 1e9, "end": end / 1e9, "step": f"{step_s}s"}
    return "/api/v1/query_range?" + urllib.parse.urlencode(params)


def make_queries(
    spec: DatasetSpec, qtype: str, count: int, dialect: str, seed: int = 7, db: str = "benchmark"
) -> list[HttpQuery]:
    """`count` queries of `qtype` for `dialect` ('influxql' or 'promql'); deterministic."""
    if qtype not in QUERY_TYPES:
        raise ValueError(f"unknown query type '{qtype}'")
    if dialect not in ("influxql", "promql"):
        raise ValueError(f"unknown dialect '{dialect}'")
    spec = spec.resolved()
    assert spec.start_ns is not None
    # The same seed gives the same hosts and windows for every dialect: one logical workload.
    rng = np.random.default_rng([seed, QUERY_TYPES.index(qtype)])
    hosts = spec.hostnames()
    out = []
    for _ in range(count):
        host = hosts[int(rng.integers(0, len(hosts)))]
        if qtype == "single-groupby-1-1-1":
            a, b = _window(rng, spec, _HOUR_NS)
            if dialect == "influxql":
                q = (
                    f"SELECT max(usage_user) FROM cpu WHERE (hostname = '{host}') "
                    f"AND time >= '{rfc3339(a)}' AND time < '{rfc3339(b)}' GROUP BY time(1m)"
                )
            else:
                q = f'max(max_over_time(cpu_usage_user{{hostname="{host}"}}[1m])) by (__name__)'
                out.append(HttpQuery(qtype, _promql(q, a, b, 60), q))
                continue
        elif qtype == "single-groupby-5-1-12":
            a, b = _window(rng, spec, 12 * _HOUR_NS)
            if dialect == "influxql":
                sel = ", ".join(f"max({f})" for f in _FIVE)
                q = (
                    f"SELECT {sel} FROM cpu WHERE (hostname = '{host}') "
                    f"AND time >= '{rfc3339(a)}' AND time < '{rfc3339(b)}' GROUP BY time(1m)"
                )
            else:
                names = "|".join(_FIVE)
                q = (
                    f'max(max_over_time({{__name__=~"cpu_({names})",hostname="{host}"}}[1m])) '
                    "by (__name__)"
                )
                out.append(HttpQuery(qtype, _promql(q, a, b, 60), q))
                continue
        elif qtype == "double-groupby-1":
            a, b = _window(rng, spec, 12 * _HOUR_NS)
            if dialect == "influxql":
                q = (
                    f"SELECT mean(usage_user) FROM cpu WHERE time >= '{rfc3339(a)}' "
                    f"AND time < '{rfc3339(b)}' GROUP BY time(1h), hostname"
                )
            else:
                q = "avg(avg_over_time(cpu_usage_user[1h])) by (hostname)"
                out.append(HttpQuery(qtype, _promql(q, a, b, 3600), q))
                continue
        elif qtype == "high-cpu-1":
            a, b = _window(rng, spec, 12 * _HOUR_NS)
            if dialect == "influxql":
                q = (
                    f"SELECT * FROM cpu WHERE usage_user > 90.0 AND time >= '{rfc3339(a)}' "
                    f"AND time < '{rfc3339(b)}' AND (hostname = '{host}')"
                )
            else:
                q = f'cpu_usage_user{{hostname="{host}"}} > 90'
                out.append(HttpQuery(qtype, _promql(q, a, b, spec.interval_s), q))
                continue
        elif qtype == "lastpoint":
            if dialect == "influxql":
                q = 'SELECT last(*) FROM cpu GROUP BY "hostname"'
            else:
                q = '{__name__=~"cpu_usage_.*"}'
                out.append(HttpQuery(qtype, _promql(q, None, spec.end_ns, None), q))
                continue
        else:  # groupby-orderby-limit
            # A random end inside the data (at least 5 minutes after its start).
            lo = spec.start_ns + 5 * _MIN_NS
            b = lo + int(rng.integers(0, max(1, (spec.end_ns - lo) // 1_000_000_000))) * 10**9
            if dialect == "influxql":
                q = (
                    f"SELECT max(usage_user) FROM cpu WHERE time < '{rfc3339(b)}' "
                    f"AND time >= '{rfc3339(spec.start_ns)}' "
                    "GROUP BY time(1m) ORDER BY time DESC LIMIT 5"
                )
            else:
                q = "max(max_over_time(cpu_usage_user[1m]))"
                out.append(HttpQuery(qtype, _promql(q, b - 5 * _MIN_NS, b, 60), q))
                continue
        out.append(HttpQuery(qtype, _influxql(db, q), q))
    return out
