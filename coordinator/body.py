"""Reading request bodies with bounds: a size cap (413) and safe gzip decoding (no bombs).

The cap applies twice: to the bytes on the wire and to the bytes after gunzip, so a small gzip
body that inflates beyond the limit (a "gzip bomb") is refused after inflating at most
`limit + 1` bytes, never more.
"""

from __future__ import annotations

import zlib

from fastapi import Request

from pulsar_cluster.errors import BadRequestError, LimitExceededError, UnsupportedMediaTypeError

__all__ = ["read_body", "read_raw_body", "gunzip_bounded", "body_too_large"]

#: zlib's window bits for "gzip header and trailer".
_GZIP_WBITS = 16 + zlib.MAX_WBITS


def body_too_large(limit: int) -> LimitExceededError:
    return LimitExceededError(
        f"request body exceeds the limit of {limit} bytes", status_code=413, limit=limit
    )


async def read_raw_body(request: Request, limit: int) -> bytes:
    """The body as sent (no decoding), at most `limit` bytes; 413 beyond, before reading it all."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise body_too_large(limit)
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise body_too_large(limit)
        chunks.append(chunk)
    return b"".join(chunks)


def gunzip_bounded(body: bytes, limit: int) -> bytes:
    """Inflate a gzip body; 413 if it inflates beyond `limit`, 400 if it is not valid gzip."""
    decompressor = zlib.decompressobj(wbits=_GZIP_WBITS)
    try:
        out = decompressor.decompress(body, limit + 1)
    except zlib.error as exc:
        raise BadRequestError(f"invalid gzip body: {exc}") from None
    if len(out) > limit or decompressor.unconsumed_tail:
        raise body_too_large(limit)
    if not decompressor.eof:
        raise BadRequestError("invalid gzip body: truncated")
    return out


async def read_body(request: Request, limit: int) -> bytes:
    """The request body, gunzipped if `Content-Encoding: gzip`, at most `limit` bytes either way."""
    body = await read_raw_body(request, limit)
    encoding = request.headers.get("content-encoding", "").strip().lower()
    if encoding in ("", "identity"):
        return body
    if encoding != "gzip":
        raise UnsupportedMediaTypeError(
            f"unsupported Content-Encoding '{encoding}': use gzip or none"
        )
    return gunzip_bounded(body, limit)
