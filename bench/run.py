"""Side-by-side benchmark: PulsarDB (standalone, 3-node local cluster) next to InfluxDB 1.6 and
VictoriaMetrics, on the same TSBS data, with the same client.

    python -m bench.run --size small      # `make bench`: about 3 minutes
    python -m bench.run --size full       # `make bench-full`: 1000 hosts x 12 h (43.2M values)

The first data set of the size preset (integers, the one queried): every installed system in
turn is started fresh in a temp dir on 127.0.0.1 -> ingests the file (2 client processes,
10,000 lines per POST; values/s, errors, peak RSS of the server's process tree) -> makes its
storage settle (flush, compact) -> bytes on disk per value, and is left running. Then the six
TSBS query types run on all of them, taking turns round by round (bench/query_turns.py), so
that the machine's drift over minutes does not decide a ratio; then all are stopped. The other
data sets (ingest and bytes only) go one system at a time: start, load, settle, stop. Before each
load and before the queries, the runner waits until every running server is idle
(bench/idle.py). Peers that are not installed are reported as such (`make bench-peers`).

The result is one Markdown table with PulsarDB/peer ratios and the targets of issue 3, printed
and written with the raw JSON to bench/results/ (the machine, load, versions and command are in
the header). Servers are stopped at the end, also on errors, Ctrl-C and SIGTERM.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.parse
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.idle import wait_idle
from bench.ingest import ingest_file
from bench.query_turns import Contender, take_turns
from bench.systems import (
    InfluxDB,
    PulsarCluster,
    PulsarStandalone,
    System,
    SystemUnavailableError,
    VictoriaMetrics,
    http,
)
from bench.tsbs import DatasetSpec, parse_duration, write_dataset
from bench.tsbs_queries import APPROX_PROMQL, QUERY_TYPES

__all__ = ["PRESETS", "Preset", "main", "render_markdown", "answers_agree"]


@dataclass(frozen=True)
class Preset:
    datasets: tuple[tuple[str, int, str], ...]  # (variant, hosts, duration)
    queries_per_type: int
    query_time_limit_s: float
    ingest_timeout_s: float
    settle_timeout_s: float
    # The queries take turns: each type's queries in this many rounds (bench/query_turns.py).
    query_rounds: int = 4
    # Before each load and before the queries, every running server must be idle (using under
    # 2 % of a core over `idle_window_s`; bench/idle.py), for at most `idle_timeout_s`.
    idle_window_s: float = 2.0
    idle_timeout_s: float = 60.0


PRESETS = {
    # 4.32M values per data set (series as long as the full run's, so bytes/value compare):
    # the whole run (4 systems) stays under 5 minutes.
    "small": Preset(
        (("int", 100, "12h"), ("float", 100, "12h")), 20, 10.0, 120.0, 60.0, idle_timeout_s=30.0
    ),
    # The reference size (43.2M values) for int and float; the two harder shapes at 7.2M.
    # Up to 1000 queries per type, at most 30 s each: a sub-millisecond type gets enough
    # queries for a stable mean (100 took 0.1 s, where a scheduling hiccup or the first cold
    # queries moved queries/s by a third); a slow one stops after 30 s (still 48 or more).
    "full": Preset(
        (
            ("int", 1000, "12h"),
            ("float", 1000, "12h"),
            ("highcard", 1000, "2h"),
            ("ooo", 1000, "2h"),
        ),
        1000,
        30.0,
        1200.0,
        300.0,
        query_rounds=4,
        idle_window_s=3.0,
        idle_timeout_s=120.0,
    ),
}

SYSTEMS: dict[str, type[System]] = {
    "pulsar": PulsarStandalone,
    "pulsar3": PulsarCluster,
    "influxdb": InfluxDB,
    "victoriametrics": VictoriaMetrics,
}


@dataclass
class SystemResult:
    name: str
    version: str = ""
    status: str = "ok"  # ok | not installed | failed: ...
    ingest: dict[str, dict[str, Any]] = field(default_factory=dict)  # variant -> IngestResult
    bytes_per_value: dict[str, float] = field(default_factory=dict)  # variant -> B/value
    queries: dict[str, dict[str, Any]] = field(default_factory=dict)  # type -> QueryStats
    query_status: str = ""
    notes: list[str] = field(default_factory=list)


def _available(key: str) -> str:
    """'' when the system can run here, else why not."""
    cls = SYSTEMS[key]
    if key == "pulsar3":
        return "" if PulsarCluster.available() else "n/a (`pulsar local` not built yet)"
    if key in ("influxdb", "victoriametrics"):
        return "" if cls.available() else "not installed (run `make bench-peers`)"  # type: ignore[attr-defined]
    return ""


def _influxql_available(system: System) -> str:
    """'' when `system` answers InfluxQL on /query, else a reason (PulsarDB before it lands)."""
    q = urllib.parse.urlencode({"q": "SHOW DATABASES"})
    status, body = http("GET", f"{system.url}/query?{q}", timeout=30)
    if status == 200:
        return ""
    if status in (404, 405):
        return "n/a (no InfluxQL yet)"
    return f"n/a (/query answered {status}: {body[:120].decode(errors='replace')})"


@dataclass
class _Up:
    """A started system: what the runner must stop (on errors and Ctrl-C too)."""

    key: str
    variant: str
    system: System
    result: SystemResult
    sysdir: Path


def _wait_idle(running: list[_Up], preset: Preset, before: str, report: dict[str, Any]) -> None:
    """Wait until every running server is idle (bench/idle.py); note the ones that never were."""
    if not running:
        return
    res = wait_idle(
        {up.result.name: up.system.pid for up in running},
        max_cores={up.result.name: up.system.idle_cores for up in running},
        window_s=preset.idle_window_s,
        timeout_s=preset.idle_timeout_s,
    )
    report["idle_waits"].append(
        {
            "before": before,
            "idle": res.idle,
            "waited_s": round(res.waited_s, 1),
            "busy_cores": {k: round(v, 3) for k, v in res.busy.items()},
        }
    )
    for up in running:
        if up.result.name in res.still_busy():
            up.result.notes.append(
                f"not idle before {before}: still {res.busy[up.result.name] * 100:.0f} % of a "
                f"core after {res.waited_s:.0f} s (went on)"
            )


def _stop(ups: list[_Up], running: list[_Up], args: argparse.Namespace) -> None:
    """Stop `ups` (all of them shut down at once), remove them from `running`, keep notes."""
    for up in ups:
        up.system.terminate()
    for up in ups:
        up.system.stop()
        up.result.notes.extend(n for n in up.system.notes if n not in up.result.notes)
        if up in running:
            running.remove(up)
        if not args.keep:
            shutil.rmtree(up.sysdir, ignore_errors=True)


def _load(
    key: str,
    result: SystemResult,
    dataset: tuple[str, DatasetSpec, Path],
    preset: Preset,
    workdir: Path,
    args: argparse.Namespace,
    running: list[_Up],
    report: dict[str, Any],
) -> _Up | None:
    """Start `key` fresh, wait for idle servers, load the data set, settle, bytes/value.
    The server is left running (in `running`); None when it failed (then it is stopped)."""
    variant, spec, path = dataset
    sysdir = workdir / f"{key}-{variant}"
    up = _Up(key, variant, SYSTEMS[key](sysdir), result, sysdir)
    running.append(up)  # before start(): an interrupt from here on stops it
    system = up.system
    try:
        print(f"== {result.name}: {variant} ({spec.values:,} values)", file=sys.stderr, flush=True)
        system.start()
        result.version = result.version or system.version()
        # Nothing else may compact or merge while this one loads (nor may this one still be
        # starting up): the load's values/s are this server's alone.
        _wait_idle(running, preset, f"the {result.name} {variant} load", report)
        ing = ingest_file(
            system.write_url(),
            path,
            batch_lines=args.batch_lines,
            workers=args.workers,
            timeout_s=preset.ingest_timeout_s,
            server_pid=system.pid,
        )
        result.ingest[variant] = ing.to_dict()
        print(
            f"   ingest: {ing.values_per_s / 1e6:.2f} M values/s, {ing.errors} errors, "
            f"peak RSS {ing.peak_rss_kb / 1024:.0f} MB",
            file=sys.stderr,
            flush=True,
        )
        system.settle(preset.settle_timeout_s)
        if ing.values:
            result.bytes_per_value[variant] = system.data_bytes() / ing.values
        return up
    except SystemUnavailableError as exc:
        result.status = f"failed: {exc}"[:300]
    except (OSError, RuntimeError, ValueError) as exc:
        # One system failing (a crashed server, a dead client worker) must not lose the
        # others' results: report it and go on with the next system.
        result.status = f"failed: {type(exc).__name__}: {exc}"[:300]
        result.notes.append(f"{variant}: {result.status}; server log: {system.log_tail(300)}")
    _stop([up], running, args)
    return None


def _query_phase(
    queried: list[_Up],
    spec: DatasetSpec,
    preset: Preset,
    args: argparse.Namespace,
    running: list[_Up],
    report: dict[str, Any],
) -> None:
    """The six query types on every loaded system, taking turns (bench/query_turns.py)."""
    _wait_idle(running, preset, "the queries", report)
    names = ", ".join(up.result.name for up in queried)
    print(
        f"== queries, taking turns ({preset.query_rounds} rounds per type): {names}",
        file=sys.stderr,
        flush=True,
    )
    turns = take_turns(
        [
            Contender(up.result.name, up.system.url, up.system.dialect, up.system.gone)
            for up in queried
        ],
        spec,
        queries_per_type=preset.queries_per_type,
        time_limit_s=preset.query_time_limit_s,
        rounds=preset.query_rounds,
    )
    report["query_turns"] = {
        **turns.to_dict(),
        "queries_per_type": preset.queries_per_type,
        "time_limit_s": preset.query_time_limit_s,
    }
    for up in queried:
        up.result.queries.update(turns.stats.get(up.result.name, {}))
        why = turns.failed.get(up.result.name)
        if why:
            up.result.status = f"failed: {why}"[:300]
            up.result.notes.append(
                f"queries: {up.result.status}; server log: {up.system.log_tail(300)}"
            )


def _run_all(
    keys: list[str],
    files: list[tuple[str, DatasetSpec, Path]],
    preset: Preset,
    workdir: Path,
    args: argparse.Namespace,
    report: dict[str, Any],
) -> list[SystemResult]:
    """The first data set: every system loaded and kept running, then the queries taking turns
    over all of them, then all stopped. The other data sets (ingest and bytes only): one system
    at a time. Servers still running when this raises (Ctrl-C, SIGTERM) are stopped."""
    results = {key: SystemResult(SYSTEMS[key].name) for key in keys}
    for key in keys:
        results[key].status = _available(key) or "ok"
    ok = [key for key in keys if results[key].status == "ok"]
    running: list[_Up] = []
    try:
        loaded = []
        for key in ok:
            up = _load(key, results[key], files[0], preset, workdir, args, running, report)
            if up is None:
                continue
            why_not = ""
            if up.system.dialect == "influxql" and not args.no_queries:
                why_not = _influxql_available(up.system)
                up.result.query_status = why_not
            if args.no_queries or why_not:
                _stop([up], running, args)  # nothing to query: as for the other data sets
            else:
                loaded.append(up)
        if loaded:
            _query_phase(loaded, files[0][1], preset, args, running, report)
        _stop(list(running), running, args)
        for dataset in files[1:]:
            for key in ok:
                if results[key].status != "ok":
                    continue  # failed on an earlier data set: no more of it
                up = _load(key, results[key], dataset, preset, workdir, args, running, report)
                if up is not None:
                    _stop([up], running, args)
    finally:
        _stop(list(running), running, args)
    return [results[key] for key in keys]


def machine_info() -> dict[str, str]:
    model, cores = platform.processor() or "?", str(os.cpu_count())
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, check=True).stdout
        for line in out.splitlines():
            k, _, v = line.partition(":")
            if k.strip() == "Model name":
                model = v.strip()
    except (OSError, subprocess.CalledProcessError):
        pass
    mem_kb = 0
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                mem_kb = int(line.split()[1])
    except OSError:
        pass
    load = " ".join(f"{x:.2f}" for x in os.getloadavg())
    return {
        "cpu": model,
        "cores": cores,
        "ram_gib": f"{mem_kb / 1024 / 1024:.1f}",
        "kernel": platform.release(),
        "python": platform.python_version(),
        "load_at_start": load,
    }


def _fmt_rate(v: float | None) -> str:
    return "-" if v is None else f"{v / 1e6:.2f} M"


def _ratio(a: float | None, b: float | None) -> str:
    if a is None or b is None or b == 0:
        return "-"
    return f"{a / b:.2f}"


def render_markdown(report: dict[str, Any]) -> str:
    """The report as Markdown: header, one table with ratios, targets, notes."""
    systems: list[dict[str, Any]] = report["systems"]
    by = {s["name"]: s for s in systems}
    peers = [s for s in systems if s["name"] in ("InfluxDB", "VictoriaMetrics")]
    cols = [s["name"] for s in systems]
    ratio_cols = [f"PulsarDB/{p['name']}" for p in peers]
    variants = [d["variant"] for d in report["datasets"]]

    rows: list[tuple[str, dict[str, float | None], str]] = []  # (label, values, kind)

    def value(s: dict[str, Any], getter: Any) -> float | None:
        try:
            return getter(s)
        except (KeyError, TypeError):
            return None

    for v in variants:
        rows.append(
            (
                f"ingest {v}: values/s",
                {
                    s["name"]: value(s, lambda s, v=v: s["ingest"][v]["values_per_s"])
                    for s in systems
                },
                "rate",
            )
        )
    for v in variants:
        rows.append(
            (
                f"ingest {v}: errors",
                {s["name"]: value(s, lambda s, v=v: s["ingest"][v]["errors"]) for s in systems},
                "int",
            )
        )
    rows.append(
        (
            f"peak RSS, {variants[0]} load (MB)",
            {
                s["name"]: value(s, lambda s: s["ingest"][variants[0]]["peak_rss_kb"] / 1024)
                for s in systems
            },
            "float0",
        )
    )
    for v in variants:
        rows.append(
            (
                f"bytes/value {v}",
                {s["name"]: value(s, lambda s, v=v: s["bytes_per_value"][v]) for s in systems},
                "float2",
            )
        )

    def timing(s: dict[str, Any], q: str, key: str) -> float | None:
        # A query type that failed every time has no latency worth showing (an error answer
        # is fast): its cells say "error" and it gets no ratio.
        st = s["queries"][q]
        return None if st["errors"] >= st["count"] else st[key]

    # Query rows only for types that some system ran or explained (not with --no-queries).
    ran = [q for q in QUERY_TYPES if any(q in s.get("queries", {}) for s in systems)]
    if not ran and any(s.get("query_status") for s in systems):
        ran = list(QUERY_TYPES)
    for q in ran:
        for key, label, kind in (
            ("p50_ms", "p50 ms", "ms"),
            ("p99_ms", "p99 ms", "ms"),
            ("qps", "queries/s", "float1"),
        ):
            rows.append(
                (
                    f"{q} {label}",
                    {
                        s["name"]: value(s, lambda s, q=q, key=key: timing(s, q, key))
                        for s in systems
                    },
                    kind,
                )
            )

    def cell(s: dict[str, Any], label: str, x: float | None, kind: str) -> str:
        if x is None:
            if s["status"] != "ok":  # the reason is in the Versions line above the table
                return "failed" if s["status"].startswith("failed") else "n/a"
            if (" ms" in label or "queries/s" in label) and s.get("query_status"):
                return s["query_status"]
            q = label.split(" ", maxsplit=1)[0]
            if q in s.get("queries", {}):
                return "error (see notes)"
            return "-"
        if kind == "rate":
            return _fmt_rate(x)
        if kind == "int":
            return str(int(x))
        if kind == "float0":
            return f"{x:.0f}"
        if kind == "float2":
            return f"{x:.3f}"
        if kind == "ms":
            return f"{x:.1f}"
        return f"{x:.1f}"

    lines = [
        "| metric | " + " | ".join(cols + ratio_cols) + " |",
        "|---" * (1 + len(cols) + len(ratio_cols)) + "|",
    ]
    for label, vals, kind in rows:
        cells = [cell(by[c], label, vals[c], kind) for c in cols]
        for p in peers:
            cells.append(
                _ratio(vals.get("PulsarDB"), vals.get(p["name"])) if kind != "int" else "-"
            )
        mark = ""
        for q in APPROX_PROMQL:
            if label.startswith(q) and any(p["name"] == "VictoriaMetrics" for p in peers):
                mark = " (VM: approx.)"
        lines.append(f"| {label}{mark} | " + " | ".join(cells) + " |")

    m = report["machine"]
    head = [
        f"Run {report['date']} on {m['cpu']}, {m['cores']} cores, {m['ram_gib']} GiB RAM, "
        f"kernel {m['kernel']}, Python {m['python']}; load average at start {m['load_at_start']}, "
        f"at end {report.get('load_at_end', '?')}.",
        "",
        f"Command: `{report['command']}`; client: {report['workers']} processes, "
        f"{report['batch_lines']:,} lines per POST, on the same machine.",
        "",
        "Data sets: "
        + "; ".join(
            f"{d['variant']}: {d['hosts']} hosts x {d['duration']} = {d['values']:,} values "
            f"({d['mb']:.0f} MB, generated in {d['gen_s']:.1f} s)"
            for d in report["datasets"]
        )
        + ".",
        "",
        "Versions: "
        + "; ".join(
            f"{s['name']}: {s['version'] if s['status'] == 'ok' else s['status']}" for s in systems
        )
        + ".",
        "",
        *_method_lines(report),
    ]
    targets = _targets(by, variants)
    tail = ["", "Targets (issue 3):", ""] + [f"- {t}" for t in targets]
    agree = answers_agree(by)
    if agree:
        tail += [
            "",
            "Answers: PulsarDB's against InfluxDB's for the same InfluxQL text (series and "
            "column order, int/float and float noise past 9 digits ignored): "
            + ", ".join(agree)
            + ".",
        ]
    tail += _round_lines(report)
    notes = [f"- {s['name']}: {n}" for s in systems for n in s["notes"]]
    for s in systems:
        for q, st in s.get("queries", {}).items():
            if st.get("errors"):
                notes.append(
                    f"- {s['name']} {q}: {st['errors']} errors, first: {st['first_error'][:200]}"
                )
            if st.get("empty"):
                notes.append(
                    f"- {s['name']} {q}: {st['empty']} of {st['count']} answers empty"
                    + (" (expected: the host did not exceed 90)" if q == "high-cpu-1" else "")
                )
        for v, ing in s.get("ingest", {}).items():
            if ing.get("first_error"):
                notes.append(f"- {s['name']} ingest {v}: {ing['first_error'][:200]}")
            if ing.get("timed_out"):
                notes.append(f"- {s['name']} ingest {v}: stopped at the time limit")
    if notes:
        tail += ["", "Notes:", "", *notes]
    return "\n".join(head + lines + tail) + "\n"


def _method_lines(report: dict[str, Any]) -> list[str]:
    """How the run went: turns in the query phase, waits for idle servers (newer runs only)."""
    out = []
    turns = report.get("query_turns")
    if turns:
        orders = turns["orders"]
        shown = "; ".join(", ".join(o["order"]) for o in orders[: turns["rounds"]])
        out.append(
            "Queries: every system was loaded first and kept running; then, per query type, "
            f"the systems took turns in {turns['rounds']} rounds of up to "
            f"{turns['queries_per_type'] // turns['rounds']} queries (at most "
            f"{turns['time_limit_s'] / turns['rounds']:g} s each), the order rotating from "
            f"round to round ({shown}; ...), so that the machine's drift over minutes falls "
            "on every system alike. The table pools the rounds; queries/s per round are below."
        )
        out.append("")
    waits = report.get("idle_waits")
    if waits:
        busy = [w["before"] for w in waits if not w["idle"]]
        out.append(
            f"Before each load and before the queries the runner waited until every running "
            f"server was idle ({len(waits)} waits, longest {max(w['waited_s'] for w in waits):g} s"
            + (f"; not idle before: {', '.join(busy)}" if busy else "")
            + ")."
        )
        out.append("")
    return out


def _round_lines(report: dict[str, Any]) -> list[str]:
    """Queries/s of each round, per type and system: the drift within the query phase."""
    lines = []
    for q in QUERY_TYPES:
        parts = []
        for s in report["systems"]:
            rounds = (s.get("queries") or {}).get(q, {}).get("rounds") or []
            if rounds:
                parts.append(f"{s['name']} " + " / ".join(f"{r['qps']:.1f}" for r in rounds))
        if parts:
            lines.append(f"- {q}: " + "; ".join(parts))
    if not lines:
        return []
    return ["", "Queries/s per round (in round order):", "", *lines]


def answers_agree(by: dict[str, dict[str, Any]]) -> list[str]:
    """Per query type, 'type: k of n identical' over the queries both systems answered."""
    mine, ref = by.get("PulsarDB"), by.get("InfluxDB")
    if not mine or not ref:
        return []
    out = []
    for q in QUERY_TYPES:
        a = (mine.get("queries") or {}).get(q, {}).get("digests") or []
        b = (ref.get("queries") or {}).get(q, {}).get("digests") or []
        pairs = [(x, y) for x, y in zip(a, b, strict=False) if x and y]
        if pairs:
            same = sum(x == y for x, y in pairs)
            out.append(f"{q} {same} of {len(pairs)} identical")
        elif a or b:
            out.append(f"{q} not compared (errors)")
    return out


def _targets(by: dict[str, dict[str, Any]], variants: list[str]) -> list[str]:
    def get(name: str, *keys: str) -> float | None:
        cur: Any = by.get(name)
        for k in keys:
            if not isinstance(cur, dict) or k not in cur:
                return None
            cur = cur[k]
        return float(cur)

    out = []

    def check(what: str, ok: bool | None, detail: str) -> None:
        verdict = "n/a" if ok is None else ("met" if ok else "MISSED")
        out.append(f"{what}: {verdict} ({detail})")

    v0 = variants[0]
    p = get("PulsarDB", "ingest", v0, "values_per_s")
    i = get("InfluxDB", "ingest", v0, "values_per_s")
    c = get("PulsarDB 3-node", "ingest", v0, "values_per_s")
    check(
        "standalone ingest >= InfluxDB",
        None if p is None or i is None else p >= i,
        f"{_fmt_rate(p)} vs {_fmt_rate(i)} values/s",
    )
    check(
        "3-node cluster >= half of standalone",
        None if p is None or c is None else c >= p / 2,
        f"{_fmt_rate(c)} vs {_fmt_rate(p)} values/s",
    )
    for variant, limit in (("int", 0.40), ("float", 2.0)):
        b = get("PulsarDB", "bytes_per_value", variant)
        check(
            f"bytes/value on {variant} data <= {limit}",
            None if b is None else b <= limit,
            "-" if b is None else f"{b:.3f}",
        )
    pm = get("PulsarDB", "ingest", v0, "peak_rss_kb")
    im = get("InfluxDB", "ingest", v0, "peak_rss_kb")
    check(
        "peak memory below InfluxDB's",
        None if pm is None or im is None else pm < im,
        "-" if pm is None or im is None else f"{pm / 1024:.0f} MB vs {im / 1024:.0f} MB",
    )
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description="PulsarDB side-by-side benchmark")
    p.add_argument("--size", choices=sorted(PRESETS), default="small")
    p.add_argument(
        "--systems",
        default=",".join(SYSTEMS),
        help=f"comma-separated, from {', '.join(SYSTEMS)}",
    )
    p.add_argument("--hosts", type=int, help="override the preset's host count")
    p.add_argument("--duration", help="override the preset's duration (e.g. 1h)")
    p.add_argument("--variants", help="override the preset's variants (comma-separated)")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--workers", type=int, default=2, help="client processes")
    p.add_argument("--batch-lines", type=int, default=10_000)
    p.add_argument("--no-queries", action="store_true")
    p.add_argument("--workdir", help="where data and servers live (default: a temp dir)")
    p.add_argument("--keep", action="store_true", help="keep the servers' data dirs")
    p.add_argument("--out", default="bench/results", help="directory for the report")
    p.add_argument("--render", metavar="JSON", help="only print the report of a saved run")
    args = p.parse_args(argv)
    if args.render:
        print(render_markdown(json.loads(Path(args.render).read_text())))
        return 0

    preset = PRESETS[args.size]
    keys = list(dict.fromkeys(k.strip() for k in args.systems.split(",") if k.strip()))
    unknown = [k for k in keys if k not in SYSTEMS]
    if unknown:
        p.error(f"unknown system(s): {', '.join(unknown)}")
    datasets = list(preset.datasets)
    if args.variants:
        # Each wanted variant at the preset's size for it, else at the preset's first size.
        sizes = {v: (h, d) for v, h, d in datasets}
        first = datasets[0][1:]
        datasets = [(v, *sizes.get(v, first)) for v in args.variants.split(",") if v]
    if args.hosts or args.duration:
        datasets = [(v, args.hosts or h, args.duration or d) for v, h, d in datasets]

    # SIGTERM runs the same cleanup as Ctrl-C: every `finally` below stops its server.
    signal.signal(signal.SIGTERM, lambda *_: (_ for _ in ()).throw(KeyboardInterrupt()))
    own_tmp = args.workdir is None
    workdir = Path(args.workdir or tempfile.mkdtemp(prefix="pulsar-bench-"))
    workdir.mkdir(parents=True, exist_ok=True)
    report: dict[str, Any] = {
        "date": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "command": "python -m bench.run " + " ".join(sys.argv[1:] if argv is None else argv),
        "machine": machine_info(),
        "workers": args.workers,
        "batch_lines": args.batch_lines,
        "datasets": [],
        "systems": [],
        "idle_waits": [],
    }
    try:
        files = []
        for variant, hosts, duration in datasets:
            spec = DatasetSpec(
                hosts=hosts, duration_s=parse_duration(duration), seed=args.seed, variant=variant
            ).resolved()
            path = workdir / f"cpu-{variant}-{hosts}h-{duration}.lp"
            res = write_dataset(spec, path)
            files.append((variant, spec, path))
            report["datasets"].append(
                {
                    "variant": variant,
                    "hosts": hosts,
                    "duration": duration,
                    "values": spec.values,
                    "series": spec.series,
                    "start_ns": spec.start_ns,
                    "mb": res.bytes / 1e6,
                    "gen_s": res.seconds,
                }
            )
            print(
                f"generated {path.name}: {spec.values:,} values, {res.bytes / 1e6:.0f} MB "
                f"in {res.seconds:.1f} s",
                file=sys.stderr,
                flush=True,
            )
        report["systems"] = [
            r.__dict__ for r in _run_all(keys, files, preset, workdir, args, report)
        ]
    except KeyboardInterrupt:
        print("interrupted: servers stopped", file=sys.stderr)
        return 130
    finally:
        if own_tmp and not args.keep:
            shutil.rmtree(workdir, ignore_errors=True)
    report["load_at_end"] = " ".join(f"{x:.2f}" for x in os.getloadavg())
    md = render_markdown(report)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y%m%d-%H%M%S", time.gmtime())
    (out / f"{args.size}-{stamp}.json").write_text(json.dumps(report, indent=1) + "\n")
    (out / f"{args.size}-{stamp}.md").write_text(md)
    print(md)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
