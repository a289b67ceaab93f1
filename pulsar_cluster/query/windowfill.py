"""Filling a group's windows (InfluxQL `fill()`): one value per window of the range, in lists.

`fill_windows(finish, nwin, windows, values, is_count)` places a group's finalised rows (window
index `windows[i]` holds `values[i]`) on the dense grid of `nwin` windows and fills the rest by
the fill mode: `null` (None, or 0 for count(), as InfluxDB 1.x), `value` (the fill value),
`previous` (the last value before), `linear` (interpolated between two values; strings and
booleans are not). Both finalising paths use it: the per-group one (finish.py `_fill`) and the
batched one (finishrows.py `window_series`).

Plain lists, not numpy: a small answer (a few dozen windows) costs a few microseconds this way,
where numpy's fixed cost per call (about 1 us) was most of the work.
"""

from __future__ import annotations

import itertools
from typing import Any

__all__ = ["fill_windows"]


def fill_windows(
    finish: Any, nwin: int, windows: list[int], values: list[Any], is_count: bool = False
) -> list[Any]:
    """The `nwin` values of the grid (a new list); rows outside [0, nwin) are dropped."""
    mode = finish.fill
    if (
        len(windows) == nwin
        and windows == list(range(nwin))
        and (mode == "null" or None not in values)
    ):
        # every window has a value and none is null: nothing to fill, whatever the fill mode
        # (the common case of a small GROUP BY time query)
        return list(values)
    # count() of an empty window is 0, not null (InfluxDB 1.x, influxdata/influxdb#7352)
    empty = 0 if is_count and mode == "null" else None
    dense: list[Any] = [empty] * nwin
    for i, v in zip(windows, values, strict=True):
        if 0 <= i < nwin:
            dense[i] = v
    if mode == "value":
        dense = [finish.fill_value if v is None else v for v in dense]
    elif mode == "previous":
        last = None
        for i, v in enumerate(dense):
            if v is None:
                dense[i] = last
            else:
                last = v
    elif mode == "linear":
        known = [i for i, v in enumerate(dense) if v is not None]
        for a, b in itertools.pairwise(known):
            if b - a > 1 and not isinstance(dense[a], str | bool):
                step = (dense[b] - dense[a]) / (b - a)
                for i in range(a + 1, b):
                    dense[i] = dense[a] + step * (i - a)
    return dense
