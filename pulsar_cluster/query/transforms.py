"""Transformations over a finished series of (time, value) points, applied by the coordinator.

They run after aggregation and fill (InfluxDB's order): `derivative(mean(x), 1s)` differentiates
the window means; without an aggregate they run over the raw points of each group, merged by
time. Points with a null value are skipped. Each returns new (times, values) arrays.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from pulsar_cluster.errors import QueryError

__all__ = ["TRANSFORMS", "apply_transform"]

Series = tuple[np.ndarray, np.ndarray]


def _derivative(t: np.ndarray, v: np.ndarray, args: tuple[Any, ...], nonneg: bool) -> Series:
    unit = float(args[0]) if args else 1e9
    if len(t) < 2:
        return t[:0], v[:0].astype(np.float64)
    dt = np.diff(t).astype(np.float64)
    dv = np.diff(v.astype(np.float64))
    keep = dt > 0
    out_t, out_v = t[1:][keep], dv[keep] / dt[keep] * unit
    if nonneg:
        pos = out_v >= 0
        out_t, out_v = out_t[pos], out_v[pos]
    return out_t, out_v


def _difference(t: np.ndarray, v: np.ndarray, args: tuple[Any, ...], nonneg: bool) -> Series:
    if len(t) < 2:
        return t[:0], v[:0]
    out_t, out_v = t[1:], np.diff(v)
    if nonneg:
        pos = out_v >= 0
        out_t, out_v = out_t[pos], out_v[pos]
    return out_t, out_v


def _moving_average(t: np.ndarray, v: np.ndarray, args: tuple[Any, ...]) -> Series:
    n = int(args[0])
    if n < 1:
        raise QueryError("moving_average() window must be at least 1")
    if len(t) < n:
        return t[:0], v[:0].astype(np.float64)
    sums = np.convolve(v.astype(np.float64), np.ones(n), mode="valid")
    return t[n - 1 :], sums / n


def _elapsed(t: np.ndarray, v: np.ndarray, args: tuple[Any, ...]) -> Series:
    unit = int(args[0]) if args else 1
    if len(t) < 2:
        return t[:0], t[:0]
    return t[1:], np.diff(t) // unit


TRANSFORMS: dict[str, Callable[[np.ndarray, np.ndarray, tuple[Any, ...]], Series]] = {
    "derivative": lambda t, v, a: _derivative(t, v, a, False),
    "non_negative_derivative": lambda t, v, a: _derivative(t, v, a, True),
    "difference": lambda t, v, a: _difference(t, v, a, False),
    "non_negative_difference": lambda t, v, a: _difference(t, v, a, True),
    "moving_average": _moving_average,
    "cumulative_sum": lambda t, v, a: (t, np.cumsum(v)),
    "elapsed": _elapsed,
}


def apply_transform(name: str, t: np.ndarray, values: list[Any], args: tuple[Any, ...]) -> Series:
    present = [i for i, x in enumerate(values) if x is not None]
    if len(present) != len(values):
        t = t[present]
        values = [values[i] for i in present]
    if name != "elapsed" and any(isinstance(x, str | bool) for x in values):
        raise QueryError(f"{name}() is not defined for string or boolean values")
    v = np.asarray(values) if values else np.empty(0, dtype=np.float64)
    return TRANSFORMS[name](np.asarray(t, dtype=np.int64), v, args)
