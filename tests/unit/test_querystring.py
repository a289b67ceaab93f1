"""coordinator.querystring.parse_query_string answers exactly what
`dict(urllib.parse.parse_qsl(raw.decode("latin-1"), keep_blank_values=True))` answers (the
parsing /query used before), field order included, on arbitrary bytes: %-escapes valid,
invalid and truncated, upper and lower case hex, `+`, repeated and blank names, backslashes
(the fast decoder's own escape character), escaped UTF-8, invalid UTF-8 and raw non-ASCII."""

from __future__ import annotations

from urllib.parse import parse_qsl, quote_plus

from hypothesis import example, given, settings
from hypothesis import strategies as st

from coordinator.querystring import parse_query_string


def reference(raw: bytes) -> list[tuple[str, str]]:
    return list(dict(parse_qsl(raw.decode("latin-1"), keep_blank_values=True)).items())


# Pieces that meet every branch: separators, escapes (valid, invalid, cut short), the
# backslash sequences escape_decode knows, UTF-8 and not, raw bytes above 0x7f.
_PIECES = (
    b"& = + % %2 %20 %41 %e2%82%ac %E2%82%AC %zz %g1 %ff %C3 %C3%28 %00 %26 %3D %25 %5C "
    b"\\ \\x41 \\n \\\\ \\0 \\x a q db SELECT \xe9 \xff \x80 \x00 \n ' \" 1 F f".split(b" ")
)
_TOKENS = st.sampled_from([*_PIECES, b" "])


@settings(max_examples=1500, deadline=None)
@given(st.lists(_TOKENS, max_size=30).map(b"".join))
@example(b"")
@example(b"&&&")
@example(b"a=1&a=2&b&=&c=")
@example(b"q=%41%4")
@example(b"q=%\\x41")
@example(b"q=\\%41")
@example(b"x=%e9&y=\xe9")
def test_equals_parse_qsl_on_token_soup(raw: bytes) -> None:
    assert list(parse_query_string(raw).items()) == reference(raw)


@settings(max_examples=500, deadline=None)
@given(st.binary(max_size=60))
def test_equals_parse_qsl_on_any_bytes(raw: bytes) -> None:
    assert list(parse_query_string(raw).items()) == reference(raw)


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(st.text(max_size=12), st.text(max_size=40), max_size=5))
def test_round_trips_encoded_text(fields: dict[str, str]) -> None:
    # What a client sends: every name and value quote_plus-encoded (UTF-8, any character).
    raw = "&".join(f"{quote_plus(k)}={quote_plus(v)}" for k, v in fields.items()).encode()
    assert parse_query_string(raw) == fields
    assert list(parse_query_string(raw).items()) == reference(raw)


def test_tsbs_query() -> None:
    raw = (
        b"db=benchmark&q=SELECT+max%28usage_user%29+FROM+cpu+WHERE+%28hostname+%3D+%27host_944"
        b"%27%29+AND+time+%3E%3D+%272026-11-25T17%3A44%3A14Z%27+AND+time+%3C+%272026-11-25T18"
        b"%3A44%3A14Z%27+GROUP+BY+time%281m%29&epoch=ns"
    )
    assert parse_query_string(raw) == {
        "db": "benchmark",
        "q": "SELECT max(usage_user) FROM cpu WHERE (hostname = 'host_944') AND time >= "
        "'2026-11-25T17:44:14Z' AND time < '2026-11-25T18:44:14Z' GROUP BY time(1m)",
        "epoch": "ns",
    }
