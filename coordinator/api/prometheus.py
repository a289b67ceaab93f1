"""Prometheus remote_write (`POST /api/v1/prom/write`) and remote_read (`POST /api/v1/prom/read`).

Database: `?db=`, default `prometheus`. Wire format and mapping: docs/format/prometheus-remote.md.

Request checks, in order, each failing with nothing written:
- Content-Type must be absent or `application/x-protobuf` (remote write 1.0; a 2.0 body,
  `proto=io.prometheus.write.v2.Request`, is refused) -> 415;
- Content-Encoding must be absent or `snappy` -> 415;
- the body must fit the coordinator's body limit, compressed and as declared inflated -> 413;
- valid snappy, then a valid protobuf message -> 400.
"""

from __future__ import annotations

import asyncio
import re

import numpy as np
from fastapi import APIRouter, Query, Request, Response

from coordinator.api.write import checked_database, ingest, parse_or_reject
from coordinator.body import read_raw_body
from coordinator.state import AppState, app_state
from pulsar_cluster.batch import FieldType, WriteBatch
from pulsar_cluster.errors import BadRequestError, LimitExceededError, UnsupportedMediaTypeError
from pulsar_cluster.logs import get_logger
from pulsar_cluster.nodeapi import SeriesData, TagMatcher
from pulsar_cluster.prometheus import remote_pb2, types_pb2
from pulsar_cluster.prometheus.remote import (
    NAME_LABEL,
    VALUE_FIELD,
    decode_read_request,
    decode_write_request,
    encode_read_response,
    encode_timeseries,
    snappy_decode,
    snappy_encode,
    write_request_to_batch,
)
from pulsar_cluster.series import split_series_key

__all__ = ["router", "DEFAULT_DATABASE"]

router = APIRouter(tags=["prometheus"])
log = get_logger(__name__)

DEFAULT_DATABASE = "prometheus"
_NS_PER_MS = 1_000_000
_OPS = {
    types_pb2.LabelMatcher.EQ: "=",
    types_pb2.LabelMatcher.NEQ: "!=",
    types_pb2.LabelMatcher.RE: "=~",
    types_pb2.LabelMatcher.NRE: "!~",
}
#: Most samples one remote read answers (all queries together): bounds the coordinator's memory
#: (~16 bytes a sample as arrays, plus the encoding). Prometheus' own remote-read endpoint has
#: the same kind of bound (--storage.remote.read-sample-limit, default 5e7); ours is lower
#: because a coordinator holds the whole answer before sending it.
MAX_READ_SAMPLES = 5_000_000
#: Numeric field types Prometheus can read back (as float64, like InfluxDB 1.x's remote read).
_READABLE = frozenset((FieldType.FLOAT, FieldType.INTEGER, FieldType.UNSIGNED))


def _check_media(request: Request, message: str) -> None:
    content_type = request.headers.get("content-type", "").strip().lower()
    media, _, params = content_type.partition(";")
    if media and media.strip() != "application/x-protobuf":
        raise UnsupportedMediaTypeError(
            f"unsupported Content-Type '{content_type}': use application/x-protobuf"
        )
    proto = re.search(r"proto=([\w.]+)", params)
    if proto and proto.group(1) != f"prometheus.{message}":
        raise UnsupportedMediaTypeError(
            f"unsupported protobuf message '{proto.group(1)}': this endpoint speaks "
            f"prometheus.{message} (remote write 1.0)"
        )
    encoding = request.headers.get("content-encoding", "").strip().lower()
    if encoding not in ("", "snappy"):
        raise UnsupportedMediaTypeError(f"unsupported Content-Encoding '{encoding}': use snappy")


async def _payload(request: Request, state: AppState, message: str) -> bytes:
    _check_media(request, message)
    limit = state.settings.max_body_bytes
    body = await read_raw_body(request, limit)
    return await asyncio.to_thread(snappy_decode, body, limit)


def _decode_write(payload: bytes, database: str) -> WriteBatch:
    batch, dropped = write_request_to_batch(decode_write_request(payload), database)
    if dropped:
        log.debug("prometheus_non_finite_dropped", database=database, samples=dropped)
    return batch


