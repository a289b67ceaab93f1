"""Cache statistics documents: totals are exact sums, against a naive reference."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pulsar_cluster.cachestats import (
    caches_selected,
    check_cache_name,
    node_document,
    total_caches,
)

KEYS = ("entries", "bytes", "hits", "misses")
stats = st.fixed_dictionaries({k: st.integers(0, 10**12) for k in KEYS})
shard_doc = st.fixed_dictionaries(
    {"block_cache": stats, "last_value_cache": st.one_of(st.none(), stats)}
)


@given(st.lists(shard_doc, max_size=20))
def test_totals_are_sums_per_cache_and_key(docs: list[dict]) -> None:
    total = total_caches(docs)
    for cache in ("block_cache", "last_value_cache"):
        present = [d[cache] for d in docs if d[cache] is not None]
        if not present:
            assert total[cache] is None
            continue
        for key in KEYS:
            assert total[cache][key] == sum(p[key] for p in present)
        lookups = total[cache]["hits"] + total[cache]["misses"]
        ratio = total[cache]["hit_ratio"]
        assert ratio is None if lookups == 0 else ratio == round(total[cache]["hits"] / lookups, 4)


@given(st.dictionaries(st.text("0123456789", min_size=1, max_size=3), shard_doc, max_size=8))
def test_node_totals_add_up_again_at_the_coordinator(shards: dict) -> None:
    node = node_document(shards)
    assert node["shards"] == shards
    # Totals of totals equal totals of all shards (the coordinator adds node totals).
    again = total_caches([node["totals"]])
    direct = total_caches(shards.values())
    assert again == direct


def test_cache_names() -> None:
    assert caches_selected(check_cache_name("all")) == (True, True)
    assert caches_selected(check_cache_name("block")) == (True, False)
    assert caches_selected(check_cache_name("last_value")) == (False, True)
    with pytest.raises(ValueError, match="unknown cache 'x': use all, block, last_value"):
        check_cache_name("x")
