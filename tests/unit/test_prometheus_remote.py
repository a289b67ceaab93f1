"""Prometheus remote codec: write requests to batches, and the numpy sample encoder checked
against the protobuf library's own decoder (hypothesis)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pulsar_cluster.batch import FieldType
from pulsar_cluster.errors import BadRequestError, LimitExceededError
from pulsar_cluster.prometheus import remote_pb2, types_pb2
from pulsar_cluster.prometheus.remote import (
    decode_read_request,
    decode_write_request,
    encode_read_response,
    encode_timeseries,
    snappy_decode,
    snappy_encode,
    uvarint,
    write_request_to_batch,
)
from pulsar_cluster.series import make_series_key

int64s = st.integers(min_value=-(2**63), max_value=2**63 - 1)
label_text = st.text(
    alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"), max_size=8
)


@settings(max_examples=200, deadline=None)
@given(
    labels=st.lists(st.tuples(label_text, label_text), max_size=4),
    samples=st.lists(st.tuples(int64s, st.floats(allow_nan=False)), max_size=40),
)
def test_timeseries_encoding_decodes_with_protobuf(labels, samples) -> None:
    ts = np.array([s[0] for s in samples], np.int64)
    values = np.array([s[1] for s in samples], np.float64)
    decoded = types_pb2.TimeSeries.FromString(encode_timeseries(labels, ts, values))
    assert [(lb.name, lb.value) for lb in decoded.labels] == labels
    assert [(s.timestamp, s.value) for s in decoded.samples] == samples


@settings(max_examples=100, deadline=None)
@given(shape=st.lists(st.integers(min_value=0, max_value=3), max_size=4))
def test_read_response_framing(shape) -> None:
    results = [
        [
            encode_timeseries([("__name__", f"m{q}{i}")], np.arange(3) * 1000, np.arange(3.0))
            for i in range(n)
        ]
        for q, n in enumerate(shape)
    ]
    response = remote_pb2.ReadResponse.FromString(encode_read_response(results))
    assert [len(r.timeseries) for r in response.results] == shape
    for q, result in enumerate(response.results):
        for i, series in enumerate(result.timeseries):
            assert series.labels[0].value == f"m{q}{i}"
            assert [s.timestamp for s in series.samples] == [0, 1000, 2000]


@given(st.integers(min_value=0, max_value=2**64 - 1))
def test_uvarint_matches_protobuf(n) -> None:
    msg = types_pb2.ReadHints(step_ms=n if n < 2**63 else n - 2**64)
    assert msg.SerializeToString() == b"\x08" + uvarint(n) if n else msg.SerializeToString() == b""


def write_request(
    *series: tuple[dict[str, str], list[tuple[int, float]]],
) -> remote_pb2.WriteRequest:
    req = remote_pb2.WriteRequest()
    for labels, samples in series:
        ts = req.timeseries.add()
        for k, v in labels.items():
            ts.labels.add(name=k, value=v)
        for t, v in samples:
            ts.samples.add(timestamp=t, value=v)
    return req


def test_write_request_to_batch() -> None:
    req = write_request(
        (
            {"__name__": "up", "job": "api", "empty": ""},
            [(1000, 1.0), (2000, math.nan), (3000, 0.0)],
        ),
        ({"__name__": "up", "job": "db"}, [(1000, math.inf)]),
        ({"__name__": "up", "job": "api"}, [(4000, 2.5)]),  # same series again: merged
    )
    payload = snappy_encode(req.SerializeToString())
    batch, dropped = write_request_to_batch(
        decode_write_request(snappy_decode(payload, 1 << 20)), "prom"
    )
    assert dropped == 2
    series = batch.series
    assert list(series) == [make_series_key("up", {"job": "api"})]
    col = series[make_series_key("up", {"job": "api"})]["value"]
    assert col.type is FieldType.FLOAT
    assert col.timestamps.tolist() == [1_000_000_000, 3_000_000_000, 4_000_000_000]
    assert col.values.tolist() == [1.0, 0.0, 2.5]


@pytest.mark.parametrize(
    ("labels", "fragment"),
    [
        ({"job": "x"}, "no __name__"),
        ({"__name__": "a", "": "v"}, "empty name"),
        ({"__name__": "a\x00"}, "NUL"),
    ],
)
def test_bad_series_are_refused(labels, fragment) -> None:
    with pytest.raises(BadRequestError, match=fragment):
        write_request_to_batch(write_request((labels, [(1, 1.0)])), "prom")


def test_snappy_and_protobuf_errors() -> None:
    with pytest.raises(BadRequestError, match="snappy"):
        snappy_decode(b"\x05not snappy at all", 1 << 20)
    with pytest.raises(BadRequestError, match="snappy"):
        snappy_decode(b"", 1 << 20)
    # A body that declares 1 GiB is refused before anything is inflated.
    with pytest.raises(LimitExceededError) as info:
        snappy_decode(uvarint(1 << 30) + b"\x00", 1 << 20)
    assert info.value.status_code == 413
    with pytest.raises(BadRequestError, match="protobuf"):
        decode_write_request(b"\x0a\xff\xff\xff\x0f")
    with pytest.raises(BadRequestError, match="protobuf"):
        decode_read_request(b"\xff\xff")
    streamed_only = remote_pb2.ReadRequest(
        accepted_response_types=[remote_pb2.ReadRequest.STREAMED_XOR_CHUNKS]
    )
    with pytest.raises(BadRequestError, match="SAMPLES"):
        decode_read_request(streamed_only.SerializeToString())


@settings(max_examples=150, deadline=None)
@given(
    series=st.lists(
        st.tuples(
            st.sampled_from(["a", "b", "c"]),
            st.sampled_from(["x", "y", ""]),
            st.lists(
                st.tuples(
                    st.integers(min_value=-(10**12), max_value=10**12),
                    st.one_of(st.floats(), st.just(math.nan)),
                ),
                max_size=5,
            ),
        ),
        max_size=8,
    )
)
def test_write_request_to_batch_agrees_with_naive(series) -> None:
    """Against a naive per-sample reference: grouping, arrival order, dropped non-finite."""
    req = write_request(*(({"__name__": n, "job": j}, samples) for n, j, samples in series))
    batch, dropped = write_request_to_batch(req, "prom")
    expected: dict = {}
    want_dropped = 0
    for name, job, samples in series:
        key = make_series_key(name, {"job": job} if job else {})
        for t, v in samples:
            if not math.isfinite(v):
                want_dropped += 1
                continue
            expected.setdefault(key, []).append((t * 1_000_000, v))
    got = {
        key: list(
            zip(cols["value"].timestamps.tolist(), cols["value"].values.tolist(), strict=True)
        )
        for key, cols in batch.series.items()
    }
    assert dropped == want_dropped
    assert got == expected
