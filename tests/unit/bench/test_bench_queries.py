"""TSBS query rendering and the query driver against a real HTTP server."""

from __future__ import annotations

import urllib.parse

import pytest
from bench_sinkserver import sink_server

from bench.query_driver import answer_digest, answer_problem, run_queries
from bench.tsbs import DatasetSpec
from bench.tsbs_queries import QUERY_TYPES, make_queries, rfc3339

START = 1_767_225_600_000_000_000
SPEC = DatasetSpec(hosts=50, duration_s=6 * 3600, seed=1, start_ns=START)


def _params(path: str) -> dict[str, str]:
    return dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(path).query))


@pytest.mark.parametrize("qtype", QUERY_TYPES)
@pytest.mark.parametrize("dialect", ["influxql", "promql"])
def test_queries_are_deterministic_and_inside_the_data(qtype: str, dialect: str) -> None:
    a = make_queries(SPEC, qtype, 10, dialect)
    assert a == make_queries(SPEC, qtype, 10, dialect)
    assert len(a) == 10 and all(q.type == qtype for q in a)
    for q in a:
        p = _params(q.path)
        if dialect == "influxql":
            assert q.path.startswith("/query?") and p["db"] == "benchmark"
            assert p["q"] == q.text
            for host in [h for h in SPEC.hostnames() if f"'{h}'" in q.text]:
                assert host in SPEC.hostnames()
        else:
            assert p["query"] == q.text
            if "start" in p:
                assert START / 1e9 <= float(p["start"]) < float(p["end"]) <= SPEC.end_ns / 1e9


def test_windows_have_tsbs_lengths_clamped_to_the_data() -> None:
    (one_h,) = make_queries(SPEC, "single-groupby-1-1-1", 1, "promql")
    p = _params(one_h.path)
    assert float(p["end"]) - float(p["start"]) == 3600
    (twelve,) = make_queries(SPEC, "double-groupby-1", 1, "promql")
    p = _params(twelve.path)
    assert float(p["end"]) - float(p["start"]) == 6 * 3600  # clamped: the data has 6 h
    (q,) = make_queries(SPEC, "single-groupby-5-1-12", 1, "influxql")
    assert f"time >= '{rfc3339(START)}'" in q.text and "max(usage_iowait)" in q.text


def test_same_hosts_for_every_dialect() -> None:
    inf = make_queries(SPEC, "high-cpu-1", 5, "influxql")
    prom = make_queries(SPEC, "high-cpu-1", 5, "promql")
    for a, b in zip(inf, prom, strict=True):
        host = b.text.split('"')[1]
        assert f"hostname = '{host}'" in a.text


def test_answer_problem_shapes() -> None:
    assert answer_problem(200, b'{"results":[{"statement_id":0,"series":[{"name":"cpu"}]}]}') == (
        "",
        False,
    )
    assert answer_problem(200, b'{"results":[{"statement_id":0}]}') == ("", True)
    assert answer_problem(200, b'{"results":[{"error":"bad"}]}')[0] == "bad"
    assert answer_problem(200, b'{"status":"success","data":{"result":[]}}') == ("", True)
    assert answer_problem(200, b'{"status":"success","data":{"result":[1]}}') == ("", False)
    assert answer_problem(404, b"nope")[0].startswith("HTTP 404")
    assert answer_problem(200, b"<html>")[0].startswith("not JSON")
    assert answer_problem(400, b'{"error":"x"}')[0].startswith("HTTP 400")


def test_run_queries_counts_latency_errors_and_empty() -> None:
    queries = make_queries(SPEC, "lastpoint", 9, "influxql")

    def answer(method: str, path: str, body: bytes, n: int) -> tuple[int, dict[str, str], bytes]:
        if n % 3 == 0:
            return 200, {}, b'{"results":[{"error":"unsupported"}]}'
        if n % 3 == 1:
            return 200, {}, b'{"results":[{"series":[{"name":"cpu"}]}]}'
        return 200, {}, b'{"results":[{}]}'

    with sink_server(answer) as sink:
        stats = run_queries(sink.url, queries, time_limit_s=30)
        assert [p for _, p, _ in sink.requests] == [q.path for q in queries]
    assert stats.count == 9 and stats.errors == 3 and stats.empty == 3
    assert stats.first_error == "unsupported"
    assert 0 < stats.p50_ms <= stats.p99_ms and stats.qps > 0


def test_answer_digest_ignores_order_and_number_types() -> None:
    a = (
        b'{"results":[{"statement_id":0,"series":['
        b'{"name":"cpu","tags":{"hostname":"h1"},"columns":["time","max"],"values":[[1,58]]},'
        b'{"name":"cpu","tags":{"hostname":"h0"},"columns":["time","max"],"values":[[1,0.1]]}]}]}'
    )
    b = (
        b'{"results":[{"statement_id":0,"series":['
        b'{"name":"cpu","tags":{"hostname":"h0"},"columns":["max","time"],'
        b'"values":[[0.10000000000000002,1]]},'
        b'{"name":"cpu","tags":{"hostname":"h1"},"columns":["time","max"],"values":[[1,58.0]]}]}]}'
    )
    assert answer_digest(a) == answer_digest(b)
    c = a.replace(b"[[1,58]]", b"[[1,59]]")
    assert answer_digest(a) != answer_digest(c)
    assert answer_digest(a) != answer_digest(a.replace(b'"h1"', b'"h2"'))
