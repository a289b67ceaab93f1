"""From a parsed query (InfluxQL SELECT or native JSON) to `(Plan, Finish)` pairs.

Both front ends describe the answer as a list of select items (a field, optionally wrapped in
an aggregate and a transformation); `compile_select` checks the combination, chooses the plan
kind (raw points or aggregate columns), the window grid and the limits, and splits the columns
between the plan (what shards compute) and the Finish (what the coordinator does after merging).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pulsar_cluster.errors import LimitExceededError, QueryError
from pulsar_cluster.query.finish import MULTI_ROW, Finish, OutColumn
from pulsar_cluster.query.keepwindows import kept_windows
from pulsar_cluster.query.plan import MAX_TIME, MIN_TIME, ColumnSpec, Limits, Plan, window_start
from pulsar_cluster.query.states import KINDS
from pulsar_cluster.query.transforms import TRANSFORMS
from pulsar_cluster.query.where import Where

__all__ = ["Item", "SelectSpec", "compile_select", "AGGREGATES"]

#: Aggregate functions of the InfluxQL dialect (percentile, top and bottom take an argument).
AGGREGATES = {k for k in KINDS if k != "points"}


@dataclass(frozen=True, slots=True)
class Item:
    """One select item: `transform(fn(field, *args), *transform_args)`; fn None = raw field."""

    field: str
    fn: str | None = None
    args: tuple[Any, ...] = ()
    transform: str | None = None
    transform_args: tuple[Any, ...] = ()
    alias: str | None = None
    is_tag: bool = False

    @property
    def default_name(self) -> str:
        if self.alias:
            return self.alias
        if self.transform:
            return self.transform
        return self.fn or self.field


@dataclass(slots=True)
class SelectSpec:
    database: str
    measurement: str
    items: list[Item] | None  # None: every field (SELECT * / native without `fields`)
    where: Where
    every: int = 0
    offset: int = 0
    group_by: tuple[str, ...] | None = ()
    fill: str = "null"
    fill_value: Any = None
    descending: bool = False
    limit: int = 0
    offset_rows: int = 0
    slimit: int = 0
    soffset: int = 0
    star_tags: bool = False
    always_tags: bool = False
    names_by_field: bool = False  # native: columns named after fields, not functions


def _unique_names(names: list[str]) -> list[str]:
    seen: dict[str, int] = {}
    out = []
    for n in names:
        if n in seen:
            seen[n] += 1
            out.append(f"{n}_{seen[n]}")
        else:
            seen[n] = 0
            out.append(n)
    return out


def compile_select(spec: SelectSpec, now: int, limits: Limits | None = None) -> tuple[Plan, Finish]:
    limits = limits or Limits()
    where = spec.where
    # Times are int64 ns in storage: clamp the range (an empty one stays empty).
    where.start = min(max(where.start, MIN_TIME), MAX_TIME)
    where.end = min(max(where.end, MIN_TIME), MAX_TIME)
    items = spec.items
    # what the items are, in one pass (a small query has one or two)
    aggregated = raw_items = transformed = tags = False
    for i in items or ():
        if i.fn is not None:
            aggregated = True
        elif i.transform is None:
            raw_items = True
        if i.transform:
            transformed = True
        if i.is_tag:
            tags = True
    if aggregated and raw_items:
        raise QueryError("mixing aggregate and non-aggregate queries is not supported")
    finish = Finish(
        fill=spec.fill,
        fill_value=spec.fill_value,
        descending=spec.descending,
        limit=spec.limit,
        offset=spec.offset_rows,
        slimit=spec.slimit,
        soffset=spec.soffset,
        star_tags=spec.star_tags,
        always_tags=spec.always_tags,
    )
    # The plan's fields, built once at the end: Plan is a frozen dataclass of 19 fields, so
    # each dataclasses.replace costs a few microseconds of a small query.
    base: dict[str, Any] = {
        "kind": "raw",
        "database": spec.database,
        "measurement": spec.measurement,
        "start": where.start,
        "end": where.end,
        "tags": where.tag_expr(),
        "fields_where": where.fields,
        "group_by": spec.group_by,
        "descending": spec.descending,
        "limits": limits,
    }
    if not aggregated and not transformed:
        if spec.every:
            raise QueryError("GROUP BY requires at least one aggregate function")
        fields = None
        if items is not None:
            fields = tuple(dict.fromkeys(i.field for i in items if not i.is_tag))
            names = _unique_names([i.alias or i.field for i in items])
            finish.columns = [
                OutColumn(n, tag=i.field) if i.is_tag else OutColumn(n, raw_field=i.field)
                for n, i in zip(names, items, strict=True)
            ]
        pushdown = spec.limit + spec.offset_rows if spec.limit else 0
        return Plan(**base, raw_fields=fields, raw_limit=pushdown), finish

    assert items is not None
    if tags:
        raise QueryError("a tag key cannot be selected together with aggregates")
    every = spec.every
    for i in items:
        if i.transform is not None and i.transform not in TRANSFORMS:
            raise QueryError(f"undefined function {i.transform}()")
        if i.fn is not None and i.fn not in AGGREGATES:
            raise QueryError(f"undefined function {i.fn}()")
        if i.transform is not None and i.fn is not None and not every:
            raise QueryError(f"{i.transform}() of an aggregate requires a GROUP BY time() interval")
        if i.transform is not None and i.fn is None and every:
            raise QueryError(f"aggregate function required inside the call to {i.transform}()")
    if len(items) > 1 and any((i.fn or "") in MULTI_ROW for i in items):
        multi = next(i.fn for i in items if (i.fn or "") in MULTI_ROW)
        raise QueryError(f"selector function {multi}() cannot be combined with other functions")
    if every:
        if not where.has_lower:
            raise QueryError(
                "aggregate functions with GROUP BY time require a WHERE time clause with a "
                "lower limit"
            )
        end = where.end if where.has_upper else now + 1
        base.update(kind="select", end=end, every=every, offset=spec.offset)
        origin = window_start(where.start, every, spec.offset)  # window_origin of the plan
        if origin < MIN_TIME - 1:
            raise QueryError("GROUP BY time() windows start before the earliest time: narrow it")
        windows = (end - 1 - origin) // every + 1
        if windows > limits.max_windows:
            raise LimitExceededError(
                f"GROUP BY time() gives {windows} windows, more than the limit of "
                f"{limits.max_windows}",
                limit="max_windows",
            )
        # the windows LIMIT/OFFSET can return, when shards need reduce no others (keepwindows.py)
        base["keep"] = kept_windows(
            items,
            spec.fill,
            where.fields is not None,
            spec.descending,
            spec.limit,
            spec.offset_rows,
            windows,
        )
    else:
        base["kind"] = "select"
    specs: list[ColumnSpec] = []
    outs: list[OutColumn] = []
    names = _unique_names(
        [i.field if spec.names_by_field and not i.alias else i.default_name for i in items]
    )
    for name, i in zip(names, items, strict=True):
        col = ColumnSpec(i.field, i.fn or "points", i.args)
        if col not in specs:
            specs.append(col)
        outs.append(OutColumn(name, specs.index(col), i.transform, i.transform_args))
    finish.columns = outs
    return Plan(**base, columns=tuple(specs)), finish
