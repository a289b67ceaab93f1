"""Read requests a node serves for one shard replica: encoded plan partials, raw selections.

Synchronous (called in worker threads). Results travel in the documented binary forms: query
partials (docs/format/partials.md) and write batches (docs/format/write-batch.md).
"""

from __future__ import annotations

import re

from node.engine.engine import Engine
from node.engine.index import split_storage_key
from node.query import EngineSource, execute_partial
from pulsar_cluster.batch import Column, WriteBatch
from pulsar_cluster.batchcodec import encode_batch
from pulsar_cluster.nodeapi import ScanRequest, TagMatcher
from pulsar_cluster.query.partial import decode_plan, encode_partial
from pulsar_cluster.series import split_series_key

__all__ = ["run_plan", "scan_encoded", "select_encoded"]


def run_plan(engine: Engine, encoded_plan: bytes) -> bytes:
    """The encoded partial of one shard for an encoded plan (QueryError on a bad plan)."""
    plan = decode_plan(encoded_plan)
    return encode_partial(execute_partial(plan, EngineSource(engine)))


def scan_encoded(engine: Engine, request: ScanRequest) -> bytes:
    out = WriteBatch(request.database)
    for key, fields in engine.scan(
        request.database,
        request.measurement,
        request.tags,
        request.fields,
        request.start,
        request.end,
    ):
        out.series[key] = {n: Column(d.type, d.timestamps, d.values) for n, d in fields.items()}
    return encode_batch(out)


def select_encoded(
    engine: Engine,
    database: str,
    measurement: str,
    matchers: list[TagMatcher],
    start: int,
    end: int,
    fields: list[str] | None,
) -> bytes:
    """Series of the measurement whose tags satisfy every matcher (Prometheus semantics)."""
    patterns: list[re.Pattern[str] | None] = [m.compiled() for m in matchers]
    # Equality on a non-empty value narrows through the tag postings; every matcher is then
    # checked once per series, never per point.
    exact = {m.name: m.value for m in matchers if m.op == "=" and m.value}
    out = WriteBatch(database)
    for skey in engine.match_series(database, measurement, exact):
        key = split_storage_key(skey)[1]
        tags = split_series_key(key)[1]
        if not all(m.matches(tags, p) for m, p in zip(matchers, patterns, strict=True)):
            continue
        names = fields if fields is not None else sorted(engine.series_fields(skey))
        columns = {}
        for name in names:
            data = engine.read_field(skey, name, start, end)
            if data is not None and len(data.timestamps):
                columns[name] = Column(data.type, data.timestamps, data.values)
        if columns:
            out.series[key] = columns
    return encode_batch(out)
