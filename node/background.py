"""The engine's background work: flushes, interval WAL syncs, compaction and retention.

The engine itself is synchronous; these threads are the edge that calls it. Flushing and
compaction run on separate threads so a long compaction never delays a flush (writes would
otherwise hit backpressure). Errors are logged and retried: writes get 429/503 through the
engine's backpressure while background work fails, and the WAL keeps the data.
"""

from __future__ import annotations

import threading

from node.engine.engine import Engine
from node.engine.wal import SyncPolicy
from pulsar_cluster.errors import PulsarError
from pulsar_cluster.heapfreeze import FREEZER
from pulsar_cluster.logs import get_logger

__all__ = ["BackgroundWorker"]

log = get_logger(__name__)


class BackgroundWorker:
    def __init__(
        self, engine: Engine, poll_s: float = 1.0, retention_every_s: float = 60.0
    ) -> None:
        self._engine = engine
        self._poll_s = min(poll_s, engine.options.sync_interval_s)
        self._retention_every_s = retention_every_s
        self._stop = threading.Event()
        self._threads = [
            threading.Thread(target=self._flush_loop, name="pulsar-engine-flush", daemon=True),
            threading.Thread(target=self._compact_loop, name="pulsar-engine-compact", daemon=True),
        ]

    def start(self) -> None:
        for thread in self._threads:
            thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._engine.flush_wanted.set()  # wake the flush loop
        for thread in self._threads:
            thread.join(timeout=30)

    def _flush_loop(self) -> None:
        engine = self._engine
        while not self._stop.is_set():
            engine.flush_wanted.wait(self._poll_s)
            if self._stop.is_set():
                break
            try:
                if engine.options.fsync == SyncPolicy.INTERVAL:
                    engine.sync_wal()
                if engine.needs_flush():
                    engine.flush()
                    FREEZER.request()  # the new tables' indexes live long: freeze them
            except (OSError, PulsarError) as exc:
                log.error("background_flush_failed", directory=engine.directory, error=str(exc))
                self._stop.wait(self._poll_s)

    def _compact_loop(self) -> None:
        engine = self._engine
        since_retention = self._retention_every_s  # enforce once at start
        while not self._stop.wait(self._poll_s):
            try:
                compacted = False
                while engine.needs_compaction() and not self._stop.is_set():
                    if not engine.compact():
                        break
                    compacted = True
                if compacted:
                    FREEZER.request()  # the new tables' indexes live long: freeze them
                else:
                    FREEZER.poll()
                since_retention += self._poll_s
                if engine.options.retention and since_retention >= self._retention_every_s:
                    since_retention = 0.0
                    engine.enforce_retention()
            except (OSError, PulsarError) as exc:
                log.error("background_compact_failed", directory=engine.directory, error=str(exc))
