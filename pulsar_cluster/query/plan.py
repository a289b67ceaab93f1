"""The query plan: what a coordinator sends to every shard that may hold matching series.

One `Plan` type serves both front ends (native JSON and InfluxQL). It carries only what a shard
needs to compute its partial result: measurement, time range, tag predicate (resolved through the
tag index before any data is read), field predicate, the columns to compute (a field and an
aggregate), the windowing and grouping, and the per-query limits. What only the coordinator needs
(column names, fill, transformations, ORDER BY, LIMIT/OFFSET, SLIMIT, epoch) is in
pulsar_cluster.query.finish.Finish and never travels.

Wire form: docs/format/partials.md (`encode_plan` / `decode_plan`).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

from pulsar_cluster.errors import QueryError
from pulsar_cluster.query.conditions import TRUE, check_tag_expr

__all__ = [
    "ColumnSpec",
    "Plan",
    "Limits",
    "MIN_TIME",
    "MAX_TIME",
    "META_KINDS",
    "window_origin",
    "window_start",
    "plan_to_dict",
    "plan_from_dict",
]

MIN_TIME = -(2**63) + 1
MAX_TIME = 2**63 - 1
META_KINDS = (
    "measurements",
    "tag_keys",
    "tag_values",
    "field_keys",
    "series",
    "databases",
    "retention",  # the database's retention policy: rows (name, duration ns as a string)
)


@dataclass(frozen=True, slots=True)
class ColumnSpec:
    """One computed column: `fn` over `field` ("points" = every point, for transformations)."""

    field: str
    fn: str
    args: tuple[Any, ...] = ()


@dataclass(frozen=True, slots=True)
class Limits:
    """Bounds of one query; exceeding any is a LimitExceededError (422), never an OOM."""

    #: Points read from storage, over all series and fields (InfluxDB: max-select-point);
    #: 20 M points are about 320 MB of timestamps and values at most.
    max_points: int = 20_000_000
    #: Series matched by the tag predicate (InfluxDB: max-select-series).
    max_series: int = 1_000_000
    #: Windows of GROUP BY time (InfluxDB: max-select-buckets).
    max_windows: int = 1_000_000
    #: Rows in the answer (checked before the rows are built).
    max_rows: int = 2_000_000
    #: Wall time of the query at each shard and at the coordinator.
    timeout_ms: int = 60_000


@dataclass(frozen=True, slots=True)
class Plan:
    kind: str  # "select" (aggregate columns), "raw" (points), "meta" (SHOW ...), "delete"
    database: str
    measurement: str = ""
    start: int = MIN_TIME  # inclusive
    end: int = MAX_TIME  # exclusive
    tags: list[Any] = field(default_factory=lambda: list(TRUE))
    fields_where: list[Any] | None = None
    columns: tuple[ColumnSpec, ...] = ()
    every: int = 0  # window length in ns; 0: one window over the whole range
    offset: int = 0  # window offset (GROUP BY time(every, offset))
    group_by: tuple[str, ...] | None = ()  # None: every tag (each series its own group)
    raw_fields: tuple[str, ...] | None = None  # raw: None = every field of the series
    raw_limit: int = 0  # raw: rows per series a shard returns at most (0: all)
    descending: bool = False
    meta: str = ""  # meta: one of META_KINDS
    measurement_regex: str | None = None  # meta: measurements matching it ("" + None: all)
    tag_keys: tuple[str, ...] | None = None  # meta tag_values: these keys
    tag_key_regex: str | None = None  # meta tag_values: keys matching it
    limits: Limits = field(default_factory=Limits)
    #: select with GROUP BY time(): only windows lo..hi-1 (indices from window_origin) need
    #: states; every group with a point anywhere in [start, end) must still be in the partial
    #: (with empty states if it has none in those windows). None: every window
    #: (pulsar_cluster/query/keepwindows.py, node/querykeep.py).
    keep: tuple[int, int] | None = None

    def with_measurement(self, measurement: str) -> Plan:
        return replace(self, measurement=measurement)


def window_origin(plan: Plan) -> int:
    """Start of the window holding plan.start (windows are aligned to the epoch + offset)."""
    if plan.every <= 0:  # window_start's body, not a call to it: the node calls this per plan
        return plan.start if plan.start != MIN_TIME else 0
    return (plan.start - plan.offset) // plan.every * plan.every + plan.offset


def window_start(start: int, every: int, offset: int) -> int:
    """window_origin of a plan with these fields (for callers that have no Plan yet)."""
    if every <= 0:
        return start if start != MIN_TIME else 0
    return (start - offset) // every * every + offset


def plan_to_dict(plan: Plan) -> dict[str, Any]:
    """The plan as plain values (the msgpack body of docs/format/partials.md)."""
    out: dict[str, Any] = {
        "kind": plan.kind,
        "db": plan.database,
        "m": plan.measurement,
        "start": plan.start,
        "end": plan.end,
        "tags": plan.tags,
        "fw": plan.fields_where,
        "cols": [[c.field, c.fn, list(c.args)] for c in plan.columns],
        "every": plan.every,
        "offset": plan.offset,
        "gb": None if plan.group_by is None else list(plan.group_by),
        "rf": None if plan.raw_fields is None else list(plan.raw_fields),
        "rl": plan.raw_limit,
        "desc": plan.descending,
        "meta": plan.meta,
        "mre": plan.measurement_regex,
        "tk": None if plan.tag_keys is None else list(plan.tag_keys),
        "tkre": plan.tag_key_regex,
        "lim": [
            plan.limits.max_points,
            plan.limits.max_series,
            plan.limits.max_windows,
            plan.limits.max_rows,
            plan.limits.timeout_ms,
        ],
    }
    if plan.keep is not None:  # absent: every window (encodings without the key decode so)
        out["kw"] = list(plan.keep)
    return out


def _keep(value: Any) -> tuple[int, int] | None:
    if value is None:
        return None
    lo, hi = (int(x) for x in value)
    if not 0 <= lo < hi:
        raise ValueError(f"bad kept window range {value!r}")
    return lo, hi


def plan_from_dict(d: dict[str, Any]) -> Plan:
    try:
        plan = Plan(
            kind=d["kind"],
            database=d["db"],
            measurement=d["m"],
            start=int(d["start"]),
            end=int(d["end"]),
            tags=d["tags"],
            fields_where=d["fw"],
            columns=tuple(ColumnSpec(c[0], c[1], tuple(c[2])) for c in d["cols"]),
            every=int(d["every"]),
            offset=int(d["offset"]),
            group_by=None if d["gb"] is None else tuple(d["gb"]),
            raw_fields=None if d["rf"] is None else tuple(d["rf"]),
            raw_limit=int(d["rl"]),
            descending=bool(d["desc"]),
            meta=d["meta"],
            measurement_regex=d["mre"],
            tag_keys=None if d["tk"] is None else tuple(d["tk"]),
            tag_key_regex=d["tkre"],
            limits=Limits(*(int(x) for x in d["lim"])),
            keep=_keep(d.get("kw")),
        )
    except (KeyError, TypeError, ValueError, IndexError) as exc:
        raise QueryError(f"malformed query plan: {exc!r}") from None
    if plan.kind not in ("select", "raw", "meta", "delete"):
        raise QueryError(f"malformed query plan: unknown kind {plan.kind!r}")
    check_tag_expr(plan.tags)
    return plan
