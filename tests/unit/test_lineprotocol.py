"""Line protocol parsing: types, escaping, precision, errors, and a hypothesis round trip."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pulsar_cluster.batch import FieldType
from pulsar_cluster.errors import BadRequestError, LineProtocolError
from pulsar_cluster.lineprotocol import format_line, parse_line_protocol
from pulsar_cluster.series import make_series_key, split_series_key

NOW = 1_000


def points(body: bytes | str, precision: str = "ns") -> dict:
    """{(measurement, tags tuple, field): [(ts, value), ...]} for easy comparison."""
    data = body.encode() if isinstance(body, str) else body
    batch = parse_line_protocol(data, "db", precision, now_ns=NOW)
    out: dict = {}
    for key, name, col in batch.columns():
        measurement, tags = split_series_key(key)
        out[(measurement, tuple(sorted(tags.items())), name)] = (
            col.type,
            list(zip(col.timestamps.tolist(), col.values.tolist(), strict=True)),
        )
    return out


def test_types_and_default_timestamp() -> None:
    got = points('cpu,host=a f=1.5,i=-3i,u=7u,b=t,B=FALSE,s="x y"\ncpu,host=a f=2 5')
    key = ("cpu", (("host", "a"),))
    assert got[(*key, "f")] == (FieldType.FLOAT, [(NOW, 1.5), (5, 2.0)])
    assert got[(*key, "i")] == (FieldType.INTEGER, [(NOW, -3)])
    assert got[(*key, "u")] == (FieldType.UNSIGNED, [(NOW, 7)])
    assert got[(*key, "b")] == (FieldType.BOOLEAN, [(NOW, True)])
    assert got[(*key, "B")] == (FieldType.BOOLEAN, [(NOW, False)])
    assert got[(*key, "s")] == (FieldType.STRING, [(NOW, "x y")])


def test_tags_are_sorted_into_one_series() -> None:
    got = points("m,b=2,a=1 f=1 1\nm,a=1,b=2 f=2 2")
    assert list(got) == [("m", (("a", "1"), ("b", "2")), "f")]
    assert got[("m", (("a", "1"), ("b", "2")), "f")][1] == [(1, 1.0), (2, 2.0)]


def test_escapes_in_names_and_strings() -> None:
    got = points('my\\ m\\,x,t\\ k=v\\=1\\,2 f\\=x="q\\"uote\\\\" 3')
    ((measurement, tags, field), (ftype, values)) = next(iter(got.items()))
    assert measurement == "my m,x"
    assert tags == (("t k", "v=1,2"),)
    assert field == "f=x"
    assert ftype is FieldType.STRING and values == [(3, 'q"uote\\')]


def test_comments_blank_lines_crlf_and_precision() -> None:
    got = points("# comment\n\n  m f=1 2\r\n", precision="s")
    assert got[("m", (), "f")][1] == [(2_000_000_000, 1.0)]
    assert points("m f=1 3", "ms")[("m", (), "f")][1] == [(3_000_000, 1.0)]
    assert points("m f=1 3", "u")[("m", (), "f")][1] == [(3_000, 1.0)]
    assert points("m f=1 1", "h")[("m", (), "f")][1] == [(3_600_000_000_000, 1.0)]


@pytest.mark.parametrize(
    ("body", "line", "fragment"),
    [
        ("m f=1\nm", 2, "missing fields"),
        ("m f=1\nm f=", 2, "missing field value"),
        ("m f=abc", 1, "invalid field value"),
        ("m f=1x", 1, "invalid field value"),
        ("m f=1_0", 1, "invalid field value"),
        ("m f=nan", 1, "invalid field value"),
        ("m f=1e999", 1, "out of range"),
        ("m f=9223372036854775808i", 1, "out of range"),
        ("m f=-1u", 1, "invalid unsigned"),
        ("m,t f=1", 1, "invalid tag"),
        ("m,t= f=1", 1, "missing tag value"),
        ("m,t=1,t=2 f=1", 1, "duplicate tag"),
        (",t=1 f=1", 1, "missing measurement"),
        ("m f=1 12a", 1, "invalid timestamp"),
        ("m f=1 1 2", 1, "too many"),
        ('m s="open', 1, "unterminated"),
        ("m time=1", 1, "invalid field name"),
        ("m f=1i\nm f=1.5", 2, "earlier in this request"),
        ("m f=1 99999999999999999999", 1, "out of range"),
    ],
)
def test_errors_name_the_line(body: str, line: int, fragment: str) -> None:
    with pytest.raises(LineProtocolError) as info:
        points(body)
    assert info.value.line_number == line
    assert fragment in info.value.message


def test_invalid_precision() -> None:
    with pytest.raises(BadRequestError, match="precision"):
        points("m f=1 1", "fortnight")


def test_nul_in_names_is_rejected() -> None:
    with pytest.raises(LineProtocolError, match="NUL"):
        points("m,t=a\x00b f=1")


names = st.text(
    alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00\n\r"),
    min_size=1,
    max_size=12,
).filter(lambda s: s.strip(" \t") == s and s not in ("time",) and not s.startswith("#"))
values = st.one_of(
    st.floats(allow_nan=False, allow_infinity=False),
    st.integers(min_value=-(2**63), max_value=2**63 - 1),
    st.booleans(),
    st.text(
        # A newline ends a line, even inside a string value: the splitter is line-oriented.
        alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00\n"),
        max_size=20,
    ),
)


@settings(max_examples=300, deadline=None)
@given(
    measurement=names,
    tags=st.dictionaries(names, names, max_size=4),
    fields=st.dictionaries(names, values, min_size=1, max_size=4),
    ts=st.integers(min_value=-(2**62), max_value=2**62),
)
def test_round_trip_through_format_line(measurement, tags, fields, ts) -> None:
    line = format_line(measurement, tags, fields, ts)
    batch = parse_line_protocol(line.encode(), "db")
    key = make_series_key(measurement, tags)
    assert list(batch.series) == [key]
    stored = batch.series[key]
    assert set(stored) == set(fields)
    for name, value in fields.items():
        col = stored[name]
        assert col.timestamps.tolist() == [ts]
        got = col.values.tolist()[0]
        if isinstance(value, float):
            assert col.type is FieldType.FLOAT
            assert got == value and math.copysign(1, got) == math.copysign(1, value)
        else:
            assert got == value and type(got) is type(value)
