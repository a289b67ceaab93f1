"""Partial results of one shard, their merge at the coordinator, and their wire form.

A `Partial` holds, per group (the group-by tag values as sorted (key, value) pairs):
- for an aggregate plan, one reduced state per plan column (pulsar_cluster.query.states);
- for a raw plan, one block of rows per series (times, and per field values + presence);
and, for a meta plan (SHOW ...), per measurement a set of rows of strings.

`merge(plan, partials)` is associative and commutative: the coordinator may merge shard answers
in any order and in any grouping (federation merges merged partials again).

Wire form (docs/format/partials.md): magic b"PQPA", version byte 1, then one msgpack map. The plan
travels as magic b"PQPL", version byte 1, msgpack map. numpy arrays are msgpack ext type 1
(dtype code byte + little-endian bytes) and object (string) arrays ext type 2 (msgpack list).
Never pickle.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import msgpack
import numpy as np

from pulsar_cluster.errors import QueryError
from pulsar_cluster.query.plan import Plan, plan_from_dict, plan_to_dict
from pulsar_cluster.query.states import State, concat_states, kind_for

__all__ = [
    "GroupKey",
    "RawBlock",
    "Partial",
    "merge",
    "encode_partial",
    "decode_partial",
    "encode_plan",
    "decode_plan",
    "PLAN_MAGIC",
    "PARTIAL_MAGIC",
    "pack_body",
    "unpack_body",
]

GroupKey = tuple[tuple[str, str], ...]
PLAN_MAGIC = b"PQPL"
PARTIAL_MAGIC = b"PQPA"
_VERSION = 1
_EXT_ARRAY = 1
_EXT_OBJECTS = 2
# dtype codes of ext type 1; numbers are on the wire: never reuse one.
_DTYPE_CODES = {
    "f": np.dtype("<f8"),
    "i": np.dtype("<i8"),
    "u": np.dtype("<u8"),
    "b": np.dtype("?"),
}
_CODE_OF = {v: k for k, v in _DTYPE_CODES.items()}


@dataclass(slots=True)
class RawBlock:
    """Points of one series: `t` ascending; per field its values and where it has one."""

    tags: dict[str, str]
    t: np.ndarray
    values: dict[str, np.ndarray]
    present: dict[str, np.ndarray]


@dataclass(slots=True)
class Partial:
    groups: dict[GroupKey, list[State]] = field(default_factory=dict)
    raw: dict[GroupKey, list[RawBlock]] = field(default_factory=dict)
    meta: dict[str, set[tuple[str, ...]]] = field(default_factory=dict)
    points_scanned: int = 0
    series_touched: int = 0


def merge(plan: Plan, partials: list[Partial]) -> Partial:
    """One partial equivalent to all of them (shards hold disjoint series)."""
    out = Partial()
    pending: dict[GroupKey, list[list[State]]] = {}
    for p in partials:
        out.points_scanned += p.points_scanned
        out.series_touched += p.series_touched
        for key, states in p.groups.items():
            pending.setdefault(key, []).append(states)
        for key, blocks in p.raw.items():
            out.raw.setdefault(key, []).extend(blocks)
        for m, rows in p.meta.items():
            out.meta.setdefault(m, set()).update(rows)
    for key, lists in pending.items():
        if len(lists) == 1:
            out.groups[key] = lists[0]
            continue
        merged = []
        for i, col in enumerate(plan.columns):
            kind = kind_for(col.fn)
            state = kind.reduce(concat_states([s[i] for s in lists]), col.args)
            # no rows on any shard: an empty state, as a shard sends it (finalize needs keys)
            merged.append(state if state else {k: np.empty(0, np.int64) for k in kind.keys})
        out.groups[key] = merged
    return out


# --- codec --------------------------------------------------------------------------------------


def _default(obj: Any) -> Any:
    if isinstance(obj, np.ndarray):
        if obj.dtype == object:
            return msgpack.ExtType(_EXT_OBJECTS, msgpack.packb(obj.tolist(), default=_default))
        dtype = obj.dtype.newbyteorder("<") if obj.dtype.byteorder == ">" else obj.dtype
        code = _CODE_OF.get(np.dtype(dtype))
        if code is None:
            raise TypeError(f"array dtype {obj.dtype} has no wire code")
        return msgpack.ExtType(
            _EXT_ARRAY, code.encode() + np.ascontiguousarray(obj, dtype).tobytes()
        )
    if isinstance(obj, np.integer):
        return int(obj)
    if isinstance(obj, np.floating):
        return float(obj)
    if isinstance(obj, np.bool_):
        return bool(obj)
    raise TypeError(f"cannot encode {type(obj).__name__}")


def _ext_hook(code: int, data: bytes) -> Any:
    if code == _EXT_ARRAY:
        dtype = _DTYPE_CODES.get(chr(data[0]))
        if dtype is None or (len(data) - 1) % dtype.itemsize:
            raise QueryError("malformed partial: bad array")
        return np.frombuffer(data, dtype, offset=1).copy()
    if code == _EXT_OBJECTS:
        items = msgpack.unpackb(data, ext_hook=_ext_hook, strict_map_key=False)
        arr = np.empty(len(items), dtype=object)
        arr[:] = items
        return arr
    raise QueryError(f"malformed partial: unknown ext type {code}")


def pack_body(body: Any) -> bytes:
    """A frame body as MessagePack with the array extension types (for frames of other
    versions, pulsar_cluster/query/columnar.py)."""
    return bytes(msgpack.packb(body, default=_default, use_bin_type=True))


def unpack_body(data: bytes, what: str) -> Any:
    """The inverse of `pack_body` (QueryError when malformed)."""
    try:
        return msgpack.unpackb(data, ext_hook=_ext_hook, strict_map_key=False, raw=False)
    except (ValueError, msgpack.ExtraData, msgpack.FormatError, msgpack.StackError) as exc:
        raise QueryError(f"malformed {what}: {exc}") from None


def _frame(magic: bytes, body: Any) -> bytes:
    return magic + bytes([_VERSION]) + msgpack.packb(body, default=_default, use_bin_type=True)


def _unframe(magic: bytes, data: bytes, what: str) -> Any:
    if len(data) < 5 or data[:4] != magic:
        raise QueryError(f"malformed {what}: bad magic")
    if data[4] != _VERSION:
        raise QueryError(f"malformed {what}: unsupported version {data[4]}")
    try:
        return msgpack.unpackb(data[5:], ext_hook=_ext_hook, strict_map_key=False, raw=False)
    except (ValueError, msgpack.ExtraData, msgpack.FormatError, msgpack.StackError) as exc:
        raise QueryError(f"malformed {what}: {exc}") from None


def encode_plan(plan: Plan) -> bytes:
    return _frame(PLAN_MAGIC, plan_to_dict(plan))


def decode_plan(data: bytes) -> Plan:
    return plan_from_dict(_unframe(PLAN_MAGIC, data, "plan"))


def encode_partial(p: Partial) -> bytes:
    body = {
        "g": [[[list(kv) for kv in key], states] for key, states in p.groups.items()],
        "r": [
            [
                [list(kv) for kv in key],
                [[b.tags, b.t, b.values, b.present] for b in blocks],
            ]
            for key, blocks in p.raw.items()
        ],
        "m": {m: sorted(list(r) for r in rows) for m, rows in p.meta.items()},
        "ps": p.points_scanned,
        "st": p.series_touched,
    }
    return _frame(PARTIAL_MAGIC, body)


def decode_partial(data: bytes) -> Partial:
    body = _unframe(PARTIAL_MAGIC, data, "partial")
    try:
        groups = {tuple((k, v) for k, v in key): states for key, states in body["g"]}
        raw = {
            tuple((k, v) for k, v in key): [RawBlock(b[0], b[1], b[2], b[3]) for b in blocks]
            for key, blocks in body["r"]
        }
        meta = {m: {tuple(r) for r in rows} for m, rows in body["m"].items()}
        return Partial(groups, raw, meta, int(body["ps"]), int(body["st"]))
    except (KeyError, TypeError, ValueError, IndexError) as exc:
        raise QueryError(f"malformed partial: {exc!r}") from None
