"""The query phase taking turns (bench/query_turns.py) against real HTTP servers on 127.0.0.1:
rounds rotate, slices are the same queries for every system, stats pool the rounds, digests stay
in query order, and a system that goes away does not lose the others' results."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager

import pytest
from bench_sinkserver import Sink, sink_server

from bench.query_turns import Contender, round_bounds, take_turns
from bench.run import answers_agree
from bench.systems import free_port, http
from bench.tsbs import DatasetSpec

START = 1_767_225_600_000_000_000
SPEC = DatasetSpec(hosts=10, duration_s=3600, seed=1, start_ns=START)
TYPES = ("single-groupby-1-1-1", "lastpoint")
SERIES = (
    b'{"results":[{"statement_id":0,"series":'
    b'[{"name":"cpu","columns":["time","max"],"values":[[1,2]]}]}]}'
)


def test_round_bounds_cut_every_query_once() -> None:
    assert round_bounds(10, 4) == [(0, 2), (2, 5), (5, 7), (7, 10)]
    assert round_bounds(3, 4) == [(0, 0), (0, 1), (1, 2), (2, 3)]
    with pytest.raises(ValueError):
        round_bounds(10, 0)


@contextmanager
def _sinks(log: list[tuple[str, str]], delays: dict[str, float]) -> Iterator[dict[str, Sink]]:
    """One real HTTP server per name; `log` gets (name, path) of every request, in order."""
    lock = threading.Lock()

    def answerer(name: str):  # type: ignore[no-untyped-def]
        def answer(method: str, path: str, body: bytes, n: int) -> tuple[int, dict, bytes]:  # type: ignore[type-arg]
            with lock:
                log.append((name, path))
            time.sleep(delays.get(name, 0.0))
            return 200, {}, SERIES

        return answer

    with ExitStack() as stack:
        yield {name: stack.enter_context(sink_server(answerer(name))) for name in ("A", "B", "C")}


def test_three_systems_take_turns_in_rotating_order() -> None:
    log: list[tuple[str, str]] = []
    with _sinks(log, {}) as sinks:
        contenders = [Contender(n, s.url, "influxql") for n, s in sinks.items()]
        res = take_turns(
            contenders,
            SPEC,
            queries_per_type=8,
            time_limit_s=60,
            rounds=4,
            types=TYPES,
            log=lambda _: None,
        )
    assert res.failed == {}
    orders = [tuple(o["order"]) for o in res.orders]
    # 4 rounds per type; the rotation goes on across types: every system leads in turn.
    assert orders == [
        ("A", "B", "C"),
        ("B", "C", "A"),
        ("C", "A", "B"),
        ("A", "B", "C"),
        ("B", "C", "A"),
        ("C", "A", "B"),
        ("A", "B", "C"),
        ("B", "C", "A"),
    ]
    assert [(o["type"], o["round"]) for o in res.orders[:5]] == [
        (TYPES[0], 0),
        (TYPES[0], 1),
        (TYPES[0], 2),
        (TYPES[0], 3),
        (TYPES[1], 0),
    ]
    # The servers saw it: in each round every system got its 2-query slice, in the round's order,
    # the same query texts for all.
    blocks = [log[i : i + 2] for i in range(0, len(log), 2)]
    assert len(blocks) == 8 * 3
    for r, order in enumerate(orders):
        names = [blocks[3 * r + k][0][0] for k in range(3)]
        assert tuple(names) == order
        assert all(blocks[3 * r + k][0][0] == blocks[3 * r + k][1][0] for k in range(3))
        paths = {tuple(p for _, p in blocks[3 * r + k]) for k in range(3)}
        assert len(paths) == 1  # the same two queries for every system
    for name in "ABC":
        for qtype in TYPES:
            st = res.stats[name][qtype]
            rounds = st["rounds"]
            assert [r["round"] for r in rounds] == [0, 1, 2, 3]
            assert [r["first"] for r in rounds] == [0, 2, 4, 6]
            assert st["count"] == sum(r["count"] for r in rounds) == 8
            assert all(r["qps"] > 0 for r in rounds)
            # Pooled: queries over the summed time of all rounds.
            total_s = sum(r["seconds"] for r in rounds)
            assert st["qps"] == pytest.approx(8 / total_s, rel=1e-6)
            assert len(st["digests"]) == 8 and all(st["digests"])
    # Positions rotate too: A was first, third, second, first in the first type's rounds.
    assert [r["position"] for r in res.stats["A"][TYPES[0]]["rounds"]] == [0, 2, 1, 0]


def test_round_time_limits_leave_gaps_and_answers_still_compare_query_by_query() -> None:
    log: list[tuple[str, str]] = []
    # B takes 0.3 s per query, a round allows 0.25 s: B answers the first query of each round.
    with _sinks(log, {"B": 0.3}) as sinks:
        res = take_turns(
            [Contender(n, sinks[n].url, "influxql") for n in ("A", "B")],
            SPEC,
            queries_per_type=12,
            time_limit_s=1.0,
            rounds=4,
            types=TYPES[:1],
            log=lambda _: None,
        )
    a, b = res.stats["A"][TYPES[0]], res.stats["B"][TYPES[0]]
    assert a["count"] == 12 and [r["count"] for r in a["rounds"]] == [3, 3, 3, 3]
    assert [r["count"] for r in b["rounds"]] == [1, 1, 1, 1] and b["count"] == 4
    # Query i's digest at index i; the queries B never sent are None.
    assert [d is not None for d in b["digests"]] == [True, False, False] * 3 + [True]
    sent_b = [p for n, p in log if n == "B"]
    sent_a = [p for n, p in log if n == "A"]
    assert sent_b == [sent_a[i] for i in (0, 3, 6, 9)]
    agree = answers_agree(
        {"PulsarDB": {"queries": res.stats["A"]}, "InfluxDB": {"queries": res.stats["B"]}}
    )
    assert agree == [f"{TYPES[0]} 4 of 4 identical"]


# A server that answers two queries and dies (exit code 9) on the third, without answering.
_CRASHER = """
import os, sys
from http.server import BaseHTTPRequestHandler, HTTPServer
BODY = sys.argv[2].encode()
class H(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    n = 0
    def do_GET(self):
        H.n += 1
        if H.n == 3:
            os._exit(9)
        self.send_response(200)
        self.send_header("Content-Length", str(len(BODY)))
        self.end_headers()
        self.wfile.write(BODY)
    def log_message(self, *a): pass
HTTPServer(("127.0.0.1", int(sys.argv[1])), H).serve_forever()
"""


def test_a_server_that_crashes_is_dropped_and_the_others_finish() -> None:
    port = free_port()
    crasher = subprocess.Popen([sys.executable, "-c", _CRASHER, str(port), SERIES.decode()])
    log: list[tuple[str, str]] = []
    try:
        deadline = time.monotonic() + 20
        while http("GET", f"http://127.0.0.1:{port}/", timeout=1)[0] == 0:
            assert time.monotonic() < deadline, "the crashing server never started"
            time.sleep(0.05)
        # That was its first request: it answers one query more, then dies on the next.
        with _sinks(log, {}) as sinks:

            def gone() -> str:
                code = crasher.poll()
                return "" if code is None else f"exited with code {code}"

            res = take_turns(
                [
                    Contender("A", sinks["A"].url, "influxql"),
                    Contender("B", f"http://127.0.0.1:{port}", "influxql", gone),
                ],
                SPEC,
                queries_per_type=4,
                time_limit_s=60,
                rounds=4,
                types=TYPES,
                log=lambda _: None,
            )
    finally:
        crasher.kill()
        crasher.wait()
    assert crasher.returncode == 9
    # Its death shows in round 1 (the error answer), and it is dropped at once, or, when the
    # exit was not yet visible right after the error, one round later.
    why = res.failed["B"]
    assert why in (f"exited with code 9 during {TYPES[0]} round {r}" for r in (1, 2)), why
    b = res.stats["B"][TYPES[0]]
    assert b["errors"] >= 1 and b["count"] == sum(r["count"] for r in b["rounds"]) <= 3
    assert b["digests"][0]  # what it answered before is kept
    # The other system ran everything, the orders name it alone once B was gone.
    assert res.stats["A"][TYPES[0]]["count"] == 4 and res.stats["A"][TYPES[1]]["count"] == 4
    assert res.stats["A"][TYPES[0]]["errors"] == 0
    assert TYPES[1] not in res.stats["B"]
    assert [o["order"] for o in res.orders[4:]] == [["A"]] * 4
