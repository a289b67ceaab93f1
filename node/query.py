"""The node-side query executor: run a plan against local storage and return its partial.

`execute_partial(plan, source)` resolves the tag predicate to series through the index view
(no data read yet), then reads each series' fields in the plan's time range (the engine prunes
blocks by their min/max time), filters points by the field predicate, assigns each point its
window with one vectorised division, and lifts and reduces the points into the partial states
of pulsar_cluster.query.states, one series at a time, so memory holds one series' points plus
the reduced states. Limits (points read, series matched) and the time budget are checked as it
goes and end the query with LimitExceededError.

`EngineSource` adapts node.engine.Engine to pulsar_cluster.query.source.QuerySource.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import numpy as np

from node.engine.batchread import FieldBatch
from node.engine.deletes import DeleteRequest
from node.engine.engine import Engine
from node.engine.lastcache import LastValueCache
from node.engine.rollups import RollupCache
from node.lastquery import LastReader, answer_last
from node.querybudget import Budget, group_key, series_group
from node.querykeep import execute_kept
from node.queryrollups import cached_states, entry_keys, plan_windows, remember, splice
from node.scanbatch import batch_applies, execute_batched
from pulsar_cluster.batch import FieldType
from pulsar_cluster.errors import LimitExceededError, QueryError
from pulsar_cluster.query.conditions import TRUE, compile_regex, field_mask, resolve_series
from pulsar_cluster.query.partial import (
    GroupKey,
    Partial,
    RawBlock,
    decode_plan,
    encode_partial,
)
from pulsar_cluster.query.plan import MAX_TIME, MIN_TIME, Plan, window_origin
from pulsar_cluster.query.source import QuerySource
from pulsar_cluster.query.states import State, concat_states, kind_for
from pulsar_cluster.series import SEP, format_series_key, split_series_key

__all__ = [
    "execute_partial",
    "execute_encoded",
    "execute_delete",
    "plan_series",
    "is_cheap_meta",
    "EngineSource",
]


class EngineSource:
    """QuerySource over a local engine, through its public, locked read methods."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        self._view = engine.read_view()  # one consistent set of tables for the whole query

    @property
    def rollups(self) -> RollupCache:
        """The engine's rollup cache (node/engine/rollups.py)."""
        return self._engine.rollups

    def refresh_view(self) -> None:
        """Read from the engine's state as of now. Called after registering series with the
        rollup cache or taking last-value cache tokens, so that every write the view misses is
        one those caches know to refuse fills for."""
        self._view = self._engine.read_view()

    def series_of_measurement(self, database: str, measurement: str) -> set[bytes]:
        return self._engine.series_of_measurement(database, measurement)  # a copy

    def series_with_tag(self, database: str, measurement: str, key: str, value: str) -> set[bytes]:
        return self._engine.series_with_tag(database, measurement, key, value)  # a copy

    def tag_values(self, database: str, measurement: str, key: str) -> list[str]:
        return self._engine.tag_values(database, measurement, key)

    def tag_keys(self, database: str, measurement: str) -> list[str]:
        return self._engine.tag_keys(database, measurement)

    def databases(self) -> list[str]:
        return self._engine.databases()

    def measurements(self, database: str) -> list[str]:
        return self._engine.measurements(database)

    def series_fields(self, skey: bytes) -> dict[str, FieldType]:
        return self._engine.series_fields(skey)

    def field_types_of(self, skeys: list[bytes], name: str) -> set[FieldType]:
        """The types field `name` has in these series (node/querykeep.py)."""
        return self._engine.field_types_of(skeys, name)

    def retention_policy(self, database: str) -> tuple[str, int] | None:
        """(policy name, duration ns) of an existing database, else None."""
        return self._engine.retention_policy(database)

    def retention_floor(self, skey: bytes) -> int:
        """The oldest time reads return for the series (the engine's retention rule)."""
        return self._engine.retention_start(skey)

    def last_reader(self) -> LastReader:
        """Newest points of series fields over a view taken now (node/lastquery.py)."""
        return LastReader(self._engine)

    def read_field(
        self,
        skey: bytes,
        name: str,
        start: int,
        end: int,
        on_block: Callable[[int], None] | None = None,
    ) -> tuple[FieldType, np.ndarray, np.ndarray] | None:
        data = self._engine.read_field(skey, name, start, end, self._view, on_block)
        if data is None:
            return None
        return data.type, data.timestamps, data.values

    def read_field_batch(
        self,
        skeys: list[bytes],
        name: str,
        start: int,
        end: int,
        on_block: Callable[[int], None] | None = None,
        max_points: int | None = None,
    ) -> FieldBatch | None:
        """`read_field` of many series at once (node/engine/batchread.py, node/scanbatch.py)."""
        view = self._view
        return self._engine.read_field_batch(skeys, name, start, end, view, on_block, max_points)


