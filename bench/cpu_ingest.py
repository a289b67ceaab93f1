"""CPU seconds per million values of PulsarDB's ingest, A/B comparable on a shared machine.

    python -m bench.cpu_ingest --hosts 1000 --duration 2h --variants int,highcard --rounds 3
    python -m bench.cpu_ingest --code base=/tmp/pulsar-base --code new=. --rounds 3

Wall-clock throughput on a machine that others use is noise; the CPU time the server spends on
the same work is not (much). Each run starts `pulsar standalone` fresh, sends a TSBS file with
the ingest driver (bench/ingest.py, 2 client processes, 10,000 lines per POST), then flushes
(`/api/v1/admin/flush?wait=true`, so the encoding of every value is included), and reads the
user + system CPU time of the server's process tree (the server and its parse workers, from
/proc/<pid>/stat) before and after. The client's CPU is not counted.

`--code LABEL=DIR` runs the server with `PYTHONPATH=DIR` (another checkout of the project, e.g.
`git archive <commit> | tar -x -C DIR`); the labels take turns within each round (A B A B ...)
so that both see the same load.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import tempfile
import time
from pathlib import Path

from bench.ingest import ingest_file
from bench.procmem import tree_pids
from bench.systems import PulsarStandalone, http
from bench.tsbs import DatasetSpec, parse_duration, write_dataset

__all__ = ["tree_cpu_s", "main"]

_TICK = os.sysconf("SC_CLK_TCK")


def tree_cpu_s(root: int) -> tuple[float, float]:
    """(root's own CPU s, its living descendants' CPU s): utime + stime from /proc; the CPU
    of descendants that already exited is in the root's cutime + cstime, counted as the root's."""
    own = rest = 0.0
    for pid in tree_pids(root):
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[1].split()
        # fields[0] is state (field 3): utime is field 14, stime 15, cutime 16, cstime 17.
        used = int(fields[11]) + int(fields[12])
        if pid == root:
            own += (used + int(fields[13]) + int(fields[14])) / _TICK
        else:
            rest += used / _TICK
    return own, rest


class _Server(PulsarStandalone):
    def __init__(self, workdir: Path, code: str | None) -> None:
        super().__init__(workdir)
        self.code = code

    def start(self, ready_timeout_s: float = 60.0) -> PulsarStandalone:
        old = os.environ.get("PYTHONPATH")
        if self.code:
            os.environ["PYTHONPATH"] = str(Path(self.code).resolve())
        try:
            return super().start(ready_timeout_s)  # type: ignore[return-value]
        finally:
            if old is None:
                os.environ.pop("PYTHONPATH", None)
            else:
                os.environ["PYTHONPATH"] = old


def one_run(data: Path, work: Path, code: str | None) -> dict[str, float]:
    server = _Server(work, code)
    try:
        server.start()
        time.sleep(1.0)  # parse workers finish starting (their start-up is not ingest work)
        own0, rest0 = tree_cpu_s(server.pid)
        res = ingest_file(server.write_url(), data, workers=2, timeout_s=900)
        status, body = http("POST", f"{server.url}/api/v1/admin/flush?wait=true", timeout=600)
        if not 200 <= status < 300:
            raise RuntimeError(f"flush: HTTP {status} {body[:200]!r}")
        own1, rest1 = tree_cpu_s(server.pid)
    finally:
        server.stop()
    if res.errors:
        raise RuntimeError(f"ingest errors: {res.errors} ({res.first_error})")
    cpu = (own1 - own0) + (rest1 - rest0)
    mv = res.values / 1e6
    return {
        "values": res.values,
        "cpu_s": cpu,
        "server_cpu_s": own1 - own0,
        "worker_cpu_s": rest1 - rest0,
        "cpu_s_per_mvalues": cpu / mv,
        "wall_values_per_s": res.values_per_s,
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description="CPU seconds per million values of PulsarDB ingest")
    p.add_argument("--hosts", type=int, default=1000)
    p.add_argument("--duration", default="2h")
    p.add_argument("--variants", default="int,highcard")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--code", action="append", default=[], help="LABEL=DIR: run the server from DIR")
    args = p.parse_args(argv)
    codes = [tuple(c.split("=", 1)) for c in args.code] or [("current", "")]
    work = Path(tempfile.mkdtemp(prefix="pulsar-cpu-"))
    results: dict[tuple[str, str], list[dict[str, float]]] = {}
    try:
        for variant in args.variants.split(","):
            spec = DatasetSpec(
                hosts=args.hosts, duration_s=parse_duration(args.duration), variant=variant
            )
            data = work / f"{variant}.lp"
            write_dataset(spec, data)
            for rnd in range(args.rounds):
                for label, code in codes:
                    run_dir = work / f"{variant}-{label}-{rnd}"
                    r = one_run(data, run_dir, code or None)
                    shutil.rmtree(run_dir, ignore_errors=True)
                    results.setdefault((variant, label), []).append(r)
                    print(
                        f"{variant:9s} {label:10s} round {rnd}: {r['cpu_s_per_mvalues']:.3f} "
                        f"CPU s/M values (server {r['server_cpu_s']:.2f} s, workers "
                        f"{r['worker_cpu_s']:.2f} s, {r['values'] / 1e6:.1f}M values, "
                        f"wall {r['wall_values_per_s'] / 1e6:.2f}M values/s, load "
                        f"{os.getloadavg()[0]:.1f})",
                        flush=True,
                    )
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print("\n| variant | code | CPU s per M values (median) | runs | wall M values/s (median) |")
    print("|---|---|---|---|---|")
    for (variant, label), runs in results.items():
        med = statistics.median(r["cpu_s_per_mvalues"] for r in runs)
        wall = statistics.median(r["wall_values_per_s"] for r in runs) / 1e6
        runs_s = ", ".join(f"{r['cpu_s_per_mvalues']:.3f}" for r in runs)
        print(f"| {variant} | {label} | {med:.3f} | {runs_s} | {wall:.2f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
