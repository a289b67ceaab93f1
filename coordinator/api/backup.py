"""Backup endpoints under /api/v1/admin/backup (admin token protected like all of /admin).

The bytes of a backup travel node -> coordinator -> backup client over HTTP (docs/api.md,
docs/operations.md): the client asks for checkpoints, streams every file it lacks, then
releases the checkpoints. The coordinator keeps no state: every checkpoint is named by
(node, checkpoint id), which the client sends back, so any coordinator behind a load balancer
can serve any of the calls.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any, Protocol, cast

import orjson
from fastapi import APIRouter, Query, Request, Response
from fastapi.responses import StreamingResponse

from coordinator.state import ORJSONResponse, app_state
from pulsar_cluster.errors import BadRequestError

__all__ = ["router"]

router = APIRouter(prefix="/api/v1/admin/backup", tags=["admin"])


class BackupSource(Protocol):
    """What a storage backend offers for backups (node.local.LocalNode and
    coordinator.cluster.ClusterBackend implement it)."""

    async def backup_checkpoint(self, prefer: dict[int, str]) -> dict[str, Any]: ...

    def backup_stream(
        self, node: str | None, checkpoint: str, shard: int, path: str
    ) -> AsyncIterator[bytes]: ...

    async def backup_release(self, checkpoints: list[tuple[str | None, str]]) -> int: ...


def _source(request: Request) -> BackupSource:
    return cast(BackupSource, app_state(request).backend)


async def _json_body(request: Request) -> Any:
    raw = await request.body()
    if not raw:
        return {}
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise BadRequestError(f"request body is not JSON: {exc}") from None


@router.post("/checkpoints", summary="Make a backup checkpoint of every shard")
async def backup_checkpoints(request: Request) -> Response:
    """Body (optional): `{"prefer": {"<shard>": "<node id>"}}`, the replica to use per shard.

    Answers the cluster shape and, per shard, the node, checkpoint id, applied index, latest
    accepted time and files (path, size, fingerprint)."""
    body = await _json_body(request)
    try:
        prefer = {int(k): str(v) for k, v in (body.get("prefer") or {}).items()}
    except (AttributeError, TypeError, ValueError) as exc:
        raise BadRequestError(f"bad 'prefer' map: {exc}") from None
    return ORJSONResponse(await _source(request).backup_checkpoint(prefer))


@router.get(
    "/checkpoints/{checkpoint}/shards/{shard}/files/{path:path}",
    summary="Stream one file of a checkpoint",
)
async def backup_file(
    request: Request, checkpoint: str, shard: int, path: str, node: str | None = Query(None)
) -> Response:
    stream = _source(request).backup_stream(node, checkpoint, shard, path)
    # Pull the first chunk before answering: a missing file or node is a JSON error status,
    # not a 200 followed by a broken body.
    first = await anext(stream, b"")

    async def body() -> AsyncIterator[bytes]:
        if first:
            yield first
        async for chunk in stream:
            yield chunk

    return StreamingResponse(body(), media_type="application/octet-stream")


@router.post("/release", summary="Release backup checkpoints (remove their hard links)")
async def backup_release(request: Request) -> Response:
    """Body: `{"checkpoints": [["<node id or null>", "<checkpoint id>"], ...]}`."""
    body = await _json_body(request)
    try:
        pairs = [(None if n is None else str(n), str(c)) for n, c in body["checkpoints"]]
    except (KeyError, TypeError, ValueError) as exc:
        raise BadRequestError(f"bad release request: {exc}") from None
    released = await _source(request).backup_release(pairs)
    return ORJSONResponse({"released": released})
