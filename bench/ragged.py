"""Vectorised assembly of text lines from a byte vocabulary (no Python object per line).

A line is a fixed sequence of K segments; segment k of line i is token `ids[i, k]` of one shared
vocabulary (a flat byte pool plus start/length per token). `assemble` concatenates all segments of
all lines in one numpy gather: for every output byte it computes which pool byte to copy. The cost
is a few numpy passes over the output bytes, so generating a gigabyte of line protocol takes
seconds, not the minutes a per-line `b"".join` would take.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

__all__ = ["Vocabulary", "assemble"]


class Vocabulary:
    """An append-only list of byte tokens stored as one flat pool; tokens are numbered from 0."""

    def __init__(self, tokens: Sequence[bytes] = ()) -> None:
        self._tokens: list[bytes] = list(tokens)
        self._frozen: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None

    def add(self, token: bytes) -> int:
        """Append `token`; returns its id."""
        self._tokens.append(token)
        self._frozen = None
        return len(self._tokens) - 1

    def add_many(self, tokens: Sequence[bytes]) -> np.ndarray:
        """Append `tokens`; returns their ids as an int64 array (consecutive)."""
        first = len(self._tokens)
        self._tokens.extend(tokens)
        self._frozen = None
        return np.arange(first, first + len(tokens), dtype=np.int64)

    def copy(self) -> Vocabulary:
        """A new vocabulary with the same tokens (same ids), to extend independently."""
        return Vocabulary(self._tokens)

    def __len__(self) -> int:
        return len(self._tokens)

    def arrays(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(pool uint8, start int64 per token, length int64 per token); cached until an add."""
        if self._frozen is None:
            lengths = np.fromiter((len(t) for t in self._tokens), np.int64, len(self._tokens))
            starts = np.zeros(len(lengths), np.int64)
            if len(lengths):
                np.cumsum(lengths[:-1], out=starts[1:])
            pool = np.frombuffer(b"".join(self._tokens), np.uint8)
            self._frozen = (pool, starts, lengths)
        return self._frozen


def assemble(vocab: Vocabulary, ids: np.ndarray) -> bytes:
    """Concatenate, line by line and segment by segment, the tokens `ids` (shape [lines, K])."""
    pool, starts, lengths = vocab.arrays()
    flat = np.ascontiguousarray(ids, dtype=np.int64).ravel()
    if flat.size == 0:
        return b""
    seg_len = lengths[flat]
    out_start = np.zeros(flat.size, np.int64)
    np.cumsum(seg_len[:-1], out=out_start[1:])
    total = int(out_start[-1] + seg_len[-1])
    # For output byte p inside segment s: source = starts[token s] + (p - out_start[s]).
    # np.repeat spreads the per-segment shift to every byte of the segment; empty tokens repeat 0x.
    shift = np.repeat(starts[flat] - out_start, seg_len)
    shift += np.arange(total, dtype=np.int64)
    return pool[shift].tobytes()
