from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pulsar_cluster.timeutil import (
    format_rfc3339,
    format_rfc3339_many,
    parse_duration,
    parse_rfc3339,
    parse_time,
)


def test_rfc3339_variants() -> None:
    assert parse_rfc3339("2026-01-01T00:00:00Z") == 1_767_225_600_000_000_000
    assert parse_rfc3339("2026-01-01T01:00:00+01:00") == 1_767_225_600_000_000_000
    assert parse_rfc3339("2026-01-01T00:00:00.000000001Z") == 1_767_225_600_000_000_001
    assert parse_rfc3339("2026-01-01") == 1_767_225_600_000_000_000
    assert parse_time("5") == 5 and parse_time(7) == 7
    with pytest.raises(ValueError):
        parse_rfc3339("2026-13-01T00:00:00Z")
    with pytest.raises(ValueError):
        parse_time(True)


def test_durations() -> None:
    assert parse_duration("1h30m") == 5_400_000_000_000
    assert parse_duration("500ms") == 500_000_000
    assert parse_duration("2w") == 14 * 86_400 * 10**9
    for bad in ("", "5", "1x", "m5"):
        with pytest.raises(ValueError):
            parse_duration(bad)


@given(st.integers(min_value=0, max_value=2**62))
def test_format_parse_round_trip(ns: int) -> None:
    assert parse_rfc3339(format_rfc3339(ns)) == ns


_INT64 = st.integers(min_value=-(2**63), max_value=2**63 - 1)


@given(
    st.lists(
        st.one_of(
            _INT64,
            # whole seconds and whole minutes, whose zeros must all go
            st.integers(-(2**33), 2**33).map(lambda s: s * 1_000_000_000),
            st.integers(-(2**27), 2**27).map(lambda m: m * 60_000_000_000),
        ),
        max_size=40,
    )
)
def test_many_times_format_as_one_by_one(ns: list[int]) -> None:
    """format_rfc3339_many is format_rfc3339 on each value, over all of int64 (numpy's NaT
    value included)."""
    assert format_rfc3339_many(ns) == [format_rfc3339(t) for t in ns]


def test_influxql_time_columns_are_formatted_alike_short_or_long() -> None:
    from coordinator.api.influxql import format_times

    times = [1_767_225_600_000_000_000 + i * 1_500_000_000 for i in range(20)]
    for n in (1, 7, 8, 20):
        series = [{"columns": ["time", "v"], "values": [[t, 1] for t in times[:n]]}]
        format_times(series, None)
        assert [row[0] for row in series[0]["values"]] == [format_rfc3339(t) for t in times[:n]]
        ms = [{"columns": ["time", "v"], "values": [[t, 1] for t in times[:n]]}]
        format_times(ms, "ms")
        assert [row[0] for row in ms[0]["values"]] == [t // 1_000_000 for t in times[:n]]
