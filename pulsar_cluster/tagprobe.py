"""The tag-key probe of a cluster query: planning with cached tag keys, checked by the nodes.

Planning an InfluxQL SELECT needs to know which names are tag keys of the measurement: in
`WHERE host = 'a'`, `host` is a tag when it is a tag key, else a field. On one node the index
answers in microseconds; on a cluster it is a meta query to every node, as expensive as the
query itself. So a coordinator keeps the tag keys it last fetched per measurement
(`TagKeyCache`) and plans with them, and the query call asks every node which of the names the
planner classified are tag keys there now (`X-Pulsar-Tag-Probe` request header, answer in
`X-Pulsar-Tag-Keys`; docs/format/node-api.md). The union over the nodes of all shards is the
truth: when it differs from what the planner assumed (a tag key appeared or vanished since the
cache was filled), the answer is discarded (`StaleTagKeysError`) and the statement is planned
again with tag keys fetched afresh. An answer is therefore always planned with the tag keys
the nodes had when they read its data.

Both headers carry a JSON array of names, percent-encoded (names may hold any character).
"""

from __future__ import annotations

from collections.abc import Iterable
from urllib.parse import quote, unquote

import orjson

__all__ = [
    "TAG_PROBE_HEADER",
    "TAG_KEYS_HEADER",
    "encode_names",
    "decode_names",
    "StaleTagKeysError",
    "TagKeyCache",
]

TAG_PROBE_HEADER = "X-Pulsar-Tag-Probe"
TAG_KEYS_HEADER = "X-Pulsar-Tag-Keys"


def encode_names(names: Iterable[str]) -> str:
    return quote(orjson.dumps(sorted(names)).decode(), safe="")


def decode_names(value: str) -> list[str]:
    """The names of a header value; ValueError when it is not a JSON array of strings."""
    try:
        names = orjson.loads(unquote(value, errors="strict"))
    except (orjson.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ValueError(f"not a JSON array of names: {exc}") from None
    if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
        raise ValueError("not a JSON array of names")
    return names


class StaleTagKeysError(Exception):
    """The nodes' tag keys differ from those a statement was planned with: plan it again."""


class TagKeyCache:
    """Tag keys per (database, measurement) as last fetched; bounded, oldest entry evicted.
    Only a hint for planning: every answer planned from it is checked (module docstring)."""

    def __init__(self, max_entries: int = 4096) -> None:
        self._keys: dict[tuple[str, str], frozenset[str]] = {}
        self._max = max_entries

    def get(self, database: str, measurement: str) -> frozenset[str] | None:
        return self._keys.get((database, measurement))

    def put(self, database: str, measurement: str, keys: Iterable[str]) -> None:
        key = (database, measurement)
        if key not in self._keys and len(self._keys) >= self._max:
            self._keys.pop(next(iter(self._keys)), None)
        self._keys[key] = frozenset(keys)

    def forget(self, database: str, measurement: str) -> None:
        self._keys.pop((database, measurement), None)

    def __len__(self) -> int:
        return len(self._keys)
