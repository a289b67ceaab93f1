"""The runner end to end on a tiny data set (real PulsarDB), and the report's table."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from bench.procmem import status_kb, tree_pids
from bench.run import main, render_markdown
from bench.systems import InfluxDB
from bench.tsbs_queries import QUERY_TYPES


def test_runner_end_to_end_taking_turns(tmp_path: Path) -> None:
    """PulsarDB (and InfluxDB when installed) loaded, kept up, queried taking turns."""
    systems = "pulsar,influxdb" if InfluxDB.available() else "pulsar"
    if systems == "pulsar":
        print("InfluxDB not installed (make bench-peers): turns of PulsarDB alone")
    out = tmp_path / "results"
    code = main(
        [
            "--size",
            "small",
            "--systems",
            systems,
            "--hosts",
            "5",
            "--duration",
            "10m",
            "--variants",
            "int",
            "--workdir",
            str(tmp_path / "w"),
            "--out",
            str(out),
        ]
    )
    assert code == 0
    (report_path,) = out.glob("small-*.json")
    report = json.loads(report_path.read_text())
    names = [s["name"] for s in report["systems"]]
    assert names == (["PulsarDB", "InfluxDB"] if "influxdb" in systems else ["PulsarDB"])
    pulsar = report["systems"][0]
    ing = pulsar["ingest"]["int"]
    assert ing["errors"] == 0 and ing["lines"] == 5 * 60 and ing["values"] == 5 * 60 * 10
    assert ing["peak_rss_kb"] > 0
    assert pulsar["bytes_per_value"]["int"] > 0
    for s in report["systems"]:
        assert s["status"] == "ok" and s["ingest"]["int"]["errors"] == 0
        assert set(s["queries"]) == set(QUERY_TYPES)
        for st in s["queries"].values():
            # 20 queries in 4 rounds of 5; the count pools the rounds.
            assert [r["round"] for r in st["rounds"]] == [0, 1, 2, 3]
            assert [r["first"] for r in st["rounds"]] == [0, 5, 10, 15]
            assert st["count"] == sum(r["count"] for r in st["rounds"]) == 20
            assert st["errors"] == 0 and len(st["digests"]) == 20
    turns = report["query_turns"]
    assert turns["rounds"] == 4 and turns["failed"] == {}
    assert len(turns["orders"]) == 4 * len(QUERY_TYPES)
    # The order rotates from round to round (with two systems: each leads every other round).
    leads = [o["order"][0] for o in turns["orders"]]
    assert leads[:4] == [names[i % len(names)] for i in range(4)]
    # Waited for idle servers before each load, the last one with all servers up, and before
    # the queries.
    befores = [w["before"] for w in report["idle_waits"]]
    assert befores == [f"the {n} int load" for n in names] + ["the queries"]
    assert list(report["idle_waits"][-2]["busy_cores"]) == names
    assert all(w["idle"] for w in report["idle_waits"]), report["idle_waits"]
    md = (out / report_path.name.replace(".json", ".md")).read_text()
    assert "| ingest int: values/s |" in md
    assert "the systems took turns in 4 rounds of up to 5 queries" in md
    assert "Queries/s per round (in round order):" in md
    if "influxdb" in systems:
        assert "single-groupby-1-1-1 20 of 20 identical" in md
    assert not (tmp_path / "w" / "pulsar-int").exists()  # data dir removed after the run


def test_no_queries_loads_one_system_at_a_time(tmp_path: Path) -> None:
    """--no-queries: every data set one system at a time (the flow of the data sets after the
    first), each server stopped and its data dir removed after its load."""
    out = tmp_path / "results"
    args = ["--systems", "pulsar", "--hosts", "2", "--duration", "5m", "--variants", "int,float"]
    assert main([*args, "--no-queries", "--workdir", str(tmp_path / "w"), "--out", str(out)]) == 0
    (report_path,) = out.glob("small-*.json")
    report = json.loads(report_path.read_text())
    (pulsar,) = report["systems"]
    assert pulsar["queries"] == {} and pulsar["status"] == "ok"
    assert pulsar["ingest"]["int"]["values"] == pulsar["ingest"]["float"]["values"] == 2 * 30 * 10
    assert "query_turns" not in report
    waits = report["idle_waits"]
    assert [w["before"] for w in waits] == ["the PulsarDB int load", "the PulsarDB float load"]
    assert all(list(w["busy_cores"]) == ["PulsarDB"] for w in waits)  # the int server was gone
    assert not list((tmp_path / "w").glob("pulsar-*"))


def _sys(name: str, vps: float | None, bpv: float, rss_kb: int, status: str = "ok") -> dict:  # type: ignore[type-arg]
    ingest = (
        {} if vps is None else {"int": {"values_per_s": vps, "errors": 0, "peak_rss_kb": rss_kb}}
    )
    return {
        "name": name,
        "version": "v",
        "status": status,
        "ingest": ingest,
        "bytes_per_value": {"int": bpv} if vps else {},
        "queries": {},
        "query_status": "n/a (no InfluxQL yet)" if name == "PulsarDB" else "",
        "notes": [],
    }


def test_markdown_table_ratios_and_targets() -> None:
    report = {
        "date": "2026-01-01 00:00 UTC",
        "command": "python -m bench.run",
        "workers": 2,
        "batch_lines": 10000,
        "machine": {
            "cpu": "X",
            "cores": "2",
            "ram_gib": "1",
            "kernel": "k",
            "python": "3",
            "load_at_start": "0",
        },
        "datasets": [
            {"variant": "int", "hosts": 1, "duration": "1h", "values": 10, "mb": 1.0, "gen_s": 0.1}
        ],
        "systems": [
            _sys("PulsarDB", 2e6, 0.3, 100 * 1024),
            _sys("PulsarDB 3-node", None, 0, 0, "n/a (`pulsar local` not built yet)"),
            _sys("InfluxDB", 1e6, 0.6, 200 * 1024),
        ],
    }
    md_before = render_markdown(report)
    assert "n/a (no InfluxQL yet)" in md_before
    report["systems"][0]["query_status"] = ""
    report["systems"][0]["queries"] = {
        "lastpoint": {
            "count": 5,
            "errors": 5,
            "empty": 0,
            "p50_ms": 1.0,
            "p99_ms": 2.0,
            "qps": 900.0,
            "first_error": "last(*) unsupported",
            "digests": [""] * 5,
        },
    }
    report["systems"][2]["queries"] = {
        "lastpoint": {
            "count": 5,
            "errors": 0,
            "empty": 0,
            "p50_ms": 10.0,
            "p99_ms": 20.0,
            "qps": 90.0,
            "first_error": "",
            "digests": ["x"] * 5,
        },
    }
    md = render_markdown(report)
    # All answers were errors: no latency and no ratio are shown for it.
    assert "| lastpoint p50 ms | error (see notes) | n/a | 10.0 | - |" in md
    assert "PulsarDB lastpoint: 5 errors, first: last(*) unsupported" in md
    assert "lastpoint not compared (errors)" in md
    assert "| ingest int: values/s | 2.00 M | n/a | 1.00 M | 2.00 |" in md
    assert "| bytes/value int | 0.300 |" in md and "| 0.50 |" in md
    assert "PulsarDB 3-node: n/a (`pulsar local` not built yet)" in md
    assert "standalone ingest >= InfluxDB: met" in md
    assert "bytes/value on int data <= 0.4: met" in md
    assert "peak memory below InfluxDB's: met (100 MB vs 200 MB)" in md
    assert "3-node cluster >= half of standalone: n/a" in md


def test_ctrl_c_stops_the_server(tmp_path: Path) -> None:
    """SIGINT while a server loads data: the runner exits 130 promptly and the server is gone."""
    # As from a terminal: a test run started in the background by a non-interactive shell
    # (`cmd &`) has SIGINT ignored, which a child inherits, and a Python started so never
    # raises KeyboardInterrupt (the runner then ran to its end: exit 0, or past the timeout).
    # A handler in this process makes the child start with the default instead.
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    runner = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "bench.run",
            "--systems",
            "pulsar",
            "--hosts",
            "50",
            "--duration",
            "24h",
            "--variants",
            "int",
            # Tiny batches: the load alone takes tens of seconds (43,200 requests), so a poll
            # of the process tree slowed by a busy machine still finds the server well before
            # the run ends (found in its last moments, the runner finished and exited 0 before
            # the signal came: seen with 100-line batches once the server got faster). The
            # signal comes as soon as the server is seen, so the test does not wait for it.
            "--batch-lines",
            "10",
            "--workdir",
            str(tmp_path / "w"),
            "--out",
            str(tmp_path / "out"),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    signal.signal(signal.SIGINT, signal.SIG_DFL if previous is None else previous)
    server, clients = 0, []
    try:
        # The server, then the load's client processes (after the wait for an idle server).
        found = _wait_for(runner, lambda cmds: [p for p, c in cmds if b"standalone" in c][:1])
        assert found, "the runner never started a server"
        server = found[0]
        clients = _wait_for(runner, lambda cmds: [p for p, c in cmds if b"spawn_main" in c])
        assert clients, "the runner never started its load"
        time.sleep(1)  # into the load: its client processes must stop too, promptly
        runner.send_signal(signal.SIGINT)
        # Promptly: the load's client processes are killed, not joined for 10 s each (20.8 s
        # before; under a busy CI run the whole stop then took over 60 s).
        assert runner.wait(timeout=15) == 130
        for pid in (server, *clients):
            assert status_kb(pid, "VmRSS") == 0 or not Path(f"/proc/{pid}").exists()
    finally:
        _kill_all(runner, [server, *clients])


def _wait_for(runner: subprocess.Popen[bytes], pick, timeout_s: float = 60) -> list[int]:  # type: ignore[no-untyped-def]
    """Poll the runner's process tree until `pick([(pid, cmdline)])` is not empty."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline and runner.poll() is None:
        cmds = []
        for pid in tree_pids(runner.pid):
            try:
                cmds.append((pid, Path(f"/proc/{pid}/cmdline").read_bytes()))
            except OSError:
                continue
        found = pick(cmds)
        if found:
            return list(found)
        time.sleep(0.1)
    return []


