"""Binary encoding of a WriteBatch: the payload of WAL records, node API writes and Raft commands.

Byte layout: docs/format/write-batch.md. Little-endian throughout. Decoding returns numpy views
over the decoded buffer (read-only), never one Python object per numeric value.
"""

from __future__ import annotations

import struct

import numpy as np
import zstandard

from pulsar_cluster.batch import Column, FieldType, SeriesTable, WriteBatch, numpy_dtype
from pulsar_cluster.errors import BadRequestError

__all__ = ["encode_batch", "decode_batch", "BatchFormatError", "MAGIC", "VERSION", "VERSION_TABLE"]

MAGIC = b"PLWB"
VERSION = 1  # per-series columns
VERSION_TABLE = 2  # one table, rows grouped by series (batch.SeriesTable)
_FLAG_ZSTD = 0x01
_HEADER = struct.Struct("<4sBBHI")  # magic, version, flags, reserved, body length
_SERIES = struct.Struct("<IH")  # key length, field count
_FIELD = struct.Struct("<HBIB")  # name length, type, point count, timestamps shared
# zstd level 1: a batch is compressed on the write path of every request; level 1 runs at
# several hundred MB/s on one core here, and higher levels buy little on already-numeric data.
_ZSTD_LEVEL = 1
_COMPRESS_MIN_BYTES = 512
_FIXED_WIDTH = {
    FieldType.FLOAT: "<f8",
    FieldType.INTEGER: "<i8",
    FieldType.UNSIGNED: "<u8",
    FieldType.BOOLEAN: "u1",
}


class BatchFormatError(BadRequestError):
    """The bytes are not a valid encoded batch."""


def encode_batch(batch: WriteBatch, compress: bool = True) -> bytes:
    table = batch.table_if_current()
    if table is not None and batch.encoded is not None:
        return batch.encoded  # decoded from these bytes and unchanged since
    if table is not None:
        body = _encode_table(batch.database, table)
        version = VERSION_TABLE
    else:
        body = _encode_series(batch)
        version = VERSION
    flags = 0
    if compress and len(body) >= _COMPRESS_MIN_BYTES:
        body_out = zstandard.ZstdCompressor(level=_ZSTD_LEVEL).compress(body)
        flags |= _FLAG_ZSTD
    else:
        body_out = body
    return _HEADER.pack(MAGIC, version, flags, 0, len(body)) + body_out


def _encode_table(database: str, table: SeriesTable) -> bytes:
    db = database.encode()
    lengths = np.fromiter(map(len, table.keys), dtype="<u4", count=len(table.keys))
    parts = [
        struct.pack("<H", len(db)),
        db,
        struct.pack("<II", len(table.keys), table.rows),
        lengths.tobytes(),
        b"".join(table.keys),
        np.ascontiguousarray(np.diff(table.offsets), dtype="<u4").tobytes(),
        np.ascontiguousarray(table.timestamps, dtype="<i8").tobytes(),
        struct.pack("<H", len(table.fields)),
    ]
    for name, field_type, values in table.fields:
        name_b = name.encode()
        parts.append(struct.pack("<HB", len(name_b), int(field_type)))
        parts.append(name_b)
        parts.append(_encode_values(Column(field_type, table.timestamps, values)))
    return b"".join(parts)


def _encode_series(batch: WriteBatch) -> bytes:
    parts: list[bytes] = []
    db = batch.database.encode()
    parts.append(struct.pack("<H", len(db)))
    parts.append(db)
    parts.append(struct.pack("<I", len(batch.series)))
    for key, fields in batch.series.items():
        parts.append(_SERIES.pack(len(key), len(fields)))
        parts.append(key)
        previous_ts: np.ndarray | None = None
        for name, col in fields.items():
            name_b = name.encode()
            shared = previous_ts is not None and (
                col.timestamps is previous_ts or np.array_equal(col.timestamps, previous_ts)
            )
            parts.append(_FIELD.pack(len(name_b), int(col.type), len(col), 1 if shared else 0))
            parts.append(name_b)
            if not shared:
                parts.append(np.ascontiguousarray(col.timestamps, dtype="<i8").tobytes())
                previous_ts = col.timestamps
            parts.append(_encode_values(col))
    return b"".join(parts)


def _encode_values(col: Column) -> bytes:
    if col.type is FieldType.STRING:
        encoded = [str(v).encode() for v in col.values]
        lengths = np.fromiter((len(e) for e in encoded), dtype="<u4", count=len(encoded))
        return lengths.tobytes() + b"".join(encoded)
    return np.ascontiguousarray(col.values, dtype=_FIXED_WIDTH[col.type]).tobytes()


def decode_batch(data: bytes | memoryview) -> WriteBatch:
    """Inverse of encode_batch. Raises BatchFormatError on anything malformed."""
    try:
        return _decode(memoryview(data))
    except (struct.error, ValueError, IndexError, UnicodeDecodeError, zstandard.ZstdError) as exc:
        raise BatchFormatError(f"malformed write batch: {exc}") from exc


