"""A JSON response whose constant headers are encoded once, not per request.

`ORJSONResponse(content, status_code, headers=VERSION_HEADERS)` lower-cases and encodes each
header of the mapping, then scans them for content-length and content-type, on every request.
`PrebuiltJSONResponse(content, status_code, raw)` takes the headers already as the raw
`(name, value)` byte pairs Starlette would have built (`raw_headers(mapping)`, computed once)
and appends content-length and content-type as Starlette does: same status, body and header
bytes in the same order (tests/unit/test_jsonresponse.py compares them).
"""

from __future__ import annotations

from collections.abc import Mapping

from coordinator.state import ORJSONResponse

__all__ = ["PrebuiltJSONResponse", "raw_headers"]

_CONTENT_TYPE = (b"content-type", ORJSONResponse.media_type.encode("latin-1"))


def raw_headers(headers: Mapping[str, str]) -> tuple[tuple[bytes, bytes], ...]:
    """`headers` as Starlette's Response encodes them; they may not set the length or type."""
    raw = tuple((k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in headers.items())
    if any(name in (b"content-length", b"content-type") for name, _ in raw):
        raise ValueError("prebuilt headers may not set content-length or content-type")
    return raw


class PrebuiltJSONResponse(ORJSONResponse):
    """An ORJSONResponse given its other headers as `raw_headers(...)` bytes."""

    def __init__(
        self,
        content: object,
        status_code: int = 200,
        raw: tuple[tuple[bytes, bytes], ...] = (),
    ) -> None:
        self.status_code = status_code
        self.background = None
        body = self.body = self.render(content)
        headers = list(raw)
        if not (status_code < 200 or status_code in (204, 304)):  # as Starlette's init_headers
            headers.append((b"content-length", str(len(body)).encode("latin-1")))
        headers.append(_CONTENT_TYPE)
        self.raw_headers = headers
