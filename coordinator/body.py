"""Reading request bodies with bounds: a size cap (413) and safe gzip decoding (no bombs)."""

from __future__ import annotations

import zlib

from fastapi import Request

from pulsar_cluster.errors import BadRequestError, LimitExceededError

__all__ = ["read_body"]


def _too_large(limit: int) -> LimitExceededError:
    return LimitExceededError(
        f"request body exceeds the limit of {limit} bytes", status_code=413, limit=limit
    )


async def read_body(request: Request, limit: int) -> bytes:
    """The request body, gunzipped if `Content-Encoding: gzip`, at most `limit` bytes either way."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise _too_large(limit)
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise _too_large(limit)
        chunks.append(chunk)
    body = b"".join(chunks)
    encoding = request.headers.get("content-encoding", "").strip().lower()
    if encoding in ("", "identity"):
        return body
    if encoding != "gzip":
        raise BadRequestError(f"unsupported Content-Encoding '{encoding}': use gzip or none")
    decompressor = zlib.decompressobj(wbits=16 + zlib.MAX_WBITS)
    try:
        out = decompressor.decompress(body, limit + 1)
    except zlib.error as exc:
        raise BadRequestError(f"invalid gzip body: {exc}") from None
    if len(out) > limit or decompressor.unconsumed_tail:
        raise _too_large(limit)
    if not decompressor.eof:
        raise BadRequestError("invalid gzip body: truncated")
    return out
