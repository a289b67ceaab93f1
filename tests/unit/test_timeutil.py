from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pulsar_cluster.timeutil import format_rfc3339, parse_duration, parse_rfc3339, parse_time


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
