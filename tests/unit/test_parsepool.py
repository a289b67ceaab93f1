"""Parsing in worker processes gives the same batches and the same errors as parsing inline."""

from __future__ import annotations

import asyncio

import pytest

from coordinator.parsepool import ParsePool
from pulsar_cluster.errors import BadRequestError, LineProtocolError


def columns(batch) -> dict:  # type: ignore[no-untyped-def]
    return {(k, n): (c.timestamps.tolist(), c.values.tolist()) for k, n, c in batch.columns()}


@pytest.fixture(scope="module")
def pool():  # type: ignore[no-untyped-def]
    p = ParsePool(workers=1, inline_bytes=0)  # everything goes to the worker process
    yield p
    p.close()


def test_worker_parse_matches_inline(pool: ParsePool) -> None:
    body = b"".join(b"cpu,host=h%d u=%di,s=%d.5 %d\n" % (i % 7, i, i, i) for i in range(500))
    inline = ParsePool(workers=0)
    got = asyncio.run(pool.parse_lines(body, "db", "ns", 1))
    want = asyncio.run(inline.parse_lines(body, "db", "ns", 1))
    assert columns(got) == columns(want)
    assert got.encoded is not None  # the WAL will reuse the worker's encoding


def test_worker_errors_keep_status_line_and_details(pool: ParsePool) -> None:
    with pytest.raises(LineProtocolError) as info:
        asyncio.run(pool.parse_lines(b"m f=1 1\nm f=oops 2\n", "db", "ns", 1))
    assert info.value.status_code == 400
    assert info.value.to_dict()["line"] == 2 and "line 2" in info.value.message
    with pytest.raises(BadRequestError, match="point 0"):
        asyncio.run(pool.parse_json(b'{"measurement": "m"}', "db", 1))
