"""An in-memory QuerySource: a naive reference of the engine's read interface for tests."""

from __future__ import annotations

import numpy as np

from pulsar_cluster.batch import FieldType
from pulsar_cluster.series import SEP, make_series_key, split_series_key

__all__ = ["MemSource", "storage_key"]


def storage_key(db: str, measurement: str, tags: dict[str, str]) -> bytes:
    return db.encode() + SEP + make_series_key(measurement, tags)


class MemSource:
    def __init__(self) -> None:
        # storage key -> field -> (type, sorted unique times, values)
        self.data: dict[bytes, dict[str, tuple[FieldType, np.ndarray, np.ndarray]]] = {}

    def add(
        self,
        db: str,
        measurement: str,
        tags: dict[str, str],
        field: str,
        ftype: FieldType,
        ts: list[int],
        values: list,
    ) -> None:
        t = np.array(ts, dtype=np.int64)
        order = np.argsort(t, kind="stable")
        t = t[order]
        dtype = object if ftype is FieldType.STRING else None
        v = np.array(values, dtype=dtype)[order] if len(values) else np.array([], dtype=dtype)
        keep = np.r_[t[1:] != t[:-1], True] if len(t) else np.zeros(0, bool)  # last wins
        self.data.setdefault(storage_key(db, measurement, tags), {})[field] = (
            ftype,
            t[keep],
            v[keep],
        )

    def _parts(self, skey: bytes) -> tuple[str, str, dict[str, str]]:
        db, _, key = skey.partition(SEP)
        m, tags = split_series_key(key)
        return db.decode(), m, tags

    def series_of_measurement(self, database: str, measurement: str) -> set[bytes]:
        return {k for k in self.data if self._parts(k)[:2] == (database, measurement)}

    def series_with_tag(self, database: str, measurement: str, key: str, value: str) -> set[bytes]:
        return {
            k
            for k in self.series_of_measurement(database, measurement)
            if self._parts(k)[2].get(key) == value
        }

    def tag_values(self, database: str, measurement: str, key: str) -> list[str]:
        return sorted(
            {
                self._parts(k)[2][key]
                for k in self.series_of_measurement(database, measurement)
                if key in self._parts(k)[2]
            }
        )

    def tag_keys(self, database: str, measurement: str) -> list[str]:
        return sorted(
            {
                t
                for k in self.series_of_measurement(database, measurement)
                for t in self._parts(k)[2]
            }
        )

    def databases(self) -> list[str]:
        return sorted({self._parts(k)[0] for k in self.data})

    def retention_policy(self, database: str) -> tuple[str, int] | None:
        """Every database of the reference keeps its data forever under `autogen`."""
        return ("autogen", 0) if database in self.databases() else None

    def measurements(self, database: str) -> list[str]:
        return sorted({self._parts(k)[1] for k in self.data if self._parts(k)[0] == database})

    def series_fields(self, skey: bytes) -> dict[str, FieldType]:
        return {n: d[0] for n, d in self.data.get(skey, {}).items()}

    def read_field(self, skey: bytes, name: str, start: int, end: int, on_block=None):  # type: ignore[no-untyped-def]
        found = self.data.get(skey, {}).get(name)
        if found is None:
            return None
        ftype, t, v = found
        lo, hi = np.searchsorted(t, start), np.searchsorted(t, end)
        if on_block is not None:
            on_block(int(hi - lo))  # one block: the points in range
        return ftype, t[lo:hi], v[lo:hi]