def execute_partial(
    plan: Plan,
    source: QuerySource,
    last_cache: LastValueCache | None = None,
    series: list[bytes] | None = None,
    use_rollups: bool = True,
) -> Partial:
    """The partial result of `plan` over the series in `source`.

    With `last_cache` (and a source with `retention_floor`), `last()` over all windows without
    a field predicate answers from the cache where it can and fills it where it read.
    `series`: the plan's series, sorted, when the caller has resolved them already in `source`.
    `use_rollups` False: leave the rollup cache alone (node/querykeep.py's narrowed reads).
    """
    if plan.kind == "meta":
        return _meta(plan, source)
    if plan.keep is not None and plan.kind == "select" and plan.every > 0:
        # only the windows the coordinator's LIMIT keeps (node/querykeep.py)
        return execute_kept(plan, source, last_cache, series, execute_partial)
    if last_cache is not None and (fast := answer_last(plan, source, last_cache)) is not None:
        return fast  # last() only, over all time: node/lastquery.py
    budget = Budget(plan)
    skeys = (
        series
        if series is not None
        else sorted(resolve_series(plan.tags, source, plan.database, plan.measurement))
    )
    if len(skeys) > plan.limits.max_series:
        raise LimitExceededError(
            f"query matches {len(skeys)} series, more than the limit of {plan.limits.max_series}",
            limit="max_series",
        )
    chunks = _chunks(plan)
    rollups: RollupCache | None = getattr(source, "rollups", None) if use_rollups else None
    windows = None
    probe = None
    if rollups is not None and rollups.enabled:
        windows = plan_windows(plan, len(chunks), len(skeys), rollups.capacity_bytes)
        if windows is not None and skeys:
            # Probe one series. Only part of its windows cached (a range sliding by less than a
            # window, a series written since): then this query reads every series in full and
            # leaves the cache alone. Reading the missing windows and merging them with the
            # cached ones costs more than a whole read of a series whose blocks are in the
            # block cache (measured: about 80 against 50 us per series on the TSBS data set).
            probe = cached_states(rollups, entry_keys(plan, skeys[0], windows), windows)
            if probe is not None and probe[1] is not None:
                windows = None
    if rollups is None or windows is None:
        return _execute(plan, source, skeys, chunks, budget, last_cache)
    token = rollups.begin(skeys)
    try:
        source.refresh_view()  # type: ignore[attr-defined]  # a source with rollups has it
        if probe is None and batch_applies(plan, len(chunks), len(skeys)):
            # The first series has no window cached: a range not seen before. Read every
            # series at once and fill the cache from that (node/scanbatch.py).
            fill = (rollups, windows, token)
            fast = execute_batched(plan, source, skeys, budget, fill)
            if fast is not None:
                return fast
        return _execute(plan, source, skeys, chunks, budget, last_cache, (rollups, windows, token))
    finally:
        rollups.end(skeys)


