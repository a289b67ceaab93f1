"""A URL query string as a dict: `dict(urllib.parse.parse_qsl(raw.decode("latin-1"),
keep_blank_values=True))`, answered without a Python step per `%XX` escape.

The InfluxQL text of a /query request is percent-encoded (a TSBS query has about 25 escapes);
`parse_qsl` decodes each escape with a dictionary look-up and two list appends, which made the
parameter parsing about a twentieth of a small query's instructions. `parse_query_string`
decodes an escape-holding field in C instead: every `%` becomes `\\x` and
`codecs.escape_decode` (the decoder of Python's bytes literals) turns `\\xHH` into the byte;
backslashes already in the field are doubled first, so the only escapes it can meet are `\\\\`
and `\\xHH`. A `%` not followed by two hex digits makes that decoder fail: such a field is left
to `urllib.parse.unquote`, which keeps it as written. A query string with any byte above 0x7f
goes to `parse_qsl` whole (unquote treats raw non-ASCII text its own way). The results are
equal for every input (tests/test_querystring.py checks it with hypothesis).
"""

from __future__ import annotations

import codecs
from urllib.parse import parse_qsl, unquote

__all__ = ["parse_query_string"]

_escape_decode = codecs.escape_decode  # type: ignore[attr-defined]


def _unquote_ascii(raw: bytes) -> str:
    """`unquote(raw.decode())` for ASCII `raw` whose `+` are already spaces."""
    if b"%" not in raw:
        return raw.decode("ascii")
    try:
        decoded = _escape_decode(raw.replace(b"\\", b"\\\\").replace(b"%", b"\\x"))[0]
    except ValueError:  # a `%` without two hex digits after it: kept as written
        return unquote(raw.decode("ascii"))
    return decoded.decode("utf-8", "replace")  # type: ignore[no-any-return]


def parse_query_string(raw: bytes) -> dict[str, str]:
    """The fields of a query string (ASGI `scope["query_string"]`); the last of repeated
    names wins, blank values are kept, as `dict(parse_qsl(..., keep_blank_values=True))`."""
    if not raw.isascii():
        return dict(parse_qsl(raw.decode("latin-1"), keep_blank_values=True))
    params: dict[str, str] = {}
    # `+` is a space in names and values alike, and never a separator: replace it once.
    for field in raw.replace(b"+", b" ").split(b"&"):
        if field:
            name, _, value = field.partition(b"=")
            params[_unquote_ascii(name)] = _unquote_ascii(value)
    return params
