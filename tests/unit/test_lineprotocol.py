"""Line protocol parsing: types, escaping, precision, errors, and a hypothesis round trip."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pulsar_cluster.batch import FieldType
from pulsar_cluster.errors import BadRequestError, LineProtocolError
from pulsar_cluster.lineprotocol import (
    V2_PRECISIONS,
    _parse_line_slow,
    check_precision,
    format_line,
    parse_line_protocol,
)
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
        ("m f=1 12a", 1, "bad timestamp"),
        ("m f=1 1 2", 1, "too many"),
        ('m s="open', 1, "unbalanced quotes"),
        ('m s="open\nm f=1', 1, "unbalanced quotes"),
        ('m s="x"y=1', 1, "invalid field format"),
        ("m,t=a=b f=1", 1, "invalid tag format"),
        ("m,=b f=1", 1, "missing tag key"),
        ("m =1", 1, "missing field key"),
        ("m f=1,", 1, "missing field key"),
        ('m f="x",="y"', 1, "missing field key"),
        ('m,t=\\" ', 1, "missing fields"),
        ("m f", 1, "missing field value"),
        ("m f=1i,g=1-2i", 1, "invalid integer"),
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
    # String values may hold anything, newlines and carriage returns included: a quoted value
    # continues on the next line until its closing quote.
    st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=20),
    # The special characters of the format, densely.
    st.text(alphabet=st.sampled_from(list(',= "\\\n\r#tT1i.')), max_size=12),
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


special_names = st.text(
    alphabet=st.sampled_from(list(',= "\\#tx\u00e9\u6f22')), min_size=1, max_size=8
).filter(lambda s: s.strip(" \t") == s and s != "time" and not s.startswith("#"))
point = st.tuples(
    st.one_of(names, special_names),
    st.dictionaries(st.one_of(names, special_names), st.one_of(names, special_names), max_size=3),
    st.dictionaries(st.one_of(names, special_names), values, min_size=1, max_size=3),
    st.one_of(st.none(), st.integers(min_value=-(2**62), max_value=2**62)),
)


def _expected(pts: list, now: int) -> dict:
    """The naive reference: what a body of these points must parse to (last write wins)."""
    out: dict = {}
    for measurement, tags, fields, ts in pts:
        key = make_series_key(measurement, tags)
        for name, value in fields.items():
            out.setdefault((key, name), {})[now if ts is None else ts] = value
    return out


@settings(max_examples=200, deadline=None)
@given(pts=st.lists(point, min_size=1, max_size=6), crlf=st.booleans())
def test_many_lines_round_trip(pts, crlf) -> None:
    sep = "\r\n" if crlf else "\n"
    body = sep.join(["# written by hypothesis", ""] + [format_line(*p) for p in pts]) + sep
    # One field may not change type inside a request: skip bodies that do (tested elsewhere).
    types: dict = {}
    for measurement, tags, fields, _ in pts:
        for name, value in fields.items():
            t = type(value)
            if types.setdefault((make_series_key(measurement, tags), name), t) is not t:
                return
    batch = parse_line_protocol(body.encode(), "db", now_ns=NOW)
    got: dict = {}
    for key, name, col in batch.columns():
        for ts, value in zip(col.timestamps.tolist(), col.values.tolist(), strict=True):
            got.setdefault((key, name), {})[ts] = value
    assert got == _expected(pts, NOW)


plain = st.text(alphabet=st.sampled_from(list("abcXYZ019_-.")), min_size=1, max_size=6).filter(
    lambda s: s != "time"
)


@settings(max_examples=200, deadline=None)
@given(
    measurement=plain,
    tags=st.dictionaries(plain, plain, max_size=3),
    fields=st.dictionaries(
        plain,
        st.one_of(
            st.floats(allow_nan=False, allow_infinity=False),
            st.integers(min_value=-(2**63), max_value=2**63 - 1),
            st.booleans(),
        ),
        min_size=1,
        max_size=3,
    ),
    ts=st.one_of(st.none(), st.integers(min_value=-(2**62), max_value=2**62)),
)
def test_fast_path_agrees_with_slow_path(measurement, tags, fields, ts) -> None:
    """Lines without backslash or quote take the fast path; the slow path must agree."""
    line = format_line(measurement, tags, fields, ts).encode()
    assert b"\\" not in line and b'"' not in line
    batch = parse_line_protocol(line, "db", now_ns=NOW)
    key, slow_fields, slow_ts = _parse_line_slow(line, 1, NOW)
    assert list(batch.series) == [key]
    for name, (ftype, value) in slow_fields.items():
        col = batch.series[key][name]
        assert col.type is ftype
        assert col.timestamps.tolist() == [slow_ts]
        assert col.values.tolist() == [value]


@pytest.mark.parametrize(
    "word", ["t", "T", "true", "True", "TRUE", "f", "F", "false", "False", "FALSE"]
)
def test_every_boolean_spelling(word: str) -> None:
    got = points(f"m b={word}")
    assert got[("m", (), "b")] == (FieldType.BOOLEAN, [(NOW, word[0] in "tT")])


@pytest.mark.parametrize("word", ["tRUE", "yes", "1b", "truE"])
def test_not_booleans(word: str) -> None:
    with pytest.raises(LineProtocolError):
        points(f"m b={word}")


def test_string_value_spanning_lines_and_quotes_in_keys() -> None:
    body = 'log,src=a msg="first\nsecond \\"q\\"",n=1i 7\r\nm,q=" f"k="v" 8\n'
    got = points(body)
    assert got[("log", (("src", "a"),), "msg")] == (FieldType.STRING, [(7, 'first\nsecond "q"')])
    assert got[("log", (("src", "a"),), "n")] == (FieldType.INTEGER, [(7, 1)])
    assert got[("m", (("q", '"'),), 'f"k')] == (FieldType.STRING, [(8, "v")])


def test_error_after_a_multiline_string_names_the_right_line() -> None:
    with pytest.raises(LineProtocolError) as info:
        points('m s="a\nb\nc"\nm f=bad')
    assert info.value.line_number == 4


def test_precisions_of_each_api() -> None:
    assert check_precision("us", V2_PRECISIONS) == 1_000
    with pytest.raises(BadRequestError, match="precision"):
        check_precision("h", V2_PRECISIONS)
    assert check_precision("n") == 1 and check_precision("m") == 60_000_000_000


def test_format_line_refuses_what_the_format_cannot_carry() -> None:
    for args in [
        ("#m", {}, {"f": 1.0}, None),
        ("\tm", {}, {"f": 1.0}, None),
        ("m", {"a\nb": "x"}, {"f": 1.0}, None),
        ("m", {}, {}, None),
        ("m", {}, {"f": math.inf}, None),
        ("", {}, {"f": 1.0}, None),
    ]:
        with pytest.raises(ValueError):
            format_line(*args)
