"""The server freezes its start-up objects out of the garbage collector once the app is up."""

from __future__ import annotations

import asyncio
import gc
import socket

import uvicorn

from pulsar_cluster.serving import _FreezingServer


async def _app(scope, receive, send):  # type: ignore[no-untyped-def]
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return


def test_startup_freezes_the_objects_alive_then() -> None:
    gc.unfreeze()
    assert gc.get_freeze_count() == 0
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    config = uvicorn.Config(_app, lifespan="on", log_config=None)
    server = _FreezingServer(config)

    async def run() -> None:
        config.load()
        server.lifespan = config.lifespan_class(config)
        await server.startup(sockets=[sock])
        try:
            assert gc.get_freeze_count() > 0
        finally:
            await server.shutdown(sockets=[sock])

    try:
        asyncio.run(run())
    finally:
        gc.unfreeze()
        sock.close()
