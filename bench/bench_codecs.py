"""Bytes per value and encode/decode speed of the block codecs on TSBS-like cpu data.

    .venv/bin/python bench/bench_codecs.py [--hosts 20] [--points 24576] [--blocks 1000,4096,8192]

Data (deterministic, seeded numpy): per host the ten TSBS cpu-only fields usage_user ..
usage_guest_nice, one point every 10 s, each a random walk clamped to [0, 100] whose steps are
normal with standard deviation 1 (TSBS devops/cpu.go uses ND(0, 1)):
- integer variant: integer start, steps rounded to whole units (mostly -2..2), int64 field;
- float variant: float start, the walk rounded to 4 decimals, float64 field.
Each field is cut into blocks of `block points`, and every block stores its own copy of the
timestamps, as node/engine/sstable.py does. Bytes per value = all block bytes / field values.
Speeds are CPU time of this (single-threaded) process over all blocks, best of --repeat runs,
so that other work on a shared machine does not count; decode speed counts field values (each
with its timestamp) per CPU second.

Codec 1 (the skeleton's delta+zstd) is measured alongside for comparison.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable

import numpy as np

from bench.tsbs import FIELDS  # the TSBS cpu fields, one list for every bench
from node.engine.codecs.integers import encode_int_column
from node.engine.codecs.legacy import encode_codec1
from node.engine.encoding import decode_block, encode_block
from pulsar_cluster.batch import FieldType

__all__ = ["generate_cpu", "main"]

INTERVAL_NS = 10 * 10**9
START_NS = 1_767_225_600 * 10**9  # 2026-01-01T00:00:00Z


def generate_cpu(
    hosts: int, points: int, integer: bool, seed: int = 42, jitter_ms: float = 0.0
) -> tuple[np.ndarray, np.ndarray]:
    """Timestamps (points,) and values (hosts * 10 series, points) of TSBS-like cpu data.

    jitter_ms > 0 adds normal jitter of that standard deviation to each timestamp, rounded to
    whole milliseconds (what Prometheus scrapes look like once stored in nanoseconds)."""
    rng = np.random.default_rng(seed)
    series = hosts * len(FIELDS)
    steps = rng.normal(0.0, 1.0, size=(points, series))
    if integer:
        steps = np.rint(steps)
        level = rng.integers(0, 101, size=series).astype(np.float64)
    else:
        level = rng.uniform(0.0, 100.0, size=series)
    out = np.empty((points, series), dtype=np.float64)
    # The clamp makes the walk sequential in time; it is vectorised across series instead.
    for i in range(points):
        level = np.clip(level + steps[i], 0.0, 100.0)
        out[i] = level
    values = out.T.copy()
    values = values.astype(np.int64) if integer else np.round(values, 4)
    timestamps = START_NS + INTERVAL_NS * np.arange(points, dtype=np.int64)
    if jitter_ms > 0:
        jitter = np.rint(rng.normal(0.0, jitter_ms, size=points)).astype(np.int64)
        timestamps = timestamps + 10**6 * jitter
    return timestamps, values


def _blocks(timestamps: np.ndarray, values: np.ndarray, block: int):
    for row in values:
        for lo in range(0, len(timestamps), block):
            yield timestamps[lo : lo + block], row[lo : lo + block]


def _best(fn: Callable[[], object], repeat: int) -> float:
    best = float("inf")
    for _ in range(repeat):
        t0 = time.process_time()
        fn()
        best = min(best, time.process_time() - t0)
    return best


def measure(
    field_type: FieldType,
    timestamps: np.ndarray,
    values: np.ndarray,
    block: int,
    level: int,
    repeat: int,
    encoder: Callable[..., bytes] = encode_block,
) -> dict[str, float]:
    parts = list(_blocks(timestamps, values, block))
    n_values = values.size
    encoded: list[bytes] = []

    def run_encode() -> None:
        encoded.clear()
        encoded.extend(encoder(field_type, ts, v, level) for ts, v in parts)

    def run_decode() -> None:
        for data in encoded:
            decode_block(data)

    t_enc = _best(run_encode, repeat)
    t_dec = _best(run_decode, repeat)
    total = sum(len(b) for b in encoded)
    ts_bytes = sum(
        len(encode_int_column(ts, level)) for ts, _ in parts[: len(parts) // len(values)]
    )
    # Sanity: the benchmark must measure a lossless codec.
    for data, (ts, v) in zip(encoded[:50], parts[:50], strict=True):
        _, ts2, v2 = decode_block(data)
        if not (np.array_equal(ts2, ts) and np.array_equal(np.asarray(v2), v)):
            raise AssertionError("round trip failed")
    return {
        "bytes_per_value": total / n_values,
        "ts_bytes_per_value": ts_bytes * len(values) / n_values,
        "encode_mvals": n_values / t_enc / 1e6,
        "decode_mvals": n_values / t_dec / 1e6,
    }


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--hosts", type=int, default=20)
    ap.add_argument("--points", type=int, default=24576, help="points per host (10 s apart)")
    ap.add_argument("--blocks", default="1000,4096,8192", help="block sizes in points")
    ap.add_argument("--levels", default="3", help="zstd levels (sstable.py uses 3)")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--no-codec1", action="store_true", help="skip the codec 1 comparison")
    ap.add_argument(
        "--jitter-ms",
        type=float,
        default=2.0,
        help="also run both variants with this timestamp jitter (ms, normal); 0 = skip",
    )
    args = ap.parse_args(argv)
    blocks = [int(b) for b in args.blocks.split(",")]
    levels = [int(x) for x in args.levels.split(",")]
    print(
        f"TSBS-like cpu data: {args.hosts} hosts x {len(FIELDS)} fields x {args.points} points"
        f" = {args.hosts * len(FIELDS) * args.points} values per variant"
    )
    header = f"{'variant':8} {'codec':6} {'level':>5} {'block':>6} {'B/value':>8} {'ts B/v':>7}"
    header += f" {'enc Mv/s':>9} {'dec Mv/s':>9}"
    print(header)
    variants = [
        ("integer", True, FieldType.INTEGER, 0.0),
        ("float4", False, FieldType.FLOAT, 0.0),
    ]
    if args.jitter_ms > 0:
        variants += [
            ("int+jit", True, FieldType.INTEGER, args.jitter_ms),
            ("flt4+jit", False, FieldType.FLOAT, args.jitter_ms),
        ]
    for name, integer, field_type, jitter in variants:
        ts, values = generate_cpu(args.hosts, args.points, integer, jitter_ms=jitter)
        codecs: list[tuple[str, Callable[..., bytes]]] = [("2", encode_block)]
        if not args.no_codec1:
            codecs.append(("1", encode_codec1))
        for codec, encoder in codecs:
            for level in levels:
                for block in blocks:
                    r = measure(field_type, ts, values, block, level, args.repeat, encoder)
                    ts_share = f"{r['ts_bytes_per_value']:.4f}" if codec == "2" else "-"
                    print(
                        f"{name:8} {codec:6} {level:>5} {block:>6} {r['bytes_per_value']:>8.3f}"
                        f" {ts_share:>7} {r['encode_mvals']:>9.2f}"
                        f" {r['decode_mvals']:>9.2f}",
                        flush=True,
                    )


if __name__ == "__main__":
    main()
