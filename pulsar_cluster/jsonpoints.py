"""The native JSON write body: one point object, or `{"points": [...]}`.

    {"measurement": "cpu", "tags": {"host": "h1"}, "fields": {"usage": 12.5, "n": 3},
     "timestamp": 1767225600000000000}

JSON integers become integer fields, numbers with a fraction or exponent floats, true/false
booleans, strings strings. The timestamp is int ns or RFC 3339; absent means server time.
Validation is all-or-nothing: the first bad point raises BadRequestError naming its index.
"""

from __future__ import annotations

import math
import time
from typing import Any

import orjson

from pulsar_cluster.batch import BatchBuilder, FieldType, TypeConflictError, WriteBatch
from pulsar_cluster.errors import BadRequestError
from pulsar_cluster.series import make_series_key
from pulsar_cluster.timeutil import parse_time

__all__ = ["parse_json_points"]

_INT64_MIN, _INT64_MAX = -(2**63), 2**63 - 1


def parse_json_points(body: bytes, database: str, now_ns: int | None = None) -> WriteBatch:
    try:
        doc = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise BadRequestError(f"invalid JSON: {exc}") from None
    if isinstance(doc, dict) and "points" in doc:
        points = doc["points"]
        if not isinstance(points, list):
            raise BadRequestError("'points' must be a list of point objects")
    elif isinstance(doc, dict):
        points = [doc]
    elif isinstance(doc, list):
        points = doc
    else:
        raise BadRequestError('body must be a point object, a list, or {"points": [...]}')
    default_ts = time.time_ns() if now_ns is None else now_ns
    builder = BatchBuilder(database)
    for i, point in enumerate(points):
        try:
            _add_point(builder, point, default_ts)
        except (BadRequestError, ValueError) as exc:
            text = exc.message if isinstance(exc, BadRequestError) else str(exc)
            raise BadRequestError(f"point {i}: {text}", point=i) from None
    return builder.build()


def _add_point(builder: BatchBuilder, point: Any, default_ts: int) -> None:
    if not isinstance(point, dict):
        raise ValueError("a point must be an object")
    measurement = point.get("measurement")
    if not isinstance(measurement, str) or not measurement:
        raise ValueError("'measurement' must be a non-empty string")
    tags = point.get("tags") or {}
    if not isinstance(tags, dict) or not all(
        isinstance(k, str) and k and isinstance(v, str) and v for k, v in tags.items()
    ):
        raise ValueError("'tags' must map non-empty strings to non-empty strings")
    if "time" in tags:
        raise ValueError("'time' is not a valid tag key")
    fields = point.get("fields")
    if not isinstance(fields, dict) or not fields:
        raise ValueError("'fields' must be a non-empty object")
    raw_ts = point.get("timestamp")
    ts = default_ts if raw_ts is None else parse_time(raw_ts)
    if not _INT64_MIN <= ts <= _INT64_MAX:
        raise ValueError("timestamp out of range")
    key = make_series_key(measurement, tags)
    for name, value in fields.items():
        if not isinstance(name, str) or not name or name == "time" or "\x00" in name:
            raise ValueError(f"invalid field name {name!r}")
        field_type, typed_value = _typed(name, value)
        try:
            builder.add(key, name, field_type, ts, typed_value)
        except TypeConflictError as exc:
            raise ValueError(exc.message) from None


def _typed(name: str, value: Any) -> tuple[FieldType, object]:
    # Note the order: bool is a subclass of int.
    if isinstance(value, bool):
        return FieldType.BOOLEAN, value
    if isinstance(value, int):
        if not _INT64_MIN <= value <= _INT64_MAX:
            raise ValueError(f"field '{name}': integer out of the int64 range")
        return FieldType.INTEGER, value
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError(f"field '{name}': NaN and infinities are not stored")
        return FieldType.FLOAT, value
    if isinstance(value, str):
        return FieldType.STRING, value
    raise ValueError(f"field '{name}' has an unsupported value type ({type(value).__name__})")
