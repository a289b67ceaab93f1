"""Prometheus remote write 1.0 and remote read (sampled) codec: docs/format/prometheus-remote.md.

Bodies are snappy block format (not framed) around protobuf messages of prompb/remote.proto
and prompb/types.proto (generated into remote_pb2/types_pb2 by `make proto`).

- `decode_write_request` turns a remote_write body into a WriteBatch: measurement = the
  `__name__` label, tags = the other labels (empty values dropped: in Prometheus an empty label
  is an absent label), one float field `value`, timestamps ms -> ns. Like InfluxDB 1.x, NaN and
  ±Inf samples (stale markers included) are dropped and counted.
- `decode_read_request` / `encode_read_response` handle remote_read with the SAMPLES response
  type. The response's samples are encoded with numpy straight into protobuf bytes (one series
  at a time, never one Python object per sample); concatenating protobuf encodings of one
  message merges them, which is what lets labels (encoded by the protobuf library) and samples
  (encoded here) be joined.
"""

from __future__ import annotations

import cramjam
import numpy as np
from google.protobuf.message import DecodeError

from pulsar_cluster.batch import FieldType, SeriesTable, WriteBatch
from pulsar_cluster.errors import BadRequestError, LimitExceededError
from pulsar_cluster.prometheus import remote_pb2, types_pb2
from pulsar_cluster.series import make_series_key

__all__ = [
    "NAME_LABEL",
    "VALUE_FIELD",
    "snappy_decode",
    "snappy_encode",
    "decode_write_request",
    "write_request_to_batch",
    "decode_read_request",
    "encode_series_samples",
    "encode_timeseries",
    "encode_read_response",
    "uvarint",
]

NAME_LABEL = "__name__"
VALUE_FIELD = "value"
_NS_PER_MS = 1_000_000


def uvarint(n: int) -> bytes:
    """Protobuf base-128 varint of a non-negative int."""
    out = bytearray()
    while n >= 0x80:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


def _declared_length(body: bytes) -> int:
    """The uncompressed length a snappy block declares in its leading varint."""
    n = shift = 0
    for i, byte in enumerate(body[:10]):
        n |= (byte & 0x7F) << shift
        if byte < 0x80:
            return n
        shift += 7
        if i == 9:
            break
    raise BadRequestError("invalid snappy body: bad length header")


def snappy_decode(body: bytes, limit: int) -> bytes:
    """Decode a snappy block, refusing (413) before inflating when it declares more than limit."""
    if not body:
        raise BadRequestError("invalid snappy body: empty")
    declared = _declared_length(body)
    if declared > limit:
        raise LimitExceededError(
            f"snappy body inflates to {declared} bytes, over the limit of {limit}",
            status_code=413,
            limit=limit,
        )
    try:
        return bytes(cramjam.snappy.decompress_raw(body))
    except cramjam.DecompressionError as exc:
        raise BadRequestError(f"invalid snappy body: {exc}") from None


def snappy_encode(data: bytes) -> bytes:
    return bytes(cramjam.snappy.compress_raw(data))


def decode_write_request(payload: bytes) -> remote_pb2.WriteRequest:
    try:
        return remote_pb2.WriteRequest.FromString(payload)
    except DecodeError as exc:
        raise BadRequestError(f"invalid protobuf WriteRequest: {exc}") from None


