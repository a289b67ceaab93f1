"""The HTTP connection pool of node-to-node and coordinator-to-node calls (aiohttp).

Every query on a cluster costs the coordinator a few node calls (a meta plan for the tag keys,
then the plan itself, one call per node), so the client's own CPU per call is on every query's
path. httpx spent about 0.65 ms of CPU per call here (pure-Python HTTP/1.1 state machine,
anyio streams and cancel scopes, URL and header models); aiohttp, with its C parser, about
0.15 ms for the same call (measured on this machine against a node's /health, keep-alive).

`NodeSession` is the pool one process shares across its NodeClients: created lazily inside the
running event loop (an aiohttp session belongs to the loop that made it), bounded (256
connections), no cookies, no automatic compression headers. Its calls return `NodeResponse`,
the body read whole, or stream a body in chunks. Transport failures and timeouts raise
`NodeTransportError`, which NodeClient turns into UnavailableError naming the node.

Timeouts mirror the ones NodeClient always had: `timeout_s` for getting a connection and for
each read of the answer, `connect_s` for the TCP connect; no deadline on the whole call, so a
long stream that keeps flowing is not cut.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import aiohttp
import orjson
from yarl import URL

__all__ = ["NodeSession", "NodeResponse", "NodeTransportError", "call_timeout"]

#: Connections of one process to all nodes together.
MAX_CONNECTIONS = 256
#: Idle keep-alive connections are closed after this: below the nodes' own keep-alive
#: (pulsar_cluster/serving.py: 30 s), so that the client, not the server, closes an idle
#: connection and a request is never sent on one the server is closing.
KEEPALIVE_S = 15.0


class NodeTransportError(Exception):
    """A call did not get an answer: connect refused, connection lost, a timeout
    (`timed_out`: one of the call's time limits ran out)."""

    def __init__(self, cause: BaseException) -> None:
        super().__init__(f"{type(cause).__name__}: {cause}")
        self.timed_out = isinstance(cause, TimeoutError)


@dataclass(frozen=True, slots=True)
class NodeResponse:
    status_code: int
    content: bytes
    reason_phrase: str
    headers: Mapping[str, str]

    def json(self) -> Any:
        return orjson.loads(self.content)

    @property
    def text(self) -> str:
        return self.content.decode("utf-8", errors="replace")


def call_timeout(timeout_s: float) -> aiohttp.ClientTimeout:
    """Per-step limits of one call: `timeout_s` to get a connection and for each read, the TCP
    connect at most 2 s (or timeout_s when shorter)."""
    return aiohttp.ClientTimeout(
        total=None, connect=timeout_s, sock_connect=min(2.0, timeout_s), sock_read=timeout_s
    )


def _url(url: str, params: Mapping[str, str] | None) -> URL:
    if params:
        query = "&".join(
            f"{quote(k, safe='')}={quote(str(v), safe=',')}" for k, v in params.items()
        )
        url = f"{url}?{query}"
    # encoded=True: the URL is already in its wire form (nodes' paths and our own query
    # strings); yarl would otherwise parse and re-quote it on every call.
    return URL(url, encoded=True)


class NodeSession:
    """One process's pool of HTTP connections to nodes (see the module docstring)."""

    def __init__(self) -> None:
        self._session: aiohttp.ClientSession | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    def _current(self) -> aiohttp.ClientSession:
        loop = asyncio.get_running_loop()
        if self._session is None or self._loop is not loop or self._session.closed:
            # A session is bound to the loop that made it: a new loop (a second asyncio.run
            # in one process) gets a new one. Close the pool in each loop that used it (an
            # old session left open is reported by aiohttp as unclosed when collected).
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(
                    limit=MAX_CONNECTIONS, keepalive_timeout=KEEPALIVE_S, ttl_dns_cache=300
                ),
                cookie_jar=aiohttp.DummyCookieJar(),
                auto_decompress=False,
                skip_auto_headers=("User-Agent", "Accept-Encoding"),
                raise_for_status=False,
            )
            self._loop = loop
        return self._session

    async def request(
        self,
        method: str,
        url: str,
        *,
        headers: Mapping[str, str],
        timeout: aiohttp.ClientTimeout,
        params: Mapping[str, str] | None = None,
        content: bytes | None = None,
    ) -> NodeResponse:
        session = self._current()
        try:
            async with session.request(
                method, _url(url, params), headers=headers, data=content, timeout=timeout
            ) as response:
                body = await response.read()
                return NodeResponse(response.status, body, response.reason or "", response.headers)
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise NodeTransportError(exc) from None

    async def stream(
        self,
        url: str,
        *,
        headers: Mapping[str, str],
        timeout: aiohttp.ClientTimeout,
        chunk_bytes: int,
    ) -> AsyncIterator[bytes | NodeResponse]:
        """GET `url`: its body in chunks of up to `chunk_bytes`, or, for an error status, one
        NodeResponse with the whole (error) body."""
        session = self._current()
        try:
            async with session.get(_url(url, None), headers=headers, timeout=timeout) as response:
                if response.status >= 400:
                    body = await response.read()
                    yield NodeResponse(
                        response.status, body, response.reason or "", response.headers
                    )
                    return
                async for chunk in response.content.iter_chunked(chunk_bytes):
                    yield chunk
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise NodeTransportError(exc) from None

    async def close(self) -> None:
        session, loop = self._session, self._loop
        if session is not None and not session.closed and loop is asyncio.get_running_loop():
            await session.close()
        self._session = None
        self._loop = None