@router.post("/api/v1/prom/write", status_code=204, summary="Prometheus remote_write 1.0")
async def prom_write(
    request: Request, db: str | None = Query(None, description="database (default prometheus)")
) -> Response:
    state = app_state(request)
    try:
        database = checked_database(db or DEFAULT_DATABASE)
        payload = await _payload(request, state, "WriteRequest")
    except BadRequestError:
        state.metrics.write_rejections.labels("bad_prometheus").inc()
        raise
    batch = await parse_or_reject(
        state, "bad_prometheus", asyncio.to_thread, _decode_write, payload, database
    )
    return await ingest(state, batch, "prometheus", len(payload))


# --- remote read ---------------------------------------------------------------------------------


def _split_matchers(query: remote_pb2.Query) -> tuple[list[TagMatcher], list[TagMatcher]]:
    """(matchers on __name__, matchers on tags)."""
    names: list[TagMatcher] = []
    tags: list[TagMatcher] = []
    for m in query.matchers:
        op = _OPS.get(m.type)
        if op is None:
            raise BadRequestError(f"unknown matcher type {m.type}")
        matcher = TagMatcher(m.name, op, m.value)  # type: ignore[arg-type]
        (names if m.name == NAME_LABEL else tags).append(matcher)
    for matcher in names + tags:
        try:
            matcher.compiled()
        except re.error as exc:
            raise BadRequestError(f"invalid regex in matcher {matcher.name}: {exc}") from None
    return names, tags


async def _measurements(state: AppState, database: str, names: list[TagMatcher]) -> list[str]:
    exact = [m.value for m in names if m.op == "="]
    candidates = exact[:1] if exact else await state.backend.measurements(database)
    return [c for c in candidates if all(m.matches({NAME_LABEL: c}) for m in names)]


def _timeseries(measurement: str, series: SeriesData) -> bytes | None:
    column = series.columns.get(VALUE_FIELD)
    if column is None or column.type not in _READABLE or not len(column):
        return None
    ms = column.timestamps // _NS_PER_MS
    # Several ns points within one ms: keep the last (timestamps are sorted).
    keep = np.append(ms[1:] != ms[:-1], True)
    _, tags = split_series_key(series.key)
    labels = sorted([(NAME_LABEL, measurement), *tags.items()])
    return encode_timeseries(labels, ms[keep], column.values[keep].astype(np.float64))


class _Budget:
    def __init__(self, samples: int) -> None:
        self.left = samples

    def take(self, found: list[SeriesData]) -> None:
        self.left -= sum(len(c) for s in found for c in s.columns.values())
        if self.left < 0:
            raise LimitExceededError(
                f"remote read exceeds {MAX_READ_SAMPLES} samples: narrow the time range or "
                "the matchers",
                limit=MAX_READ_SAMPLES,
            )


async def _answer(
    state: AppState, database: str, query: remote_pb2.Query, budget: _Budget
) -> list[bytes]:
    names, tag_matchers = _split_matchers(query)
    start = query.start_timestamp_ms * _NS_PER_MS
    end = (query.end_timestamp_ms + 1) * _NS_PER_MS  # Prometheus' end is inclusive, in ms
    out: list[bytes] = []
    for measurement in await _measurements(state, database, names):
        found = await state.backend.select_series(
            database, measurement, tag_matchers, start, end, [VALUE_FIELD]
        )
        budget.take(found)
        for series in sorted(found, key=lambda s: s.key):
            encoded = _timeseries(measurement, series)
            if encoded is not None:
                out.append(encoded)
    return out


@router.post("/api/v1/prom/read", summary="Prometheus remote_read (SAMPLES response)")
async def prom_read(
    request: Request, db: str | None = Query(None, description="database (default prometheus)")
) -> Response:
    state = app_state(request)
    database = checked_database(db or DEFAULT_DATABASE)
    payload = await _payload(request, state, "ReadRequest")
    read = decode_read_request(payload)
    budget = _Budget(MAX_READ_SAMPLES)
    results = [await _answer(state, database, query, budget) for query in read.queries]
    body = await asyncio.to_thread(lambda: snappy_encode(encode_read_response(results)))
    return Response(
        body,
        media_type="application/x-protobuf",
        headers={"Content-Encoding": "snappy"},
    )
