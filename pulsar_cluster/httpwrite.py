"""One socket write per HTTP response: uvicorn's httptools protocol with coalesced writes.

uvicorn writes a response's status line and headers when the app sends `http.response.start`
and the body when it sends `http.response.body`: two `send()` system calls, and on loopback or
a LAN two TCP segments, each waking the client. For a small answer those writes cost more
server CPU than building the answer (py-spy on `pulsar standalone` under single-groupby-1-1-1:
a quarter of the event loop's time was in the two writes).

`CoalescingHttpToolsProtocol` hands uvicorn a transport whose `write` only collects the bytes
and flushes them with one write when the response is complete, or else at the end of the
current event-loop step (`call_soon`; a streamed body): the header and body writes of a response
sent in one step become one. Flushing at completion rather than at the end of the step sends the
answer before the app's code after its last `send` (the middlewares' log line and metrics): the
client, on another core, reads it meanwhile. Order is kept (every write
goes through the buffer), `close()` flushes before closing, and the loop's flow control still
sees the real transport (a large body that fills the socket buffer pauses the app as before).
"""

from __future__ import annotations

import asyncio
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

__all__ = ["CoalescingTransport", "CoalescingHttpToolsProtocol"]


class CoalescingTransport:
    """A transport view whose writes within one event-loop step reach the socket as one."""

    __slots__ = ("_loop", "_pending", "_transport")

    def __init__(self, transport: asyncio.Transport, loop: asyncio.AbstractEventLoop) -> None:
        self._transport = transport
        self._loop = loop
        self._pending: list[bytes] = []

    def write(self, data: bytes | bytearray | memoryview) -> None:
        if not data:
            return
        if not self._pending:
            self._loop.call_soon(self.flush)
        self._pending.append(bytes(data))

    def writelines(self, chunks: Any) -> None:
        for chunk in chunks:
            self.write(chunk)

    def flush(self) -> None:
        if not self._pending:
            return
        data = self._pending[0] if len(self._pending) == 1 else b"".join(self._pending)
        self._pending.clear()
        if not self._transport.is_closing():
            self._transport.write(data)

    def close(self) -> None:
        self.flush()
        self._transport.close()

    def write_eof(self) -> None:
        self.flush()
        self._transport.write_eof()

    def abort(self) -> None:
        self._pending.clear()
        self._transport.abort()

    def is_closing(self) -> bool:
        # asked once per response by uvicorn: spelled out, not a failed look-up + __getattr__
        return self._transport.is_closing()

    def get_write_buffer_size(self) -> int:
        return self._transport.get_write_buffer_size() + sum(len(p) for p in self._pending)

    def __getattr__(self, name: str) -> Any:
        # is_closing, get_extra_info, pause_reading, resume_reading, set_protocol, ...
        return getattr(self._transport, name)


class CoalescingHttpToolsProtocol(HttpToolsProtocol):
    """uvicorn's httptools HTTP/1.1 protocol, writing through a CoalescingTransport."""

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        # after super(): flow control and the address look-ups keep the real transport
        self.transport = CoalescingTransport(transport, self.loop)  # type: ignore[assignment]

    def on_response_complete(self) -> None:
        # uvicorn calls this after the last body write of a response (module docstring)
        self.transport.flush()  # type: ignore[attr-defined]
        super().on_response_complete()
