"""CPU seconds per million values of the write path's stages, in one process (no HTTP).

    python -m bench.cpu_engine --variant highcard --lines 300000 --swap

Generates TSBS lines (bench/tsbs.py, 1000 hosts), cuts them into 10,000-line bodies like the
ingest driver, and times on the CPU clock of this process (time.process_time, so other load
on the machine changes little): parsing (`parse_line_protocol`, the best of `--repeat` runs of
one body, as the parse workers do it), the batch codec round trip, `Engine.apply` of every
batch (fsync off, one memtable), and one `Engine.flush` of it all (grouping, block encoding,
SSTable writing and opening). `--swap` applies batches pairwise swapped, as two concurrent
clients deliver them. To compare two versions of the code run it with `PYTHONPATH=<checkout>`
from a directory outside the repository.
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from pathlib import Path

from bench.tsbs import DatasetSpec, write_dataset
from node.engine.engine import Engine, EngineOptions
from pulsar_cluster.batchcodec import decode_batch, encode_batch
from pulsar_cluster.lineprotocol import parse_line_protocol

__all__ = ["main"]

_BODY_LINES = 10_000


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description="CPU s per M values of parse, apply and flush")
    p.add_argument("--variant", default="int")
    p.add_argument("--lines", type=int, default=300_000)
    p.add_argument("--repeat", type=int, default=20, help="runs of one body for the parse time")
    p.add_argument("--swap", action="store_true", help="apply batches pairwise swapped")
    args = p.parse_args(argv)
    work = Path(tempfile.mkdtemp(prefix="pulsar-cpu-engine-"))
    try:
        data = work / "data.lp"
        hours = max(1, -(-args.lines // (1000 * 360)))  # 1000 hosts, 360 lines per hour each
        spec = DatasetSpec(hosts=1000, duration_s=hours * 3600, variant=args.variant)
        write_dataset(spec, data)
        with open(data, "rb") as f:
            lines = [f.readline() for _ in range(args.lines)]
        bodies = [b"".join(lines[i : i + _BODY_LINES]) for i in range(0, len(lines), _BODY_LINES)]
        # Field values per line: the items after the first space (TSBS: 10).
        per_line = lines[0].split(b" ")[1].count(b",") + 1
        mvalues = len(lines) * per_line / 1e6

        best = float("inf")
        for _ in range(args.repeat):
            t = time.process_time()
            parse_line_protocol(bodies[0], "benchmark", "ns", 0)
            best = min(best, time.process_time() - t)
        parse = best * len(lines) / _BODY_LINES / mvalues

        batches = [parse_line_protocol(b, "benchmark", "ns", 0) for b in bodies]
        t = time.process_time()
        encoded = [encode_batch(b) for b in batches]
        decoded = [decode_batch(e) for e in encoded]
        codec = (time.process_time() - t) / mvalues
        pairs = list(zip(decoded, encoded, strict=True))
        if args.swap:
            for i in range(0, len(pairs) - 1, 2):
                pairs[i], pairs[i + 1] = pairs[i + 1], pairs[i]

        engine = Engine(str(work / "engine"), EngineOptions(fsync="never", memtable_bytes=1 << 40))
        try:
            t = time.process_time()
            for batch, payload in pairs:
                engine.apply(batch, encoded=payload)
            apply = (time.process_time() - t) / mvalues
            t = time.process_time()
            engine.flush()
            flush = (time.process_time() - t) / mvalues
        finally:
            engine.close(flush=False)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(
        f"{args.variant}{' (swapped)' if args.swap else ''}, {mvalues:.1f}M values, CPU s per M "
        f"values: parse {parse:.3f} (best of {args.repeat}), codec {codec:.3f}, "
        f"apply {apply:.3f}, flush {flush:.3f}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
