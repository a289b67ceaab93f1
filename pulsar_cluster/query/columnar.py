"""A partial of a window-less aggregate kept by column, built per group only when asked.

The per-group form of `Partial.groups` costs one dict of one-element arrays per (group,
column): 10,000 of them for TSBS's lastpoint (1000 hosts x 10 fields), about 12 ms to build
and as much again to read back. `ColumnarPartial` holds instead, per plan column, ONE state
whose rows are groups: `w` is the index of the row's group in `keys` (at most one row per
group). `pulsar_cluster/query/finishrows.py` finalises that form directly; every other reader
of `groups` (merge, the wire codec, federation) gets the ordinary per-group form, built on
first access, so nothing else needs to know about this class. In process only: it never
travels (encode_partial encodes `groups`).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from pulsar_cluster.query.partial import GroupKey, Partial
from pulsar_cluster.query.states import State

__all__ = ["ColumnarPartial", "Columns", "group_count"]


class Columns:
    """keys: the groups with at least one row, sorted; states[c]: plan column c's rows (`w` indexes
    `keys`) or None when no group has a row there; empty: the state a group without a row in
    a column gets in the per-group form."""

    __slots__ = ("empty", "keys", "states")

    def __init__(self, keys: list[GroupKey], states: list[State | None], empty: list[State]):
        self.keys = keys
        self.states = states
        self.empty = empty

    def per_group(self) -> dict[GroupKey, list[State]]:
        """The ordinary form: every group's list of one-row (or empty) states, `w` = 0."""
        rows: list[list[State | None]] = [[None] * len(self.states) for _ in self.keys]
        for c, state in enumerate(self.states):
            if state is None:
                continue
            g = state["w"].tolist()
            # Iterating a 2-D array yields one-element row views, made in C: about five times
            # cheaper than slicing each row.
            parts = {
                k: list((np.zeros_like(v) if k == "w" else v).reshape(-1, 1))
                for k, v in state.items()
            }
            names = list(parts)
            for i, group in enumerate(g):
                rows[group][c] = {k: parts[k][i] for k in names}
        return {
            key: [s if s is not None else dict(self.empty[c]) for c, s in enumerate(row)]
            for key, row in zip(self.keys, rows, strict=True)
        }


class ColumnarPartial(Partial):
    """A Partial whose `groups` is built from `columns` on first access (see the module doc)."""

    __slots__ = ("columns",)

    def __init__(self, columns: Columns, series_touched: int = 0, points_scanned: int = 0):
        super().__init__(series_touched=series_touched, points_scanned=points_scanned)
        self.columns: Columns | None = columns

    @property  # type: ignore[override]
    def groups(self) -> dict[GroupKey, list[State]]:
        columns = self.columns
        if columns is not None:
            self.columns = None
            _SLOT.__set__(self, columns.per_group())
        value: dict[GroupKey, list[State]] = _SLOT.__get__(self, Partial)
        return value

    @groups.setter
    def groups(self, value: dict[GroupKey, list[State]]) -> None:
        # Partial.__init__ assigns `groups`; any assignment replaces the columnar form.
        self.columns = None
        _SLOT.__set__(self, value)


#: The `groups` slot of Partial itself, which the property above stands in front of.
_SLOT: Any = Partial.__dict__["groups"]


def group_count(partial: Partial) -> int:
    """len(partial.groups), without building the per-group form of a ColumnarPartial."""
    if isinstance(partial, ColumnarPartial) and partial.columns is not None:
        return len(partial.columns.keys)
    return len(partial.groups)
