"""The native JSON query (`POST /api/v1/query`) parsed into a raw scan.

This is the raw-points subset: one measurement, a time range, tag equality in `where`
(`host = 'h1' AND region = 'eu'`), optional `fields` and `limit`. Keys that select features not
supported yet (`aggregate`, other operators) are refused with a 400 naming them, never answered
wrongly.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from pulsar_cluster.errors import QueryError
from pulsar_cluster.nodeapi import ScanRequest
from pulsar_cluster.timeutil import parse_time

__all__ = ["RawQuery", "parse_native_query", "MAX_TIME", "MIN_TIME"]

MIN_TIME = -(2**63) + 1
MAX_TIME = 2**63 - 1
_KNOWN_KEYS = {"db", "measurement", "fields", "where", "start", "end", "limit", "consistency"}
_IDENT = r'(?:"(?:[^"\\]|\\.)+"|[A-Za-z_][A-Za-z0-9_.\-]*)'
_EQ_TERM = re.compile(rf"\s*({_IDENT})\s*=\s*'((?:[^'\\]|\\.)*)'\s*")


@dataclass(frozen=True, slots=True)
class RawQuery:
    scan: ScanRequest
    limit: int | None


def parse_native_query(doc: Any) -> RawQuery:
    if not isinstance(doc, dict):
        raise QueryError("the query must be a JSON object")
    unknown = sorted(set(doc) - _KNOWN_KEYS)
    if unknown:
        raise QueryError(f"unsupported query keys: {', '.join(unknown)}", unsupported=unknown)
    db = doc.get("db")
    measurement = doc.get("measurement")
    if not isinstance(db, str) or not db:
        raise QueryError("'db' must be a non-empty string")
    if not isinstance(measurement, str) or not measurement:
        raise QueryError("'measurement' must be a non-empty string")
    fields = doc.get("fields")
    if fields is not None and (
        not isinstance(fields, list) or not all(isinstance(f, str) and f for f in fields)
    ):
        raise QueryError("'fields' must be a list of field names")
    try:
        start = MIN_TIME if doc.get("start") is None else parse_time(doc["start"])
        end = MAX_TIME if doc.get("end") is None else parse_time(doc["end"])
    except ValueError as exc:
        raise QueryError(f"invalid time: {exc}") from None
    limit = doc.get("limit")
    if limit is not None and (not isinstance(limit, int) or isinstance(limit, bool) or limit < 1):
        raise QueryError("'limit' must be a positive integer")
    consistency = doc.get("consistency", "leader")
    if consistency not in ("leader", "any"):
        raise QueryError("'consistency' must be 'leader' or 'any'")
    tags = parse_tag_equalities(doc.get("where") or "")
    scan = ScanRequest(db, measurement, start, end, tags, fields)
    return RawQuery(scan, limit)


def parse_tag_equalities(where: str) -> dict[str, str]:
    """`a = 'x' AND b = 'y'` -> {"a": "x", "b": "y"}; anything else is refused clearly."""
    if not isinstance(where, str):
        raise QueryError("'where' must be a string")
    tags: dict[str, str] = {}
    if not where.strip():
        return tags
    for term in re.split(r"\s+AND\s+", where.strip(), flags=re.IGNORECASE):
        m = _EQ_TERM.fullmatch(term)
        if not m:
            raise QueryError(
                f"unsupported where clause term '{term.strip()}': this version supports "
                "tag equality (tag = 'value') joined by AND"
            )
        key = m[1]
        if key.startswith('"'):
            key = key[1:-1].replace('\\"', '"')
        tags[key] = m[2].replace("\\'", "'").replace("\\\\", "\\")
    return tags
