"""Series keys and shard hashing.

A series is (database, measurement, sorted tag set). Inside PulsarDB a series is named by its
*series key*: the UTF-8 bytes of measurement, tag key, tag value, ... joined by NUL, with tags
sorted by key (bytewise). NUL cannot appear in names (writes containing it are rejected), so the
key is unambiguous and splits back with one `bytes.split`. The layout is part of the SSTable and
write-batch formats (docs/format/write-batch.md); never change it.

A series lives in shard `xxhash64(database NUL series_key) mod shard_count`.
"""

from __future__ import annotations

import xxhash

__all__ = [
    "SEP",
    "make_series_key",
    "split_series_key",
    "series_key_measurement",
    "format_series_key",
    "shard_for",
    "series_hash",
]

SEP = b"\x00"


def make_series_key(measurement: str, tags: dict[str, str]) -> bytes:
    """Canonical key of (measurement, tags); tags sorted by key. Raises ValueError on NUL."""
    parts = [measurement.encode()]
    for key in sorted(tags, key=str.encode):
        parts.append(key.encode())
        parts.append(tags[key].encode())
    key_bytes = SEP.join(parts)
    if key_bytes.count(SEP) != len(parts) - 1:
        raise ValueError("names and tag values must not contain NUL characters")
    return key_bytes


def split_series_key(key: bytes) -> tuple[str, dict[str, str]]:
    """Inverse of make_series_key: (measurement, tags)."""
    parts = key.split(SEP)
    tags = {parts[i].decode(): parts[i + 1].decode() for i in range(1, len(parts) - 1, 2)}
    return parts[0].decode(), tags


def series_key_measurement(key: bytes) -> bytes:
    return key.split(SEP, 1)[0]


def _escape(text: str, specials: str) -> str:
    for char in "\\" + specials:
        text = text.replace(char, "\\" + char)
    return text


def format_series_key(key: bytes) -> str:
    """The key in line-protocol form (`cpu,host=a`), as SHOW SERIES prints it."""
    measurement, tags = split_series_key(key)
    out = [_escape(measurement, ", ")]
    out.extend(f"{_escape(k, ',= ')}={_escape(v, ',= ')}" for k, v in tags.items())
    return ",".join(out)


def series_hash(database: str, key: bytes) -> int:
    return xxhash.xxh64_intdigest(database.encode() + SEP + key)


def shard_for(database: str, key: bytes, shard_count: int) -> int:
    """The shard that owns the series; fixed for the life of a cluster."""
    return series_hash(database, key) % shard_count
