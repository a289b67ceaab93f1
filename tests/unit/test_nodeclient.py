"""NodeClient over its aiohttp pool (pulsar_cluster/nodehttp.py) against a real HTTP server.

The server is uvicorn on 127.0.0.1 with a small Starlette app that answers as a node does:
bodies, the node API's JSON errors, a slow answer, a streamed file. Checked: what reaches the
server (method, path, query string, auth, body), how errors come back (the PulsarError they
were on the node), timeouts and refused connections as UnavailableError naming the node, a
restarted server (its pooled connections gone), and the pool surviving a second event loop.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import orjson
import pytest
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

from pulsar_cluster.errors import (
    BadRequestError,
    NotLeaderError,
    OverloadedError,
    UnavailableError,
)
from pulsar_cluster.nodeclient import NodeAuthError, NodeClient
from pulsar_cluster.nodehttp import NodeSession
from pulsar_cluster.tagprobe import TAG_KEYS_HEADER, TAG_PROBE_HEADER, decode_names, encode_names

SEEN: list[dict[str, object]] = []


async def _query(request: Request) -> Response:
    SEEN.append(
        {
            "method": request.method,
            "path": request.url.path,
            "query": request.url.query,
            "auth": request.headers.get("authorization"),
            "body": await request.body(),
            "probe": request.headers.get(TAG_PROBE_HEADER),
        }
    )
    headers = {}
    probe = request.headers.get(TAG_PROBE_HEADER)
    if probe is not None:  # as a node: which of the names are tag keys here (`tag...` ones)
        headers[TAG_KEYS_HEADER] = encode_names(n for n in decode_names(probe) if n[:3] == "tag")
    body = b"partial:" + await request.body()
    return Response(body, media_type="application/octet-stream", headers=headers)


def _error(status: int, doc: dict[str, object]) -> Response:
    return Response(orjson.dumps(doc), status_code=status, media_type="application/json")


async def _write(request: Request) -> Response:
    shard = int(request.path_params["shard"])
    if shard == 1:
        return _error(
            421, {"error": "not the leader", "shard": 1, "leader": "n2", "map_version": 7}
        )
    if shard == 2:
        return _error(429, {"error": "busy", "retry_after": 0.5})
    if shard == 3:
        return _error(400, {"error": "bad batch", "line": 4})
    if shard == 4:
        return _error(401, {"error": "bad token"})
    if shard == 5:
        return Response(b"oops", status_code=500)
    return Response(b"", status_code=204)


async def _slow(request: Request) -> Response:
    await asyncio.sleep(2.0)
    return Response(b"{}", media_type="application/json")


async def _file(request: Request) -> StreamingResponse:
    if request.path_params["path"] == "missing":
        return _error(404, {"error": "no such file"})  # type: ignore[return-value]

    async def chunks() -> AsyncIterator[bytes]:
        for i in range(5):
            yield bytes([i]) * 300_000

    return StreamingResponse(chunks(), media_type="application/octet-stream")


APP = Starlette(
    routes=[
        Route("/v1/query", _query, methods=["POST"]),
        Route("/v1/shards/{shard:int}/query", _query, methods=["POST"]),
        Route("/v1/shards/{shard:int}/write", _write, methods=["POST"]),
        Route("/v1/status", _slow),
        Route("/v1/backup/checkpoints/{cp}/shards/{shard:int}/files/{path}", _file),
    ]
)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@asynccontextmanager
async def _server(port: int) -> AsyncIterator[str]:
    server = uvicorn.Server(
        uvicorn.Config(APP, host="127.0.0.1", port=port, log_level="warning", lifespan="off")
    )
    task = asyncio.create_task(server.serve())
    for _ in range(200):  # bounded: 2 s
        if server.started:
            break
        await asyncio.sleep(0.01)
    assert server.started
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, 10)


def test_calls_carry_path_query_auth_and_body() -> None:
    async def main() -> None:
        SEEN.clear()
        async with _server(_free_port()) as url:
            client = NodeClient(url, "s3cret", timeout_s=5.0)
            try:
                got = await client.query_shards([3, 11, 0], b"\x00plan\xff", "any")
                again = await client.query(1, b"second", "leader")
            finally:
                await client.close()
        assert got == (b"partial:\x00plan\xff", None) and again == (b"partial:second", None)
        assert SEEN[0] == {
            "method": "POST",
            "path": "/v1/query",
            "query": "shards=3,11,0&consistency=any",
            "auth": "Bearer s3cret",
            "body": b"\x00plan\xff",
            "probe": None,
        }
        assert SEEN[1]["path"] == "/v1/shards/1/query" and SEEN[1]["query"] == "consistency=leader"


def test_the_tag_key_probe_travels_both_ways() -> None:
    """Names with commas, quotes, % and non-ASCII survive the headers; a node that answers no
    probe gives None (the caller then plans afresh)."""
    names = ["tag,a", 'tag"b', "tag%c", "tagé", "field x", "f"]

    async def main() -> None:
        async with _server(_free_port()) as url:
            client = NodeClient(url, "t", timeout_s=5.0)
            try:
                _, found = await client.query_shards([0], b"p", "leader", names)
                assert found == sorted(n for n in names if n.startswith("tag"))
                _, none_found = await client.query(0, b"p", "leader", ["f"])
                assert none_found == []
            finally:
                await client.close()

    asyncio.run(main())

    asyncio.run(main())


def test_node_errors_come_back_as_the_error_they_were() -> None:
    async def main() -> None:
        async with _server(_free_port()) as url:
            client = NodeClient(url, "t", timeout_s=5.0)
            try:
                with pytest.raises(NotLeaderError) as not_leader:
                    await client.write(1, b"x")
                assert not_leader.value.shard == 1 and not_leader.value.leader == "n2"
                assert not_leader.value.map_version == 7
                with pytest.raises(OverloadedError) as busy:
                    await client.write(2, b"x")
                assert busy.value.retry_after_s == 0.5
                with pytest.raises(BadRequestError) as bad:
                    await client.write(3, b"x")
                assert bad.value.message == "bad batch" and bad.value.details["line"] == 4
                with pytest.raises(NodeAuthError):
                    await client.write(4, b"x")
                with pytest.raises(UnavailableError, match=r"failed \(500\): oops"):
                    await client.write(5, b"x")
                await client.write(0, b"x")  # 204: no error
            finally:
                await client.close()

    asyncio.run(main())


def test_timeouts_and_refused_connections_are_unavailable_naming_the_node() -> None:
    async def main() -> None:
        async with _server(_free_port()) as url:
            client = NodeClient(url, "t", timeout_s=0.3)
            try:
                loop = asyncio.get_running_loop()
                t0 = loop.time()
                with pytest.raises(UnavailableError, match="unreachable") as slow:
                    await client.status()
                assert loop.time() - t0 < 1.5  # the 0.3 s read timeout, not the 2 s answer
                assert slow.value.details["node"] == url
            finally:
                await client.close()
        closed = f"http://127.0.0.1:{_free_port()}"
        client = NodeClient(closed, "t", timeout_s=2.0)
        try:
            with pytest.raises(UnavailableError, match="unreachable") as refused:
                await client.write(0, b"x")
            assert refused.value.details["node"] == closed
        finally:
            await client.close()

    asyncio.run(main())


def test_a_restarted_node_is_reached_on_a_new_connection() -> None:
    async def main() -> None:
        port = _free_port()
        session = NodeSession()
        client = NodeClient(f"http://127.0.0.1:{port}", "t", 5.0, session)
        try:
            async with _server(port):
                assert await client.query_shards([0], b"a", "leader") == (b"partial:a", None)
            # the pooled keep-alive connection died with that server
            async with _server(port):
                assert await client.query_shards([0], b"b", "leader") == (b"partial:b", None)
        finally:
            await session.close()

    asyncio.run(main())


def test_backup_stream_yields_the_whole_file_or_the_nodes_error() -> None:
    async def main() -> None:
        async with _server(_free_port()) as url:
            client = NodeClient(url, "t", timeout_s=5.0)
            try:
                data = b"".join([c async for c in client.backup_stream("cp1", 0, "table.sst")])
                assert data == b"".join(bytes([i]) * 300_000 for i in range(5))
                with pytest.raises(BadRequestError, match="no such file"):
                    async for _ in client.backup_stream("cp1", 0, "missing"):
                        pass
            finally:
                await client.close()

    asyncio.run(main())


def test_one_session_serves_a_second_event_loop() -> None:
    """The pool belongs to the loop that made it: closed at the end of one loop, the same
    NodeSession serves the next (a new pool), as a CLI's successive asyncio.run calls need."""
    session = NodeSession()
    port = _free_port()

    async def call(body: bytes) -> bytes:
        try:
            async with _server(port):
                client = NodeClient(f"http://127.0.0.1:{port}", "t", 5.0, session)
                return (await client.query_shards([0], body, "leader"))[0]
        finally:
            await session.close()

    assert asyncio.run(call(b"one")) == b"partial:one"
    assert asyncio.run(call(b"two")) == b"partial:two"
