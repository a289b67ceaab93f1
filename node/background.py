"""The engine's background work: flushing full memtables and interval WAL syncs.

The engine itself is synchronous; this thread is the edge that calls it. One worker per engine.
"""

from __future__ import annotations

import threading

from node.engine.engine import Engine
from node.engine.wal import SyncPolicy
from pulsar_cluster.errors import PulsarError
from pulsar_cluster.logs import get_logger

__all__ = ["BackgroundWorker"]

log = get_logger(__name__)


class BackgroundWorker:
    def __init__(self, engine: Engine, poll_s: float = 1.0) -> None:
        self._engine = engine
        self._poll_s = min(poll_s, engine.options.sync_interval_s)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="pulsar-engine-bg", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._engine.flush_wanted.set()  # wake the loop
        self._thread.join(timeout=30)

    def _run(self) -> None:
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
            except (OSError, PulsarError) as exc:
                # Keep running: writes get 503 via backpressure while flushes fail, and the
                # WAL keeps the data. The error is reported on every attempt.
                log.error("background_flush_failed", directory=engine.directory, error=str(exc))
                self._stop.wait(self._poll_s)
