"""Shared pieces of the block codecs: the error, the column encoding ids, a bounds-checked
reader, and per-thread zstd contexts.

Byte layouts: docs/format/encoding.md.
"""

from __future__ import annotations

import struct
import threading
from enum import IntEnum

import zstandard

__all__ = [
    "BlockFormatError",
    "ColumnEncoding",
    "Reader",
    "zstd_compress",
    "zstd_decompress",
    "U8",
    "U32",
    "I64",
    "U64",
]

U8 = struct.Struct("<B")
U32 = struct.Struct("<I")
I64 = struct.Struct("<q")
U64 = struct.Struct("<Q")


class BlockFormatError(ValueError):
    """The bytes are not a valid block: truncated, corrupted or of an unknown codec."""


class ColumnEncoding(IntEnum):
    """The first byte of every column section. On disk: never reuse or renumber one."""

    EMPTY = 0  # zero values; nothing follows
    INT_DELTA = 1  # i64 first | planes(zigzag(x[i] - x[i-1]))
    INT_DOD = 2  # i64 first | i64 first delta | planes(zigzag(delta-of-delta))
    FLOAT_DECIMAL = 3  # u8 exponent p | integer column of x * 10**p
    FLOAT_XOR = 4  # u64 first bits | planes(bits[i] ^ bits[i-1])
    BOOL_BITS = 5  # planes(0/1)
    STRING_LP = 6  # planes(byte lengths) | u8 mode | u32 length | UTF-8 bytes (maybe zstd)
    INT_DELTA_GCD = 7  # i64 first | u64 g | planes(zigzag((x[i] - x[i-1]) / g))
    INT_DOD_GCD = 8  # i64 first | i64 first delta | u64 g | planes(zigzag(dod / g))


class Reader:
    """A cursor over a block that raises BlockFormatError instead of reading past the end."""

    __slots__ = ("data", "end", "pos")

    def __init__(self, data: memoryview, pos: int, end: int) -> None:
        self.data = data
        self.pos = pos
        self.end = end

    def take(self, size: int) -> memoryview:
        start = self.pos
        stop = start + size
        if size < 0 or stop > self.end:
            raise BlockFormatError(f"block truncated: need {size} bytes at offset {start}")
        self.pos = stop
        return self.data[start:stop]

    def unpack(self, fmt: struct.Struct) -> int:
        start = self.pos
        if start + fmt.size > self.end:
            raise BlockFormatError(f"block truncated: need {fmt.size} bytes at offset {start}")
        self.pos = start + fmt.size
        return int(fmt.unpack_from(self.data, start)[0])

    def u8(self) -> int:
        pos = self.pos
        if pos >= self.end:
            raise BlockFormatError(f"block truncated: need 1 bytes at offset {pos}")
        self.pos = pos + 1
        return int(self.data[pos])  # one index, not a struct unpack: read several times a block


# zstd contexts are not safe to share between threads (flush and compaction may run at once),
# and creating one per call costs more than compressing a small plane: keep one per thread.
_local = threading.local()


def zstd_compress(data: bytes | memoryview, level: int, min_match: int | None = None) -> bytes:
    """One zstd frame with the content size in its header and no frame checksum (the block
    carries a crc32 over everything). min_match overrides the level's minimum match length."""
    # Parameters depend on the input size (zstd picks smaller tables for small inputs); one
    # compressor per (level, min_match, power-of-two size bucket) keeps that tuning.
    bucket = 1 << max(10, min(len(data), 1 << 24).bit_length())
    key = (level, min_match, bucket)
    cache = getattr(_local, "compressors", None)
    if cache is None:
        cache = _local.compressors = {}
    cctx = cache.get(key)
    if cctx is None:
        extra = {} if min_match is None else {"min_match": min_match}
        params = zstandard.ZstdCompressionParameters.from_level(
            level, source_size=bucket, write_checksum=0, write_content_size=1, **extra
        )
        cctx = cache[key] = zstandard.ZstdCompressor(compression_params=params)
    return cctx.compress(data)


def zstd_decompress(frame: memoryview, expected: int) -> bytes:
    """Decompress one frame that must expand to exactly `expected` bytes."""
    dctx = getattr(_local, "decompressor", None)
    if dctx is None:
        dctx = _local.decompressor = zstandard.ZstdDecompressor()
    try:
        # Check the declared size first so a corrupt header cannot make us allocate gigabytes.
        declared = zstandard.frame_content_size(frame)
        if declared != expected:
            raise BlockFormatError(f"zstd frame declares {declared} bytes, expected {expected}")
        out = dctx.decompress(frame)
    except zstandard.ZstdError as exc:
        raise BlockFormatError(f"zstd: {exc}") from exc
    if len(out) != expected:
        raise BlockFormatError(f"zstd frame gave {len(out)} bytes, expected {expected}")
    return out
