"""`last()` over all time in one pass: TSBS's lastpoint (`SELECT last(*) ... GROUP BY hostname`).

`answer_last(plan, source, cache)` answers a plan whose columns are all `last()` with no
windows, no field predicate and an open end (`end == MAX_TIME`), and returns None for any
other plan (node/query.py then runs its general loop). It gives the same partial as that loop:

1. every (series, field) is looked up in the last-value cache under ONE lock (instead of a lock,
   a dict look-up and a state of three one-element arrays per pair: 10,000 of them for 1000
   hosts x 10 fields took about 25 ms);
2. a miss is read from storage by `LastReader`: only the blocks holding the newest time of the
   field (the SSTable index has every block's max time; partitions are disjoint time ranges,
   so the newest partition that holds the field has it, unless a memtable holds later points),
   instead of the whole series; when tombstones hide that point it falls back to a full read.
   Results are stored with the token protocol of node/engine/lastcache.py, taken BEFORE the read
   view, so a read that raced a write, a flush or a delete never installs a stale point;
3. per column, the points of all series are reduced per group with the `last` state kind in
   one vectorised call, and each group's state is a one-element slice of those arrays.

Exactness: a cache entry is the last stored point of the field (at its time, the value storage
returns), so a series whose entry lies before the plan's start or the retention horizon has no
point in range at all.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import numpy as np

from node.engine.engine import Engine
from node.engine.index import storage_key_database
from node.engine.lastcache import Entry, LastValueCache
from node.querybudget import Budget, series_group
from pulsar_cluster.errors import LimitExceededError, PulsarError
from pulsar_cluster.logs import get_logger
from pulsar_cluster.query.columnar import ColumnarPartial, Columns
from pulsar_cluster.query.conditions import resolve_series
from pulsar_cluster.query.partial import GroupKey, Partial
from pulsar_cluster.query.plan import MAX_TIME, MIN_TIME, Plan
from pulsar_cluster.query.source import QuerySource
from pulsar_cluster.query.states import LAST, State

__all__ = ["answer_last", "is_last_only", "LastReader", "CacheWarmer", "warm", "WARM_MAX_ENTRIES"]

log = get_logger(__name__)


def is_last_only(plan: Plan) -> bool:
    """Whether `answer_last` answers `plan`."""
    return (
        plan.kind == "select"
        and plan.every == 0
        and plan.fields_where is None
        and plan.end == MAX_TIME
        and bool(plan.columns)
        and all(c.fn == "last" for c in plan.columns)
    )


class LastReader:
    """Reads the newest point of series fields over one engine read view (taken at creation)."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        self._view = engine.read_view()

    def newest_time(self, skey: bytes, name: str) -> int | None:
        """An upper bound of the field's newest stored time (the newest block's max time, or a
        memtable's newest point); None when no source holds the field."""
        view = self._view
        newest: int | None = None
        for memtable in view.memtables:
            got = memtable.read(skey, name)
            if got is not None and len(got[1]):
                t = int(got[1][-1])
                newest = t if newest is None else max(newest, t)
        for _pstart, pend, tables in reversed(view.partitions.get(storage_key_database(skey), ())):
            if newest is not None and pend <= newest:
                break  # this and every older partition lie before what we have
            found = False
            for table in tables:
                fields = table.entries.get(skey)
                if fields is None or name not in fields:
                    continue
                found = True
                t = max(ref.max_time for ref in fields[name][1])
                newest = t if newest is None else max(newest, t)
            if found:
                break  # partitions are disjoint in time: older ones hold only older points
        return newest

    def read_last(
        self,
        skey: bytes,
        name: str,
        on_block: Callable[[int], None],
        on_full_read_block: Callable[[int], None] | None = None,
    ) -> tuple[int, np.ndarray] | None:
        """(time, values) whose last element is the field's newest visible point, or None.
        `on_block` sees the blocks of the read of the newest time; `on_full_read_block` (else
        `on_block`) those of the rare read of the whole field, when tombstones hide it."""
        newest = self.newest_time(skey, name)
        if newest is None:
            return None
        data = self._engine.read_field(skey, name, newest, MAX_TIME, self._view, on_block)
        if data is None or not len(data.timestamps):
            # Tombstones (or retention) hide the newest point: read the whole field.
            full = on_full_read_block or on_block
            data = self._engine.read_field(skey, name, MIN_TIME, MAX_TIME, self._view, full)
            if data is None or not len(data.timestamps):
                return None
        return int(data.timestamps[-1]), data.values


