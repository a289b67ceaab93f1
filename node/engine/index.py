"""The series and tag index: which series exist, their field types, and tag postings.

In memory. At open it is rebuilt from the SSTable indexes (every table lists its series keys and
field types) and the WAL replay, so it can always be recovered from the data itself: no index
file can disagree with the tables.

Layout: database -> measurement -> {tag key -> {tag value -> set of storage keys}}, plus the set
of series of each measurement. `tag_keys` and `tag_values` read one dict level: they never scan
the postings of other measurements or keys.

Storage keys: inside the engine a series is named by `database NUL series_key`
(pulsar_cluster/series.py); `storage_key` and `split_storage_key` convert.
"""

from __future__ import annotations

from pulsar_cluster.batch import FieldType
from pulsar_cluster.series import SEP

__all__ = ["SeriesIndex", "storage_key", "split_storage_key"]


def storage_key(database: str, series_key: bytes) -> bytes:
    return database.encode() + SEP + series_key


def split_storage_key(skey: bytes) -> tuple[str, bytes]:
    db, _, key = skey.partition(SEP)
    return db.decode(), key


def storage_key_database(skey: bytes) -> str:
    return skey[: skey.index(SEP)].decode()


class _Measurement:
    __slots__ = ("series", "sorted_keys", "tags")

    def __init__(self) -> None:
        self.series: set[bytes] = set()
        self.tags: dict[bytes, dict[bytes, set[bytes]]] = {}
        #: `tags`' keys decoded and sorted, kept until a key comes or goes: every select asks
        #: for them (to tell tags from fields) and new tag keys are rare.
        self.sorted_keys: list[str] | None = None


class SeriesIndex:
    """Not thread-safe by itself: mutated under the engine's write lock; readers get copies."""

    def __init__(self) -> None:
        self._dbs: dict[str, dict[bytes, _Measurement]] = {}
        self._series_count: dict[str, int] = {}
        self._field_types: dict[bytes, dict[str, FieldType]] = {}

    def __len__(self) -> int:
        return len(self._field_types)

    def __contains__(self, skey: bytes) -> bool:
        return skey in self._field_types

    def series_count(self, database: str) -> int:
        return self._series_count.get(database, 0)

    def add_series(self, skey: bytes) -> dict[str, FieldType]:
        """Register a series (idempotent); returns its field-type map for updating."""
        types = self._field_types.get(skey)
        if types is not None:
            return types
        types = self._field_types[skey] = {}
        parts = skey.split(SEP)
        db, measurement = parts[0].decode(), parts[1]
        ms = self._dbs.setdefault(db, {})
        m = ms.get(measurement)
        if m is None:
            m = ms[measurement] = _Measurement()
        m.series.add(skey)
        for i in range(2, len(parts) - 1, 2):
            values = m.tags.get(parts[i])
            if values is None:
                values = m.tags[parts[i]] = {}
                m.sorted_keys = None
            values.setdefault(parts[i + 1], set()).add(skey)
        self._series_count[db] = self._series_count.get(db, 0) + 1
        return types

    def remove_database_series(self, skeys: list[bytes]) -> None:
        """Forget series (retention dropped every point of them)."""
        for skey in skeys:
            if self._field_types.pop(skey, None) is None:
                continue
            parts = skey.split(SEP)
            db, measurement = parts[0].decode(), parts[1]
            self._series_count[db] -= 1
            m = self._dbs[db][measurement]
            m.series.discard(skey)
            for i in range(2, len(parts) - 1, 2):
                values = m.tags[parts[i]]
                values[parts[i + 1]].discard(skey)
                if not values[parts[i + 1]]:
                    del values[parts[i + 1]]
                if not values:
                    del m.tags[parts[i]]
                    m.sorted_keys = None
            if not m.series:
                del self._dbs[db][measurement]
            if not self._dbs[db]:
                del self._dbs[db]
                del self._series_count[db]

    def field_types(self, skey: bytes) -> dict[str, FieldType]:
        return self._field_types.get(skey, {})

    def field_types_of(self, skeys: list[bytes], name: str) -> set[FieldType]:
        """The types field `name` has in these series (series without it add none)."""
        types = self._field_types
        empty: dict[str, FieldType] = {}
        found = {types.get(k, empty).get(name) for k in skeys}
        found.discard(None)
        return found  # type: ignore[return-value]  # None discarded

    def all_series(self, database: str) -> list[bytes]:
        return [s for m in self._dbs.get(database, {}).values() for s in m.series]

    def _measurement(self, database: str, measurement: str) -> _Measurement | None:
        return self._dbs.get(database, {}).get(measurement.encode())

    def match(self, database: str, measurement: str, tags: dict[str, str]) -> list[bytes]:
        """Series of the measurement whose tags include every `tags` pair, sorted."""
        m = self._measurement(database, measurement)
        if m is None:
            return []
        found: set[bytes] | None = None
        # Intersect the smallest postings first.
        postings = []
        for k, v in tags.items():
            posting = m.tags.get(k.encode(), {}).get(v.encode())
            if not posting:
                return []
            postings.append(posting)
        postings.sort(key=len)
        for posting in postings:
            found = set(posting) if found is None else found & posting
            if not found:
                return []
        return sorted(m.series if found is None else found)

    # --- the view a tag predicate is resolved against (see pulsar_cluster.query) ---------------

    def series_of_measurement(self, database: str, measurement: str) -> set[bytes]:
        """Storage keys of every series of the measurement (a copy)."""
        m = self._measurement(database, measurement)
        return set() if m is None else set(m.series)

    def series_with_tag(self, database: str, measurement: str, key: str, value: str) -> set[bytes]:
        """Storage keys of the measurement's series with tag key=value (a copy)."""
        m = self._measurement(database, measurement)
        if m is None:
            return set()
        return set(m.tags.get(key.encode(), {}).get(value.encode(), ()))

    def tag_values(self, database: str, measurement: str, key: str) -> list[str]:
        """Distinct values of one tag key in the measurement, sorted."""
        m = self._measurement(database, measurement)
        if m is None:
            return []
        return sorted(v.decode() for v in m.tags.get(key.encode(), {}))

    def tag_keys(self, database: str, measurement: str) -> list[str]:
        """The measurement's tag keys, sorted (a copy)."""
        m = self._measurement(database, measurement)
        if m is None:
            return []
        if m.sorted_keys is None:
            m.sorted_keys = sorted(k.decode() for k in m.tags)
        return list(m.sorted_keys)

    def databases(self) -> list[str]:
        return sorted(self._dbs)

    def measurements(self, database: str) -> list[str]:
        return sorted(m.decode() for m in self._dbs.get(database, {}))
