"""InfluxQL data definition: CREATE/DROP DATABASE, DROP SERIES/MEASUREMENT, retention policies.

Answers are InfluxDB 1.x's: a statement that changes something answers an empty result
(`{"statement_id": i}`), SHOW RETENTION POLICIES one series with InfluxDB's columns.

Retention policies map onto PulsarDB's retention, which is one duration per database: every
database has exactly one policy (named `autogen` unless created otherwise), and it is the
default. So `CREATE RETENTION POLICY p ON db ... DEFAULT` replaces the database's policy,
`ALTER RETENTION POLICY <its name> ...` changes its duration, and a second, non-default policy
is refused with an error that says so. REPLICATION and SHARD DURATION are accepted and not
stored: the replication factor is fixed when a cluster is created, and the time partition width
is a node setting (`--partition`); SHOW RETENTION POLICIES answers InfluxDB's defaults for them.

Every change goes through the backend (standalone: the engine; cluster: a Raft command on every
shard group) and is durable when the statement answers.
"""

from __future__ import annotations

from typing import Any

from pulsar_cluster.catalogop import DEFAULT_POLICY, CatalogOp, validate_database_name
from pulsar_cluster.errors import BadRequestError, QueryError
from pulsar_cluster.query.influxql.ast import (
    DatabaseStatement,
    DeleteStatement,
    RetentionSpec,
    RetentionStatement,
    Source,
)
from pulsar_cluster.query.plan import MAX_TIME, MIN_TIME, Limits, Plan
from pulsar_cluster.query.run import Catalog, QueryBackend, run_meta
from pulsar_cluster.query.where import split_where

__all__ = [
    "execute_database",
    "execute_drop",
    "execute_retention",
    "show_retention_policies",
    "go_duration",
    "shard_group_duration",
]

_HOUR = 3_600_000_000_000
_DAY = 24 * _HOUR
#: InfluxDB refuses shorter retention (meta.MinRetentionPolicyDuration).
MIN_RETENTION_NS = _HOUR
RP_COLUMNS = ["name", "duration", "shardGroupDuration", "replicaN", "default"]


def go_duration(ns: int) -> str:
    """A duration as Go's time.Duration.String() writes it (InfluxDB shows durations so):
    0 -> "0s", 1 h -> "1h0m0s", 90 s -> "1m30s", 1.5 s -> "1.5s"."""
    if ns == 0:
        return "0s"
    sign = "-" if ns < 0 else ""
    ns = abs(ns)
    if ns < 1_000_000_000:
        for unit, size in (("ms", 1_000_000), ("µs", 1_000), ("ns", 1)):
            if ns >= size:
                return f"{sign}{_decimal(ns, size)}{unit}"
    hours, rest = divmod(ns, _HOUR)
    minutes, rest = divmod(rest, 60_000_000_000)
    seconds = _decimal(rest, 1_000_000_000)
    if hours:
        return f"{sign}{hours}h{minutes}m{seconds}s"
    if minutes:
        return f"{sign}{minutes}m{seconds}s"
    return f"{sign}{seconds}s"


def _decimal(value: int, unit: int) -> str:
    whole, frac = divmod(value, unit)
    if not frac:
        return str(whole)
    digits = len(str(unit)) - 1
    return f"{whole}.{frac:0{digits}d}".rstrip("0")


def shard_group_duration(duration_ns: int) -> int:
    """InfluxDB's default shard group duration for a policy duration (0 = infinite)."""
    if duration_ns == 0 or duration_ns >= 180 * _DAY:
        return 7 * _DAY
    if duration_ns >= 2 * _DAY:
        return _DAY
    return _HOUR


def _check_duration(spec: RetentionSpec) -> None:
    d = spec.duration_ns
    if d is not None and d != 0 and d < MIN_RETENTION_NS:
        raise QueryError(f"retention policy duration must be at least {go_duration(_HOUR)}")


def _backend_call(backend: QueryBackend, name: str, statement: str) -> Any:
    """The backend's `catalog`, `drop_database` or `drop_series` (pulsar_cluster.nodeapi
    StorageBackend); a query-only backend (federation) has none."""
    call = getattr(backend, name, None)
    if call is None:
        raise QueryError(
            f"statement not supported here: {statement} (this backend has no data definition; "
            "federated queries cannot change remote clusters)",
            statement=statement,
        )
    return call


