"""window_start (compile_select checks the window bound before it builds the Plan) is
window_origin of a plan with the same fields."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from pulsar_cluster.query.plan import MAX_TIME, MIN_TIME, Plan, window_origin, window_start

TIMES = st.one_of(st.integers(MIN_TIME, MAX_TIME), st.sampled_from([MIN_TIME, 0, MAX_TIME]))


@given(start=TIMES, every=st.integers(-5, 10**15), offset=st.integers(-(10**15), 10**15))
def test_window_start_is_window_origin(start: int, every: int, offset: int) -> None:
    plan = Plan(kind="select", database="d", start=start, every=every, offset=offset)
    assert window_start(start, every, offset) == window_origin(plan)