def answer_last(plan: Plan, source: QuerySource, cache: LastValueCache) -> Partial | None:
    """The partial of a last-only plan (see `is_last_only`), or None for other plans and for
    the rare field whose type differs between series (the general loop handles those)."""
    if not is_last_only(plan):
        return None
    floor_of = getattr(source, "retention_floor", None)
    if floor_of is None:
        return None  # without retention floors a cached point could be past retention
    skeys = sorted(resolve_series(plan.tags, source, plan.database, plan.measurement))
    if len(skeys) > plan.limits.max_series:
        raise LimitExceededError(
            f"query matches {len(skeys)} series, more than the limit of {plan.limits.max_series}",
            limit="max_series",
        )
    names = list(dict.fromkeys(c.field for c in plan.columns))
    budget = Budget(plan)
    # Tokens before the view the misses are read from (node/engine/lastcache.py).
    token = cache.tokens(skeys)
    found = cache.get_many(skeys, names)
    misses = [(i, j) for i, row in enumerate(found) for j, e in enumerate(row) if e is None]
    if misses:
        _fill(plan, source, cache, skeys, names, found, misses, token, budget)
    floors = [max(plan.start, floor_of(skey)) for skey in skeys]
    floored = any(f != MIN_TIME for f in floors)  # else every entry is in range
    # Group index of every series, groups in first-seen order of the sorted series keys.
    group_keys: dict[GroupKey, int] = {}
    gidx = np.empty(len(skeys), dtype=np.int64)
    for i, skey in enumerate(skeys):
        gidx[i] = group_keys.setdefault(series_group(skey, plan.group_by), len(group_keys))
    one_per_group = len(group_keys) == len(skeys)
    per_name: dict[str, tuple[np.ndarray, np.ndarray, np.ndarray] | None] = {}
    everyone = list(range(len(skeys)))
    for j, name in enumerate(names):
        cells = [row[j] for row in found]
        if floored:
            rows = [i for i, e in enumerate(cells) if e is not None and e[0] >= floors[i]]
        elif None in cells:
            rows = [i for i, e in enumerate(cells) if e is not None]
        else:
            rows = everyone  # the common case: every series has the field
        if not rows:
            per_name[name] = None
            continue
        entries = [e for e in (cells if rows is everyone else [cells[i] for i in rows]) if e]
        values = [e[1] for e in entries]
        if len({v.dtype for v in values}) != 1:
            return None  # the field's type differs between series: merged like storage does
        t = np.array([e[0] for e in entries], dtype=np.int64)
        g = gidx if rows is everyone else gidx[rows]
        v = np.concatenate(values)
        if not one_per_group:
            reduced = LAST.reduce({"w": g, "t": t, "v": v}, ())
            g, t, v = reduced["w"], reduced["t"], reduced["v"]
        per_name[name] = (g, t, v)
    # The groups with a row, sorted (finalize's order); a row's `w` is its group's place.
    used = np.zeros(len(group_keys), dtype=bool)
    for got in per_name.values():
        if got is not None:
            used[got[0]] = True
    every_key = list(group_keys)
    order = sorted(np.flatnonzero(used).tolist(), key=every_key.__getitem__)
    place = np.full(len(every_key), -1, dtype=np.int64)
    place[order] = np.arange(len(order), dtype=np.int64)
    states: list[State | None] = []
    for col in plan.columns:
        got = per_name[col.field]
        states.append(None if got is None else {"w": place[got[0]], "t": got[1], "v": got[2]})
    columns = Columns([every_key[i] for i in order], states, [_empty() for _ in plan.columns])
    return ColumnarPartial(columns, series_touched=len(skeys), points_scanned=budget.points)


def _empty() -> State:
    return {k: np.empty(0, np.int64) for k in LAST.keys}