def _execute(
    plan: Plan,
    source: QuerySource,
    skeys: list[bytes],
    chunks: list[tuple[int, int]],
    budget: Budget,
    last_cache: LastValueCache | None,
    rollup: tuple[RollupCache, Any, tuple[int, int]] | None = None,
) -> Partial:
    if rollup is None and batch_applies(plan, len(chunks), len(skeys)):
        fast = execute_batched(plan, source, skeys, budget)  # node/scanbatch.py
        if fast is not None:
            return fast
    out = Partial(series_touched=len(skeys))
    pending: dict[GroupKey, list[list[State]]] = {}
    w0 = window_origin(plan)
    use_cache = (
        last_cache is not None
        and plan.every == 0
        and plan.fields_where is None
        and hasattr(source, "retention_floor")
    )
    tokens: dict[bytes, tuple[int, int]] = {}
    if use_cache and last_cache is not None:
        # Tokens BEFORE the view the reads use (node/engine/lastcache.py): a view taken
        # earlier could miss a write that came after a flush, and the read would store an
        # older point.
        epoch, writes = last_cache.tokens(skeys)
        tokens = {k: (epoch, n) for k, n in zip(skeys, writes, strict=True)}
        if isinstance(source, EngineSource):
            source.refresh_view()
    for skey in skeys:
        budget.tick()
        token = tokens.get(skey) if use_cache else None
        if plan.kind == "raw":
            tags = split_series_key(skey.partition(SEP)[2])[1]
            key = group_key(tags, plan.group_by)
            get = _reader(source, skey, plan.start, plan.end, budget)
            block = _raw_block(plan, source, skey, tags, get)
            if block is not None:
                out.raw.setdefault(key, []).append(block)
            continue
        key = series_group(skey, plan.group_by)
        keys = None
        if rollup is not None and source.retention_floor(skey) <= plan.start:  # type: ignore[attr-defined]
            cache, windows, fill = rollup
            keys = entry_keys(plan, skey, windows)
            found = cached_states(cache, keys, windows)
            if found is not None:
                states, span = found
                if span is not None:  # read the windows the cache lacks, keep the others
                    i0, i1 = span
                    budget.tick()
                    get = _reader(source, skey, int(windows.lo[i0]), int(windows.hi[i1]), budget)
                    read = _series_states(plan, source, skey, get, w0, None, None)
                    remember(cache, keys, windows.part(i0, i1), read, fill)
                    states = splice(states, read, i0, i1)
                if any(len(s.get("w", ())) for s in states):
                    pending.setdefault(key, []).append(states)
                continue
        per_chunk = []
        for lo, hi in chunks:
            budget.tick()
            get = _reader(source, skey, lo, hi, budget)
            per_chunk.append(_series_states(plan, source, skey, get, w0, token, last_cache))
        states = per_chunk[0] if len(per_chunk) == 1 else _combine(plan, per_chunk)
        if keys is not None and rollup is not None:
            remember(rollup[0], keys, rollup[1], states, rollup[2])
        if any(len(s.get("w", ())) for s in states):
            pending.setdefault(key, []).append(states)
    out.points_scanned = budget.points
    kinds = [kind_for(col.fn) for col in plan.columns]
    for key, per_series in pending.items():
        if len(per_series) == 1:  # one series in the group (GROUP BY every tag): nothing to merge
            only = per_series[0]
            out.groups[key] = [
                s if s else {k: np.empty(0, np.int64) for k in kind.keys}
                for s, kind in zip(only, kinds, strict=True)
            ]
            continue
        budget.tick()  # before a merge (the time limit)
        reduced = []
        for i, col in enumerate(plan.columns):
            kind = kind_for(col.fn)
            parts = [s[i] for s in per_series if s[i]]
            merged = parts[0] if len(parts) == 1 else kind.reduce(concat_states(parts), col.args)
            reduced.append(merged if merged else {k: np.empty(0, np.int64) for k in kind.keys})
        out.groups[key] = reduced
    return out


