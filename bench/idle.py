"""Wait until server process trees are idle, from their CPU time in /proc (Linux only).

The benchmark keeps several servers up at once (each loaded, then all queried taking turns).
A server that is still compacting or merging after its load would take CPU from the next
system's load or from the query phase, so the runner waits before each of them until every
running server is idle: its process tree's CPU time (utime + stime of every process, read from
/proc/<pid>/stat) grew by less than `max_cores` of one core over the last `window_s` seconds.
The wait is bounded: a server that never goes idle is reported (the runner notes it) and the
run goes on.
"""

from __future__ import annotations

import os
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from bench.procmem import tree_pids

__all__ = ["IdleResult", "tree_cpu_ticks", "busy_cores", "wait_idle"]

_TICK_S = 1.0 / os.sysconf("SC_CLK_TCK")


def tree_cpu_ticks(root: int) -> dict[int, int]:
    """CPU time (utime + stime, in clock ticks) of `root` and each living descendant."""
    out: dict[int, int] = {}
    for pid in tree_pids(root):
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
        except OSError:
            continue  # exited while we looked
        # Fields after the command name (which may hold spaces and ')'): state is field 3, so
        # utime (field 14) and stime (field 15) are at 11 and 12 after the last ')'.
        fields = stat.rsplit(")", 1)[1].split()
        out[pid] = int(fields[11]) + int(fields[12])
    return out


def busy_cores(before: dict[int, int], after: dict[int, int], seconds: float) -> float:
    """Cores used between two `tree_cpu_ticks` samples taken `seconds` apart. A process that
    exited in between is not counted (its last ticks are unknown); one that started counts all
    of its time (it all fell in the interval)."""
    if seconds <= 0:
        return 0.0
    ticks = sum(t - before.get(pid, 0) for pid, t in after.items())
    return max(0, ticks) * _TICK_S / seconds


@dataclass
class IdleResult:
    idle: bool  # every tree went idle before the timeout
    waited_s: float
    busy: dict[str, float]  # name -> cores used over the last window (of every tree)
    limits: dict[str, float]  # name -> the cores it had to stay under

    def still_busy(self) -> list[str]:
        return [name for name, cores in self.busy.items() if cores >= self.limits[name]]


def wait_idle(
    roots: Mapping[str, int],
    *,
    max_cores: float | Mapping[str, float] = 0.02,
    window_s: float = 2.0,
    timeout_s: float = 60.0,
    every_s: float = 0.5,
) -> IdleResult:
    """Poll every `every_s` until, for every named process tree in `roots` (name -> root pid),
    the CPU time used over the last `window_s` is below `max_cores` * `window_s` (one limit, or
    one per name); give up after `timeout_s`. Takes at least `window_s`; a tree whose root has
    exited counts as idle."""
    limit = max_cores if isinstance(max_cores, Mapping) else dict.fromkeys(roots, max_cores)
    timeout_s = max(timeout_s, window_s)
    t0 = time.monotonic()
    samples: list[tuple[float, dict[str, dict[int, int]]]] = []
    busy: dict[str, float] = dict.fromkeys(roots, 0.0)
    while True:
        now = time.monotonic()
        samples.append((now, {name: tree_cpu_ticks(pid) for name, pid in roots.items()}))
        # The oldest sample at least `window_s` old is the window's start.
        while len(samples) > 1 and now - samples[1][0] >= window_s:
            samples.pop(0)
        t_start, first = samples[0]
        if now - t_start >= window_s:
            busy = {
                name: busy_cores(first[name], samples[-1][1][name], now - t_start) for name in roots
            }
            if all(cores < limit[name] for name, cores in busy.items()):
                return IdleResult(True, now - t0, busy, dict(limit))
        if now - t0 >= timeout_s:
            return IdleResult(False, now - t0, busy, dict(limit))
        time.sleep(min(every_s, max(0.0, t0 + timeout_s - now)))
