"""Keeping a server's long-lived objects out of the cyclic garbage collector's full passes.

A server holds millions of objects for its whole life (SSTable indexes, caches, the app). A
full collection walks every one of them: 15-40 ms on the TSBS data set of 1000 hosts, about
once every 20 large queries, which was most of their p99. `gc.freeze()` moves every object
alive at that moment to a permanent generation that collections skip. Objects frozen stay
freed by reference counting as usual; only cyclic garbage among them waits for a thaw.

`HeapFreezer.refreeze()` collects and then freezes what survived: at start-up (serving.py) and
after the storage engine made new long-lived objects (`request` after a flush or compaction
opened tables, node/background.py), at most once per `min_interval_s` (a request inside the
interval is run by a later `poll`). Since frozen objects are skipped, each
refreeze walks only what was created since the last one. Every `thaw_every_s` it first
unfreezes everything, so cycles that died among frozen objects are reclaimed by that
collection (one full pass, in a background thread, every few minutes instead of every few
queries).
"""

from __future__ import annotations

import gc
import threading
import time

__all__ = ["HeapFreezer", "FREEZER"]


class HeapFreezer:
    def __init__(self, min_interval_s: float = 5.0, thaw_every_s: float = 600.0) -> None:
        self.min_interval_s = min_interval_s
        self.thaw_every_s = thaw_every_s
        self._lock = threading.Lock()
        self._last: float | None = None
        self._last_thaw = time.monotonic()
        self._pending = False
        self.refreezes = 0
        self.thaws = 0

    def request(self) -> bool:
        """New long-lived objects exist: refreeze now, or at the first `poll` allowed."""
        self._pending = True
        return self.refreeze()

    def poll(self) -> bool:
        """Run a requested refreeze that the interval put off (a loop calls this)."""
        return self._pending and self.refreeze()

    def refreeze(self, force: bool = False) -> bool:
        """Collect, then freeze the survivors; False when the last one is too recent."""
        with self._lock:
            now = time.monotonic()
            if not force and self._last is not None and now - self._last < self.min_interval_s:
                return False
            if now - self._last_thaw >= self.thaw_every_s:
                gc.unfreeze()
                self._last_thaw = now
                self.thaws += 1
            gc.collect()
            gc.freeze()
            self._last = now
            self._pending = False
            self.refreezes += 1
            return True


#: The process's one freezer (the garbage collector is per process).
FREEZER = HeapFreezer()
