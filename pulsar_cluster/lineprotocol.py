"""InfluxDB line protocol: parse a request body into a columnar WriteBatch, and write lines.

    measurement[,tag=value...] field=value[,field=value...] [timestamp]

Escapes: in measurement, tag keys, tag values and field keys a backslash escapes `,`, `=`, space
and backslash; any other backslash is literal. String field values are double-quoted; inside
them `\"` and `\\` are escapes. Field values: float (`1`, `-1.5e3`), integer (`1i`), unsigned
(`1u`), boolean (t/T/true/True/TRUE, f/F/false/False/FALSE), string. Lines are separated by `\n`
(a trailing `\r` is dropped); blank lines and lines starting with `#` are skipped.

Parsing is all-or-nothing: the first bad line raises LineProtocolError naming its 1-based line
number, and the caller writes nothing of the body.

Speed: most real traffic (Telegraf, TSBS) has no backslash or quote in a line. Those lines take a
fast path made of C-level `bytes.split` calls; the measurement and tags part is canonicalised once
per distinct value per request (a dict), since a request repeats few series many times.
"""

from __future__ import annotations

import math
import time

from pulsar_cluster.batch import BatchBuilder, FieldType, TypeConflictError, WriteBatch
from pulsar_cluster.errors import BadRequestError, LineProtocolError
from pulsar_cluster.lpfast import parse_uniform
from pulsar_cluster.series import SEP
from pulsar_cluster.timeutil import TIME_UNITS

__all__ = [
    "PRECISIONS",
    "V1_PRECISIONS",
    "V2_PRECISIONS",
    "check_precision",
    "parse_line_protocol",
    "format_line",
    "escape_key",
    "escape_measurement",
]

#: Nanoseconds per unit of each `precision` query parameter value (v1 and v2 spellings).
PRECISIONS: dict[str, int] = TIME_UNITS

#: What InfluxDB 1.x `/write` accepts (n, u, ms, s, m, h; plus the v2 spellings).
V1_PRECISIONS = frozenset(PRECISIONS)
#: What InfluxDB 2.x `/api/v2/write` accepts.
V2_PRECISIONS = frozenset(("ns", "us", "u", "ms", "s"))

_INT64_MIN, _INT64_MAX = -(2**63), 2**63 - 1
_UINT64_MAX = 2**64 - 1
_TRUE = frozenset((b"t", b"T", b"true", b"True", b"TRUE"))
_FALSE = frozenset((b"f", b"F", b"false", b"False", b"FALSE"))
_FLOAT_CHARS = b"0123456789.eE+-"
_INT_CHARS = b"0123456789+-"
_RESERVED_NAMES = frozenset(("time",))


def check_precision(precision: str, allowed: frozenset[str] | None = None) -> int:
    """Nanoseconds per unit of `precision`; BadRequestError if it is not one of `allowed`."""
    allowed = allowed if allowed is not None else frozenset(PRECISIONS)
    if precision not in allowed:
        raise BadRequestError(
            f"invalid precision '{precision}': use one of {', '.join(sorted(allowed))}"
        )
    return PRECISIONS[precision]


class _OpenQuoteError(ValueError):
    """The line ends inside a quoted string value: the record continues on the next line."""


