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

__all__ = ["PRECISIONS", "parse_line_protocol", "format_line", "escape_key", "escape_measurement"]

#: Nanoseconds per unit of each `precision` query parameter value (v1 and v2 spellings).
PRECISIONS: dict[str, int] = {
    "ns": 1,
    "n": 1,
    "us": 1_000,
    "u": 1_000,
    "µ": 1_000,
    "ms": 1_000_000,
    "s": 1_000_000_000,
    "m": 60_000_000_000,
    "h": 3_600_000_000_000,
}

_INT64_MIN, _INT64_MAX = -(2**63), 2**63 - 1
_UINT64_MAX = 2**64 - 1
_TRUE = frozenset((b"t", b"T", b"true", b"True", b"TRUE"))
_FALSE = frozenset((b"f", b"F", b"false", b"False", b"FALSE"))
_FLOAT_CHARS = b"0123456789.eE+-"
_INT_CHARS = b"0123456789+-"
_RESERVED_NAMES = frozenset(("time",))


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
    try:
        multiplier = PRECISIONS[precision]
    except KeyError:
        raise BadRequestError(
            f"invalid precision '{precision}': use one of {', '.join(sorted(PRECISIONS))}"
        ) from None
    if vectorised:
        fast = parse_uniform(body, database, multiplier, _canonical_head_fast, _field_name)
        if fast is not None:
            return fast
    default_ts = time.time_ns() if now_ns is None else now_ns
    builder = BatchBuilder(database)
    add = builder.add
    head_cache: dict[bytes, bytes] = {}
    name_cache: dict[bytes, str] = {}

    for lineno, raw in enumerate(body.split(b"\n"), 1):
        line = raw[:-1] if raw.endswith(b"\r") else raw
        line = line.lstrip(b" \t")
        if not line or line[0] == 0x23:  # '#': comment
            continue
        try:
            if b"\\" in line or b'"' in line:
                key, fields, ts = _parse_line_slow(line, multiplier, default_ts)
                for name, (ftype, value) in fields.items():
                    add(key, name, ftype, ts, value)
                continue
            parts = line.split(b" ")
            if len(parts) == 2:
                head, field_part = parts
                ts = default_ts
            else:
                while len(parts) > 3 and parts[-1] == b"":
                    parts.pop()  # trailing spaces
                if len(parts) == 2:
                    head, field_part = parts
                    ts = default_ts
                elif len(parts) == 3:
                    head, field_part, ts_part = parts
                    ts = _parse_timestamp(ts_part, multiplier) if ts_part else default_ts
                elif len(parts) < 2:
                    raise ValueError("missing fields")
                else:
                    raise ValueError("too many space-separated parts (unescaped space?)")
            key = head_cache.get(head)
            if key is None:
                key = head_cache[head] = _canonical_head_fast(head)
            if not field_part:
                raise ValueError("missing fields")
            for item in field_part.split(b","):
                name_b, eq, value_b = item.partition(b"=")
                if not eq or not name_b:
                    raise ValueError(f"invalid field '{item.decode(errors='replace')}'")
                name = name_cache.get(name_b)
                if name is None:
                    name = name_cache[name_b] = _field_name(name_b)
                ftype, value = _parse_value(value_b)
                add(key, name, ftype, ts, value)
        except TypeConflictError as exc:
            raise LineProtocolError(lineno, exc.message, line) from None
        except (ValueError, UnicodeDecodeError) as exc:
            raise LineProtocolError(lineno, str(exc), line) from None
    return builder.build()


def _parse_timestamp(text: bytes, multiplier: int) -> int:
    if not text.lstrip(b"-").isdigit():
        raise ValueError(f"invalid timestamp '{text.decode(errors='replace')}'")
    ts = int(text) * multiplier
    if not _INT64_MIN < ts <= _INT64_MAX:
        raise ValueError("timestamp out of range")
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
        n = int(digits)
        if not _INT64_MIN <= n <= _INT64_MAX:
            raise ValueError(f"integer out of range '{v.decode()}'")
        return FieldType.INTEGER, n
    if last == 0x75:  # 'u'
        digits = v[:-1]
        if not digits or digits.translate(None, b"0123456789"):
            raise ValueError(f"invalid unsigned integer '{v.decode(errors='replace')}'")
        n = int(digits)
        if n > _UINT64_MAX:
            raise ValueError(f"unsigned integer out of range '{v.decode()}'")
        return FieldType.UNSIGNED, n
    if v in _TRUE:
        return FieldType.BOOLEAN, True
    if v in _FALSE:
        return FieldType.BOOLEAN, False
    if v[0] == 0x22:  # '"'
        if len(v) < 2 or v[-1] != 0x22:
            raise ValueError("unterminated string field value")
        return FieldType.STRING, _unescape_string(v[1:-1])
    if v.translate(None, _FLOAT_CHARS):
        raise ValueError(f"invalid field value '{v.decode(errors='replace')}'")
    try:
        f = float(v)
    except ValueError:
        raise ValueError(f"invalid number '{v.decode(errors='replace')}'") from None
    if not math.isfinite(f):
        raise ValueError(f"number out of range '{v.decode()}'")
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
        pairs[k] = v
    return _checked_key([measurement, *_sorted_pairs(pairs)])