async def current_policy(backend: QueryBackend, database: str, limits: Limits) -> tuple[str, int]:
    """(name, duration ns) of the database's policy; QueryError if the database is unknown."""
    plan = Plan(kind="meta", database=database, meta="retention", limits=limits)
    rows = sorted((await run_meta(backend, plan)).get("", ()))
    if not rows:
        raise QueryError(f"database not found: {database}")
    name, duration = rows[0]
    return name, int(duration)


async def show_retention_policies(
    backend: QueryBackend, database: str, limits: Limits
) -> dict[str, Any]:
    name, duration = await current_policy(backend, database, limits)
    row = [name, go_duration(duration), go_duration(shard_group_duration(duration)), 1, True]
    return {"series": [{"columns": RP_COLUMNS, "values": [row]}]}


async def execute_database(
    stmt: DatabaseStatement, backend: QueryBackend, limits: Limits
) -> dict[str, Any]:
    try:
        validate_database_name(stmt.name)
    except BadRequestError as exc:
        raise QueryError(exc.message) from None
    if stmt.action == "DROP DATABASE":
        # InfluxDB: dropping a database that does not exist succeeds
        await _backend_call(backend, "drop_database", stmt.action)(stmt.name)
        return {}
    spec = stmt.policy or RetentionSpec()
    _check_duration(spec)
    op = CatalogOp("create", stmt.name, spec.name or DEFAULT_POLICY, spec.duration_ns)
    catalog = _backend_call(backend, "catalog", stmt.action)
    if stmt.policy is not None and stmt.name in await Catalog(backend, limits).databases():
        # InfluxDB: re-creating with the same policy is fine, with another one an error
        name, duration = await current_policy(backend, stmt.name, limits)
        wanted = (op.policy, duration if spec.duration_ns is None else spec.duration_ns)
        if (name, duration) != wanted:
            raise QueryError("retention policy conflicts with an existing policy")
        return {}
    await catalog(op)
    return {}


async def execute_retention(
    stmt: RetentionStatement, backend: QueryBackend, limits: Limits
) -> dict[str, Any]:
    if stmt.action == "DROP RETENTION POLICY":
        raise QueryError(
            "statement not supported: DROP RETENTION POLICY (a PulsarDB database has exactly "
            "one retention policy; change it with ALTER RETENTION POLICY, or DROP DATABASE)",
            statement=stmt.action,
        )
    spec = stmt.spec
    _check_duration(spec)
    try:
        validate_database_name(stmt.name, "retention policy name")
    except BadRequestError as exc:
        raise QueryError(exc.message) from None
    catalog = _backend_call(backend, "catalog", stmt.action)
    name, duration = await current_policy(backend, stmt.database, limits)
    if stmt.action == "CREATE RETENTION POLICY":
        if not spec.default and stmt.name != name:
            raise QueryError(
                f"a PulsarDB database has one retention policy ('{name}' on {stmt.database}): "
                "add DEFAULT to replace it, or ALTER it"
            )
    elif stmt.name != name:
        raise QueryError(f"retention policy not found: {stmt.name}")
    new_duration = duration if spec.duration_ns is None else spec.duration_ns
    if (stmt.name, new_duration) != (name, duration):
        await catalog(CatalogOp("retention", stmt.database, stmt.name, new_duration))
    return {}


async def execute_drop(
    stmt: DeleteStatement,
    database: str | None,
    backend: QueryBackend,
    catalog: Catalog,
    now: int,
    limits: Limits,
) -> dict[str, Any]:
    """DROP SERIES [FROM ...] [WHERE tags] and DROP MEASUREMENT: series and points, all time."""
    where = split_where(stmt.condition, now)  # strings and regexes: tags; numbers: fields
    if where.fields is not None:
        raise QueryError("fields not supported in WHERE clause during deletion")
    if where.has_lower or where.has_upper:
        raise QueryError("DROP SERIES doesn't support time in WHERE clause")
    drop = _backend_call(backend, "drop_series", stmt.action)
    for src in stmt.sources or [Source()]:
        db = src.database or database
        if not db:
            raise QueryError("database name required")
        if db not in await catalog.databases():
            raise QueryError(f"database not found: {db}")
        plan = Plan(
            kind="delete",
            database=db,
            measurement=src.measurement or "",
            measurement_regex=src.regex,
            start=MIN_TIME,
            end=MAX_TIME,
            tags=where.tag_expr(),
            limits=limits,
        )
        await drop(plan)
    return {}
