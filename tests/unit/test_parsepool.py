"""Parsing in worker processes gives the same batches and the same errors as parsing inline."""

from __future__ import annotations

import asyncio

import pytest

from coordinator.parsepool import ParsePool
from pulsar_cluster.errors import BadRequestError, LineProtocolError


def columns(batch) -> dict:  # type: ignore[no-untyped-def]
    return {(k, n): (c.timestamps.tolist(), c.values.tolist()) for k, n, c in batch.columns()}


@pytest.fixture(scope="module")
def pool():  # type: ignore[no-untyped-def]
    p = ParsePool(workers=1, inline_bytes=0)  # everything goes to the worker process
    yield p
    p.close()


def test_worker_parse_matches_inline(pool: ParsePool) -> None:
    body = b"".join(b"cpu,host=h%d u=%di,s=%d.5 %d\n" % (i % 7, i, i, i) for i in range(500))
    inline = ParsePool(workers=0)
    got = asyncio.run(pool.parse_lines(body, "db", "ns", 1))
    want = asyncio.run(inline.parse_lines(body, "db", "ns", 1))
    assert columns(got) == columns(want)
    assert got.encoded is not None  # the WAL will reuse the worker's encoding


def test_worker_errors_keep_status_line_and_details(pool: ParsePool) -> None:
    with pytest.raises(LineProtocolError) as info:
        asyncio.run(pool.parse_lines(b"m f=1 1\nm f=oops 2\n", "db", "ns", 1))
    assert info.value.status_code == 400
    assert info.value.to_dict()["line"] == 2 and "line 2" in info.value.message
    with pytest.raises(BadRequestError, match="point 0"):
        asyncio.run(pool.parse_json(b'{"measurement": "m"}', "db", 1))


def test_workers_exit_when_their_server_is_killed() -> None:
    """A server killed with SIGKILL cannot shut its pool down: its workers must notice and exit
    instead of living on as orphans (they did, before the orphan watch)."""
    import os
    import signal
    import subprocess
    import sys
    import time

    script = (
        "import asyncio, multiprocessing.process as p, sys, time\n"
        "from coordinator.parsepool import ParsePool\n"
        "pool = ParsePool(workers=2, inline_bytes=0)\n"
        "asyncio.run(pool.parse_lines(b'm f=1 1', 'db', 'ns', 1))\n"
        "print(' '.join(str(c.pid) for c in p.active_children()), flush=True)\n"
        "time.sleep(60)\n"
    )
    owner = subprocess.Popen(
        [sys.executable, "-c", script], stdout=subprocess.PIPE, text=True, cwd=os.getcwd()
    )
    try:
        assert owner.stdout is not None
        workers = [int(pid) for pid in owner.stdout.readline().split()]
        assert workers, "the pool started no worker"
    finally:
        owner.send_signal(signal.SIGKILL)
        owner.wait(timeout=10)

    def alive(pid: int) -> bool:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        # A zombie is gone for our purpose (it waits only for its reaper).
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(")")[-1].split()[0] != "Z"

    deadline = time.monotonic() + 15
    while time.monotonic() < deadline and any(alive(pid) for pid in workers):
        time.sleep(0.1)
    left = [pid for pid in workers if alive(pid)]
    for pid in left:  # do not leak them from the test either
        os.kill(pid, signal.SIGKILL)
    assert not left, f"parse workers outlived their killed server: {left}"
