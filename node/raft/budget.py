"""A bound on the bytes of Raft commands in flight per shard (asyncio side).

Many commands are pipelined per shard (pysyncobj batches them into append-entries), but an
unbounded queue turns overload into memory growth; past the bound, writers wait, and after
`timeout_s` get OverloadedError (503 + Retry-After) instead.
"""

from __future__ import annotations

import asyncio

from pulsar_cluster.errors import OverloadedError

__all__ = ["ByteBudget"]


class ByteBudget:
    def __init__(self, limit_bytes: int) -> None:
        self.limit = limit_bytes
        self.used = 0
        self._cond = asyncio.Condition()

    async def acquire(self, nbytes: int, timeout_s: float) -> None:
        # A request larger than the whole budget may run alone rather than never.
        need = min(nbytes, self.limit)
        async with self._cond:
            try:
                await asyncio.wait_for(
                    self._cond.wait_for(lambda: self.used + need <= self.limit), timeout_s
                )
            except TimeoutError:
                raise OverloadedError(
                    "too many writes in flight on this shard; retry shortly",
                    retry_after_s=1.0,
                    status_code=503,
                ) from None
            self.used += need

    async def release(self, nbytes: int) -> None:
        async with self._cond:
            self.used -= min(nbytes, self.limit)
            self._cond.notify_all()
