"""The series and tag index: which series exist, their field types, and tag postings.

In memory, rebuilt at open from SSTable indexes and the WAL (the persisted index file is a later
format; nothing here is authoritative on disk, so it can always be recovered from the data).

Storage keys: inside the engine a series is named by `database NUL series_key`
(pulsar_cluster/series.py); `storage_key` and `split_storage_key` convert.
"""

from __future__ import annotations

from collections import defaultdict

from pulsar_cluster.batch import FieldType
from pulsar_cluster.series import SEP

__all__ = ["SeriesIndex", "storage_key", "split_storage_key"]


def storage_key(database: str, series_key: bytes) -> bytes:
    return database.encode() + SEP + series_key


def split_storage_key(skey: bytes) -> tuple[str, bytes]:
    db, _, key = skey.partition(SEP)
    return db.decode(), key


class SeriesIndex:
    """Not thread-safe by itself: mutated under the engine's write lock; readers copy sets."""

    def __init__(self) -> None:
        # (db, measurement) -> series storage keys
        self._by_measurement: dict[tuple[str, bytes], set[bytes]] = defaultdict(set)
        # (db, measurement, tag key, tag value) -> series storage keys
        self._postings: dict[tuple[str, bytes, bytes, bytes], set[bytes]] = defaultdict(set)
        self._field_types: dict[bytes, dict[str, FieldType]] = {}

    def __len__(self) -> int:
        return len(self._field_types)

    def __contains__(self, skey: bytes) -> bool:
        return skey in self._field_types

    def add_series(self, skey: bytes) -> dict[str, FieldType]:
        """Register a series (idempotent); returns its field-type map for updating."""
        types = self._field_types.get(skey)
        if types is not None:
            return types
        types = self._field_types[skey] = {}
        parts = skey.split(SEP)
        db, measurement = parts[0].decode(), parts[1]
        self._by_measurement[(db, measurement)].add(skey)
        for i in range(2, len(parts) - 1, 2):
            self._postings[(db, measurement, parts[i], parts[i + 1])].add(skey)
        return types

    def field_types(self, skey: bytes) -> dict[str, FieldType]:
        return self._field_types.get(skey, {})

    def match(self, database: str, measurement: str, tags: dict[str, str]) -> list[bytes]:
        """Series of the measurement whose tags include every `tags` pair, sorted."""
        m = measurement.encode()
        found = set(self._by_measurement.get((database, m), ()))
        for k, v in tags.items():
            if not found:
                break
            found &= self._postings.get((database, m, k.encode(), v.encode()), set())
        return sorted(found)

    # --- the view a tag predicate is resolved against (see pulsar_cluster.query) ---------------

    def series_of_measurement(self, database: str, measurement: str) -> set[bytes]:
        """Storage keys of every series of the measurement (a copy)."""
        return set(self._by_measurement.get((database, measurement.encode()), ()))

    def series_with_tag(self, database: str, measurement: str, key: str, value: str) -> set[bytes]:
        """Storage keys of the measurement's series with tag key=value (a copy)."""
        return set(
            self._postings.get((database, measurement.encode(), key.encode(), value.encode()), ())
        )

    def tag_values(self, database: str, measurement: str, key: str) -> list[str]:
        """Distinct values of one tag key in the measurement, sorted."""
        m, k = measurement.encode(), key.encode()
        return sorted(
            v.decode()
            for (db, mm, kk, v), keys in self._postings.items()
            if db == database and mm == m and kk == k and keys
        )

    def tag_keys(self, database: str, measurement: str) -> list[str]:
        m = measurement.encode()
        return sorted(
            {k.decode() for (db, mm, k, _) in self._postings if db == database and mm == m}
        )

    def databases(self) -> list[str]:
        return sorted({db for db, _ in self._by_measurement})

    def measurements(self, database: str) -> list[str]:
        return sorted(m.decode() for db, m in self._by_measurement if db == database)
