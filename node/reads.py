"""Read requests a node serves for one shard replica: encoded plan partials, raw selections.

Synchronous (called in worker threads). Results travel in the documented binary forms: query
partials (docs/format/partials.md) and write batches (docs/format/write-batch.md).
"""

from __future__ import annotations

import re

from node.engine.engine import Engine
from node.engine.index import split_storage_key
from node.engine.lastcache import LastValueCache
from node.query import EngineSource, execute_partial
from pulsar_cluster.batch import Column, WriteBatch
from pulsar_cluster.batchcodec import encode_batch
from pulsar_cluster.nodeapi import ScanRequest, SeriesData, TagMatcher
from pulsar_cluster.query.columnar import encode_any, merge_columns
from pulsar_cluster.query.partial import decode_plan, merge
from pulsar_cluster.query.plan import Plan
from pulsar_cluster.series import split_series_key

__all__ = [
    "PlanAnswer",
    "answer_plan",
    "run_plan",
    "scan_series",
    "select_series",
    "scan_encoded",
    "select_encoded",
]


#: An encoded partial, and which of the probed names are tag keys here (None: no probe asked).
PlanAnswer = tuple[bytes, list[str] | None]


def run_plan(
    engine: Engine,
    encoded_plan: bytes,
    last_cache: LastValueCache | None = None,
    tag_probe: list[str] | None = None,
) -> PlanAnswer:
    """The encoded partial of one shard for an encoded plan (QueryError on a bad plan)."""
    plan = decode_plan(encoded_plan)
    partial = encode_any(execute_partial(plan, EngineSource(engine), last_cache), plan)
    return partial, _probe([engine], plan, tag_probe)


def run_plan_many(
    engines: list[Engine],
    encoded_plan: bytes,
    last_caches: list[LastValueCache] | None = None,
    tag_probe: list[str] | None = None,
) -> PlanAnswer:
    """The encoded partial of several shards of this node, merged here: partials are mergeable
    (pulsar_cluster/query/partial.py), so the coordinator gets one answer per node instead of
    one per shard (each HTTP call costs the coordinator and the node CPU of their own)."""
    return answer_plan(decode_plan(encoded_plan), engines, last_caches, tag_probe)


def answer_plan(
    plan: Plan,
    engines: list[Engine],
    last_caches: list[LastValueCache] | None = None,
    tag_probe: list[str] | None = None,
    series: list[list[bytes]] | None = None,
) -> PlanAnswer:
    """`run_plan_many` of a decoded plan; `series`: per engine, the plan's series (sorted) when
    the caller resolved them already (node/inline.py)."""
    caches: list[LastValueCache | None] = (
        list(last_caches) if last_caches is not None else [None] * len(engines)
    )
    resolved: list[list[bytes] | None] = [None] * len(engines) if series is None else list(series)
    partials = [
        execute_partial(plan, EngineSource(engine), cache, keys)
        for engine, cache, keys in zip(engines, caches, resolved, strict=True)
    ]
    merged = merge_columns(plan, partials)  # last()-only plans stay columnar (columnar.py)
    answer = encode_any(merge(plan, partials) if merged is None else merged, plan)
    return answer, _probe(engines, plan, tag_probe)


def _probe(engines: list[Engine], plan: Plan, names: list[str] | None) -> list[str] | None:
    """Which of `names` are tag keys of the plan's measurement in these replicas
    (pulsar_cluster/tagprobe.py). Read after the data: a key that appeared meanwhile is
    reported, and the coordinator plans again rather than keep an answer planned without it."""
    if names is None:
        return None
    wanted = set(names)
    found: set[str] = set()
    for engine in engines:
        found.update(k for k in engine.tag_keys(plan.database, plan.measurement) if k in wanted)
    return sorted(found)


def scan_series(engine: Engine, request: ScanRequest) -> list[SeriesData]:
    """Raw points of the series whose tags include `request.tags`, in [start, end)."""
    out = []
    for key, fields in engine.scan(
        request.database,
        request.measurement,
        request.tags,
        request.fields,
        request.start,
        request.end,
    ):
        columns = {n: Column(d.type, d.timestamps, d.values) for n, d in fields.items()}
        out.append(SeriesData(key, columns))
    return out


def select_series(
    engine: Engine,
    database: str,
    measurement: str,
    matchers: list[TagMatcher],
    start: int,
    end: int,
    fields: list[str] | None,
) -> list[SeriesData]:
    """Series of the measurement whose tags satisfy every matcher (Prometheus semantics).

    Raises re.error for a bad regex before reading anything.
    """
    patterns: list[re.Pattern[str] | None] = [m.compiled() for m in matchers]
    # Equality on a non-empty value narrows through the tag postings; every matcher is then
    # checked once per series, never per point.
    exact = {m.name: m.value for m in matchers if m.op == "=" and m.value}
    out = []
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
            out.append(SeriesData(key, columns))
    return out


def _encoded(database: str, series: list[SeriesData]) -> bytes:
    return encode_batch(WriteBatch(database, {s.key: s.columns for s in series}))


def scan_encoded(engine: Engine, request: ScanRequest) -> bytes:
    return _encoded(request.database, scan_series(engine, request))


def select_encoded(
    engine: Engine,
    database: str,
    measurement: str,
    matchers: list[TagMatcher],
    start: int,
    end: int,
    fields: list[str] | None,
) -> bytes:
    return _encoded(
        database, select_series(engine, database, measurement, matchers, start, end, fields)
    )
