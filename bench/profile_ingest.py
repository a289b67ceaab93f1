"""Profile PulsarDB's write path under load with py-spy, and summarise the hot spots.

    pip install -e '.[profile]'          # py-spy
    python -m bench.profile_ingest --hosts 1000 --duration 2h

Starts `pulsar standalone` fresh, samples its whole process tree (the server and its parse
workers: `--subprocesses`) with `py-spy record --format raw` while the ingest driver sends a TSBS
file, then prints two tables from the collapsed stacks: functions by own time (the leaf frame:
where the CPU actually is) and by inclusive time (the function or anything it calls), each as a
% of all samples. Idle threads (waiting on locks, sockets, sleeping) are not sampled by py-spy's
default, so the percentages are of busy CPU time. The raw stacks are kept next to the summary,
so a flame graph can be drawn later (e.g. `flamegraph.pl profile.raw > profile.svg`).
"""

from __future__ import annotations

import argparse
import collections
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.ingest import ingest_file
from bench.systems import PulsarStandalone
from bench.tsbs import DatasetSpec, parse_duration, write_dataset

__all__ = ["summarise", "main"]

_LINE_NO = re.compile(r":\d+\)$")
# py-spy --subprocesses prefixes each stack with its process chain: `process PID:"cmdline";`
# (the command line may itself contain ';', so it is matched up to the closing quote).
_PROCESS = re.compile(r'process (\d+):"[^"]*";')
_PROJECT_DIRS = ("pulsar_cluster/", "node/", "coordinator/")


def _frame_name(frame: str, root: str) -> str:
    """'parse (/repo/pulsar_cluster/lineprotocol.py:88)' -> 'parse (pulsar_cluster/lineprotocol.py)'
    (`root` is the repository prefix to cut; site-packages and stdlib paths are cut likewise)."""
    frame = _LINE_NO.sub(")", frame.strip())
    head, sep, tail = frame.partition(" (")
    if not sep:
        return frame
    for marker in (root, "site-packages/", "/lib/python3.11/"):
        if marker and marker in tail:
            tail = tail.split(marker, 1)[-1]
    return f"{head} ({tail}"


def summarise(
    raw_text: str, root_pid: int | None = None, top: int = 20, root: str = ""
) -> dict[str, object]:
    """Tables from py-spy's raw (collapsed) output, each entry (name, % of all samples):
    `own` by leaf function, `inclusive` for project functions (pulsar_cluster/, node/,
    coordinator/) and `process` by sampled process (the server vs its worker processes)."""
    own: collections.Counter[str] = collections.Counter()
    incl: collections.Counter[str] = collections.Counter()
    procs: collections.Counter[str] = collections.Counter()
    total = 0
    for line in raw_text.splitlines():
        stack, _, count_s = line.rpartition(" ")
        if not stack or not count_s.isdigit():
            continue
        count = int(count_s)
        pids = _PROCESS.findall(stack)
        stack = _PROCESS.sub("", stack)
        frames = [_frame_name(f, root) for f in stack.split(";") if f]
        if not frames:
            continue
        total += count
        own[frames[-1]] += count
        for name in set(frames):
            if name.partition(" (")[2].startswith(_PROJECT_DIRS):
                incl[name] += count
        if pids:
            procs[
                "server" if root_pid is None or int(pids[-1]) == root_pid else "parse workers"
            ] += count

    def pct(c: collections.Counter[str]) -> list[tuple[str, float]]:
        return [(name, 100.0 * n / total) for name, n in c.most_common(top)] if total else []

    return {"samples": total, "own": pct(own), "inclusive": pct(incl), "process": pct(procs)}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description="py-spy profile of PulsarDB ingest")
    p.add_argument("--hosts", type=int, default=1000)
    p.add_argument("--duration", default="2h")
    p.add_argument("--variant", default="int")
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--rate", type=int, default=100, help="py-spy samples per second")
    p.add_argument("--top", type=int, default=25)
    p.add_argument("--out", default="bench/results", help="directory for profile.raw and .md")
    args = p.parse_args(argv)
    pyspy = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    if not Path(pyspy).exists():
        print("py-spy not found: pip install -e '.[profile]'", file=sys.stderr)
        return 2
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    raw_path = out / "profile.raw"
    work = Path(tempfile.mkdtemp(prefix="pulsar-profile-"))
    spec = DatasetSpec(
        hosts=args.hosts, duration_s=parse_duration(args.duration), variant=args.variant
    )
    data = work / "cpu.lp"
    write_dataset(spec, data)
    server = PulsarStandalone(work / "server")
    spy: subprocess.Popen[bytes] | None = None
    try:
        server.start()
        spy = subprocess.Popen(
            [
                pyspy,
                "record",
                "--pid",
                str(server.pid),
                "--subprocesses",
                "--nonblocking",
                "--rate",
                str(args.rate),
                "--format",
                "raw",
                "--full-filenames",
                "--output",
                str(raw_path),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        time.sleep(1.0)  # py-spy attaches before the load starts
        res = ingest_file(
            server.write_url(), data, workers=args.workers, server_pid=server.pid, timeout_s=900
        )
    finally:
        if spy is not None and spy.poll() is None:
            spy.send_signal(signal.SIGINT)  # py-spy writes its output on SIGINT
            try:
                spy.wait(timeout=60)
            except subprocess.TimeoutExpired:
                spy.kill()
        server.stop()
        shutil.rmtree(work, ignore_errors=True)
    if not raw_path.exists():
        err = spy.stderr.read().decode(errors="replace") if spy and spy.stderr else ""
        print(f"py-spy wrote no profile: {err[-1000:]}", file=sys.stderr)
        return 1
    repo = str(Path(__file__).resolve().parent.parent) + "/"
    summary = summarise(raw_path.read_text(), server.pid, args.top, repo)
    total = summary["samples"]

    def table(title: str, rows: object) -> list[str]:
        return ["", f"| {title} | % of samples |", "|---|---|"] + [
            f"| `{name}` | {p:.1f} |"
            for name, p in rows  # type: ignore[attr-defined]
        ]

    lines = [
        f"py-spy {args.rate} Hz on `pulsar standalone` and its subprocesses while ingesting "
        f"{spec.values:,} values ({args.hosts} hosts x {args.duration}, {args.variant}, "
        f"{args.workers} client processes) at {res.values_per_s / 1e6:.2f} M values/s "
        f"({res.errors} errors); {total:,} samples of busy threads.",
        *table("process", summary["process"]),
        *table("own time (leaf frame): function (file)", summary["own"]),
        *table("inclusive time, project code: function (file)", summary["inclusive"]),
    ]
    md = "\n".join(lines) + "\n"
    (out / "profile.md").write_text(md)
    print(md)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
