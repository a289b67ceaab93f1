"""pulsar_cluster/heapfreeze.py: long-lived objects frozen after a flush, rate limited, thawed
now and then so that cycles among them are reclaimed; with the real garbage collector."""

from __future__ import annotations

import gc
import time
import weakref
from collections.abc import Iterator
from pathlib import Path

import pytest

from node.background import BackgroundWorker
from node.engine.engine import Engine, EngineOptions
from pulsar_cluster.heapfreeze import FREEZER, HeapFreezer
from pulsar_cluster.lineprotocol import parse_line_protocol


@pytest.fixture(autouse=True)
def thawed() -> Iterator[None]:
    gc.unfreeze()
    yield
    gc.unfreeze()


class _Cyclic:
    def __init__(self) -> None:
        self.me = self


def test_refreeze_freezes_survivors_and_is_rate_limited() -> None:
    freezer = HeapFreezer(min_interval_s=60.0, thaw_every_s=3600.0)
    assert freezer.request()
    assert gc.get_freeze_count() > 0
    assert not freezer.request()  # inside the interval: put off
    freezer.min_interval_s = 0.0
    assert freezer.poll()  # the put-off request runs
    assert not freezer.poll()  # nothing pending any more
    assert freezer.refreezes == 2 and freezer.thaws == 0


def test_a_thaw_reclaims_cycles_that_died_frozen() -> None:
    freezer = HeapFreezer(min_interval_s=0.0, thaw_every_s=3600.0)
    obj = _Cyclic()
    ref = weakref.ref(obj)
    freezer.refreeze(force=True)
    del obj
    gc.collect()
    assert ref() is not None  # frozen: a collection does not see the dead cycle
    freezer.thaw_every_s = 0.0
    freezer.refreeze(force=True)
    assert ref() is None and freezer.thaws == 1


def test_the_background_flush_requests_a_refreeze(tmp_path: Path) -> None:
    engine = Engine(str(tmp_path / "data"), EngineOptions(memtable_bytes=1))
    worker = BackgroundWorker(engine, poll_s=0.05)
    before = FREEZER.refreezes
    FREEZER.min_interval_s = 0.0
    worker.start()
    try:
        engine.apply(parse_line_protocol(b"cpu,host=a v=1i 1000\n", "db"))  # a flush is due
        deadline = time.monotonic() + 10
        while FREEZER.refreezes == before and time.monotonic() < deadline:
            engine.flush_wanted.set()
            time.sleep(0.05)
        assert FREEZER.refreezes > before
        assert gc.get_freeze_count() > 0
    finally:
        FREEZER.min_interval_s = 5.0
        worker.stop()
        engine.close()
