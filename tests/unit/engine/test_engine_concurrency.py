"""Writers, readers, background flush and compaction, and a snapshot, all at once."""

from __future__ import annotations

import threading
import time

import numpy as np

from node.background import BackgroundWorker
from node.engine.engine import Engine, EngineOptions
from tests.unit.engine.helpers import batch_of, read_all, skey


def test_concurrent_writes_reads_flushes_compactions_and_snapshot(tmp_path):
    opts = EngineOptions(
        memtable_bytes=4 * 1024,
        partition_ns=50,
        block_points=16,
        compaction_trigger=2,
        max_immutable_memtables=64,
        max_tables_per_partition=10_000,
    )
    engine = Engine(str(tmp_path / "e"), opts)
    worker = BackgroundWorker(engine, poll_s=0.005)
    worker.start()
    errors: list[BaseException] = []
    stop = threading.Event()
    n_batches = 300

    def writer(host: str) -> None:
        try:
            for i in range(n_batches):
                engine.apply(
                    batch_of([(host, "f", i * 2, float(i * 2)), (host, "f", i * 2 + 1, -1.0)])
                )
                engine.apply(batch_of([(host, "f", i * 2 + 1, float(i * 2 + 1))]))  # overwrite
        except BaseException as exc:
            errors.append(exc)

    def reader() -> None:
        try:
            seen = {"a": 0, "b": 0}
            deadline = time.monotonic() + 60
            while not stop.is_set() and time.monotonic() < deadline:
                for host, before in list(seen.items()):
                    data = engine.read_field(skey(host), "f", 0, 10**9)
                    if data is None:
                        continue
                    ts = data.timestamps
                    assert np.all(np.diff(ts) > 0)
                    # Every point ever returned is either the final value or the pending -1.
                    ok = (data.values == ts.astype(float)) | (data.values == -1.0)
                    assert bool(ok.all())
                    assert len(ts) >= before  # never loses points it once showed
                    seen[host] = len(ts)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(h,)) for h in ("a", "b")]
    threads += [threading.Thread(target=reader) for _ in range(2)]
    for t in threads:
        t.start()
    time.sleep(0.2)
    info = engine.create_snapshot(str(tmp_path / "snap"))
    for t in threads[:2]:
        t.join(timeout=120)
    stop.set()
    for t in threads[2:]:
        t.join(timeout=30)
    worker.stop()
    assert not errors, errors
    expected = {(h, "f", t): float(t) for h in ("a", "b") for t in range(2 * n_batches)}
    assert read_all(engine) == expected
    assert engine.status()["flushes"] > 0 and engine.status()["compactions"] > 0
    engine.close()
    reopened = Engine(str(tmp_path / "e"), opts)
    assert read_all(reopened) == expected
    reopened.close()
    # The snapshot is a consistent prefix: every point it holds has its final value, except
    # possibly the overwritten one of the batch pair that was cut in half.
    restored = Engine(str(tmp_path / "r"), opts)
    restored.restore_snapshot(info.path)
    assert restored.last_index == info.last_index
    got = read_all(restored)
    assert sum(1 for v in got.values() if v == -1.0) <= 2
    assert all(v in (float(k[2]), -1.0) for k, v in got.items())
    restored.close()
