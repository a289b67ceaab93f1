"""Instructions per query, counted by valgrind: an A/B measure that a busy machine cannot blur.

    python -m bench.query_instructions --data-dir /work/data/copy/pulsar-int/data \\
        --spec /work/data/base/cpu-int-1000h-12h.lp.json --types single-groupby-1-1-1 \\
        --queries 900 --code base=/tmp/pulsar-base --code new=.

Timing a half-millisecond query on a shared 2-core machine gives numbers that move by 20 %
between runs; counting the CPU instructions it executes does not (repeat runs on copies of the
same data directory give the same count to a few hundred instructions per query). For each
`--code LABEL=DIR` (PYTHONPATH=DIR) the script runs itself twice under
`valgrind --tool=cachegrind --cache-sim=no` (Debian package `valgrind`): once answering
`--warmup` queries only, once answering `--queries` more (both build the same query list), and
prints the difference divided by `--queries`.

What runs in process: the coordinator's ASGI application (`coordinator.app.create_app`, every
middleware, the /query endpoint, the InfluxQL planner) over a `LocalNode` on `--data-dir`,
called with ASGI messages instead of a socket, so uvicorn's HTTP parsing is not counted (about
100 K instructions per request, measured on a real server). The node's background threads (the
last-value cache warm-up, flush and compaction loops) are not started: their work would make
the count depend on timing. Queries are bench/tsbs_queries.make_queries' for `--spec`; the
measured ones are all different from the warm-up ones, as in bench/run.py.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import subprocess
import sys
from collections.abc import MutableMapping
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

__all__ = ["main"]


def _count(label_dir: str, args: argparse.Namespace, queries: int) -> int:
    """Instructions of one valgrind run of this script answering warm-up + `queries`."""
    # One OpenBLAS thread: numpy's BLAS pool spins for a while after start-up, and under
    # valgrind (threads run one at a time) how long it spins moved counts by tens of millions
    # between identical runs; PulsarDB makes no BLAS call.
    env = dict(os.environ, PYTHONHASHSEED="0", OPENBLAS_NUM_THREADS="1")
    here = str(Path(__file__).resolve().parent.parent)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(Path(label_dir).resolve()), here) if p)
    cmd = [
        "valgrind",
        "--tool=cachegrind",
        "--cache-sim=no",
        "--cachegrind-out-file=/dev/null",
        sys.executable,
        str(Path(__file__).resolve()),  # by path, from "/": the label's code comes first
        "--child",
        str(queries),
        "--data-dir",
        args.data_dir,
        "--spec",
        args.spec,
        "--types",
        args.types,
        "--warmup",
        str(args.warmup),
        "--queries",
        str(args.queries),
    ]
    out = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False, cwd="/")
    found = re.search(r"I\s+refs:\s+([\d,]+)", out.stderr)
    if out.returncode != 0 or found is None:
        raise SystemExit(f"valgrind run failed ({out.returncode}): {out.stderr[-2000:]}")
    return int(found.group(1).replace(",", ""))


def _child(args: argparse.Namespace, queries: int) -> None:
    """Inside valgrind: answer the warm-up and `queries` queries through the ASGI app."""
    from bench.tsbs import DatasetSpec
    from bench.tsbs_queries import make_queries
    from coordinator.app import create_app
    from node import local
    from pulsar_cluster.logs import configure_logging

    configure_logging("info")
    local.CacheWarmer.start = lambda self: None  # type: ignore[method-assign]
    local.BackgroundWorker.start = lambda self: None  # type: ignore[method-assign]
    spec = DatasetSpec(**json.loads(Path(args.spec).read_text()))
    # Both runs make the same list (its cost cancels out); the first answers the warm-up only.
    paths = [q.path for q in make_queries(spec, args.types, args.warmup + args.queries, "influxql")]
    total = args.warmup + queries
    node = local.LocalNode(args.data_dir)
    app = create_app(node)

    def scope(path: str) -> dict[str, Any]:
        url = urlsplit(path)
        return {
            "type": "http",
            "asgi": {"version": "3.0"},
            "http_version": "1.1",
            "method": "GET",
            "scheme": "http",
            "path": url.path,
            "raw_path": url.path.encode(),
            "root_path": "",
            "query_string": url.query.encode(),
            "headers": [(b"host", b"127.0.0.1")],
            "client": ("127.0.0.1", 50000),
            "server": ("127.0.0.1", 8086),
        }

    async def run() -> None:
        statuses: list[int] = []

        async def receive() -> MutableMapping[str, Any]:
            return {"type": "http.request", "body": b"", "more_body": False}

        async def send(message: MutableMapping[str, Any]) -> None:
            if message["type"] == "http.response.start":
                statuses.append(message["status"])

        for path in paths[:total]:
            await app(scope(path), receive, send)
        if any(s != 200 for s in statuses):
            raise SystemExit(f"not every query answered 200: {sorted(set(statuses))}")

    with open(os.devnull, "w") as devnull:  # the request log: rendered, not shown
        sys.stderr.flush()
        saved = os.dup(2)
        os.dup2(devnull.fileno(), 2)
        try:
            asyncio.run(run())
        finally:
            os.dup2(saved, 2)
    node.engine.close(flush=False)  # read only; the background threads never started


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description="instructions per query (valgrind)")
    p.add_argument("--data-dir", required=True, help="a loaded PulsarDB data directory (a copy)")
    p.add_argument("--spec", required=True, help="its TSBS data set spec (JSON)")
    p.add_argument("--types", default="single-groupby-1-1-1", help="one TSBS query type")
    p.add_argument("--queries", type=int, default=900)
    p.add_argument("--warmup", type=int, default=100)
    p.add_argument("--code", action="append", default=[], help="LABEL=DIR")
    p.add_argument("--child", type=int, default=None, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.child is not None:
        _child(args, args.child)
        return 0
    codes = [tuple(c.split("=", 1)) for c in args.code] or [("current", ".")]
    for label, code in codes:
        base = _count(code, args, 0)
        loaded = _count(code, args, args.queries)
        per_query = (loaded - base) / args.queries
        print(f"{label:10s} {args.types}: {per_query / 1000:.0f} K instructions per query")
    return 0


if __name__ == "__main__":
    if sys.path and Path(sys.path[0]).resolve() == Path(__file__).resolve().parent:
        del sys.path[0]  # run by path: bench/ itself is no import root
    sys.exit(main())
