"""The coalescing HTTP protocol on a real uvicorn server and socket (127.0.0.1): small answers
leave in one write, streamed and large bodies arrive whole and in order, keep-alive and
`Connection: close` work, and a slow reader gets the whole body (flow control)."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import uvicorn

from pulsar_cluster.httpwrite import CoalescingHttpToolsProtocol, CoalescingTransport

BIG = bytes(range(256)) * 8192  # 2 MiB: more than the socket buffer


#: Set by the client once it has the answer of /busy-after-send.
CLIENT_HAS_ANSWER = threading.Event()


async def app(scope: Any, receive: Any, send: Any) -> None:
    if scope["type"] != "http":
        return
    path = scope["path"]
    if path == "/busy-after-send":
        body = b"early"
        headers = [(b"content-length", b"5")]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": body})
        # Work after the last send in the same event-loop step (as a middleware's log line):
        # blocking here, the answer must have left already.
        CLIENT_HAS_ANSWER.wait(timeout=5)
        return
    if path == "/stream":
        await send({"type": "http.response.start", "status": 200, "headers": []})
        for i in range(5):
            await send({"type": "http.response.body", "body": b"%d," % i, "more_body": True})
        await send({"type": "http.response.body", "body": BIG, "more_body": True})
        await send({"type": "http.response.body", "body": b"end"})
        return
    body = b"hello " + path.encode()
    headers = [(b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": body})


@pytest.fixture
def base_url() -> Iterator[str]:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()
    config = uvicorn.Config(
        app, host="127.0.0.1", port=port, http=CoalescingHttpToolsProtocol, log_config=None,
        lifespan="off", loop="uvloop",
    )  # fmt: skip
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.01)
    assert server.started
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(timeout=10)


def test_answers_over_keep_alive_and_close(base_url: str) -> None:
    with httpx.Client(base_url=base_url) as client:
        for i in range(20):
            r = client.get(f"/a{i}")
            assert r.status_code == 200 and r.text == f"hello /a{i}"
        # uvicorn writes the body and closes in one step: close() must flush first
        r = client.get("/last", headers={"Connection": "close"})
        assert r.text == "hello /last"


def test_raw_answer_is_whole(base_url: str) -> None:
    host, port = base_url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=5) as s:
        s.sendall(b"GET /x HTTP/1.1\r\nHost: t\r\n\r\n")
        time.sleep(0.2)  # the whole answer is in the receive buffer by now
        first = s.recv(65536)
    assert first.startswith(b"HTTP/1.1 200") and first.endswith(b"hello /x")


def test_streamed_and_large_bodies_arrive_whole(base_url: str) -> None:
    with httpx.Client(base_url=base_url, timeout=10) as client:
        for _ in range(2):
            with client.stream("GET", "/stream") as r:
                chunks = []
                for chunk in r.iter_bytes():
                    chunks.append(chunk)
                    time.sleep(0.001)  # a slow reader: the server must wait, not drop
            assert b"".join(chunks) == b"0,1,2,3,4," + BIG + b"end"


def test_writes_of_one_step_reach_the_socket_as_one() -> None:
    import asyncio

    async def go() -> tuple[list[bytes], bytes]:
        loop = asyncio.get_running_loop()
        left, right = socket.socketpair()
        transport, _ = await loop.connect_accepted_socket(asyncio.Protocol, left)
        writes: list[bytes] = []
        real_write = transport.write

        def counting(data: bytes) -> None:  # a spy on the real transport's writes
            writes.append(bytes(data))
            real_write(data)

        transport.write = counting  # type: ignore[method-assign]
        t = CoalescingTransport(transport, loop)  # type: ignore[arg-type]
        t.write(b"HTTP/1.1 200 OK\r\n\r\n")
        t.write(bytearray(b"body"))
        assert writes == []  # nothing yet: flushed at the end of this step
        await asyncio.sleep(0)
        t.write(b"more")
        assert not t.is_closing()
        t.close()  # flushes first
        assert t.is_closing() and transport.is_closing()
        await asyncio.sleep(0.05)
        right.settimeout(5)
        got = b""
        while chunk := right.recv(1024):
            got += chunk
        right.close()
        return writes, got

    writes, got = asyncio.run(go())
    assert writes == [b"HTTP/1.1 200 OK\r\n\r\nbody", b"more"]
    assert got == b"HTTP/1.1 200 OK\r\n\r\nbodymore"


def test_a_complete_answer_leaves_before_the_app_returns(base_url: str) -> None:
    CLIENT_HAS_ANSWER.clear()
    try:
        with httpx.Client(base_url=base_url, timeout=3) as client:
            r = client.get("/busy-after-send")  # times out if the answer waits for the app
            assert r.text == "early"
    finally:
        CLIENT_HAS_ANSWER.set()
