from __future__ import annotations

import pytest

from pulsar_cluster.batch import FieldType
from pulsar_cluster.errors import BadRequestError
from pulsar_cluster.jsonpoints import parse_json_points
from pulsar_cluster.series import make_series_key


def test_single_point_and_types() -> None:
    body = (
        b'{"measurement": "cpu", "tags": {"host": "h1"}, '
        b'"fields": {"f": 1.5, "e": 1e3, "n": 3, "b": true, "s": "x"}, '
        b'"timestamp": "2026-01-01T00:00:00.5Z"}'
    )
    batch = parse_json_points(body, "db")
    cols = batch.series[make_series_key("cpu", {"host": "h1"})]
    assert {n: c.type for n, c in cols.items()} == {
        "f": FieldType.FLOAT,
        "e": FieldType.FLOAT,
        "n": FieldType.INTEGER,
        "b": FieldType.BOOLEAN,
        "s": FieldType.STRING,
    }
    assert cols["f"].timestamps.tolist() == [1_767_225_600_500_000_000]


def test_batch_and_server_time() -> None:
    body = (
        b'{"points": [{"measurement": "m", "fields": {"v": 1}}, '
        b'{"measurement": "m", "fields": {"v": 2}, "timestamp": 5}]}'
    )
    batch = parse_json_points(body, "db", now_ns=99)
    assert batch.series[b"m"]["v"].timestamps.tolist() == [99, 5]


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        (b"{", "invalid JSON"),
        (
            b'{"points": [{"measurement": "m", "fields": {"v": 1}}, {"fields": {"v": 1}}]}',
            "point 1: 'measurement'",
        ),
        (b'{"measurement": "m", "fields": {}}', "'fields'"),
        (b'{"measurement": "m", "fields": {"v": [1]}}', "unsupported value type"),
        (b'{"measurement": "m", "fields": {"v": 1}, "timestamp": "yesterday"}', "RFC 3339"),
        (b'{"measurement": "m", "tags": {"h": 1}, "fields": {"v": 1}}', "'tags'"),
        (b'{"measurement": "m", "fields": {"v": 9223372036854775808}}', "int64"),
        (
            b'{"points": [{"measurement": "m", "fields": {"v": 1}}, '
            b'{"measurement": "m", "fields": {"v": 1.5}}]}',
            "point 1",
        ),
    ],
)
def test_errors(body: bytes, fragment: str) -> None:
    with pytest.raises(BadRequestError) as info:
        parse_json_points(body, "db")
    assert fragment in info.value.message
