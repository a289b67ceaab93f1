"""Waiting for idle process trees (bench/idle.py) with real processes: a sleeping one, a busy
one, a busy grandchild, and the runner's note when a server never goes idle."""

from __future__ import annotations

import dataclasses
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from bench.idle import busy_cores, tree_cpu_ticks, wait_idle
from bench.run import PRESETS, SystemResult, _Up, _wait_idle
from bench.systems import System

SLEEP = [sys.executable, "-c", "import time; time.sleep(60)"]
SPIN = [sys.executable, "-c", "while True: pass"]


def _spawn(cmd: list[str]) -> subprocess.Popen[bytes]:
    return subprocess.Popen(cmd, stdin=subprocess.DEVNULL)


def _kill(*procs: subprocess.Popen[bytes]) -> None:
    for p in procs:
        p.kill()
        p.wait()


def test_cpu_ticks_of_a_spinning_tree_grow_about_one_core() -> None:
    # The spinning process is a grandchild: the tree's time includes it.
    parent = _spawn(
        [sys.executable, "-c", "import subprocess, sys; subprocess.run(sys.argv[1:])", *SPIN]
    )
    try:
        time.sleep(0.5)  # the grandchild has started
        before, t0 = tree_cpu_ticks(parent.pid), time.monotonic()
        time.sleep(1.0)
        after, t1 = tree_cpu_ticks(parent.pid), time.monotonic()
        assert len(after) == 2 and parent.pid in after
        # One core at most; well above idle even when the other engineers' tests share it.
        assert 0.2 < busy_cores(before, after, t1 - t0) <= 1.1
    finally:
        for pid in tree_cpu_ticks(parent.pid):
            if pid != parent.pid:
                os.kill(pid, signal.SIGKILL)  # the grandchild first: it would outlive its parent
        _kill(parent)
    assert busy_cores({1: 5}, {}, 1.0) == 0.0  # exited: not counted, never negative


def test_wait_idle_returns_for_an_idle_tree_and_times_out_for_a_busy_one() -> None:
    idle, busy = _spawn(SLEEP), _spawn(SPIN)
    try:
        res = wait_idle({"idle": idle.pid}, window_s=1.0, timeout_s=20.0, every_s=0.2)
        assert res.idle and 1.0 <= res.waited_s < 20.0 and res.busy["idle"] < 0.02
        t0 = time.monotonic()
        res = wait_idle(
            {"idle": idle.pid, "busy": busy.pid}, window_s=1.0, timeout_s=2.5, every_s=0.2
        )
        assert not res.idle and 2.5 <= time.monotonic() - t0 < 10.0
        assert res.still_busy() == ["busy"] and res.busy["busy"] > 0.2
        # Its own limit: a server that idles above 2 % (the 3-node cluster's Raft ticks).
        res = wait_idle(
            {"idle": idle.pid, "busy": busy.pid},
            max_cores={"idle": 0.02, "busy": 2.0},
            window_s=1.0,
            timeout_s=10.0,
            every_s=0.2,
        )
        assert res.idle and res.still_busy() == []
    finally:
        _kill(idle, busy)
    # Exited: idle at once (its CPU time is gone with it).
    assert wait_idle({"gone": busy.pid}, window_s=0.5, timeout_s=5.0).idle


class _Spinner(System):
    """A real server that answers /ping and burns a core in a thread: never idle."""

    name = "Spinner"

    def command(self) -> list[str]:
        code = (
            "import sys, threading\n"
            "from http.server import BaseHTTPRequestHandler, HTTPServer\n"
            "class H(BaseHTTPRequestHandler):\n"
            "    def do_GET(self):\n"
            "        self.send_response(204); self.end_headers()\n"
            "    def log_message(self, *a): pass\n"
            "def spin():\n"
            "    while True: pass\n"
            "threading.Thread(target=spin, daemon=True).start()\n"
            "HTTPServer(('127.0.0.1', int(sys.argv[1])), H).serve_forever()\n"
        )
        return [sys.executable, "-c", code, str(self.port)]


def test_runner_notes_a_server_that_never_goes_idle(tmp_path: Path) -> None:
    result = SystemResult("Spinner")
    up = _Up("spinner", "int", _Spinner(tmp_path), result, tmp_path)
    up.system.start()
    try:
        report: dict = {"idle_waits": []}  # type: ignore[type-arg]
        quick = dataclasses.replace(PRESETS["small"], idle_window_s=1.0, idle_timeout_s=2.0)
        _wait_idle([up], quick, "the queries", report)
    finally:
        up.system.stop()
    (wait,) = report["idle_waits"]
    assert wait["before"] == "the queries" and not wait["idle"]
    assert wait["busy_cores"]["Spinner"] > 0.2
    (note,) = result.notes
    assert note.startswith("not idle before the queries: still ") and "(went on)" in note