def write_request_to_batch(
    request: remote_pb2.WriteRequest, database: str
) -> tuple[WriteBatch, int]:
    """The batch of a WriteRequest, and how many non-finite samples were dropped.

    Per series only the labels are handled in Python; samples of all series are gathered into
    two flat arrays and grouped by series with one stable argsort (a series may appear twice in
    a request). Native histograms and exemplars (remote write 1.0 extensions) are not stored.
    """
    group_of: dict[bytes, int] = {}
    groups: list[int] = []  # per TimeSeries with samples: its series group
    counts: list[int] = []
    timestamps: list[int] = []
    values: list[float] = []
    for number, series in enumerate(request.timeseries, 1):
        labels = {label.name: label.value for label in series.labels}
        name = labels.pop(NAME_LABEL, "")
        if not name:
            raise BadRequestError(f"time series {number} has no {NAME_LABEL} label")
        tags = {k: v for k, v in labels.items() if v}
        if not all(tags):
            raise BadRequestError(f"time series {number} has a label with an empty name")
        try:
            key = make_series_key(name, tags)
        except ValueError as exc:
            raise BadRequestError(f"time series {number}: {exc}") from None
        samples = series.samples
        if not samples:
            continue
        groups.append(group_of.setdefault(key, len(group_of)))
        counts.append(len(samples))
        timestamps.extend([s.timestamp for s in samples])
        values.extend([s.value for s in samples])
    if not values:
        return WriteBatch(database), 0
    ts = np.array(timestamps, np.int64)
    vals = np.array(values, np.float64)
    group = np.repeat(np.array(groups, np.int64), counts)
    finite = np.isfinite(vals)
    dropped = int(len(vals) - np.count_nonzero(finite))
    if dropped:
        ts, vals, group = ts[finite], vals[finite], group[finite]
        if not len(ts):
            return WriteBatch(database), dropped
    if np.any(np.abs(ts) > (2**63 - 1) // _NS_PER_MS):
        raise BadRequestError("sample timestamp out of range")
    keys = list(group_of)
    if len(keys) > 1 and np.any(group[1:] < group[:-1]):
        order = np.argsort(group, kind="stable")  # keeps arrival order inside a series
        ts, vals, group = ts[order], vals[order], group[order]
    sizes = np.bincount(group, minlength=len(keys))
    present = sizes > 0  # a series whose samples were all dropped has no rows
    if not present.all():
        keys = [k for k, keep in zip(keys, present.tolist(), strict=True) if keep]
        sizes = sizes[present]
    offsets = np.zeros(len(keys) + 1, np.int64)
    np.cumsum(sizes, out=offsets[1:])
    table = SeriesTable(
        keys=keys,
        offsets=offsets,
        timestamps=ts * _NS_PER_MS,
        fields=[(VALUE_FIELD, FieldType.FLOAT, vals)],
    )
    return WriteBatch(database, table=table), dropped


def decode_read_request(payload: bytes) -> remote_pb2.ReadRequest:
    try:
        request = remote_pb2.ReadRequest.FromString(payload)
    except DecodeError as exc:
        raise BadRequestError(f"invalid protobuf ReadRequest: {exc}") from None
    accepted = list(request.accepted_response_types)
    if accepted and remote_pb2.ReadRequest.SAMPLES not in accepted:
        raise BadRequestError(
            "none of the accepted response types is served: this server answers SAMPLES only"
        )
    return request


# --- vectorised sample encoding ------------------------------------------------------------------

_TAG_SAMPLES = b"\x12"  # TimeSeries.samples: field 2, length-delimited
_TAG_VALUE = 0x09  # Sample.value: field 1, 64-bit
_TAG_TIMESTAMP = 0x10  # Sample.timestamp: field 2, varint
_TAG_TIMESERIES = b"\x0a"  # QueryResult.timeseries: field 1, length-delimited
_TAG_RESULT = b"\x0a"  # ReadResponse.results: field 1, length-delimited


def _varints(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Varint bytes of int64 values (two's complement as uint64, as protobuf's int64 does).

    Returns a (n, 10) uint8 matrix and the byte count of each row.
    """
    u = values.astype(np.int64).view(np.uint64)
    groups = np.empty((len(u), 10), np.uint8)
    rest = u.copy()
    for i in range(10):
        groups[:, i] = (rest & np.uint64(0x7F)).astype(np.uint8)
        rest >>= np.uint64(7)
    # Bytes needed: highest non-zero 7-bit group + 1 (at least 1).
    nonzero = groups != 0
    last = np.where(nonzero.any(axis=1), 9 - np.argmax(nonzero[:, ::-1], axis=1), 0)
    lengths = last + 1
    continuation = np.arange(10)[None, :] < last[:, None]
    groups |= (continuation * 0x80).astype(np.uint8)
    return groups, lengths


def encode_series_samples(timestamps_ms: np.ndarray, values: np.ndarray) -> bytes:
    """Protobuf bytes of `repeated Sample samples = 2` for one TimeSeries."""
    n = len(timestamps_ms)
    if n == 0:
        return b""
    groups, vlen = _varints(timestamps_ms)
    body_len = 1 + 8 + 1 + vlen  # every Sample body is < 128 bytes: one-byte length prefix
    record_len = 2 + body_len
    out = np.zeros((n, 2 + 1 + 8 + 1 + 10), np.uint8)
    out[:, 0] = 0x12
    out[:, 1] = body_len
    out[:, 2] = _TAG_VALUE
    out[:, 3:11] = values.astype("<f8").view(np.uint8).reshape(n, 8)
    out[:, 11] = _TAG_TIMESTAMP
    out[:, 12:22] = groups
    keep = np.arange(out.shape[1])[None, :] < record_len[:, None]
    return out[keep].tobytes()


def encode_timeseries(
    labels: list[tuple[str, str]], timestamps_ms: np.ndarray, values: np.ndarray
) -> bytes:
    head = types_pb2.TimeSeries(
        labels=[types_pb2.Label(name=k, value=v) for k, v in labels]
    ).SerializeToString()
    return head + encode_series_samples(timestamps_ms, values)


def encode_read_response(results: list[list[bytes]]) -> bytes:
    """ReadResponse bytes from, per query, the encoded TimeSeries (encode_timeseries)."""
    out = bytearray()
    for series in results:
        result = bytearray()
        for ts in series:
            result += _TAG_TIMESERIES + uvarint(len(ts)) + ts
        out += _TAG_RESULT + uvarint(len(result)) + result
    return bytes(out)