#: Aggregates read a series in time chunks of this length (one engine partition), so memory
#: holds one chunk of one series at a time, however long the range.
CHUNK_NS = 86_400 * 1_000_000_000


def _chunks(plan: Plan) -> list[tuple[int, int]]:
    """[start, end) split into CHUNK_NS pieces (unbounded ranges: one piece)."""
    if (
        plan.kind != "select"
        or plan.start == MIN_TIME
        or plan.end == MAX_TIME
        or plan.end - plan.start <= CHUNK_NS
        or (plan.end - plan.start) // CHUNK_NS > 100_000
    ):
        return [(plan.start, plan.end)]
    edges = list(range(plan.start, plan.end, CHUNK_NS))
    return [(lo, min(lo + CHUNK_NS, plan.end)) for lo in edges]


def _reader(source: QuerySource, skey: bytes, lo: int, hi: int, budget: Budget) -> Any:
    """get(field) -> (times, values) | None for one series in [lo, hi), read once each."""
    cache: dict[str, tuple[np.ndarray, np.ndarray] | None] = {}

    def get(name: str) -> tuple[np.ndarray, np.ndarray] | None:
        if name not in cache:
            # The budget counts every stored block before it is decoded (whole blocks, so a
            # little more than the points in range): a huge series is refused after at most
            # one block beyond the limit instead of after being read whole.
            found = source.read_field(skey, name, lo, hi, budget.read)
            cache[name] = None if found is None else (found[1], found[2])
        return cache[name]

    return get


def _series_states(
    plan: Plan,
    source: QuerySource,
    skey: bytes,
    get: Any,
    w0: int,
    token: tuple[int, int] | None,
    last_cache: LastValueCache | None,
) -> list[State]:
    """One reduced state per plan column for the points `get` reads of one series."""
    states: list[State] = []
    for col in plan.columns:
        kind = kind_for(col.fn)
        if token is not None and col.fn == "last":
            cached = _cached_last(plan, source, last_cache, skey, col.field)
            if cached is not None:
                states.append(cached)
                continue
        data = get(col.field)
        if data is None or not len(data[0]):
            states.append({})
            continue
        ts, x = data
        if plan.fields_where is not None:
            keep = field_mask(plan.fields_where, ts, get)
            ts, x = ts[keep], x[keep]
        if plan.every > 0:
            w = ts - w0
            w //= plan.every  # in place: one array, not two
        else:
            w = np.zeros(len(ts), dtype=np.int64)
        states.append(kind.from_series(w, ts, x, col.fn, col.args))
        if token is not None and col.fn == "last" and plan.end == MAX_TIME and len(ts):
            assert last_cache is not None  # token is only taken with a cache
            last_cache.store(skey, col.field, token, int(ts[-1]), x)
    return states


def _combine(plan: Plan, per_chunk: list[list[State]]) -> list[State]:
    out: list[State] = []
    for i, col in enumerate(plan.columns):
        parts = [states[i] for states in per_chunk if states[i]]
        if not parts:
            out.append({})
        elif len(parts) == 1:
            out.append(parts[0])
        else:
            out.append(kind_for(col.fn).reduce(concat_states(parts), col.args))
    return out


def _cached_last(plan: Plan, source: Any, cache: Any, skey: bytes, name: str) -> State | None:
    entry = cache.get(skey, name)
    if entry is None:
        return None
    t, value = entry
    if not plan.start <= t < plan.end or t < source.retention_floor(skey):
        return None
    return {"w": np.zeros(1, dtype=np.int64), "t": np.array([t], dtype=np.int64), "v": value}


def execute_encoded(plan_bytes: bytes, source: QuerySource) -> bytes:
    """The node API's query call: an encoded plan in, an encoded partial out (partials.md)."""
    return encode_partial(execute_partial(decode_plan(plan_bytes), source))


