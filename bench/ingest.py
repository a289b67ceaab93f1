"""Ingest driver: POST a line-protocol file in batches over N concurrent connections.

The file is cut at every `batch_lines`-th newline (10,000 lines per POST, like TSBS's loaders).
Batch i goes to client process i mod `workers`; each process keeps one keep-alive connection
and sends its batches in file order. Processes, not threads, so that the client is not the
bottleneck (the GIL would serialise a threaded client on this 2-core machine).

Bounded: the run stops sending when `timeout_s` has passed (the report then says how many lines
were sent); 429/503 answers are retried at most `max_retries` times, after the server's
Retry-After (capped at 2 s); every other non-2xx answer counts as an error (the first error
body is kept for the report). Connection failures count as errors too, never crash the run.

    python -m bench.ingest --url http://127.0.0.1:8080/write?db=benchmark FILE
"""

from __future__ import annotations

import argparse
import http.client
import json
import mmap
import multiprocessing as mp
import queue as queue_mod
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import numpy as np

from bench.procmem import RssSampler

__all__ = ["IngestResult", "batch_offsets", "values_per_line", "ingest_file"]

_SCAN_BLOCK = 64 * 1024 * 1024  # newline scan in blocks, so a 1.4 GB file never doubles in RAM
_MAX_RETRY_SLEEP_S = 2.0


@dataclass
class IngestResult:
    lines: int = 0
    values: int = 0
    bytes: int = 0
    batches: int = 0
    seconds: float = 0.0
    errors: int = 0
    retries: int = 0
    timed_out: bool = False
    first_error: str = ""
    statuses: dict[str, int] = field(default_factory=dict)
    peak_rss_kb: int = 0  # sum of VmHWM over the server's process tree (0: not measured)
    sampled_rss_kb: int = 0  # largest sampled sum of VmRSS over the tree

    @property
    def points_per_s(self) -> float:
        return self.lines / self.seconds if self.seconds > 0 else 0.0

    @property
    def values_per_s(self) -> float:
        return self.values / self.seconds if self.seconds > 0 else 0.0

    def to_dict(self) -> dict[str, object]:
        d = asdict(self)
        d["points_per_s"] = self.points_per_s
        d["values_per_s"] = self.values_per_s
        return d


def batch_offsets(path: str | Path, batch_lines: int) -> np.ndarray:
    """Byte offsets [0, end of batch 1, end of batch 2, ..., file size]: whole lines per batch."""
    if batch_lines < 1:
        raise ValueError("batch_lines must be positive")
    size = Path(path).stat().st_size
    cuts = [0]
    if size == 0:
        return np.array(cuts, np.int64)
    seen = 0  # newlines seen so far
    with open(path, "rb") as f, mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as mm:
        for base in range(0, size, _SCAN_BLOCK):
            block = np.frombuffer(mm, np.uint8, count=min(_SCAN_BLOCK, size - base), offset=base)
            nl = np.flatnonzero(block == 10)
            # Newline number k (1-based, counted over the file) ends a batch when k % n == 0.
            ks = seen + 1 + np.arange(nl.size)
            cuts.extend((base + nl[ks % batch_lines == 0] + 1).tolist())
            seen += nl.size
            del block
    if cuts[-1] != size:
        cuts.append(size)  # the last partial batch (and a last line without a newline)
    return np.array(cuts, np.int64)


def values_per_line(path: str | Path) -> int:
    """Fields in the first data line (TSBS lines all have the same number)."""
    with open(path, "rb") as f:
        for raw in f:
            line = raw.strip()
            if line and not line.startswith(b"#"):
                parts = line.split(b" ")
                if len(parts) < 2:
                    raise ValueError(f"{path}: first line has no fields")
                return parts[1].count(b",") + 1
    return 0


def _retry_after(header: str | None) -> float:
    """Seconds from a Retry-After header (delta-seconds; an HTTP date or junk -> 0.5 s)."""
    try:
        return max(0.0, float(header)) if header else 0.5
    except ValueError:
        return 0.5


def _worker(
    url: str,
    path: str,
    offsets: list[int],
    mine: list[int],
    start: mp.synchronize.Barrier,  # type: ignore[name-defined]
    deadline_s: float,
    max_retries: int,
    headers: dict[str, str],
    out: mp.Queue,  # type: ignore[type-arg]
) -> None:
    parts = urlsplit(url)
    target = parts.path + ("?" + parts.query if parts.query else "")
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    statuses: dict[str, int] = {}
    sent: list[int] = []
    errors = retries = 0
    first_error = ""
    conn = http.client.HTTPConnection(host, port, timeout=120)
    hdrs = {"Content-Type": "text/plain; charset=utf-8", **headers}
    with open(path, "rb") as f, mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as mm:
        start.wait(timeout=60)
        t_end = time.monotonic() + deadline_s
        for i in mine:
            if time.monotonic() > t_end:
                break
            body = mm[offsets[i] : offsets[i + 1]]
            for attempt in range(max_retries + 1):
                try:
                    conn.request("POST", target, body=body, headers=hdrs)
                    resp = conn.getresponse()
                    text = resp.read()
                    status = resp.status
                except (OSError, http.client.HTTPException) as exc:
                    conn.close()
                    conn = http.client.HTTPConnection(host, port, timeout=120)
                    status, text = 0, f"{type(exc).__name__}: {exc}".encode()
                    retry_after = 0.0
                else:
                    retry_after = _retry_after(resp.getheader("Retry-After"))
                statuses[str(status)] = statuses.get(str(status), 0) + 1
                if 200 <= status < 300:
                    sent.append(i)
                    break
                if status in (429, 503) and attempt < max_retries:
                    retries += 1
                    time.sleep(min(retry_after, _MAX_RETRY_SLEEP_S))
                    continue
                errors += 1
                if not first_error:
                    first_error = f"HTTP {status}: {text[:300].decode(errors='replace')}"
                break
    conn.close()
    out.put(
        {
            "sent": sent,
            "errors": errors,
            "retries": retries,
            "first_error": first_error,
            "statuses": statuses,
        }
    )


