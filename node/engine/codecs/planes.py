"""Byte planes: how every integer-like stream (zigzag deltas, XORed float bits, lengths, booleans)
is stored.

A stream of m unsigned 64-bit values is cut into its 8 little-endian byte planes: plane i holds
byte i of every value. Planes that are zero everywhere are not stored at all (a bit in a mask
says which are), which is how small deltas end up as one-byte or two-byte integers. A stored
plane is packed at the narrowest of 1, 2, 4 or 8 bits per value that holds its largest byte,
then kept raw or zstd-compressed, whichever is smaller.

Why planes rather than one zstd frame over the integers: zstd codes all literals of a frame with
one Huffman table, so mixing the nearly random low bytes with the nearly constant high bytes
wastes bits; one frame per plane gives each its own table. Why sub-byte packing: with few
distinct small values (TSBS-like deltas are mostly -2..2) zstd's Huffman coder cannot go below
one bit per byte and its matcher finds costly short matches; packing 2 or 4 values per byte
lets the Huffman table code pairs or quads, which lands close to the entropy.

Byte layout: docs/format/encoding.md, section "Plane stream".
"""

from __future__ import annotations

import numpy as np

from node.engine.codecs.base import U32, BlockFormatError, Reader, zstd_compress, zstd_decompress

__all__ = ["encode_planes", "decode_planes", "decode_planes_narrow"]

_MODE_RAW = 0
_MODE_ZSTD = 1
_WIDTHS = (1, 2, 4, 8)  # bits per value of a packed plane, indexed by the 2-bit width code
_U64 = np.dtype("<u8")


def _width_code(top: int) -> int:
    if top < 2:
        return 0
    if top < 4:
        return 1
    if top < 16:
        return 2
    return 3


def _pack(plane: np.ndarray, bits: int) -> bytes:
    """Pack uint8 values < 2**bits, value j of a byte in bits [j*bits, (j+1)*bits)."""
    if bits == 8:
        return plane.tobytes()
    if bits == 1:
        return np.packbits(plane, bitorder="little").tobytes()
    per = 8 // bits
    pad = -len(plane) % per
    if pad:
        plane = np.concatenate([plane, np.zeros(pad, np.uint8)])
    groups = plane.reshape(-1, per)
    out = groups[:, 0].copy()
    for j in range(1, per):
        out |= groups[:, j] << np.uint8(j * bits)
    return out.tobytes()


def _unpack_table(bits: int) -> np.ndarray:
    """byte -> its 8 // bits values, one per byte, as one 2- or 4-byte element per byte."""
    per = 8 // bits
    byte = np.arange(256, dtype=np.uint8)
    table = np.empty((256, per), dtype=np.uint8)
    for j in range(per):
        table[:, j] = (byte >> np.uint8(j * bits)) & np.uint8((1 << bits) - 1)
    return table.view(np.uint32 if per == 4 else np.uint16).reshape(256)


# One gather per plane instead of a shift and a mask per value of a byte: each byte's values
# are looked up at once (a 256-entry table of 2 or 4 bytes each) and the gathered elements,
# viewed as bytes, are the values in order (a gather copies elements bit for bit, so this
# does not depend on the machine's byte order). A 2-bit plane of 4096 values: 9 -> 2 us.
_UNPACK_TABLES = {2: _unpack_table(2), 4: _unpack_table(4)}


def _unpack(packed: bytes | memoryview, bits: int, m: int) -> np.ndarray:
    raw = np.frombuffer(packed, dtype=np.uint8)
    if bits == 8:
        return raw
    if bits == 1:
        return np.unpackbits(raw, count=m, bitorder="little")
    return _UNPACK_TABLES[bits].take(raw).view(np.uint8)[:m]


# Order-0 entropy (bits per byte) above which a full-byte plane is stored raw without trying
# zstd: the low bytes of float deltas sit at 7.95-8.0; zstd cannot shrink them by more than its
# own frame and table overhead, and trying costs more time than all the other work on the plane.
_RANDOM_BITS = 7.9
# zstd's longest minimum match: in low-entropy numeric planes the short matches zstd finds at
# levels 3-9 cost more bits than the literals they replace (TSBS-like integer planes at level 3:
# 1178 -> 1137 bytes per 4096 values).
_MIN_MATCH = 7
# Below this many packed bytes a plane is stored raw without trying zstd: a frame costs about
# 15 bytes of headers, so the saving is small, and the attempt dominates small-block encoding.
_MIN_ZSTD = 64
_RANDOM_MIN = 1024


def _looks_random(plane: np.ndarray, code: int) -> bool:
    if code != 3 or len(plane) < _RANDOM_MIN:
        return False
    counts = np.bincount(plane, minlength=256)
    p = counts[counts > 0] / len(plane)
    return float(-(p * np.log2(p)).sum()) > _RANDOM_BITS


def encode_planes(values: np.ndarray, level: int) -> bytes:
    """Encode a uint64 array (length known to the reader) as a plane stream."""
    u = np.ascontiguousarray(values, dtype=_U64)
    if len(u) == 0:
        return b"\x00"
    present = int(np.bitwise_or.reduce(u))
    mask = 0
    parts: list[bytes] = []
    as_bytes = u.view(np.uint8).reshape(-1, 8)
    for i in range(8):
        if not (present >> (8 * i)) & 0xFF:
            continue
        mask |= 1 << i
        plane = np.ascontiguousarray(as_bytes[:, i])
        code = _width_code(int(plane.max()))
        packed = _pack(plane, _WIDTHS[code])
        frame = None
        if len(packed) >= _MIN_ZSTD and not _looks_random(plane, code):
            frame = zstd_compress(packed, level, _MIN_MATCH)
        if frame is not None and len(frame) + U32.size < len(packed):
            parts.append(bytes((code | _MODE_ZSTD << 4,)) + U32.pack(len(frame)) + frame)
        else:
            parts.append(bytes((code | _MODE_RAW << 4,)) + packed)
    return bytes((mask,)) + b"".join(parts)


def decode_planes_narrow(reader: Reader, m: int) -> np.ndarray | None:
    """Read a plane stream of m values: None when every value is zero, else an unsigned array of
    the narrowest of 1, 2, 4 or 8 bytes that holds the present planes."""
    mask = reader.u8()
    if mask == 0:
        return None
    if m == 0:
        raise BlockFormatError("plane stream of zero values has planes")
    top = mask.bit_length()  # planes above the highest present one are zero
    width = 1 if top == 1 else 2 if top == 2 else 4 if top <= 4 else 8
    planes: list[tuple[int, np.ndarray]] = []
    for i in range(top):
        if not (mask >> i) & 1:
            continue
        desc = reader.u8()
        code, mode = desc & 0x0F, desc >> 4
        if code > 3 or mode > _MODE_ZSTD:
            raise BlockFormatError(f"bad plane descriptor {desc:#x}")
        bits = _WIDTHS[code]
        size = (m * bits + 7) // 8
        if mode == _MODE_RAW:
            packed: bytes | memoryview = reader.take(size)
        else:
            packed = zstd_decompress(reader.take(reader.unpack(U32)), size)
        planes.append((i, _unpack(packed, bits, m)))
    if width == 1:
        return planes[0][1]
    buf = np.zeros((m, width), dtype=np.uint8)
    for i, plane in planes:
        buf[:, i] = plane
    return buf.view(f"<u{width}").reshape(m)


def decode_planes(reader: Reader, m: int) -> np.ndarray:
    """Read a plane stream of m values; returns uint64."""
    values = decode_planes_narrow(reader, m)
    if values is None:
        return np.zeros(m, dtype=np.uint64)
    return values.astype(np.uint64)