def _union_times(parts: list[np.ndarray]) -> np.ndarray:
    """Sorted union of sorted, unique timestamp arrays. Fields written together (the common
    case) share their timestamps: then the first array is the answer, found with a few
    comparisons instead of a sort (np.unique of 10 x 4320 values: about 4 ms here)."""
    first = parts[0]
    if all(p is first or np.array_equal(p, first) for p in parts[1:]):
        return first
    merged = np.sort(np.concatenate(parts), kind="stable")
    keep = np.empty(len(merged), dtype=bool)
    keep[:1] = True
    np.not_equal(merged[1:], merged[:-1], out=keep[1:])
    return merged[keep]


def _predicate_fields(expr: Any) -> set[str]:
    """The fields a field predicate (and/or of `fcmp`) compares."""
    if expr[0] in ("and", "or"):
        return _predicate_fields(expr[1]) | _predicate_fields(expr[2])
    if expr[0] != "fcmp" or len(expr) != 4:
        raise QueryError(f"malformed field predicate {expr!r}")
    return {expr[1]}


def _predicate_times(expr: Any, get: Any) -> np.ndarray:
    """The sorted times at which field predicate `expr` holds. A comparison holds only where
    its field has a point, so these are among the times of the fields it names."""
    found = [get(n) for n in sorted(_predicate_fields(expr))]
    times = [c[0] for c in found if c is not None and len(c[0])]
    if not times:
        return np.empty(0, dtype=np.int64)
    candidates = _union_times(times)
    return candidates[field_mask(expr, candidates, get)]


def _raw_block(
    plan: Plan, source: QuerySource, skey: bytes, tags: dict[str, str], get: Any
) -> RawBlock | None:
    matched = None
    if plan.fields_where is not None:
        # The predicate holds only at times where a field it names has a point: evaluate it on
        # those first, so a series without a match reads no other field (high-cpu-1).
        matched = _predicate_times(plan.fields_where, get)
        if not len(matched):
            return None
    names = plan.raw_fields if plan.raw_fields is not None else sorted(source.series_fields(skey))
    columns = {n: get(n) for n in names}
    columns = {n: c for n, c in columns.items() if c is not None and len(c[0])}
    if not columns:
        return None
    t = _union_times([c[0] for c in columns.values()])
    if matched is not None:
        t = matched if np.array_equal(t, matched) else t[np.isin(t, matched, assume_unique=True)]
    if plan.raw_limit:
        t = t[-plan.raw_limit :] if plan.descending else t[: plan.raw_limit]
    if not len(t):
        return None
    values: dict[str, np.ndarray] = {}
    present: dict[str, np.ndarray] = {}
    for n, (fts, fx) in columns.items():
        pos = np.searchsorted(fts, t)
        inside = pos < len(fts)
        inside[inside] = fts[pos[inside]] == t[inside]
        out = (
            np.zeros(len(t), dtype=fx.dtype) if fx.dtype != object else np.full(len(t), "", object)
        )
        out[inside] = fx[pos[inside]]
        values[n] = out
        present[n] = inside
    return RawBlock(tags, t, values, present)


def _measurements(plan: Plan, source: QuerySource) -> list[str]:
    if plan.measurement:
        return [plan.measurement] if plan.measurement in source.measurements(plan.database) else []
    names = source.measurements(plan.database)
    if plan.measurement_regex:
        rx = compile_regex(plan.measurement_regex)
        names = [m for m in names if rx.search(m)]
    return names


def plan_series(engine: Engine, plan: Plan) -> tuple[list[str], set[bytes]]:
    """The measurements a delete or drop plan names and the keys (without the measurement) of
    their series that match its tag conditions, resolved through this engine's index. In a
    cluster every replica resolves the same series: it applies the same commands in order."""
    source = EngineSource(engine)
    names = _measurements(plan, source)
    keys: set[bytes] = set()
    for measurement in names:
        skeys = resolve_series(plan.tags, source, plan.database, measurement)
        keys.update(k.partition(SEP)[2] for k in skeys)
    return names, keys


