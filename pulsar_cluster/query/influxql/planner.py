"""Executing InfluxQL statements: planning each against the catalog and answering it.

`execute_statement` returns one InfluxDB 1.x result object's content (`{"series": [...]}` or
`{}`), with times as int ns; errors are raised as PulsarError and put into `results[].error` by
the endpoint. DELETE removes points through the backend's `delete` (series stay in the index, as
in InfluxDB). CREATE/DROP DATABASE, DROP SERIES/MEASUREMENT and the retention-policy statements
are in pulsar_cluster.query.influxql.ddl. A statement PulsarDB does not answer gets a clear error
naming it, never a wrong answer.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Collection
from dataclasses import replace
from typing import Any

from pulsar_cluster.errors import QueryError
from pulsar_cluster.query.compile import AGGREGATES, Item, SelectSpec, compile_select
from pulsar_cluster.query.influxql import ddl
from pulsar_cluster.query.influxql.ast import (
    Call,
    DatabaseStatement,
    DeleteStatement,
    Duration,
    Expr,
    Ident,
    Literal,
    RetentionStatement,
    Select,
    Show,
    Source,
    Statement,
    Wildcard,
)
from pulsar_cluster.query.plan import Limits, Plan
from pulsar_cluster.query.run import Catalog, QueryBackend, run_meta, run_select
from pulsar_cluster.query.transforms import TRANSFORMS
from pulsar_cluster.query.where import split_where
from pulsar_cluster.tagprobe import StaleTagKeysError, TagKeyCache

__all__ = ["execute_statement"]

_UNIT_DEFAULT = 1_000_000_000  # derivative(), integral(), rate(): per second unless given


async def execute_statement(
    stmt: Statement,
    database: str | None,
    backend: QueryBackend,
    now: int,
    limits: Limits | None = None,
) -> dict[str, Any]:
    limits = limits or Limits()
    catalog = Catalog(backend, limits)
    if isinstance(stmt, Select):
        return await _select(stmt, database, backend, catalog, now, limits)
    if isinstance(stmt, Show):
        return await _show(stmt, database, backend, catalog, now, limits)
    if isinstance(stmt, DeleteStatement) and stmt.action == "DELETE":
        return await _delete(stmt, database, backend, now, limits)
    if isinstance(stmt, DeleteStatement):  # DROP SERIES, DROP MEASUREMENT
        return await ddl.execute_drop(stmt, database, backend, catalog, now, limits)
    if isinstance(stmt, DatabaseStatement):
        return await ddl.execute_database(stmt, backend, limits)
    if isinstance(stmt, RetentionStatement):
        return await ddl.execute_retention(stmt, backend, limits)
    raise QueryError(f"statement not supported: {type(stmt).__name__}")


def _database(source_db: str | None, database: str | None) -> str:
    db = source_db or database
    if not db:
        raise QueryError("database name required")
    return db


async def _measurements(
    sources: list[Source], database: str | None, catalog: Catalog
) -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    for src in sources:
        db = _database(src.database, database)
        if src.regex is not None:
            try:
                rx = re.compile(src.regex)
            except re.error as exc:
                raise QueryError(f"invalid regular expression /{src.regex}/: {exc}") from None
            out.extend((db, m) for m in await catalog.measurements(db) if rx.search(m))
        else:
            assert src.measurement is not None
            out.append((db, src.measurement))
    return list(dict.fromkeys(out))


def _number(e: Expr, what: str) -> float:
    if (
        isinstance(e, Literal)
        and isinstance(e.value, int | float)
        and not isinstance(e.value, bool)
    ):
        return e.value
    raise QueryError(f"{what} must be a number")


def _unit(args: tuple[Expr, ...], fn: str) -> tuple[Any, ...]:
    if not args:
        return (_UNIT_DEFAULT,)
    if len(args) > 1 or not isinstance(args[0], Duration):
        raise QueryError(f"{fn}() takes a field and an optional duration unit")
    return (args[0].ns,)


def _agg_item(call: Call) -> Item:
    fn = call.name
    if fn not in AGGREGATES:
        raise QueryError(f"undefined function {fn}()")
    if not call.args:
        raise QueryError(f"invalid number of arguments for {fn}, expected at least 1, got 0")
    target = call.args[0]
    if isinstance(target, Call):
        raise QueryError(f"{fn}() of a function is not supported: name the field")
    if isinstance(target, Wildcard):
        target = Ident("*")  # expanded over the measurement's fields by _expand_wildcards
    if not isinstance(target, Ident):
        raise QueryError(f"expected field argument in {fn}()")
    rest = call.args[1:]
    args: tuple[Any, ...] = ()
    if fn == "percentile":
        if len(rest) != 1:
            raise QueryError("invalid number of arguments for percentile, expected 2")
        p = _number(rest[0], "percentile")
        if not 0 <= p <= 100:
            raise QueryError("percentile must be between 0 and 100")
        args = (float(p),)
    elif fn in ("top", "bottom"):
        if len(rest) != 1:
            raise QueryError(f"{fn}() takes a field and a count (tag arguments are not supported)")
        n = _number(rest[0], f"{fn}() count")
        if int(n) != n or n < 1:
            raise QueryError(f"{fn}() count must be a positive integer")
        args = (int(n),)
    elif fn in ("integral", "rate"):
        args = _unit(rest, fn)
    elif rest:
        raise QueryError(f"invalid number of arguments for {fn}, expected 1, got {len(call.args)}")
    return Item(target.name, fn, args)


def _items(stmt: Select, is_tag_key: Callable[[str], bool]) -> list[Item] | None:
    out: list[Item] = []
    for expr, alias in stmt.fields:
        if isinstance(expr, Wildcard):
            if len(stmt.fields) > 1:
                raise QueryError("SELECT * cannot be combined with other fields")
            return None
        if isinstance(expr, Ident):
            is_tag = expr.cast == "tag" or (expr.cast is None and is_tag_key(expr.name))
            out.append(Item(expr.name, alias=alias, is_tag=is_tag))
            continue
        if isinstance(expr, Call) and expr.name in TRANSFORMS:
            if not expr.args:
                raise QueryError(f"invalid number of arguments for {expr.name}")
            inner, rest = expr.args[0], expr.args[1:]
            if expr.name == "moving_average":
                if len(rest) != 1:
                    raise QueryError("moving_average() takes a field and a window size")
                targs: tuple[Any, ...] = (int(_number(rest[0], "moving_average window")),)
            elif expr.name == "cumulative_sum":
                targs = ()
            elif expr.name == "elapsed":
                targs = _unit(rest, expr.name) if rest else (1,)
            else:
                targs = _unit(rest, expr.name)
            if isinstance(inner, Call):
                base = _agg_item(inner)
            elif isinstance(inner, Ident):
                base = Item(inner.name)
            else:
                raise QueryError(f"expected field or aggregate argument in {expr.name}()")
            out.append(Item(base.field, base.fn, base.args, expr.name, targs, alias))
            continue
        if isinstance(expr, Call):
            item = _agg_item(expr)
            out.append(item if alias is None else Item(item.field, item.fn, item.args, alias=alias))
            continue
        raise QueryError("arithmetic and literals in SELECT are not supported yet")
    return out


#: Aggregates that take any field type; the others skip string and boolean fields in fn(*).
_ANY_TYPE = {"count", "first", "last", "distinct", "mode"}


def _expand_wildcards(items: list[Item] | None, types: dict[str, set[str]]) -> list[Item] | None:
    """`fn(*)` -> `fn(f) AS fn_f` for every (suitable) field, as InfluxDB names them."""
    if items is None or not any(i.field == "*" and i.fn for i in items):
        return items
    out: list[Item] = []
    for i in items:
        if i.field != "*" or not i.fn:
            out.append(i)
            continue
        for name in sorted(types):
            if i.fn not in _ANY_TYPE and not types[name] <= {"float", "integer", "unsigned"}:
                continue
            prefix = i.alias or i.transform or i.fn
            out.append(replace(i, field=name, alias=f"{prefix}_{name}"))
    return out


async def _select_one(
    stmt: Select,
    db: str,
    measurement: str,
    tag_keys: Collection[str],
    cached: bool,
    backend: QueryBackend,
    catalog: Catalog,
    now: int,
    limits: Limits,
) -> list[dict[str, Any]]:
    """The series of one measurement's answer. With `cached` tag keys, every name taken for a
    tag or a field is noted and checked by the backend (pulsar_cluster/tagprobe.py)."""
    probe: dict[str, bool] = {}
    is_tag: Callable[[str], bool] = tag_keys.__contains__
    if cached:

        def is_tag(name: str) -> bool:
            found = probe[name] = name in tag_keys
            return found

    items = _items(stmt, is_tag)
    if items is not None and any(i.field == "*" for i in items):
        items = _expand_wildcards(items, await catalog.field_types(db, measurement))
        if not items:
            return []
    where = split_where(stmt.condition, now, is_tag)
    spec = SelectSpec(
        database=db,
        measurement=measurement,
        items=items,
        where=where,
        every=stmt.every,
        offset=stmt.offset,
        group_by=None if stmt.group_tags is None else tuple(stmt.group_tags),
        fill=stmt.fill,
        fill_value=stmt.fill_value,
        descending=stmt.descending,
        limit=stmt.limit,
        offset_rows=stmt.offset_rows,
        slimit=stmt.slimit,
        soffset=stmt.soffset,
        star_tags=True,
    )
    plan, finish = compile_select(spec, now, limits)
    return await run_select(backend, plan, finish, probe or None)


async def _select(
    stmt: Select,
    database: str | None,
    backend: QueryBackend,
    catalog: Catalog,
    now: int,
    limits: Limits,
) -> dict[str, Any]:
    series: list[dict[str, Any]] = []
    # A cluster coordinator plans with the tag keys it cached, checked by the nodes
    # (pulsar_cluster/tagprobe.py); other backends answer tag keys fresh (and cheaply).
    key_cache: TagKeyCache | None = getattr(backend, "tag_key_cache", None)
    tag_keys: Collection[str]
    for db, measurement in await _measurements(stmt.sources, database, catalog):
        cached_keys = None if key_cache is None else key_cache.get(db, measurement)
        if cached_keys is None:
            tag_keys, cached = await catalog.tag_keys(db, measurement), False
        else:
            tag_keys, cached = cached_keys, True
        try:
            series.extend(
                await _select_one(
                    stmt, db, measurement, tag_keys, cached, backend, catalog, now, limits
                )
            )
        except StaleTagKeysError:
            # The nodes' tag keys are no longer the cached ones: plan again with theirs.
            catalog.forget_tag_keys(db, measurement)
            tag_keys = await catalog.tag_keys(db, measurement)
            series.extend(
                await _select_one(
                    stmt, db, measurement, tag_keys, False, backend, catalog, now, limits
                )
            )
    if not series:
        # InfluxDB names a missing database rather than answering nothing; checked only for
        # empty answers, to spare the look-up on the hot path
        for src in stmt.sources:
            db = _database(src.database, database)
            if db not in await catalog.databases():
                raise QueryError(f"database not found: {db}")
    return {"series": series} if series else {}


async def _delete(
    stmt: DeleteStatement,
    database: str | None,
    backend: QueryBackend,
    now: int,
    limits: Limits,
) -> dict[str, Any]:
    delete = getattr(backend, "delete", None)
    if delete is None:
        raise QueryError("statement not supported yet: DELETE (this storage has no deletes)")
    where = split_where(stmt.condition, now)  # strings and regexes: tags; numbers: fields
    if where.fields is not None:
        raise QueryError("fields not supported in WHERE clause during deletion")
    if not stmt.sources and where.tags is None and not (where.has_lower or where.has_upper):
        # InfluxDB refuses an unqualified DELETE too: it would empty the database
        raise QueryError("DELETE needs FROM or WHERE")
    sources = stmt.sources or [Source()]
    for src in sources:
        db = _database(src.database, database)
        plan = Plan(
            kind="delete",
            database=db,
            measurement=src.measurement or "",
            measurement_regex=src.regex,
            start=where.start,
            end=where.end,
            tags=where.tag_expr(),
            limits=limits,
        )
        await delete(plan)
    return {}


def _page(rows: list[list[Any]], limit: int, offset: int) -> list[list[Any]]:
    rows = rows[offset:] if offset else rows
    return rows[:limit] if limit else rows


async def _show(
    stmt: Show,
    database: str | None,
    backend: QueryBackend,
    catalog: Catalog,
    now: int,
    limits: Limits,
) -> dict[str, Any]:
    if stmt.what == "databases":
        rows = [[db] for db in await catalog.databases()]
        series: dict[str, Any] = {"name": "databases", "columns": ["name"]}
        if rows:  # InfluxDB omits empty values (`json:"values,omitempty"`)
            series["values"] = rows
        return {"series": [series]}
    db = _database(stmt.database, database)
    if stmt.what == "retention":
        return await ddl.show_retention_policies(backend, db, limits)
    where = split_where(stmt.condition, now, lambda name: name.lower() != "time")
    if where.fields is not None:
        raise QueryError(f"SHOW {stmt.what.replace('_', ' ').upper()} can filter on tags only")
    base = Plan(kind="meta", database=db, meta=stmt.what, tags=where.tag_expr(), limits=limits)
    plans: list[Plan] = []
    if stmt.sources:
        for src in stmt.sources:
            if src.regex is not None:
                plans.append(replace(base, measurement_regex=src.regex))
            else:
                plans.append(base.with_measurement(src.measurement or ""))
    elif stmt.measurement_value is not None:
        if stmt.measurement_op == "=~":
            plans.append(replace(base, measurement_regex=stmt.measurement_value))
        else:
            plans.append(base.with_measurement(stmt.measurement_value))
    else:
        plans.append(base)
    if stmt.what == "tag_values":
        plans = [_with_keys(p, stmt) for p in plans]
    meta: dict[str, set[tuple[str, ...]]] = {}
    for plan in plans:
        for m, found in (await run_meta(backend, plan)).items():
            meta.setdefault(m, set()).update(found)
    return _format_meta(stmt, meta)


def _with_keys(plan: Plan, stmt: Show) -> Plan:
    op, values = stmt.key_op, stmt.key_values
    if op == "=":
        return replace(plan, tag_keys=(values[0],))
    if op == "IN":
        return replace(plan, tag_keys=tuple(values))
    if op == "=~":
        return replace(plan, tag_key_regex=values[0])
    if op == "!=":
        return replace(plan, tag_key_regex=f"^(?!{re.escape(values[0])}$)")
    return replace(plan, tag_key_regex=f"(?s)^(?!.*(?:{values[0]}))")


def _format_meta(stmt: Show, meta: dict[str, set[tuple[str, ...]]]) -> dict[str, Any]:
    rows: list[list[Any]]
    if stmt.what in ("measurements", "series"):
        rows = _page(sorted(list(r) for r in meta.get("", ())), stmt.limit, stmt.offset)
        if not rows:
            return {}
        if stmt.what == "series":
            return {"series": [{"columns": ["key"], "values": rows}]}
        return {"series": [{"name": "measurements", "columns": ["name"], "values": rows}]}
    columns = {
        "tag_keys": ["tagKey"],
        "tag_values": ["key", "value"],
        "field_keys": ["fieldKey", "fieldType"],
    }[stmt.what]
    series = []
    for m in sorted(meta):
        rows = _page(sorted(list(r) for r in meta[m]), stmt.limit, stmt.offset)
        if rows:
            series.append({"name": m, "columns": columns, "values": rows})
    return {"series": series} if series else {}