def parse_line_protocol(
    body: bytes,
    database: str,
    precision: str = "ns",
    now_ns: int | None = None,
    vectorised: bool = True,
) -> WriteBatch:
    """Parse a whole body. Lines without a timestamp get `now_ns` (default: the time now).

    `vectorised=False` skips the fast path (pulsar_cluster/lpfast.py); tests use it to check
    that both paths agree.
    """
    multiplier = check_precision(precision)
    if vectorised:
        fast = parse_uniform(body, database, multiplier, _canonical_head_fast, _field_name)
        if fast is not None:
            return fast
    default_ts = time.time_ns() if now_ns is None else now_ns
    builder = BatchBuilder(database)
    add = builder.add
    head_cache: dict[bytes, bytes] = {}
    name_cache: dict[bytes, str] = {}

    raw_lines = body.split(b"\n")
    count = len(raw_lines)
    index = 0
    while index < count:
        raw = raw_lines[index]
        index += 1
        lineno = index
        line = raw[:-1] if raw.endswith(b"\r") else raw
        line = line.lstrip(b" \t")
        if not line or line[0] == 0x23:  # '#': comment
            continue
        try:
            if b"\\" in line or b'"' in line:
                # A quoted string value may hold newlines: join raw lines until it closes.
                record = raw.lstrip(b" \t")
                while True:
                    try:
                        key, fields, ts = _parse_line_slow(
                            line, multiplier, default_ts, head_cache, name_cache
                        )
                        break
                    except _OpenQuoteError:
                        if index >= count:
                            raise ValueError("unbalanced quotes") from None
                        record += b"\n" + raw_lines[index]
                        index += 1
                        line = record[:-1] if record.endswith(b"\r") else record
                for name, (ftype, value) in fields.items():
                    add(key, name, ftype, ts, value)
                continue
            parts = line.split(b" ")
            if len(parts) == 2:
                head, field_part = parts
                ts = default_ts
            else:
                while len(parts) > 2 and parts[-1] == b"":
                    parts.pop()  # trailing spaces
                if len(parts) == 2:
                    head, field_part = parts
                    ts = default_ts
                elif len(parts) == 3:
                    head, field_part, ts_part = parts
                    ts = _parse_timestamp(ts_part, multiplier)
                elif len(parts) < 2:
                    raise ValueError("missing fields")
                else:
                    raise ValueError("too many space-separated parts (unescaped space?)")
            cached_key = head_cache.get(head)
            if cached_key is None:
                cached_key = head_cache[head] = _canonical_head_fast(head)
            key = cached_key
            if not field_part:
                raise ValueError("missing fields")
            for item in field_part.split(b","):
                name_b, eq, value_b = item.partition(b"=")
                if not name_b:
                    raise ValueError("missing field key")
                if not eq:
                    raise ValueError(f"missing field value for '{name_b.decode(errors='replace')}'")
                cached_name = name_cache.get(name_b)
                if cached_name is None:
                    cached_name = name_cache[name_b] = _field_name(name_b)
                name = cached_name
                ftype, value = _parse_value(value_b)
                add(key, name, ftype, ts, value)
        except TypeConflictError as exc:
            raise LineProtocolError(lineno, exc.message, line) from None
        except (ValueError, UnicodeDecodeError) as exc:
            raise LineProtocolError(lineno, str(exc), line) from None
    return builder.build()


def _parse_timestamp(text: bytes, multiplier: int) -> int:
    digits = text[1:] if text[:1] == b"-" else text
    if not digits.isdigit():  # bytes.isdigit is ASCII-only
        raise ValueError(f"bad timestamp '{text.decode(errors='replace')}'")
    ts = int(text) * multiplier
    if not _INT64_MIN < ts <= _INT64_MAX:
        raise ValueError("bad timestamp: out of range of int64 nanoseconds")
    return ts


def _field_name(raw: bytes) -> str:
    name = raw.decode()
    if name in _RESERVED_NAMES:
        raise ValueError(f"invalid field name '{name}'")
    if "\x00" in name:
        raise ValueError("field name contains NUL")
    return name


def _parse_value(v: bytes) -> tuple[FieldType, object]:
    if not v:
        raise ValueError("missing field value")
    last = v[-1]
    if last == 0x69:  # 'i'
        digits = v[:-1]
        if not digits or digits.translate(None, _INT_CHARS):
            raise ValueError(f"invalid integer '{v.decode(errors='replace')}'")
        try:
            n = int(digits)
        except ValueError:
            raise ValueError(f"invalid integer '{v.decode()}'") from None
        if not _INT64_MIN <= n <= _INT64_MAX:
            raise ValueError(f"value out of range: integer '{v.decode()}'")
        return FieldType.INTEGER, n
    if last == 0x75:  # 'u'
        digits = v[:-1]
        if not digits or digits.translate(None, b"0123456789"):
            raise ValueError(f"invalid unsigned integer '{v.decode(errors='replace')}'")
        n = int(digits)
        if n > _UINT64_MAX:
            raise ValueError(f"value out of range: unsigned integer '{v.decode()}'")
        return FieldType.UNSIGNED, n
    if v in _TRUE:
        return FieldType.BOOLEAN, True
    if v in _FALSE:
        return FieldType.BOOLEAN, False
    if v[0] == 0x22:  # '"'
        if len(v) < 2 or v[-1] != 0x22:
            raise ValueError("unbalanced quotes")
        return FieldType.STRING, _unescape_string(v[1:-1])
    if v.translate(None, _FLOAT_CHARS):
        raise ValueError(f"invalid field value '{v.decode(errors='replace')}'")
    try:
        f = float(v)
    except ValueError:
        raise ValueError(f"invalid number '{v.decode(errors='replace')}'") from None
    if not math.isfinite(f):
        raise ValueError(f"invalid number '{v.decode()}': out of range")
    return FieldType.FLOAT, f


#: Canonical keys of recently seen heads, shared by all requests of the process: a server sees
#: the same series over and over. Bounded: cleared whole when full (cheap, and the working set
#: refills it at once).
_HEAD_CACHE: dict[bytes, bytes] = {}
_HEAD_CACHE_MAX = 200_000


