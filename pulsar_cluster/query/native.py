"""The native JSON query (`POST /api/v1/query`) compiled into the same plan as InfluxQL.

Schema (docs/api.md, DESIGN.md CONTRACT): {"db", "measurement", "fields", "where", "start",
"end", "aggregate", "every", "group_by", "fill", "limit", "consistency"} plus the extensions
"offset", "order" ("asc"|"desc"), "slimit". `where` is InfluxQL's condition syntax: tag
predicates (=, !=, =~ /re/, !~ /re/, IN ('a', 'b'), AND, OR, parentheses), field comparisons
with numbers or booleans, and `time` bounds.

Aggregates: count sum mean median min max first last spread stddev mode distinct integral
percentile_<p> top_<n> bottom_<n>, within each window:
- delta: last - first value; rate: (last - first) per second between the first and last point;
- derivative: per-second change between consecutive windows' means (with `every`), or between
  consecutive points (without).
Unknown keys are refused (400) naming them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pulsar_cluster.errors import QueryError
from pulsar_cluster.query.compile import AGGREGATES, Item, SelectSpec
from pulsar_cluster.query.influxql.parser import parse_expression
from pulsar_cluster.query.where import split_where
from pulsar_cluster.timeutil import parse_duration, parse_time

__all__ = ["NativeQuery", "parse_native_query", "aggregate_items"]

_KNOWN_KEYS = {
    "db", "measurement", "fields", "where", "start", "end", "aggregate", "every", "group_by",
    "fill", "limit", "consistency", "offset", "order", "slimit",
}  # fmt: skip
_PER_SECOND = 1_000_000_000


@dataclass(slots=True)
class NativeQuery:
    spec: SelectSpec
    consistency: str
    needs_fields: bool  # aggregate over "every field": the coordinator fills in field names


def _int(doc: dict[str, Any], key: str, minimum: int) -> int:
    value = doc.get(key)
    if value is None:
        return 0
    if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
        raise QueryError(f"'{key}' must be an integer >= {minimum}")
    return value


def _aggregate(name: str) -> tuple[str | None, tuple[Any, ...], str | None, tuple[Any, ...]]:
    """(fn, args, transform, transform_args) of a native aggregate name."""
    for prefix, fn in (("percentile_", "percentile"), ("top_", "top"), ("bottom_", "bottom")):
        if name.startswith(prefix):
            try:
                value = float(name[len(prefix) :])
            except ValueError:
                raise QueryError(f"invalid aggregate '{name}'") from None
            if fn == "percentile":
                if not 0 <= value <= 100:
                    raise QueryError("percentile must be between 0 and 100")
                return fn, (value,), None, ()
            if value != int(value) or value < 1:
                raise QueryError(f"{fn} count must be a positive integer")
            return fn, (int(value),), None, ()
    if name == "derivative":
        return "mean", (), "derivative", (_PER_SECOND,)
    if name in ("rate", "integral"):
        return name, (_PER_SECOND,), None, ()
    if name in AGGREGATES and name not in ("percentile", "top", "bottom"):
        return name, (), None, ()
    raise QueryError(f"unsupported aggregate '{name}'")


def parse_native_query(doc: Any, now: int) -> NativeQuery:
    if not isinstance(doc, dict):
        raise QueryError("the query must be a JSON object")
    unknown = sorted(set(doc) - _KNOWN_KEYS)
    if unknown:
        raise QueryError(f"unsupported query keys: {', '.join(unknown)}", unsupported=unknown)
    db, measurement = doc.get("db"), doc.get("measurement")
    if not isinstance(db, str) or not db:
        raise QueryError("'db' must be a non-empty string")
    if not isinstance(measurement, str) or not measurement:
        raise QueryError("'measurement' must be a non-empty string")
    fields = doc.get("fields")
    if fields is not None and (
        not isinstance(fields, list)
        or not fields
        or not all(isinstance(f, str) and f for f in fields)
    ):
        raise QueryError("'fields' must be a non-empty list of field names")
    where_text = doc.get("where") or ""
    if not isinstance(where_text, str):
        raise QueryError("'where' must be a string")
    where = split_where(parse_expression(where_text) if where_text.strip() else None, now)
    try:
        if doc.get("start") is not None:
            where.start = max(where.start, parse_time(doc["start"]))
            where.has_lower = True
        if doc.get("end") is not None:
            where.end = min(where.end, parse_time(doc["end"]))
            where.has_upper = True
    except ValueError as exc:
        raise QueryError(f"invalid time: {exc}") from None
    consistency = doc.get("consistency", "leader")
    if consistency not in ("leader", "any"):
        raise QueryError("'consistency' must be 'leader' or 'any'")
    every = 0
    if doc.get("every") is not None:
        raw = doc["every"]
        try:
            every = (
                raw if isinstance(raw, int) and not isinstance(raw, bool) else parse_duration(raw)
            )
        except (ValueError, AttributeError):
            raise QueryError(
                f"invalid 'every': {raw!r} (use a duration like '1m' or int ns)"
            ) from None
        if every <= 0:
            raise QueryError("'every' must be positive")
    group_by = doc.get("group_by")
    if group_by is not None and (
        not isinstance(group_by, list) or not all(isinstance(g, str) and g for g in group_by)
    ):
        raise QueryError("'group_by' must be a list of tag keys")
    fill, fill_value = doc.get("fill", "null"), None
    if isinstance(fill, int | float) and not isinstance(fill, bool):
        fill, fill_value = "value", fill
    elif fill not in ("null", "none", "previous", "linear"):
        raise QueryError("'fill' must be null, none, previous, linear or a number")
    order = doc.get("order", "asc")
    if order not in ("asc", "desc"):
        raise QueryError("'order' must be 'asc' or 'desc'")
    aggregate = doc.get("aggregate")
    if aggregate is not None and not isinstance(aggregate, str):
        raise QueryError("'aggregate' must be a string")
    items: list[Item] | None = None
    if aggregate is None:
        if every:
            raise QueryError("'every' needs an 'aggregate'")
        if fields is not None:
            items = [Item(f) for f in fields]
        # raw points: one answer series per stored series unless group_by says otherwise
        groups: tuple[str, ...] | None = None if group_by is None else tuple(group_by)
    else:
        fn, args, transform, targs = _aggregate(aggregate)
        if transform is not None and not every:
            fn, args = None, ()  # derivative without windows: between raw points
        items = [Item(f, fn, args, transform, targs) for f in (fields or [])]
        groups = tuple(group_by or ())
    if group_by == ["*"]:
        groups = None  # every tag: one answer series per stored series
    spec = SelectSpec(
        database=db,
        measurement=measurement,
        items=items,
        where=where,
        every=every,
        group_by=groups,
        fill=fill,
        fill_value=fill_value,
        descending=order == "desc",
        limit=_int(doc, "limit", 1),
        offset_rows=_int(doc, "offset", 0),
        slimit=_int(doc, "slimit", 1),
        always_tags=True,
        names_by_field=True,
    )
    return NativeQuery(spec, consistency, aggregate is not None and fields is None)


def aggregate_items(doc: dict[str, Any], fields: list[str], every: int) -> list[Item]:
    """The select items of an aggregate over `fields` (for a query without "fields")."""
    fn, args, transform, targs = _aggregate(doc["aggregate"])
    if transform is not None and not every:
        fn, args = None, ()
    return [Item(f, fn, args, transform, targs) for f in fields]
