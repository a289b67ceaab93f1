"""Database registry operations: CREATE DATABASE and retention-policy changes as plain values.

A `CatalogOp` travels as the body of a Raft command (kinds CREATE_DATABASE and SET_RETENTION,
docs/format/raft-command.md) and is stored as the payload of a WAL record of type CATALOG
(docs/format/wal.md): UTF-8 JSON

    {"op": "create" | "retention", "database": str, "policy": str, "duration_ns": int | null}

`create` registers the database if it is absent (with `policy` and `duration_ns` when given,
else the default policy `autogen` with the configured retention); an existing database is left
as it is, so replaying the operation is harmless. `retention` sets the database's one retention
policy (registering the database if needed). `duration_ns` 0 means keep forever; null (only
with `create`) means "the configured default". Every operation is an absolute assignment of
one database's entry, which is what makes replaying a suffix of them onto a later state safe.

DROP DATABASE is not a catalog op: it removes data too, so it is a delete (node/engine/deletes.py).
Its Raft command body (kind DROP_DATABASE) is UTF-8 JSON `{"database": str}`
(`encode_drop_database` / `decode_drop_database`).
"""

from __future__ import annotations

from dataclasses import dataclass

import orjson

from pulsar_cluster.errors import BadRequestError

__all__ = [
    "CatalogOp",
    "DEFAULT_POLICY",
    "CATALOG_OPS",
    "validate_database_name",
    "encode_drop_database",
    "decode_drop_database",
]

DEFAULT_POLICY = "autogen"
CATALOG_OPS = ("create", "retention")
#: Longest database / policy name accepted (a name is part of every series' storage key).
_MAX_NAME = 255


def validate_database_name(name: str, what: str = "database name") -> None:
    """A name the engine can store: non-empty, at most 255 bytes, no NUL (the key separator)."""
    if not name:
        raise BadRequestError(f"{what} required")
    if "\x00" in name:
        raise BadRequestError(f"invalid {what}: it contains a NUL character")
    if len(name.encode()) > _MAX_NAME:
        raise BadRequestError(f"invalid {what}: longer than {_MAX_NAME} bytes")


@dataclass(frozen=True, slots=True)
class CatalogOp:
    op: str
    database: str
    policy: str = DEFAULT_POLICY
    duration_ns: int | None = None

    def validate(self) -> None:
        if self.op not in CATALOG_OPS:
            raise BadRequestError(f"unknown catalog operation {self.op!r}")
        validate_database_name(self.database)
        validate_database_name(self.policy, "retention policy name")
        if self.duration_ns is not None and self.duration_ns < 0:
            raise BadRequestError("retention policy duration must not be negative")
        if self.op == "retention" and self.duration_ns is None:
            raise BadRequestError("a retention change needs a duration")

    def encode(self) -> bytes:
        self.validate()
        return orjson.dumps(
            {
                "op": self.op,
                "database": self.database,
                "policy": self.policy,
                "duration_ns": self.duration_ns,
            }
        )

    @classmethod
    def decode(cls, payload: bytes | memoryview) -> CatalogOp:
        """The op in `payload`; BadRequestError (nothing applied) for anything malformed."""
        try:
            obj = orjson.loads(bytes(payload))
            duration = obj["duration_ns"]
            if duration is not None and (
                isinstance(duration, bool) or not isinstance(duration, int)
            ):
                raise TypeError("duration_ns must be an integer or null")
            op = cls(str(obj["op"]), str(obj["database"]), str(obj["policy"]), duration)
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
            raise BadRequestError(f"malformed catalog operation: {exc}") from None
        op.validate()
        return op


def encode_drop_database(database: str) -> bytes:
    validate_database_name(database)
    return orjson.dumps({"database": database})


def decode_drop_database(body: bytes | memoryview) -> str:
    try:
        database = orjson.loads(bytes(body))["database"]
    except (orjson.JSONDecodeError, KeyError, TypeError) as exc:
        raise BadRequestError(f"malformed DROP DATABASE command: {exc!r}") from None
    if not isinstance(database, str):
        raise BadRequestError("malformed DROP DATABASE command: database must be a string")
    validate_database_name(database)
    return database
