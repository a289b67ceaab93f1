"""finalize's window filling against a naive reference: every fill mode, windows with and
without values (all present: the shortcut; gaps and nulls: the general path)."""

from __future__ import annotations

import itertools
from typing import Any

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from pulsar_cluster.query.finish import Finish, _fill

MODES = st.sampled_from(["null", "previous", "linear", "value"])


def naive(mode: str, nwin: int, rows: dict[int, Any], is_count: bool) -> list[Any]:
    empty = 0 if is_count and mode == "null" else None
    dense = [rows.get(i, empty) for i in range(nwin)]
    if mode == "value":
        return [-1 if v is None else v for v in dense]
    if mode == "previous":
        out, last = [], None
        for v in dense:
            last = v if v is not None else last
            out.append(last)
        return out
    if mode == "linear":
        known = [i for i, v in enumerate(dense) if v is not None]
        for a, b in itertools.pairwise(known):
            for i in range(a + 1, b):
                dense[i] = dense[a] + (dense[b] - dense[a]) / (b - a) * (i - a)
    return dense


@settings(max_examples=300, deadline=None)
@given(
    mode=MODES,
    nwin=st.integers(0, 12),
    values=st.lists(st.one_of(st.none(), st.integers(-9, 9)), max_size=12),
    full=st.booleans(),
    is_count=st.booleans(),
)
def test_fill_matches_the_naive_reference(mode, nwin, values, full, is_count) -> None:
    if full:  # every window present (the shortcut's case when no value is null)
        values = (values + [0] * nwin)[:nwin]
        windows = list(range(nwin))
    else:
        windows = sorted(set(range(0, nwin, 2)))
        values = (values + [1] * nwin)[: len(windows)]
    finish = Finish(fill=mode, fill_value=-1)
    times, got = _fill(finish, 100, 10, nwin, np.array(windows, dtype=np.int64), values, is_count)
    want = naive(mode, nwin, dict(zip(windows, values, strict=True)), is_count)
    assert times.tolist() == [100 + 10 * i for i in range(nwin)]
    assert got == want