def _decode(view: memoryview) -> WriteBatch:
    if len(view) < _HEADER.size:
        raise ValueError("shorter than the header")
    magic, version, flags, _, body_len = _HEADER.unpack_from(view, 0)
    if magic != MAGIC:
        raise ValueError(f"bad magic {bytes(magic)!r}")
    if version not in (VERSION, VERSION_TABLE):
        raise ValueError(f"unsupported version {version}")
    body = view[_HEADER.size :]
    if flags & _FLAG_ZSTD:
        body = memoryview(
            zstandard.ZstdDecompressor().decompress(bytes(body), max_output_size=body_len)
        )
    if len(body) != body_len:
        raise ValueError(f"body is {len(body)} bytes, header says {body_len}")
    if version == VERSION_TABLE:
        batch = _decode_table(body)
        batch.encoded = bytes(view)
        return batch
    pos = 0
    (db_len,) = struct.unpack_from("<H", body, pos)
    pos += 2
    database = bytes(body[pos : pos + db_len]).decode()
    pos += db_len
    (series_count,) = struct.unpack_from("<I", body, pos)
    pos += 4
    batch = WriteBatch(database)
    for _ in range(series_count):
        key_len, field_count = _SERIES.unpack_from(body, pos)
        pos += _SERIES.size
        key = bytes(body[pos : pos + key_len])
        pos += key_len
        fields: dict[str, Column] = {}
        timestamps: np.ndarray | None = None
        for _ in range(field_count):
            name_len, type_code, count, shared = _FIELD.unpack_from(body, pos)
            pos += _FIELD.size
            name = bytes(body[pos : pos + name_len]).decode()
            pos += name_len
            field_type = FieldType(type_code)
            if not shared or timestamps is None:
                timestamps = _take(body, pos, "<i8", count).astype(np.int64, copy=False)
                pos += 8 * count
            elif len(timestamps) != count:
                raise ValueError("shared timestamps with a different point count")
            values, pos = _decode_values(body, pos, field_type, count)
            fields[name] = Column(field_type, timestamps, values)
        batch.series[key] = fields
    if pos != len(body):
        raise ValueError(f"{len(body) - pos} trailing bytes")
    return batch


def _decode_table(body: memoryview) -> WriteBatch:
    pos = 0
    (db_len,) = struct.unpack_from("<H", body, pos)
    pos += 2
    database = bytes(body[pos : pos + db_len]).decode()
    pos += db_len
    series_count, rows = struct.unpack_from("<II", body, pos)
    pos += 8
    lengths = _take(body, pos, "<u4", series_count)
    pos += 4 * series_count
    key_bytes_total = int(lengths.sum())
    if pos + key_bytes_total > len(body):
        raise ValueError("truncated series keys")
    key_ends = np.cumsum(lengths).tolist()
    blob = bytes(body[pos : pos + key_bytes_total])
    pos += key_bytes_total
    keys = [blob[start:end] for start, end in zip([0, *key_ends[:-1]], key_ends, strict=True)]
    counts = _take(body, pos, "<u4", series_count).astype(np.int64)
    pos += 4 * series_count
    offsets = np.zeros(series_count + 1, dtype=np.int64)
    np.cumsum(counts, out=offsets[1:])
    if int(offsets[-1]) != rows:
        raise ValueError("series row counts do not add up to the row count")
    timestamps = _take(body, pos, "<i8", rows).astype(np.int64, copy=False)
    pos += 8 * rows
    (field_count,) = struct.unpack_from("<H", body, pos)
    pos += 2
    fields: list[tuple[str, FieldType, np.ndarray]] = []
    for _ in range(field_count):
        name_len, type_code = struct.unpack_from("<HB", body, pos)
        pos += 3
        name = bytes(body[pos : pos + name_len]).decode()
        pos += name_len
        field_type = FieldType(type_code)
        values, pos = _decode_values(body, pos, field_type, rows)
        fields.append((name, field_type, values))
    if pos != len(body):
        raise ValueError(f"{len(body) - pos} trailing bytes")
    return WriteBatch(database, table=SeriesTable(keys, offsets, timestamps, fields))


def _take(body: memoryview, pos: int, dtype: str, count: int) -> np.ndarray:
    width = np.dtype(dtype).itemsize
    if pos + width * count > len(body):
        raise ValueError("truncated column")
    return np.frombuffer(body, dtype=dtype, count=count, offset=pos)


def _decode_values(
    body: memoryview, pos: int, field_type: FieldType, count: int
) -> tuple[np.ndarray, int]:
    if field_type is FieldType.STRING:
        lengths = _take(body, pos, "<u4", count)
        pos += 4 * count
        out = np.empty(count, dtype=object)
        for i, length in enumerate(lengths.tolist()):
            out[i] = bytes(body[pos : pos + length]).decode()
            pos += length
        if pos > len(body):
            raise ValueError("truncated string column")
        return out, pos
    dtype = _FIXED_WIDTH[field_type]
    raw = _take(body, pos, dtype, count)
    pos += raw.itemsize * count
    return raw.astype(numpy_dtype(field_type), copy=False), pos
