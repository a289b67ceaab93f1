"""The one exception tree of PulsarDB, and its mapping to HTTP status codes.

    PulsarError
    ├── BadRequestError            400  input that can never succeed as sent
    │   ├── LineProtocolError      400  carries the 1-based line number
    │   ├── FieldTypeConflictError 400  names series and field
    │   ├── QueryError             400  a query that cannot be parsed or planned
    │   └── UnsupportedMediaTypeError 415  a Content-Type or Content-Encoding we do not speak
    ├── LimitExceededError         413/422  a configured bound (body size, cardinality, scan)
    ├── NotFoundError              404
    ├── OverloadedError            429/503 with Retry-After: back off and retry
    ├── UnavailableError           503  a shard or node cannot be reached
    │   └── NotLeaderError         421  this node is not the shard's leader (or not a replica)
    ├── CorruptionError                 a file failed its checksum; carries file, offset, cause
    └── StorageError                    the engine cannot do its job (I/O error, closed)

Every error knows its HTTP status, so the API edge needs one handler and no per-route mapping.
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "PulsarError",
    "BadRequestError",
    "LineProtocolError",
    "FieldTypeConflictError",
    "QueryError",
    "UnsupportedMediaTypeError",
    "LimitExceededError",
    "NotFoundError",
    "OverloadedError",
    "UnavailableError",
    "NotLeaderError",
    "CorruptionError",
    "StorageError",
]


class PulsarError(Exception):
    """Base of every error PulsarDB raises on purpose."""

    status_code: int = 500

    def __init__(self, message: str, **details: Any) -> None:
        super().__init__(message)
        self.message = message
        self.details = details

    def to_dict(self) -> dict[str, Any]:
        """The JSON error body: `{"error": message, ...details}`."""
        return {"error": self.message, **self.details}

    def __reduce__(self) -> tuple[Any, ...]:
        # Errors cross process boundaries (parse workers); subclasses have their own __init__
        # signatures, so rebuild generically from what the API needs: class, text, details.
        # The instance dict travels too (e.g. LineProtocolError's line number and text).
        state = {k: v for k, v in self.__dict__.items() if k not in ("message", "details")}
        return (_restore_error, (type(self), self.message, self.details, self.status_code), state)


def _restore_error(
    cls: type[PulsarError], message: str, details: dict[str, Any], status_code: int
) -> PulsarError:
    exc = cls.__new__(cls)
    PulsarError.__init__(exc, message, **details)
    exc.status_code = status_code
    return exc


class BadRequestError(PulsarError):
    status_code = 400


class LineProtocolError(BadRequestError):
    """A line of line protocol that cannot be parsed; nothing of the request is written."""

    def __init__(self, line_number: int, reason: str, line: bytes | None = None) -> None:
        text = f"line {line_number}: {reason}"
        if line is not None:
            shown = line[:200].decode("utf-8", "replace")
            text += f": '{shown}'"
        super().__init__(text, line=line_number)
        self.line_number = line_number
        self.reason = reason
        self.line_text = line  # the offending line, for InfluxDB-shaped error messages


class FieldTypeConflictError(BadRequestError):
    """A field was written with a type other than the one it already has in that series."""

    def __init__(self, series: str, field: str, existing: str, attempted: str) -> None:
        super().__init__(
            f"field type conflict: field '{field}' of series '{series}' is {existing}, "
            f"the write sent {attempted}",
            field=field,
            series=series,
        )


class QueryError(BadRequestError):
    """A query that cannot be parsed or planned (the message says where and why)."""


class UnsupportedMediaTypeError(BadRequestError):
    status_code = 415


class LimitExceededError(PulsarError):
    status_code = 422

    def __init__(self, message: str, status_code: int = 422, **details: Any) -> None:
        super().__init__(message, **details)
        self.status_code = status_code


class NotFoundError(PulsarError):
    status_code = 404


class OverloadedError(PulsarError):
    """The server is behind (flush, compaction, queue); the client should retry later."""

    status_code = 429

    def __init__(self, message: str, retry_after_s: float = 1.0, status_code: int = 429) -> None:
        super().__init__(message, retry_after=retry_after_s)
        self.retry_after_s = retry_after_s
        self.status_code = status_code


class UnavailableError(PulsarError):
    status_code = 503


class NotLeaderError(UnavailableError):
    """A node was asked for a shard it does not lead (or does not hold).

    Carries the shard, the leader's node id when known (a hint: it may be stale) and the version
    of the shard map the node used, so a client can refresh its cached map and retry there.
    """

    status_code = 421  # Misdirected Request: the right server exists, this is not it

    def __init__(self, shard: int, leader: str | None, map_version: int, reason: str) -> None:
        super().__init__(
            f"shard {shard}: {reason}", shard=shard, leader=leader, map_version=map_version
        )
        self.shard = shard
        self.leader = leader
        self.map_version = map_version


class CorruptionError(PulsarError):
    """A checksum or structural check failed while reading a file."""

    status_code = 500

    def __init__(self, path: str, offset: int, cause: str) -> None:
        super().__init__(
            f"corruption in {path} at offset {offset}: {cause}", file=path, offset=offset
        )
        self.path = path
        self.offset = offset
        self.cause = cause


class StorageError(PulsarError):
    status_code = 500