def is_cheap_meta(plan: Plan) -> bool:
    """Meta plans answered from index lists alone (no series walk): fine on the event loop."""
    return (
        plan.kind == "meta"
        and plan.tags == TRUE
        and plan.meta in ("databases", "measurements", "tag_keys", "retention")
    )


def _meta(plan: Plan, source: QuerySource) -> Partial:
    out = Partial()
    if plan.meta == "databases":
        out.meta[""] = {(db,) for db in source.databases()}
        return out
    if plan.meta == "retention":
        policy = getattr(source, "retention_policy", None)
        found = policy(plan.database) if policy is not None else None
        if found is not None:
            out.meta[""] = {(found[0], str(found[1]))}
        return out
    filtered = plan.tags != TRUE
    if not filtered and plan.meta in ("measurements", "tag_keys"):
        # straight from the index's lists, without touching series: cheap enough to run inline
        for m in _measurements(plan, source):
            if plan.meta == "measurements":
                out.meta.setdefault("", set()).add((m,))
            elif keys := source.tag_keys(plan.database, m):
                out.meta[m] = {(k,) for k in keys}
        return out
    budget = Budget(plan)
    for m in _measurements(plan, source):
        budget.tick()
        skeys = resolve_series(plan.tags, source, plan.database, m)
        if not skeys:
            continue
        if plan.meta == "measurements":
            out.meta.setdefault("", set()).add((m,))
        elif plan.meta == "series":
            out.meta.setdefault("", set()).update(
                (format_series_key(k.partition(SEP)[2]),) for k in skeys
            )
        elif plan.meta == "field_keys":
            rows: set[tuple[str, ...]] = set()
            for k in skeys:
                rows.update((n, t.label) for n, t in source.series_fields(k).items())
            out.meta[m] = rows
        elif plan.meta in ("tag_keys", "tag_values"):
            pairs: set[tuple[str, str]] = set()
            if filtered or plan.meta == "tag_values":
                for k in skeys:
                    pairs.update(split_series_key(k.partition(SEP)[2])[1].items())
            else:
                pairs = {(k, "") for k in source.tag_keys(plan.database, m)}
            if plan.meta == "tag_keys":
                out.meta[m] = {(k,) for k, _ in pairs}
                continue
            if plan.tag_keys is not None:
                wanted = set(plan.tag_keys)
                rows = {(k, v) for k, v in pairs if k in wanted}
            elif plan.tag_key_regex is not None:
                rx: re.Pattern[str] = compile_regex(plan.tag_key_regex)
                rows = {(k, v) for k, v in pairs if rx.search(k)}
            else:
                raise QueryError("SHOW TAG VALUES needs WITH KEY")
            if rows:
                out.meta[m] = rows
        else:
            raise QueryError(f"malformed query plan: unknown meta kind {plan.meta!r}")
    return out


def execute_delete(plan: Plan, engine: Engine) -> int:
    """Delete the points of the plan's series in [start, end); returns how many series matched.

    Series are resolved here, through the index, to explicit keys (the tag predicate may use
    OR and regexes, which the engine's delete request does not express).
    """
    if plan.kind != "delete":
        raise QueryError(f"malformed query plan: {plan.kind!r} is not a delete")
    if plan.fields_where is not None:
        raise QueryError("fields not supported in WHERE clause during deletion")
    source = EngineSource(engine)
    touched = 0
    for m in _measurements(plan, source):
        skeys = resolve_series(plan.tags, source, plan.database, m)
        if not skeys:
            continue
        keys = tuple(sorted(k.partition(SEP)[2] for k in skeys))
        engine.delete(DeleteRequest(plan.database, m, plan.start, plan.end, series=keys))
        touched += len(keys)
    return touched
