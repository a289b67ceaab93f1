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


def _frame_name(frame: str) -> str:
    """'parse (pulsar_cluster/lineprotocol.py:88)' -> 'parse (pulsar_cluster/lineprotocol.py)'."""
    frame = _LINE_NO.sub(")", frame.strip())
    # Shorten absolute paths to the part after site-packages or the repository.
    for marker in ("site-packages/", "/lib/python3.11/", "/work/wt/bench/"):
        if marker in frame:
            head, _, tail = frame.partition("(")
            tail = tail.split(marker, 1)[-1]
            frame = f"{head}({tail}"
    return frame


def summarise(
    raw_text: str, top: int = 20
) -> tuple[int, list[tuple[str, float]], list[tuple[str, float]]]:
    """(samples, [(function, own %)], [(function, inclusive %)]) from py-spy's raw format."""
    own: collections.Counter[str] = collections.Counter()
    incl: collections.Counter[str] = collections.Counter()
    total = 0
    for line in raw_text.splitlines():
        stack, _, count_s = line.rpartition(" ")
        if not stack or not count_s.isdigit():
            continue
        count = int(count_s)
        frames = [
            _frame_name(f)
            for f in stack.split(";")
            if f and not f.startswith(("process ", "thread "))
        ]
        if not frames:
            continue
        total += count
        own[frames[-1]] += count
        for name in set(frames):
            incl[name] += count
    if total == 0:
        return 0, [], []

    def pct(c: collections.Counter[str]) -> list[tuple[str, float]]:
        return [(name, 100.0 * n / total) for name, n in c.most_common(top)]

    return total, pct(own), pct(incl)


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
    total, own, incl = summarise(raw_path.read_text(), args.top)
    lines = [
        f"py-spy, {args.rate} Hz, `pulsar standalone` and its subprocesses, while ingesting "
        f"{spec.values:,} values ({args.hosts} hosts x {args.duration}, {args.variant}) at "
        f"{res.values_per_s / 1e6:.2f} M values/s ({res.errors} errors); {total:,} samples.",
        "",
        "| own time: function (file) | % of samples |",
        "|---|---|",
        *[f"| `{name}` | {p:.1f} |" for name, p in own],
        "",
        "| inclusive time: function (file) | % of samples |",
        "|---|---|",
        *[f"| `{name}` | {p:.1f} |" for name, p in incl],
    ]
    md = "\n".join(lines) + "\n"
    (out / "profile.md").write_text(md)
    print(md)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