def _kill_all(runner: subprocess.Popen[bytes], pids: list[int]) -> None:
    if runner.poll() is None:
        runner.kill()
        runner.wait()
    for pid in pids:
        if pid and Path(f"/proc/{pid}").exists():
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)


def test_sigterm_stops_every_running_server(tmp_path: Path) -> None:
    """SIGTERM while the second system starts and the first, loaded, is kept up for the
    queries: the runner exits 130 promptly and both servers' process trees are gone."""
    runner = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "bench.run",
            "--systems",
            "pulsar,pulsar3",
            "--hosts",
            "2",
            "--duration",
            "5m",
            "--variants",
            "int",
            "--workdir",
            str(tmp_path / "w"),
            "--out",
            str(tmp_path / "out"),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    trees: list[int] = []
    try:

        def both(cmds: list[tuple[int, bytes]]) -> list[int]:
            standalone = [p for p, c in cmds if b"standalone" in c]
            local = [p for p, c in cmds if b"\0local\0" in c]
            return [*standalone, *local] if standalone and local else []

        servers = _wait_for(runner, both)
        assert servers, "the runner never had both servers up"
        trees = [pid for root in servers for pid in tree_pids(root)]
        runner.send_signal(signal.SIGTERM)
        assert runner.wait(timeout=30) == 130
        for pid in trees:
            assert status_kb(pid, "VmRSS") == 0 or not Path(f"/proc/{pid}").exists()
    finally:
        _kill_all(runner, trees)