def _canonical_head_fast(head: bytes) -> bytes:
    """measurement[,k=v...] without escapes -> series key (tags sorted)."""
    key = _HEAD_CACHE.get(head)
    if key is not None:
        return key
    key = _canonical_head_uncached(head)
    if len(_HEAD_CACHE) >= _HEAD_CACHE_MAX:
        _HEAD_CACHE.clear()
    _HEAD_CACHE[head] = key
    return key


def _canonical_head_uncached(head: bytes) -> bytes:
    parts = head.split(b",")
    measurement = parts[0]
    if not measurement:
        raise ValueError("missing measurement")
    pairs: dict[bytes, bytes] = {}
    for item in parts[1:]:
        k, eq, v = item.partition(b"=")
        _check_tag(k, eq, v, pairs)
        if b"=" in v:
            raise ValueError(f"invalid tag format '{item.decode(errors='replace')}'")
        pairs[k] = v
    return _checked_key([measurement, *_sorted_pairs(pairs)])


def _check_tag(k: bytes, eq: bytes, v: bytes, seen: dict[bytes, bytes]) -> None:
    if not k:
        raise ValueError("missing tag key")
    if not eq:
        raise ValueError(f"invalid tag format '{k.decode(errors='replace')}'")
    if not v:
        raise ValueError(f"missing tag value for '{k.decode(errors='replace')}'")
    if k in seen:
        raise ValueError(f"duplicate tags: '{k.decode(errors='replace')}'")
    if k == b"time":
        raise ValueError("invalid tag key 'time'")


def _sorted_pairs(pairs: dict[bytes, bytes]) -> list[bytes]:
    out: list[bytes] = []
    for k in sorted(pairs):
        out.append(k)
        out.append(pairs[k])
    return out


def _checked_key(parts: list[bytes]) -> bytes:
    """Join key parts; NUL is the separator, so it may not appear inside a name."""
    for part in parts:
        if SEP in part:
            raise ValueError("names and tag values must not contain NUL")
    key = SEP.join(parts)
    key.decode()  # raises UnicodeDecodeError on invalid UTF-8
    return key


# --- slow path: escapes and quoted strings -------------------------------------------------------
# Only lines holding a backslash or a double quote come here, so plain Python scanning is fine.

_NAME_ESCAPES = b",= \\"


def _split_unescaped(text: bytes, sep: int) -> list[bytes]:
    """Split on `sep` not preceded by an escaping backslash; escapes are kept."""
    out: list[bytes] = []
    start = i = 0
    n = len(text)
    while i < n:
        c = text[i]
        if c == 0x5C:  # backslash: the next byte is taken literally
            i += 2
            continue
        if c == sep:
            out.append(text[start:i])
            start = i + 1
        i += 1
    out.append(text[start:])
    return out


def _unescape(text: bytes) -> bytes:
    """Undo `\\,` `\\=` `\\ ` and `\\\\`; any other backslash is literal (as in InfluxDB)."""
    if b"\\" not in text:
        return text
    out = bytearray()
    i, n = 0, len(text)
    while i < n:
        c = text[i]
        if c == 0x5C and i + 1 < n and text[i + 1] in _NAME_ESCAPES:
            out.append(text[i + 1])
            i += 2
            continue
        out.append(c)
        i += 1
    return bytes(out)


def _unescape_string(text: bytes) -> str:
    """Undo `\\"` and `\\\\` inside a quoted string value; other backslashes are literal."""
    if b"\\" not in text:
        return text.decode()
    out = bytearray()
    i, n = 0, len(text)
    while i < n:
        c = text[i]
        if c == 0x5C and i + 1 < n and text[i + 1] in b'"\\':
            out.append(text[i + 1])
            i += 2
            continue
        out.append(c)
        i += 1
    return out.decode()


def _end_of_name(line: bytes, i: int, stops: tuple[bytes, ...]) -> int:
    """Index of the first unescaped byte of `stops` at or after i (len(line) if none).

    C-level `find` calls: one round per escape met, not per byte.
    """
    n = len(line)
    while i < n:
        end = n
        for stop in stops:
            j = line.find(stop, i, end)
            if j >= 0:
                end = j
        b = line.find(b"\\", i, end)
        if b < 0:
            return end
        i = b + 2  # the escaped byte is never a stop
    return n


def _end_of_string(line: bytes, i: int) -> int:
    """Index of the closing quote of a string value whose opening quote is at i - 1."""
    while True:
        q = line.find(b'"', i)
        if q < 0:
            raise _OpenQuoteError("unbalanced quotes")
        b = line.find(b"\\", i, q)
        if b < 0:
            return q
        i = b + 2  # the escaped byte is never a closing quote