def _check_tag(k: bytes, eq: bytes, v: bytes, seen: dict[bytes, bytes]) -> None:
    if not eq or not k:
        raise ValueError(f"invalid tag '{k.decode(errors='replace')}'")
    if not v:
        raise ValueError(f"missing tag value for '{k.decode(errors='replace')}'")
    if k in seen:
        raise ValueError(f"duplicate tag '{k.decode(errors='replace')}'")
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


def _split_unescaped(text: bytes, sep: int) -> list[bytes]:
    """Split on `sep` not preceded by an escaping backslash; escapes are kept."""
    out: list[bytes] = []
    start = i = 0
    n = len(text)
    while i < n:
        c = text[i]
        if c == 0x5C:  # backslash
            i += 2
            continue
        if c == sep:
            out.append(text[start:i])
            start = i + 1
        i += 1
    out.append(text[start:])
    return out


def _unescape(text: bytes) -> bytes:
    if b"\\" not in text:
        return text
    out = bytearray()
    i, n = 0, len(text)
    while i < n:
        c = text[i]
        if c == 0x5C and i + 1 < n and text[i + 1] in b",= \\":
            out.append(text[i + 1])
            i += 2
            continue
        out.append(c)
        i += 1
    return bytes(out)


def _unescape_string(text: bytes) -> str:
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


def _scan_fields(line: bytes, start: int) -> tuple[list[bytes], int]:
    """Split the field section starting at `start` into `key=value` items.

    Returns the items and the index of the space that ends the section (or len(line)). A double
    quote opens a string only as the first byte of a value; inside it, a backslash escapes the
    next byte. Outside strings a backslash escapes the next byte too.
    """
    items: list[bytes] = []
    n = len(line)
    i = item_start = start
    value_start = -1  # index just after the item's '=' once seen
    while i < n:
        c = line[i]
        if c == 0x5C:  # backslash
            i += 2
            continue
        if c == 0x3D and value_start < 0:  # '=': the value begins
            value_start = i + 1
        elif c == 0x22 and i == value_start:  # '"' opening a string value
            i += 1
            while i < n and line[i] != 0x22:
                i += 2 if line[i] == 0x5C else 1
            if i >= n:
                raise ValueError("unterminated string field value")
        elif c == 0x2C:  # ',' between fields
            items.append(line[item_start:i])
            item_start = i + 1
            value_start = -1
        elif c == 0x20:  # ' ' ends the section
            break
        i += 1
    items.append(line[item_start:i])
    return items, i


def _split_sections(line: bytes) -> tuple[bytes, list[bytes], bytes]:
    """Cut a line into head, field items and timestamp, honouring escapes and quotes."""
    n = len(line)
    i = 0
    while i < n and line[i] != 0x20:
        i += 2 if line[i] == 0x5C else 1
    head = line[:i]
    if i >= n:
        raise ValueError("missing fields")
    items, end = _scan_fields(line, i + 1)
    rest = line[end + 1 :].strip(b" ") if end < n else b""
    if b" " in rest:
        raise ValueError("too many space-separated parts (unescaped space?)")
    return head, items, rest


def _parse_line_slow(
    line: bytes, multiplier: int, default_ts: int
) -> tuple[bytes, dict[str, tuple[FieldType, object]], int]:
    head, field_items, ts_part = _split_sections(line)
    head_parts = _split_unescaped(head, 0x2C)
    measurement = _unescape(head_parts[0])
    if not measurement:
        raise ValueError("missing measurement")
    pairs: dict[bytes, bytes] = {}
    for item in head_parts[1:]:
        kv = _split_unescaped(item, 0x3D)
        if len(kv) != 2:
            raise ValueError(f"invalid tag '{item.decode(errors='replace')}'")
        k, v = _unescape(kv[0]), _unescape(kv[1])
        _check_tag(k, b"=", v, pairs)
        pairs[k] = v
    key = _checked_key([measurement, *_sorted_pairs(pairs)])
    if field_items == [b""]:
        raise ValueError("missing fields")
    fields: dict[str, tuple[FieldType, object]] = {}
    for item in field_items:
        kv = _split_unescaped(item, 0x3D)
        if len(kv) < 2 or not kv[0]:
            raise ValueError(f"invalid field '{item.decode(errors='replace')}'")
        name = _field_name(_unescape(kv[0]))
        value = item[len(kv[0]) + 1 :]
        fields[name] = _parse_value(value)
    ts = _parse_timestamp(ts_part, multiplier) if ts_part else default_ts
    return key, fields, ts


# --- writing -------------------------------------------------------------------------------------


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
        return repr(value)
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    raise TypeError(f"unsupported field value {value!r}")


def format_line(
    measurement: str, tags: dict[str, str], fields: dict[str, object], timestamp: int | None
) -> str:
    """One line of line protocol; the inverse of the parser (tags sorted for stability)."""
    head = escape_measurement(measurement)
    for k in sorted(tags):
        head += f",{escape_key(k)}={escape_key(tags[k])}"
    body = ",".join(f"{escape_key(k)}={_format_value(v)}" for k, v in fields.items())
    return f"{head} {body}" + ("" if timestamp is None else f" {timestamp}")
