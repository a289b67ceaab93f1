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

from pulsar_cluster.errors import QueryError
from pulsar_cluster.query.partial import (
    PARTIAL_MAGIC,
    GroupKey,
    Partial,
    decode_partial,
    encode_partial,
    pack_body,
    unpack_body,
)
from pulsar_cluster.query.plan import Plan
from pulsar_cluster.query.states import State, concat_states, kind_for

__all__ = [
    "ColumnarPartial",
    "Columns",
    "group_count",
    "merge_columns",
    "encode_any",
    "decode_any",
    "COLUMNAR_VERSION",
]

#: Version byte of a partial frame whose aggregate groups are columnar (key `c`); frames
#: without columnar groups keep version 1.
COLUMNAR_VERSION = 2


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


# --- merge and wire form (docs/format/partials.md, version 2) -----------------------------------


def merge_columns(plan: Plan, partials: list[Partial]) -> ColumnarPartial | None:
    """`partial.merge` of columnar partials, kept columnar: the rows of every partial, their
    `w` moved to the place of their group in the union of the keys, reduced per column by the
    column's kind (the same rule as the per-group merge). None when a partial is not
    columnar, or a column's arrays differ in type between partials (the per-group merge then
    decides, as it always did)."""
    cols: list[Columns] = []
    for p in partials:
        if not isinstance(p, ColumnarPartial) or p.columns is None or p.raw or p.meta:
            return None
        cols.append(p.columns)
    if not cols:
        return None
    touched = sum(p.series_touched for p in partials)
    scanned = sum(p.points_scanned for p in partials)
    if len(cols) == 1:
        return ColumnarPartial(cols[0], series_touched=touched, points_scanned=scanned)
    keys = sorted(set().union(*(c.keys for c in cols)))
    place = {k: i for i, k in enumerate(keys)}
    moves = [np.array([place[k] for k in c.keys], dtype=np.int64) for c in cols]
    states: list[State | None] = []
    for i, spec in enumerate(plan.columns):
        parts = []
        for c, move in zip(cols, moves, strict=True):
            state = c.states[i]
            if state is not None:
                parts.append({**state, "w": move[state["w"]]})
        if not parts:
            states.append(None)
            continue
        if any(len({p[k].dtype for p in parts}) != 1 for k in parts[0]):
            return None
        merged = parts[0] if len(parts) == 1 else concat_states(parts)
        states.append(kind_for(spec.fn).reduce(merged, spec.args))
    columns = Columns(keys, states, cols[0].empty)
    return ColumnarPartial(columns, series_touched=touched, points_scanned=scanned)


def encode_any(p: Partial, plan: Plan) -> bytes:
    """The wire form of `p`: version 2 (key `c`) for a columnar partial, else version 1
    (`encode_partial`)."""
    if not isinstance(p, ColumnarPartial) or p.columns is None:
        return encode_partial(p)
    c = p.columns
    body = {
        "g": [],
        "r": [],
        "m": {},
        "ps": p.points_scanned,
        "st": p.series_touched,
        "c": {
            "k": [[list(kv) for kv in key] for key in c.keys],
            "f": [col.fn for col in plan.columns],
            "s": c.states,
        },
    }
    return PARTIAL_MAGIC + bytes([COLUMNAR_VERSION]) + pack_body(body)


def decode_any(data: bytes) -> Partial:
    """A partial of either version (a ColumnarPartial for version 2)."""
    if len(data) < 5 or data[:4] != PARTIAL_MAGIC or data[4] != COLUMNAR_VERSION:
        return decode_partial(data)
    body = unpack_body(data[5:], "partial")
    try:
        c = body["c"]
        keys = [tuple((k, v) for k, v in key) for key in c["k"]]
        fns = [str(fn) for fn in c["f"]]
        states = list(c["s"])
        if len(states) != len(fns) or body["g"] or body["r"] or body["m"]:
            raise ValueError("columns and functions differ in number, or groups besides")
        for fn, state in zip(fns, states, strict=True):
            if state is not None and set(state) != set(kind_for(fn).keys):
                raise ValueError(f"a columnar {fn} state has keys {sorted(state)}")
            if state is not None and any(
                not isinstance(a, np.ndarray) or len(a) != len(state["w"]) for a in state.values()
            ):
                raise ValueError("a columnar state's arrays differ in length")
            if (
                state is not None
                and len(state["w"])
                and (state["w"].min() < 0 or state["w"].max() >= len(keys))
            ):
                raise ValueError("a row's group index is out of range")
        empty = [{k: np.empty(0, np.int64) for k in kind_for(fn).keys} for fn in fns]
        columns = Columns(keys, states, empty)
        return ColumnarPartial(columns, int(body["st"]), int(body["ps"]))
    except (KeyError, TypeError, ValueError, IndexError) as exc:
        raise QueryError(f"malformed partial: {exc!r}") from None
