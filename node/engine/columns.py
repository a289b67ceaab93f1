"""Merging of timestamped columns with last-write-wins: the one rule every read path shares."""

from __future__ import annotations

import numpy as np

__all__ = ["merge_last_wins", "time_slice"]


def merge_last_wins(
    parts: list[tuple[np.ndarray, np.ndarray]],
) -> tuple[np.ndarray, np.ndarray]:
    """Merge (timestamps, values) parts, oldest first, into sorted unique timestamps.

    Where a timestamp appears more than once, the value from the latest part (and within a
    part, the latest position) wins: that is the overwrite rule of the data model.
    """
    if len(parts) == 1:
        ts, values = parts[0]
        if len(ts) < 2 or bool(np.all(ts[1:] > ts[:-1])):
            return ts, values
    ts = np.concatenate([p[0] for p in parts]) if len(parts) > 1 else parts[0][0]
    values = np.concatenate([p[1] for p in parts]) if len(parts) > 1 else parts[0][1]
    if len(ts) < 2 or bool(np.all(ts[1:] > ts[:-1])):
        # The common case (consecutive blocks of a table, memtable chunks written in time
        # order): one vectorised check instead of a sort.
        return ts, values
    order = np.argsort(ts, kind="stable")
    ts = ts[order]
    values = values[order]
    keep = np.empty(len(ts), dtype=bool)
    keep[-1] = True
    np.not_equal(ts[1:], ts[:-1], out=keep[:-1])
    if bool(keep.all()):
        return ts, values
    return ts[keep], values[keep]


def time_slice(
    ts: np.ndarray, values: np.ndarray, start: int, end: int
) -> tuple[np.ndarray, np.ndarray]:
    """The points with start <= t < end of a sorted column."""
    lo = int(np.searchsorted(ts, start, side="left"))
    hi = int(np.searchsorted(ts, end, side="left"))
    return ts[lo:hi], values[lo:hi]
