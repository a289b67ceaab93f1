"""The vectorised line-protocol path must agree exactly with the per-line parser."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from pulsar_cluster.batch import WriteBatch
from pulsar_cluster.batchcodec import decode_batch, encode_batch
from pulsar_cluster.errors import LineProtocolError
from pulsar_cluster.lineprotocol import parse_line_protocol


def canonical(batch: WriteBatch) -> dict:
    out = {}
    for key, name, col in batch.columns():
        values = col.values
        if values.dtype == np.float64:
            values = values.view(np.uint64)  # compare bits: -0.0 and 0.0 differ
        out[(key, name)] = (col.type, col.timestamps.tolist(), values.tolist())
    return out


def both(body: bytes, precision: str = "ns"):
    """(vectorised result or error text, per-line result or error text)."""
    results = []
    for vectorised in (True, False):
        try:
            results.append(canonical(parse_line_protocol(body, "db", precision, 7, vectorised)))
        except LineProtocolError as exc:
            results.append(("error", exc.line_number, exc.reason))
    return results


token = st.text(alphabet="abcxyz019_-.", min_size=1, max_size=4)
int_value = st.integers(-(2**63), 2**63 - 1).map(lambda v: f"{v}i")
uint_value = st.integers(0, 2**64 - 1).map(lambda v: f"{v}u")
float_value = st.one_of(
    st.floats(allow_nan=False, allow_infinity=False).map(repr),
    st.integers(-(10**20), 10**20).map(str),
    st.sampled_from(["1e5", "-0.0", "1E-3", ".5", "5.", "+3", "1e999", "nan", "1.2.3", "--1"]),
)
bool_value = st.sampled_from(
    ["t", "T", "true", "True", "TRUE", "f", "F", "false", "False", "FALSE"]
)
# Occasionally broken values, to check that both paths reject the same lines.
odd_value = st.sampled_from(
    [
        "",
        "i",
        "-i",
        "1x",
        "1_0",
        "9223372036854775808i",
        "u",
        "-1u",
        "-",
        "+",
        ".",
        "e",
        "1e",
        "-.",
        "1-2",
        "+-1i",
        "1+i",
    ]
)


@st.composite
def uniform_bodies(draw: st.DrawFn) -> bytes:
    nfields = draw(st.integers(1, 4))
    names = draw(st.lists(token, min_size=nfields, max_size=nfields, unique=True))
    kinds = [draw(st.sampled_from([int_value, uint_value, float_value, bool_value])) for _ in names]
    lines = []
    for _ in range(draw(st.integers(1, 12))):
        measurement = draw(st.sampled_from(["cpu", "mem"]))
        tags = draw(st.dictionaries(st.sampled_from(["host", "dc", "rack"]), token, max_size=3))
        head = measurement + "".join(f",{k}={v}" for k, v in tags.items())
        values = [
            draw(st.one_of(kind, odd_value) if draw(st.integers(0, 30)) == 0 else kind)
            for kind in kinds
        ]
        fields = ",".join(f"{n}={v}" for n, v in zip(names, values, strict=True))
        ts = draw(st.one_of(st.integers(-(2**63), 2**63 - 1), st.integers(0, 10**12)))
        lines.append(f"{head} {fields} {ts}")
    return ("\n".join(lines) + draw(st.sampled_from(["", "\n"]))).encode()


@settings(max_examples=400, deadline=None)
@given(body=uniform_bodies(), precision=st.sampled_from(["ns", "u", "ms", "s", "h"]))
def test_vectorised_path_agrees_with_per_line_parser(body: bytes, precision: str) -> None:
    fast, slow = both(body, precision)
    assert fast == slow


@settings(max_examples=200, deadline=None)
@given(body=uniform_bodies())
def test_table_batches_round_trip_through_the_codec(body: bytes) -> None:
    try:
        batch = parse_line_protocol(body, "db")
    except LineProtocolError:
        return
    expected = (
        canonical(batch.__class__(batch.database, table=batch.table)) if batch.table else None
    )
    decoded = decode_batch(encode_batch(batch))
    assert canonical(decoded) == (expected or canonical(batch))


def test_fast_path_is_taken_for_uniform_lines_and_groups_series() -> None:
    body = b"cpu,h=a x=1i,y=2 10\ncpu,h=b x=3i,y=4 10\ncpu,h=a x=5i,y=6 20\n"
    batch = parse_line_protocol(body, "db")
    assert batch.table is not None
    assert batch.table.keys == [b"cpu\x00h\x00a", b"cpu\x00h\x00b"]
    assert batch.table.offsets.tolist() == [0, 2, 3]
    assert batch.series[b"cpu\x00h\x00a"]["x"].values.tolist() == [1, 5]
    assert batch.point_count() == 3 and batch.value_count() == 6


def test_fallbacks_still_parse_exactly() -> None:
    # no timestamp, differing field sets, escapes, quotes: all leave the fast path
    for body in (
        b"m f=1",
        b"m f=1 1\nm g=2 2",
        b"m\\ x f=1 1",
        b'm s="a" 1',
        b"m f=1 1\n\nm f=2 2",
    ):
        fast, slow = both(body)
        assert fast == slow


@settings(max_examples=200, deadline=None)
@given(body=uniform_bodies(), groups=st.integers(1, 5))
def test_partition_keeps_every_point_in_its_group(body: bytes, groups: int) -> None:
    from pulsar_cluster.batch import partition_batch

    try:
        batch = parse_line_protocol(body, "db")
    except LineProtocolError:
        return
    whole = canonical(WriteBatch(batch.database, table=batch.table)) if batch.table else None
    parts = partition_batch(batch, lambda key: len(key) % groups)
    merged: dict = {}
    for group, part in parts.items():
        got = canonical(part)
        assert all(len(key) % groups == group for key, _ in got)
        merged.update(got)
    assert merged == (whole or canonical(batch))
    if batch.table is not None and len(batch.table.keys) > 1:
        half = len(batch.table.keys) // 2
        left = canonical(WriteBatch("db", table=batch.table.slice_series(0, half)))
        right = canonical(
            WriteBatch("db", table=batch.table.slice_series(half, len(batch.table.keys)))
        )
        assert {**left, **right} == whole


@st.composite
def mutated_bodies(draw: st.DrawFn) -> bytes:
    """A uniform body with a few bytes replaced by delimiters, signs, digits or suffixes:
    layouts that are almost uniform (an extra comma, a missing '=', a key differing in one
    byte, a sign in the middle of a number) must still parse exactly like the per-line parser."""
    body = bytearray(draw(uniform_bodies()))
    for _ in range(draw(st.integers(1, 3))):
        if not body:
            break
        at = draw(st.integers(0, len(body) - 1))
        body[at] = draw(st.sampled_from(b" ,=\n-+0i9ux."))
    return bytes(body)


@settings(max_examples=400, deadline=None)
@given(body=mutated_bodies())
def test_almost_uniform_bodies_agree_with_per_line_parser(body: bytes) -> None:
    fast, slow = both(body)
    assert fast == slow


@settings(max_examples=100, deadline=None)
@given(
    values=st.lists(st.integers(-(10**18) + 1, 10**18 - 1), min_size=2, max_size=40),
    ts=st.integers(-(2**63) + 1, 2**63 - 2),
)
def test_integer_bodies_take_the_fast_path(values: list[int], ts: int) -> None:
    """Integers of up to 18 digits with signs and timestamps of up to 19 digits are parsed by
    the vectorised digit parser (the table form), to the same values as the per-line parser."""
    lines = [
        f"m,h=h{i % 3} a={v}i,b={-v}i {ts + i}" for i, v in enumerate(values) if ts + i < 2**63 - 1
    ]
    body = "\n".join(lines).encode()
    batch = parse_line_protocol(body, "db")
    assert batch.table is not None
    fast, slow = both(body)
    assert fast == slow
