"""Crash tests with real processes and SIGKILL.

A child process writes with fsync=always and reports every acknowledged operation through a
pipe; the parent kills it with SIGKILL at a random moment (tiny memtables and eager compaction
make flushes and compactions run all the time), reopens the engine and checks that it holds
exactly the acknowledged operations (write batches and, every 15th, a delete): its content must
equal a dict model after them, or after one more (the operation in flight may or may not have
been applied; each is atomic). The runs share one directory, so recovery after a crash is
itself crashed into. Bounded: about a second per run, five runs.
"""

from __future__ import annotations

import os
import random
import selectors
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from node.engine.engine import Engine
from tests.integration.engine_crash_child import batch_points, crash_options, delete_of

CHILD = Path(__file__).with_name("engine_crash_child.py")
I64_MIN, I64_MAX = int(np.iinfo(np.int64).min), int(np.iinfo(np.int64).max)


def _run_child(directory: Path, first: int, kill_after_s: float) -> list[int]:
    """Start the child, SIGKILL it after `kill_after_s`, return the batches it acknowledged."""
    proc = subprocess.Popen(
        [sys.executable, str(CHILD), str(directory), str(first)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        cwd=str(Path(__file__).parents[2]),
    )
    acked: list[int] = []
    buf = b""
    try:
        sel = selectors.DefaultSelector()
        sel.register(proc.stdout, selectors.EVENT_READ)  # type: ignore[arg-type]
        deadline = time.monotonic() + kill_after_s
        started = False
        hard_deadline = time.monotonic() + 30  # the child's imports on a busy machine
        while time.monotonic() < (deadline if started else hard_deadline):
            for _ in sel.select(timeout=0.02):
                chunk = os.read(proc.stdout.fileno(), 65536)  # type: ignore[union-attr]
                if not chunk:
                    break
                buf += chunk
                if not started:
                    started = True
                    deadline = time.monotonic() + kill_after_s
            if proc.poll() is not None:
                break
        assert proc.poll() is None, proc.stderr.read().decode()  # type: ignore[union-attr]
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
        buf += proc.stdout.read()  # type: ignore[union-attr]  # acks written before death
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)
        proc.stdout.close()  # type: ignore[union-attr]
        proc.stderr.close()  # type: ignore[union-attr]
    for line in buf.split(b"\n"):
        if line:
            acked.append(int(line))
    return acked


def _model_states(last_acked: int) -> tuple[dict, dict]:  # type: ignore[type-arg]
    """The exact content after operations 0..last_acked, and after one more (in flight)."""
    state: dict[tuple[int, int], float] = {}
    before = state
    for i in range(last_acked + 2):
        if i == last_acked + 1:
            before = dict(state)
        delete = delete_of(i)
        if delete is not None:
            h = int(delete.tags["host"])
            for key in [k for k in state if k[0] == h and delete.start <= k[1] < delete.end]:
                del state[key]
            continue
        for h, (ts, values) in batch_points(i).items():
            state.update(zip(((h, t) for t in ts.tolist()), values.tolist(), strict=True))
    return before, state


def _check(directory: Path, last_acked: int) -> None:
    """The engine holds exactly the acknowledged operations, plus possibly the one in flight:
    nothing acknowledged is lost, nothing is invented, deletes stay deleted."""
    acked_state, with_in_flight = _model_states(last_acked)
    engine = Engine(str(directory), crash_options())
    try:
        found: dict[tuple[int, int], float] = {}
        for key, fields in engine.scan("db", "m", {}, ["v"], I64_MIN, I64_MAX):
            h = int(key.split(b"\x00")[2])
            data = fields["v"]
            found.update(
                zip(((h, t) for t in data.timestamps.tolist()), data.values.tolist(), strict=True)
            )
        if found not in (acked_state, with_in_flight):
            lost = {k: v for k, v in acked_state.items() if found.get(k) != v}
            extra = {k: v for k, v in found.items() if acked_state.get(k) != v}
            raise AssertionError(
                f"after op {last_acked}: {len(lost)} lost/changed, e.g. {list(lost.items())[:5]}; "
                f"{len(extra)} unexpected, e.g. {list(extra.items())[:5]}"
            )
    finally:
        engine.close(flush=False)


def test_sigkill_during_writes_flushes_and_compactions(tmp_path):
    rng = random.Random(4)
    directory = tmp_path / "engine"
    next_batch = 0
    total_acked = 0
    for _ in range(5):
        acked = _run_child(directory, next_batch, kill_after_s=rng.uniform(0.3, 1.2))
        assert acked, "the child acknowledged nothing"
        assert acked == list(range(next_batch, next_batch + len(acked)))
        total_acked += len(acked)
        last = acked[-1]
        _check(directory, last)
        next_batch = last + 1  # the in-flight batch is rewritten: same content, idempotent
    assert total_acked > 20
    assert not any((directory / "sst").glob("*.tmp"))
