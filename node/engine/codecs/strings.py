"""String columns: length-prefixed UTF-8 (STRING_LP).

The byte lengths go through the plane stream (most strings of a field have similar lengths, so
they pack to one byte or less each); the concatenated UTF-8 bytes follow, zstd-compressed when
that is smaller. Strings are Python objects, so encoding and decoding touch each one once; the
offsets are computed with numpy. UTF-8 is written with "surrogatepass" so that every Python
str, even one holding a lone surrogate, round-trips.

Byte layout: docs/format/encoding.md, section "STRING_LP".
"""

from __future__ import annotations

import numpy as np

from node.engine.codecs.base import (
    U32,
    BlockFormatError,
    ColumnEncoding,
    Reader,
    zstd_compress,
    zstd_decompress,
)
from node.engine.codecs.planes import decode_planes, encode_planes

__all__ = ["encode_string_column", "decode_string_column"]

_MODE_RAW = 0
_MODE_ZSTD = 1
_MAX_BLOB = 2**32 - 1


def encode_string_column(v: np.ndarray, level: int) -> bytes:
    if len(v) == 0:
        return bytes((ColumnEncoding.EMPTY,))
    encoded = [
        (s if isinstance(s, str) else str(s)).encode("utf-8", "surrogatepass") for s in v.tolist()
    ]
    lengths = np.fromiter(map(len, encoded), dtype=np.uint64, count=len(encoded))
    blob = b"".join(encoded)
    if len(blob) > _MAX_BLOB:
        raise ValueError(f"strings of one block total {len(blob)} bytes, over {_MAX_BLOB}")
    frame = zstd_compress(blob, level)
    if len(frame) < len(blob):
        body = bytes((_MODE_ZSTD,)) + U32.pack(len(frame)) + frame
    else:
        body = bytes((_MODE_RAW,)) + U32.pack(len(blob)) + blob
    return bytes((ColumnEncoding.STRING_LP,)) + encode_planes(lengths, level) + body


def decode_string_column(reader: Reader, n: int) -> np.ndarray:
    encoding = reader.u8()
    out = np.empty(n, dtype=object)
    if encoding == ColumnEncoding.EMPTY:
        if n:
            raise BlockFormatError(f"empty column in a block of {n} points")
        return out
    if n == 0:
        raise BlockFormatError("non-empty column in a block of 0 points")
    if encoding != ColumnEncoding.STRING_LP:
        raise BlockFormatError(f"unknown string column encoding {encoding}")
    lengths = decode_planes(reader, n)
    if int(lengths.max()) > _MAX_BLOB:
        raise BlockFormatError("string length out of range")
    ends = np.cumsum(lengths)
    total = int(ends[-1])
    mode = reader.u8()
    size = reader.unpack(U32)
    if mode == _MODE_RAW:
        blob = bytes(reader.take(size))
    elif mode == _MODE_ZSTD:
        blob = zstd_decompress(reader.take(size), total)
    else:
        raise BlockFormatError(f"unknown string body mode {mode}")
    if len(blob) != total:
        raise BlockFormatError(f"string bytes are {len(blob)} long, lengths add up to {total}")
    starts = (ends - lengths).tolist()
    stops = ends.tolist()
    try:
        text = blob.decode("utf-8", "surrogatepass")
        if len(text) == total:
            # All ASCII: byte offsets are character offsets, slice the decoded text.
            out[:] = [text[a:b] for a, b in zip(starts, stops, strict=True)]
        else:
            out[:] = [
                blob[a:b].decode("utf-8", "surrogatepass")
                for a, b in zip(starts, stops, strict=True)
            ]
    except UnicodeDecodeError as exc:
        raise BlockFormatError(f"string column is not valid UTF-8: {exc}") from exc
    return out
