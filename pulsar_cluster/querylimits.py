"""`--query-max-*` flags of the coordinator roles: the per-query bounds of docs/api.md.

One flag per field of pulsar_cluster.query.plan.Limits (env `PULSAR_QUERY_MAX_POINTS`, ...,
TOML `query_max_points = ...`); unset flags keep the built-in default. They can change at
runtime with a configuration reload (pulsar_cluster/reload.py).
"""

from __future__ import annotations

import argparse
import dataclasses

from pulsar_cluster.query.plan import Limits

__all__ = ["QUERY_LIMIT_KEYS", "add_query_limit_flags", "query_limits"]

_DEFAULTS = Limits()
#: flag dest -> Limits field
QUERY_LIMIT_KEYS = {
    "query_max_points": "max_points",
    "query_max_series": "max_series",
    "query_max_windows": "max_windows",
    "query_max_rows": "max_rows",
    "query_timeout_ms": "timeout_ms",
}
_HELP = {
    "max_points": "points one query may read",
    "max_series": "series one query may match",
    "max_windows": "GROUP BY time windows of one query",
    "max_rows": "rows in one answer",
    "timeout_ms": "wall time of one query, ms",
}


def add_query_limit_flags(p: argparse.ArgumentParser) -> None:
    for dest, name in QUERY_LIMIT_KEYS.items():
        default = getattr(_DEFAULTS, name)
        p.add_argument(
            "--" + dest.replace("_", "-"),
            type=int,
            default=default,
            help=f"{_HELP[name]} (default {default}; 422 beyond it)",
        )


def query_limits(args: argparse.Namespace) -> Limits:
    """Limits from the flags; ValueError naming a flag that is not positive."""
    values = {}
    for dest, name in QUERY_LIMIT_KEYS.items():
        value = int(getattr(args, dest))
        if value <= 0:
            raise ValueError(f"--{dest.replace('_', '-')} must be positive, got {value}")
        values[name] = value
    return dataclasses.replace(_DEFAULTS, **values)
