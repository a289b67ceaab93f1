"""InfluxQL syntax tree: expressions and statements, as the parser builds them."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "Expr",
    "Ident",
    "Literal",
    "Duration",
    "Regex",
    "Wildcard",
    "Call",
    "BinOp",
    "Source",
    "Select",
    "Show",
    "DatabaseStatement",
    "RetentionSpec",
    "DeleteStatement",
    "RetentionStatement",
    "Statement",
]


class Expr:
    """Base of every InfluxQL expression node."""


@dataclass(frozen=True, slots=True)
class Ident(Expr):
    name: str
    cast: str | None = None  # "tag" or "field" from `name::tag`


@dataclass(frozen=True, slots=True)
class Literal(Expr):
    value: Any  # str, int, float, bool


@dataclass(frozen=True, slots=True)
class Duration(Expr):
    ns: int
    text: str


@dataclass(frozen=True, slots=True)
class Regex(Expr):
    pattern: str


@dataclass(frozen=True, slots=True)
class Wildcard(Expr):
    """`*` in a field list or GROUP BY."""


@dataclass(frozen=True, slots=True)
class Call(Expr):
    name: str  # lower case
    args: tuple[Expr, ...]


@dataclass(frozen=True, slots=True)
class BinOp(Expr):
    op: str  # AND, OR, =, !=, <, <=, >, >=, =~, !~, +, -, *, /, %
    left: Expr
    right: Expr


@dataclass(frozen=True, slots=True)
class Source:
    measurement: str | None = None
    regex: str | None = None
    database: str | None = None
    retention_policy: str | None = None


@dataclass(slots=True)
class Select:
    fields: list[tuple[Expr, str | None]]
    sources: list[Source]
    condition: Expr | None = None
    every: int = 0
    offset: int = 0
    group_tags: list[str] | None = field(default_factory=list)  # None: GROUP BY *
    fill: str = "null"
    fill_value: Any = None
    descending: bool = False
    limit: int = 0
    offset_rows: int = 0
    slimit: int = 0
    soffset: int = 0


@dataclass(slots=True)
class Show:
    what: str  # databases, measurements, tag_keys, tag_values, field_keys, series, retention
    database: str | None = None
    sources: list[Source] = field(default_factory=list)
    condition: Expr | None = None
    measurement_op: str | None = None  # WITH MEASUREMENT op (=, =~)
    measurement_value: str | None = None
    key_op: str | None = None  # WITH KEY op (=, !=, =~, !~, IN)
    key_values: list[str] = field(default_factory=list)
    limit: int = 0
    offset: int = 0


@dataclass(slots=True)
class RetentionSpec:
    """The policy clauses of CREATE DATABASE ... WITH and CREATE/ALTER RETENTION POLICY."""

    duration_ns: int | None = None  # None: not given; 0: INF
    replication: int | None = None
    shard_duration_ns: int | None = None
    name: str | None = None  # CREATE DATABASE ... WITH NAME
    default: bool = False


@dataclass(slots=True)
class DatabaseStatement:
    action: str  # CREATE DATABASE / DROP DATABASE
    name: str
    policy: RetentionSpec | None = None  # CREATE DATABASE ... WITH


@dataclass(slots=True)
class DeleteStatement:
    action: str  # DROP SERIES / DROP MEASUREMENT / DELETE
    sources: list[Source]
    condition: Expr | None


@dataclass(slots=True)
class RetentionStatement:
    action: str  # CREATE / ALTER / DROP RETENTION POLICY
    name: str
    database: str
    spec: RetentionSpec = field(default_factory=RetentionSpec)


Statement = Select | Show | DatabaseStatement | DeleteStatement | RetentionStatement
