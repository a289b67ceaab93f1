"""The narrow read interface a shard's query executor needs from its storage (node.query).

Index view (tag predicates, SHOW) plus one read: one field of one series in a time range.
node.query.EngineSource implements it over node.engine.Engine; tests implement it over dicts.
Storage keys are `database NUL series_key` (pulsar_cluster/series.py).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

import numpy as np

from pulsar_cluster.batch import FieldType
from pulsar_cluster.query.conditions import TagIndexView

__all__ = ["QuerySource"]


class QuerySource(TagIndexView, Protocol):
    """Safe to call from one query thread while writes go on; every result is a copy."""

    def databases(self) -> list[str]: ...

    def measurements(self, database: str) -> list[str]: ...

    def tag_keys(self, database: str, measurement: str) -> list[str]: ...

    def series_fields(self, skey: bytes) -> dict[str, FieldType]: ...

    def read_field(
        self,
        skey: bytes,
        name: str,
        start: int,
        end: int,
        on_block: Callable[[int], None] | None = None,
    ) -> tuple[FieldType, np.ndarray, np.ndarray] | None:
        """Points of one field in [start, end): times ascending and unique (last write wins).

        `on_block(n)` is called with the point count of every stored block (and memtable part)
        before it is read; it raises to stop the read (query limits), so a read is refused
        after at most one block beyond the limit, never after the whole series.
        """
        ...