def _fill(
    plan: Plan,
    source: Any,
    cache: LastValueCache,
    skeys: list[bytes],
    names: list[str],
    found: list[list[Entry | None]],
    misses: list[tuple[int, int]],
    token: tuple[int, list[int]],
    budget: Budget,
) -> None:
    """Read the missing entries from storage into `found` and offer them to the cache."""
    make_reader = getattr(source, "last_reader", None)
    reader: LastReader | None = make_reader() if make_reader is not None else None
    stored: list[tuple[int, str, int, np.ndarray]] = []
    for i, j in misses:
        budget.tick()  # a cold cache reads a block per series field: bounded by the time limit
        skey, name = skeys[i], names[j]
        if reader is not None:
            # The newest block of a field is read whole to find its last point: with a cold
            # cache (series written since the start, whose entries writes do not create, or
            # after a clear) and newest blocks of thousands of points, 10,000 series fields
            # passed the 20 M point limit, and as a refused query stores nothing, every
            # later lastpoint query was refused too (TSBS data across a partition boundary).
            # Such reads do not grow with the time range or the data's age: counted, not
            # limited. The read of a whole field (tombstones hide its newest point) is limited.
            got = reader.read_last(skey, name, budget.note, budget.read)
        else:
            data = source.read_field(skey, name, MIN_TIME, MAX_TIME, budget.read)
            got = None if data is None or not len(data[1]) else (int(data[1][-1]), data[2])
        if got is None:
            continue
        t, values = got
        value = values[-1:].copy()
        found[i][j] = (t, value)
        stored.append((i, name, t, value))
    if stored:
        cache.store_many(skeys, token, stored)


#: Entries a start-up warm-up fills at most: at about 35 us per decoded block (the newest block
#: of a field, 224 points in the TSBS data set; measured on this 2-core machine), 100,000 entries
#: are about 3.5 s of one core, spread out by the pauses below.
WARM_MAX_ENTRIES = 100_000
#: Series per warm-up step, and the pause after each step (leaves the GIL to requests).
_WARM_CHUNK = 64
_WARM_PAUSE_S = 0.005


class CacheWarmer:
    """Fills a last-value cache from an engine's storage in a background thread, so that the
    first `last()` query after a start does not read every series. Safe against concurrent
    writes, deletes and queries: it stores through the same token protocol as queries."""

    def __init__(
        self, engine: Engine, cache: LastValueCache, max_entries: int = WARM_MAX_ENTRIES
    ) -> None:
        self._engine = engine
        self._cache = cache
        self._max = max_entries
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.filled = 0
        self.done = threading.Event()

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="last-cache-warm", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop and wait for the thread (call before closing the engine)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join()

    def _run(self) -> None:
        try:
            self.filled = warm(self._engine, self._cache, self._stop, self._max)
        except (OSError, PulsarError) as exc:  # engine closed or a bad file: queries will say
            log.warning("last_cache_warm_stopped", error=str(exc))
        finally:
            self.done.set()


def warm(engine: Engine, cache: LastValueCache, stop: threading.Event, max_entries: int) -> int:
    """Store the last point of every series field not yet cached, up to `max_entries` new
    entries (and the cache's own bound); returns how many were read."""
    skeys = sorted(
        skey
        for db in engine.databases()
        for m in engine.measurements(db)
        for skey in engine.series_of_measurement(db, m)
    )
    filled = 0
    for lo in range(0, len(skeys), _WARM_CHUNK):
        if stop.is_set() or filled >= max_entries or len(cache) >= cache.max_entries:
            break
        chunk = skeys[lo : lo + _WARM_CHUNK]
        names = [sorted(engine.series_fields(skey)) for skey in chunk]
        token = cache.tokens(chunk)  # before the reader's view
        reader = LastReader(engine)
        items: list[tuple[int, str, int, np.ndarray]] = []
        for i, skey in enumerate(chunk):
            for name, entry in zip(
                names[i], cache.get_many([skey], names[i], count=False)[0], strict=True
            ):
                if entry is not None:
                    continue
                got = reader.read_last(skey, name, _no_limit)
                if got is not None:
                    items.append((i, name, got[0], got[1][-1:].copy()))
        cache.store_many(chunk, token, items)
        filled += len(items)
        stop.wait(_WARM_PAUSE_S)
    return filled


def _no_limit(_points: int) -> None:
    return None
