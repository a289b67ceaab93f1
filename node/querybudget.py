"""What every node-side query executor shares: the plan's budget and the group of a series.

node/query.py (the general executor) and node/lastquery.py (last() over all time) both bound a
query by its points and time limits and group series by their tags; one implementation here.
"""

from __future__ import annotations

import time

from pulsar_cluster.errors import LimitExceededError
from pulsar_cluster.query.partial import GroupKey
from pulsar_cluster.query.plan import Plan
from pulsar_cluster.series import SEP, split_series_key

__all__ = ["Budget", "group_key", "series_group"]


class Budget:
    """The plan's point limit (`read`, before each block is decoded) and time limit (`tick`);
    `note` counts points without the limit."""

    def __init__(self, plan: Plan) -> None:
        self.limits = plan.limits
        self.deadline = time.monotonic() + plan.limits.timeout_ms / 1000.0
        self.points = 0

    def read(self, n: int) -> None:
        self.points += n
        if self.points > self.limits.max_points:
            raise LimitExceededError(
                f"query reads more than {self.limits.max_points} points; narrow the time range "
                "or the series",
                limit="max_points",
            )

    def note(self, n: int) -> None:
        """Count points read by a read whose size is bounded by its own shape, not by the
        query's range or the data's age (the newest block of one field: node/lastquery.py):
        reported as scanned, not refused by the point limit, which is there to stop reads
        that grow with the data. The time limit (`tick`) still bounds many of them."""
        self.points += n

    def tick(self) -> None:
        if time.monotonic() > self.deadline:
            raise LimitExceededError(
                f"query exceeded its time limit of {self.limits.timeout_ms} ms",
                limit="timeout_ms",
            )


def group_key(tags: dict[str, str], group_by: tuple[str, ...] | None) -> GroupKey:
    """The group of a series with `tags` (GROUP BY * when `group_by` is None)."""
    if group_by is None:
        return tuple(sorted(tags.items()))
    return tuple((k, tags.get(k, "")) for k in group_by)


#: (series key, group-by) -> group key: parsing a series key costs about 8 us, most of what a
#: series answered from a cache costs (2 ms per lastpoint query of 1000 series). Bounded;
#: emptied when full (a series key never changes its tags).
_GROUP_KEYS: dict[tuple[bytes, tuple[str, ...] | None], GroupKey] = {}
_GROUP_KEYS_MAX = 200_000


def series_group(skey: bytes, group_by: tuple[str, ...] | None) -> GroupKey:
    """The group of the series with storage key `skey`, memoised."""
    memo = (skey, group_by)
    key = _GROUP_KEYS.get(memo)
    if key is None:
        if len(_GROUP_KEYS) >= _GROUP_KEYS_MAX:
            _GROUP_KEYS.clear()
        tags = split_series_key(skey.partition(SEP)[2])[1]
        key = _GROUP_KEYS[memo] = group_key(tags, group_by)
    return key