def _collect(queue: mp.Queue, procs: list, limit_s: float) -> list[dict]:  # type: ignore[type-arg]
    """One result per worker; fails fast when a worker died without sending one."""
    parts: list[dict] = []  # type: ignore[type-arg]
    deadline = time.monotonic() + limit_s
    while len(parts) < len(procs):
        try:
            parts.append(queue.get(timeout=0.5))
            continue
        except queue_mod.Empty:
            pass
        dead = [p for p in procs if p.exitcode not in (None, 0)]
        if dead:
            raise RuntimeError(f"ingest worker died with exit code {dead[0].exitcode}")
        if time.monotonic() > deadline:
            raise TimeoutError(f"ingest workers did not finish within {limit_s:.0f} s")
    return parts


def ingest_file(
    url: str,
    path: str | Path,
    *,
    batch_lines: int = 10_000,
    workers: int = 2,
    timeout_s: float = 600.0,
    max_retries: int = 5,
    server_pid: int | None = None,
    headers: dict[str, str] | None = None,
) -> IngestResult:
    """Send `path` to `url` (full write URL, e.g. http://127.0.0.1:8086/write?db=x)."""
    path = str(path)
    offsets = batch_offsets(path, batch_lines)
    nbatches = len(offsets) - 1
    per_line = values_per_line(path)
    off_list = offsets.tolist()
    ctx = mp.get_context("spawn")  # no fork of a parent that has threads
    barrier = ctx.Barrier(workers + 1)
    queue = ctx.Queue()
    procs = [
        ctx.Process(
            target=_worker,
            args=(
                url,
                path,
                off_list,
                list(range(w, nbatches, workers)),
                barrier,
                timeout_s,
                max_retries,
                headers or {},
                queue,
            ),
            daemon=True,
        )
        for w in range(workers)
    ]
    for p in procs:
        p.start()
    sampler = RssSampler(server_pid).start() if server_pid else None
    result = IngestResult()
    finished = False
    try:
        barrier.wait(timeout=60)
        t0 = time.perf_counter()
        parts = _collect(queue, procs, timeout_s + 180)
        result.seconds = time.perf_counter() - t0
        finished = True
    finally:
        for p in procs:
            if finished:  # each sent its result: let it exit
                p.join(timeout=10)
            if p.is_alive():
                # Interrupted (Ctrl-C, a dead sibling, the time limit): stop sending now, not
                # after 10 s per worker, so the runner can stop the server and exit promptly.
                p.kill()
                p.join(timeout=10)
        if sampler:
            sampler.stop()
    sent = sorted(i for part in parts for i in part["sent"])  # type: ignore[attr-defined]
    for i in sent:
        size = off_list[i + 1] - off_list[i]
        result.bytes += size
    # Lines per batch: batch_lines except possibly the last one; count the last exactly.
    last = nbatches - 1
    for i in sent:
        if i == last:
            with open(path, "rb") as f:
                f.seek(off_list[i])
                chunk = f.read(off_list[i + 1] - off_list[i])
            result.lines += chunk.count(b"\n") + (0 if chunk.endswith(b"\n") else 1)
        else:
            result.lines += batch_lines
    result.values = result.lines * per_line
    result.batches = len(sent)
    result.timed_out = len(sent) + sum(int(p["errors"]) for p in parts) < nbatches  # type: ignore[call-overload]
    for part in parts:
        result.errors += int(part["errors"])  # type: ignore[call-overload]
        result.retries += int(part["retries"])  # type: ignore[call-overload]
        if part["first_error"] and not result.first_error:
            result.first_error = str(part["first_error"])
        for k, v in part["statuses"].items():  # type: ignore[attr-defined]
            result.statuses[k] = result.statuses.get(k, 0) + v
    if sampler:
        result.peak_rss_kb = sampler.hwm_kb
        result.sampled_rss_kb = sampler.sampled_peak_kb
    return result


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description="POST a line protocol file in batches")
    p.add_argument("--url", required=True, help="write URL, e.g. http://127.0.0.1:8080/write?db=b")
    p.add_argument("--batch-lines", type=int, default=10_000)
    p.add_argument("--workers", type=int, default=2, help="client processes (one connection each)")
    p.add_argument("--timeout", type=float, default=600.0, help="stop sending after this (s)")
    p.add_argument("--server-pid", type=int, help="measure this process tree's peak RSS")
    p.add_argument("file")
    args = p.parse_args(argv)
    res = ingest_file(
        args.url,
        args.file,
        batch_lines=args.batch_lines,
        workers=args.workers,
        timeout_s=args.timeout,
        server_pid=args.server_pid,
    )
    print(json.dumps(res.to_dict(), indent=1))
    return 0 if res.errors == 0 and not res.timed_out else 1


if __name__ == "__main__":
    sys.exit(main())
