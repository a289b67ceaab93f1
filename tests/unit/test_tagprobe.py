"""The tag-key probe's header encoding, the coordinator's tag-key cache and the probe check."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from coordinator.cluster import _check_probe
from pulsar_cluster.tagprobe import (
    StaleTagKeysError,
    TagKeyCache,
    decode_names,
    encode_names,
)


@given(st.lists(st.text(), max_size=20))
def test_names_survive_the_header_encoding(names: list[str]) -> None:
    value = encode_names(names)
    assert value.isascii() and "\r" not in value and "\n" not in value  # a valid header value
    assert decode_names(value) == sorted(names)


@pytest.mark.parametrize("value", ["", "%7B%7D", "%5B1%5D", "not json", "%5B%22a%22", "%ff"])
def test_bad_header_values_are_refused(value: str) -> None:
    with pytest.raises(ValueError, match="JSON array of names"):
        decode_names(value)


def test_the_cache_is_bounded_and_forgets() -> None:
    cache = TagKeyCache(max_entries=3)
    for i in range(5):
        cache.put("db", f"m{i}", [f"k{i}"])
    assert len(cache) == 3
    assert cache.get("db", "m0") is None and cache.get("db", "m1") is None
    assert cache.get("db", "m4") == frozenset({"k4"})
    cache.put("db", "m4", ["a", "b"])  # replacing keeps the size
    assert len(cache) == 3 and cache.get("db", "m4") == frozenset({"a", "b"})
    cache.forget("db", "m4")
    assert cache.get("db", "m4") is None and len(cache) == 2


@given(
    st.dictionaries(st.sampled_from("abcdef"), st.booleans(), min_size=1),
    st.lists(st.sets(st.sampled_from("abcdef")), min_size=1, max_size=4),
)
def test_the_probe_check_passes_exactly_when_the_nodes_agree(
    assumed: dict[str, bool], per_node: list[set[str]]
) -> None:
    # each node answers the probed names that are tag keys there
    answers: list[list[str] | None] = [sorted(n & set(assumed)) for n in per_node]
    truth = set().union(*per_node) & set(assumed)
    agrees = truth == {k for k, is_tag in assumed.items() if is_tag}
    if agrees:
        _check_probe(assumed, answers)
    else:
        with pytest.raises(StaleTagKeysError):
            _check_probe(assumed, answers)
    with pytest.raises(StaleTagKeysError):  # a node that did not answer the probe
        _check_probe(assumed, [*answers, None])
