"""Parsing write bodies in worker processes, so that parsing uses every core.

One Python process runs one thread of Python at a time; parsing line protocol is the largest
CPU cost of ingestion, so the coordinator hands large bodies to a pool of worker processes.
A worker parses the body and returns the batch in its compact wire encoding
(docs/format/write-batch.md, version 2 for uniform bodies): a few hundred KB for 100K values,
cheap to send back and nearly free to decode (numpy views), and kept on the batch so that the
WAL writes those same bytes without encoding again.

Small bodies are parsed inline: below `inline_bytes` the round trip to a worker costs more than
it saves. Errors (BadRequestError and subclasses) cross the process boundary intact.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import os
import threading
import time
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool

from pulsar_cluster.batch import WriteBatch
from pulsar_cluster.batchcodec import decode_batch, encode_batch
from pulsar_cluster.jsonpoints import parse_json_points
from pulsar_cluster.lineprotocol import parse_line_protocol

__all__ = ["ParsePool", "default_parse_workers"]

#: Bodies smaller than this are parsed in the event loop's thread pool (measured here: a
#: 64 KB body parses in well under a millisecond, about the cost of the process round trip).
DEFAULT_INLINE_BYTES = 64 * 1024


def default_parse_workers() -> int:
    return max(1, min(os.cpu_count() or 1, 8))


def _parse_lines_encoded(body: bytes, database: str, precision: str, now_ns: int) -> bytes:
    return encode_batch(parse_line_protocol(body, database, precision, now_ns))


def _parse_json_encoded(body: bytes, database: str, now_ns: int) -> bytes:
    return encode_batch(parse_json_points(body, database, now_ns))


#: How often a worker checks that the server that started it is still alive.
_ORPHAN_CHECK_S = 1.0


def _exit_when_orphaned(parent: int) -> None:
    """Worker thread: end this worker once its server is gone. A server killed with SIGKILL
    (OOM killer, kill -9) cannot shut its pool down, and the workers, blocked on their call
    queue, would otherwise live on forever. (PR_SET_PDEATHSIG is no substitute: it follows the
    thread that started the worker, and pool threads come and go.)"""
    while os.getppid() == parent:
        time.sleep(_ORPHAN_CHECK_S)
    os._exit(0)


def _init_worker(parent: int) -> None:
    """In each worker: watch the parent, and import the parsers before the first request."""
    threading.Thread(
        target=_exit_when_orphaned, args=(parent,), name="orphan-watch", daemon=True
    ).start()
    parse_line_protocol(b"warm f=1 1", "warm")


class ParsePool:
    """A process pool for parsing; `workers=0` parses everything in threads (no processes)."""

    def __init__(self, workers: int, inline_bytes: int = DEFAULT_INLINE_BYTES) -> None:
        self.workers = workers
        self.inline_bytes = inline_bytes
        self._pool: ProcessPoolExecutor | None = None
        if workers > 0:
            # spawn, not fork: the server process has threads (uvicorn, engine), and a forked
            # child of a threaded process can deadlock on a lock some thread held.
            context = multiprocessing.get_context("spawn")
            self._pool = self._new_pool(context)

    async def parse_lines(
        self, body: bytes, database: str, precision: str, now_ns: int
    ) -> WriteBatch:
        if self._pool is None or len(body) < self.inline_bytes:
            return await asyncio.to_thread(parse_line_protocol, body, database, precision, now_ns)
        encoded = await self._submit(_parse_lines_encoded, body, database, precision, now_ns)
        return decode_batch(encoded)

    async def parse_json(self, body: bytes, database: str, now_ns: int) -> WriteBatch:
        if self._pool is None or len(body) < self.inline_bytes:
            return await asyncio.to_thread(parse_json_points, body, database, now_ns)
        return decode_batch(await self._submit(_parse_json_encoded, body, database, now_ns))

    async def _submit(self, func: object, *args: object) -> bytes:
        assert self._pool is not None
        loop = asyncio.get_running_loop()
        try:
            return await loop.run_in_executor(self._pool, func, *args)  # type: ignore[arg-type]
        except BrokenProcessPool:
            # A worker died (OOM killer, kill -9): replace the pool and parse this body inline.
            self._restart()
            return await asyncio.to_thread(func, *args)  # type: ignore[arg-type]

    def _restart(self) -> None:
        old = self._pool
        self._pool = self._new_pool(multiprocessing.get_context("spawn"))
        if old is not None:
            old.shutdown(wait=False, cancel_futures=True)

    def _new_pool(self, context: multiprocessing.context.SpawnContext) -> ProcessPoolExecutor:
        return ProcessPoolExecutor(
            self.workers, mp_context=context, initializer=_init_worker, initargs=(os.getpid(),)
        )

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None
