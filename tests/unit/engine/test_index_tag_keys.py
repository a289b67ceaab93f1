"""SeriesIndex.tag_keys keeps its sorted answer between calls: it must follow every series
added and removed exactly as a fresh computation from the series would."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from node.engine.index import SeriesIndex, storage_key
from pulsar_cluster.series import SEP, make_series_key

_TAGS = st.dictionaries(
    st.sampled_from(["host", "region", "rack", "os", "é"]), st.sampled_from(["a", "b"]), max_size=3
)
_SERIES = st.tuples(st.sampled_from(["cpu", "mem"]), _TAGS).map(
    lambda m_tags: storage_key("db", make_series_key(m_tags[0], m_tags[1]))
)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.booleans(), _SERIES), max_size=30))
def test_tag_keys_follow_every_add_and_remove(steps: list[tuple[bool, bytes]]) -> None:
    index = SeriesIndex()
    alive: set[bytes] = set()
    for add, skey in steps:
        if add:
            index.add_series(skey)
            alive.add(skey)
        else:
            index.remove_database_series([skey])
            alive.discard(skey)
        for measurement in ("cpu", "mem"):
            expected = sorted(
                {
                    key
                    for s in alive
                    if s.split(SEP)[1] == measurement.encode()
                    for key in (k.decode() for k in s.split(SEP)[2::2])
                }
            )
            got = index.tag_keys("db", measurement)
            assert got == expected
            got.append("caller's own copy")  # must not change what the index answers next
            assert index.tag_keys("db", measurement) == expected