def _slow_head_key(head: bytes) -> bytes:
    """measurement[,k=v...] with escapes -> series key (tags sorted)."""
    head_parts = _split_unescaped(head, 0x2C)
    measurement = _unescape(head_parts[0])
    if not measurement:
        raise ValueError("missing measurement")
    pairs: dict[bytes, bytes] = {}
    for item in head_parts[1:]:
        kv = _split_unescaped(item, 0x3D)
        if len(kv) > 2:
            raise ValueError(f"invalid tag format '{item.decode(errors='replace')}'")
        k = _unescape(kv[0])
        v = _unescape(kv[1]) if len(kv) == 2 else b""
        _check_tag(k, b"=" if len(kv) == 2 else b"", v, pairs)
        pairs[k] = v
    return _checked_key([measurement, *_sorted_pairs(pairs)])


_SPACE = (b" ",)
_KEY_STOPS = (b"=", b",", b" ")


def _parse_line_slow(
    line: bytes,
    multiplier: int,
    default_ts: int,
    head_cache: dict[bytes, bytes] | None = None,
    name_cache: dict[bytes, str] | None = None,
) -> tuple[bytes, dict[str, tuple[FieldType, object]], int]:
    """One line with escapes or quoted strings. The caches map raw head bytes to series keys and
    raw field-key bytes to names; a request repeats few of each (same maps as the fast path)."""
    head_cache = {} if head_cache is None else head_cache
    name_cache = {} if name_cache is None else name_cache
    n = len(line)
    head_end = _end_of_name(line, 0, _SPACE)
    head = line[:head_end]
    key = head_cache.get(head)
    if key is None:
        key = head_cache[head] = _slow_head_key(head)

    i = head_end + 1
    if i >= n:
        raise ValueError("missing fields")
    fields: dict[str, tuple[FieldType, object]] = {}
    while True:
        key_end = _end_of_name(line, i, _KEY_STOPS)
        if key_end == i:
            raise ValueError("missing field key" if fields or key_end < n else "missing fields")
        if key_end >= n or line[key_end] != 0x3D:
            raise ValueError(
                f"missing field value for '{line[i:key_end].decode(errors='replace')}'"
            )
        raw_name = line[i:key_end]
        name = name_cache.get(raw_name)
        if name is None:
            name = name_cache[raw_name] = _field_name(_unescape(raw_name))
        j = key_end + 1
        if j < n and line[j] == 0x22:  # '"': a string value, up to its unescaped closing quote
            end = _end_of_string(line, j + 1) + 1
            if end < n and line[end] not in b", ":
                raise ValueError("invalid field format: text after a closing quote")
        else:
            end = line.find(b",", j)
            end = n if end < 0 else end
            sp = line.find(b" ", j, end)
            end = end if sp < 0 else sp
        fields[name] = _parse_value(line[j:end])
        if end >= n:
            rest = b""
            break
        if line[end] == 0x20:
            rest = line[end + 1 :].strip(b" ")
            break
        i = end + 1
    if b" " in rest:
        raise ValueError("too many space-separated parts (unescaped space?)")
    ts = _parse_timestamp(rest, multiplier) if rest else default_ts
    return key, fields, ts


# --- writing -------------------------------------------------------------------------------------


def _check_name(kind: str, name: str) -> None:
    if not name:
        raise ValueError(f"{kind} must not be empty")
    if "\n" in name or "\x00" in name:
        raise ValueError(f"{kind} {name!r} contains a newline or NUL: not representable")


def escape_measurement(name: str) -> str:
    return name.replace("\\", "\\\\").replace(",", "\\,").replace(" ", "\\ ")


def escape_key(name: str) -> str:
    """Escape a tag key, tag value or field key."""
    return name.replace("\\", "\\\\").replace(",", "\\,").replace("=", "\\=").replace(" ", "\\ ")


def _format_value(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return f"{value}i"
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError(f"line protocol has no non-finite floats: {value!r}")
        return repr(value)
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    raise TypeError(f"unsupported field value {value!r}")


def format_line(
    measurement: str, tags: dict[str, str], fields: dict[str, object], timestamp: int | None
) -> str:
    """One line of line protocol; the inverse of the parser (tags sorted for stability).

    ValueError for what line protocol cannot carry: empty names, newlines or NUL in names, a
    measurement starting with `#` (a comment) or a tab (skipped as indentation), no fields.
    """
    _check_name("measurement", measurement)
    if measurement[0] in "#\t":
        raise ValueError(f"measurement {measurement!r} starts with '#' or a tab")
    if not fields:
        raise ValueError("a point needs at least one field")
    head = escape_measurement(measurement)
    for k in sorted(tags):
        _check_name("tag key", k)
        _check_name("tag value", tags[k])
        head += f",{escape_key(k)}={escape_key(tags[k])}"
    for k in fields:
        _check_name("field key", k)
    body = ",".join(f"{escape_key(k)}={_format_value(v)}" for k, v in fields.items())
    return f"{head} {body}" + ("" if timestamp is None else f" {timestamp}")
