"""Memory of a server process tree, read from /proc (Linux only).

The peak of a tree is reported two ways, because neither is exact on its own:
- `hwm_kb`: the sum of every process's VmHWM (its own peak RSS, kept by the kernel). An upper
  bound of the tree's simultaneous peak; exact for a single-process server.
- `sampled_peak_kb`: the largest sum of VmRSS seen by a sampler thread (every 0.2 s). A lower
  bound: a spike between two samples is missed.
Processes that exited before the read are not counted (their memory is gone, not lost).
"""

from __future__ import annotations

import os
import threading
from pathlib import Path

__all__ = ["tree_pids", "status_kb", "tree_kb", "RssSampler"]


def tree_pids(root: int) -> list[int]:
    """`root` and all its living descendants."""
    children: dict[int, list[int]] = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            stat = Path(entry.path, "stat").read_text()
        except OSError:
            continue  # exited while we looked
        # The command name (field 2) may contain spaces and parentheses: split after the last ')'.
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        children.setdefault(ppid, []).append(int(entry.name))
    out, todo = [], [root]
    while todo:
        pid = todo.pop()
        out.append(pid)
        todo.extend(children.get(pid, ()))
    return out


def status_kb(pid: int, key: str) -> int:
    """A `kB` line of /proc/<pid>/status (e.g. VmRSS, VmHWM); 0 when the process is gone."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1])
    except OSError:
        return 0
    return 0


def tree_kb(root: int, key: str) -> int:
    return sum(status_kb(pid, key) for pid in tree_pids(root))


class RssSampler:
    """Samples the tree's RSS in a daemon thread between `start()` and `stop()`."""

    def __init__(self, root: int, interval_s: float = 0.2) -> None:
        self.root = root
        self.interval_s = interval_s
        self.sampled_peak_kb = 0
        self.hwm_kb = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="rss-sampler", daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.sampled_peak_kb = max(self.sampled_peak_kb, tree_kb(self.root, "VmRSS"))
            self._stop.wait(self.interval_s)

    def start(self) -> RssSampler:
        self._thread.start()
        return self

    def stop(self) -> RssSampler:
        self._stop.set()
        self._thread.join(timeout=5)
        self.sampled_peak_kb = max(self.sampled_peak_kb, tree_kb(self.root, "VmRSS"))
        self.hwm_kb = tree_kb(self.root, "VmHWM")
        return self
