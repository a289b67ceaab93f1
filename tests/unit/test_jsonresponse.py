"""PrebuiltJSONResponse (coordinator/jsonresponse.py) sends exactly what ORJSONResponse with the
same headers mapping sends: status, header bytes in order, body; for any JSON content, status
(1xx, 204 and 304 carry no content-length) and header mapping."""

from __future__ import annotations

import asyncio
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from coordinator.api.ops import VERSION_HEADERS
from coordinator.jsonresponse import PrebuiltJSONResponse, raw_headers
from coordinator.state import ORJSONResponse

_scalar = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**63), 2**63 - 1),
    st.floats(allow_nan=False),
    st.text(max_size=10),
)
_json = st.recursive(
    _scalar,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=5), inner, max_size=4)
    ),
    max_leaves=20,
)
_name = st.text("abcXYZ-_019", min_size=1, max_size=8).filter(
    lambda n: n.lower() not in ("content-length", "content-type")
)
_value = st.text(st.characters(min_codepoint=32, max_codepoint=255), max_size=12)


def _sent(response: Any) -> list[dict[str, Any]]:
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    asyncio.run(response({"type": "http", "method": "GET"}, receive, send))
    return sent


@settings(max_examples=300, deadline=None)
@given(
    content=_json,
    status=st.sampled_from([100, 200, 201, 204, 304, 400, 404, 413, 429, 500, 503]),
    headers=st.dictionaries(_name, _value, max_size=4),
)
def test_same_as_orjsonresponse(content: Any, status: int, headers: dict[str, str]) -> None:
    fast = PrebuiltJSONResponse(content, status, raw_headers(headers))
    slow = ORJSONResponse(content, status_code=status, headers=headers)
    assert (fast.status_code, fast.body, fast.raw_headers) == (
        slow.status_code,
        slow.body,
        slow.raw_headers,
    )
    assert _sent(fast) == _sent(slow)


def test_version_headers_and_numpy_values() -> None:
    content = {"results": [{"statement_id": 0, "values": [[np.int64(5), np.float64(1.5)]]}]}
    fast = PrebuiltJSONResponse(content, 200, raw_headers(VERSION_HEADERS))
    slow = ORJSONResponse(content, headers=dict(VERSION_HEADERS))
    assert _sent(fast) == _sent(slow)
    assert fast.headers["content-length"] == str(len(fast.body))  # Starlette's view works too


def test_length_and_type_may_not_be_prebuilt() -> None:
    with pytest.raises(ValueError, match="content-length"):
        raw_headers({"Content-Type": "text/plain"})
