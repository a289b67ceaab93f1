"""Turning column data into the response shape: series with columns and row values."""

from __future__ import annotations

from typing import Any

import numpy as np

from pulsar_cluster.nodeapi import SeriesData
from pulsar_cluster.series import split_series_key

__all__ = ["raw_series_rows"]


def raw_series_rows(series: list[SeriesData], limit: int | None) -> list[dict[str, Any]]:
    """`{"name", "tags", "columns": ["time", f...], "values": [[t, v...], ...]}` per series.

    Rows are the union of the fields' timestamps, ascending; a field with no value at a time
    gives null there.
    """
    out = []
    for data in sorted(series, key=lambda s: s.key):
        names = sorted(data.columns)
        if not names:
            continue
        stamps = np.unique(np.concatenate([data.columns[n].timestamps for n in names]))
        if limit is not None:
            stamps = stamps[:limit]
        columns: list[list[Any]] = [stamps.tolist()]
        for name in names:
            col = data.columns[name]
            pos = np.searchsorted(stamps, col.timestamps)
            inside = pos < len(stamps)
            inside[inside] = stamps[pos[inside]] == col.timestamps[inside]
            filled: list[Any] = [None] * len(stamps)
            for p, v in zip(pos[inside].tolist(), col.values[inside].tolist(), strict=True):
                filled[p] = v
            columns.append(filled)
        measurement, tags = split_series_key(data.key)
        out.append(
            {
                "name": measurement,
                "tags": tags,
                "columns": ["time", *names],
                "values": [list(row) for row in zip(*columns, strict=True)],
            }
        )
    return out
