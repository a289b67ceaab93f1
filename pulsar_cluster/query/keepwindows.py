"""Which windows of a `GROUP BY time()` query its LIMIT/OFFSET can return (Plan.keep).

With fill(null) (the default) or fill(<value>), no transformation and no multi-row aggregate,
every group (every series of the answer) answers exactly one row per window of the query's
range, in window order (pulsar_cluster/query/finish.py `_fill`, finishrows.py
`window_series`); ORDER BY time DESC reverses them, then OFFSET and LIMIT cut the same window
range out of every group. Only those windows need reading and reducing at the shards: TSBS's
groupby-orderby-limit (`... GROUP BY time(1m) ORDER BY time DESC LIMIT 5` over 12 hours) keeps
5 of up to 720 windows.

The coordinator still finalises over the whole range's grid, so the rows of the kept windows
are computed as before and the others, filled, are cut by the LIMIT. What the shards must keep
exact is which groups exist: a group with a point anywhere in the range answers (null rows in
the kept windows if need be). node/querykeep.py does that.

Left on the general path (no `keep`): fill(none) (empty windows are dropped, so which windows
the LIMIT returns depends on the data), fill(previous)/fill(linear) (values carried from other
windows), transformations (derivative, moving_average, ...: computed across windows), top(),
bottom() and distinct() (several rows per window, no fill), field predicates (kept out so that
an error a predicate raises on points outside the kept windows is raised as before), and a
LIMIT that keeps every window anyway.

`PUSHDOWN` turns it off (tests compare answers with and without it).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

__all__ = ["PUSHDOWN", "kept_windows"]

#: False: plans never carry `keep` (every shard reduces every window, as before).
PUSHDOWN = True
#: Aggregates answering several rows per window (finish.py MULTI_ROW) and "points" (the input
#: of a transformation): their rows are not one per window.
_NOT_ONE_ROW = frozenset(("top", "bottom", "distinct", "points"))


def kept_windows(
    items: Sequence[Any],
    fill: str,
    has_field_predicate: bool,
    descending: bool,
    limit: int,
    offset_rows: int,
    nwin: int,
) -> tuple[int, int] | None:
    """The window range [lo, hi) (indices from the plan's window origin; `nwin` windows in
    all) that LIMIT `limit` OFFSET `offset_rows` can return, or None when every window must be
    computed (see the module's notes)."""
    if not PUSHDOWN or limit <= 0 or nwin <= 0 or fill not in ("null", "value"):
        return None
    if has_field_predicate:
        return None
    for item in items:
        if item.transform is not None or item.fn is None or item.fn in _NOT_ONE_ROW:
            return None
    if descending:  # rows newest first: the last windows
        hi = nwin - offset_rows
        lo = max(0, hi - limit)
    else:
        lo = offset_rows
        hi = min(nwin, offset_rows + limit)
    if lo >= hi or (lo == 0 and hi == nwin):
        return None  # no row at all, or every window: nothing to narrow
    return lo, hi
