"""The vectorised line assembler against a naive b"".join."""

from __future__ import annotations

import numpy as np
from hypothesis import given
from hypothesis import strategies as st

from bench.ragged import Vocabulary, assemble


@given(
    tokens=st.lists(st.binary(max_size=12), min_size=1, max_size=30),
    data=st.data(),
)
def test_assemble_matches_naive_join(tokens: list[bytes], data: st.DataObject) -> None:
    vocab = Vocabulary(tokens)
    k = data.draw(st.integers(1, 5))
    n = data.draw(st.integers(0, 20))
    ids = data.draw(
        st.lists(
            st.lists(st.integers(0, len(tokens) - 1), min_size=k, max_size=k),
            min_size=n,
            max_size=n,
        )
    )
    arr = np.array(ids, dtype=np.int64).reshape(n, k)
    expected = b"".join(tokens[i] for row in ids for i in row)
    assert assemble(vocab, arr) == expected


def test_add_invalidates_cache_and_copy_is_independent() -> None:
    v = Vocabulary([b"a"])
    assert assemble(v, np.array([[0, 0]])) == b"aa"
    i = v.add(b"xyz")
    assert assemble(v, np.array([[i, 0]])) == b"xyza"
    w = v.copy()
    j = w.add(b"!")
    assert assemble(w, np.array([[j, i]])) == b"!xyz"
    assert len(v) == 2 and len(w) == 3
