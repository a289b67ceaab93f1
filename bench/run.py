"""Side-by-side benchmark: PulsarDB (standalone, 3-node local cluster) next to InfluxDB 1.6 and
VictoriaMetrics, on the same TSBS data, with the same client, one system at a time.

    python -m bench.run --size small      # `make bench`: about 3 minutes
    python -m bench.run --size full       # `make bench-full`: 1000 hosts x 12 h (43.2M values)

For every data set of the size preset, and every system that is installed: start it fresh in a
temp dir on 127.0.0.1 -> ingest the file (2 client processes, 10,000 lines per POST; values/s,
errors, peak RSS of the server's process tree) -> make its storage settle (flush, compact) ->
bytes on disk per value -> on the integer data set, the six TSBS query types -> stop it.
Peers that are not installed are reported as such (`make bench-peers` installs them).

The result is one Markdown table with PulsarDB/peer ratios and the targets of issue 3, printed
and written with the raw JSON to bench/results/ (the machine, load, versions and command are in
the header). Servers are stopped at the end, also on errors and Ctrl-C.
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

from bench.ingest import ingest_file
from bench.query_driver import run_queries
from bench.systems import (
    DB,
    InfluxDB,
    PulsarCluster,
    PulsarStandalone,
    System,
    SystemUnavailableError,
    VictoriaMetrics,
    http,
)
from bench.tsbs import DatasetSpec, parse_duration, write_dataset
from bench.tsbs_queries import APPROX_PROMQL, QUERY_TYPES, make_queries

__all__ = ["PRESETS", "Preset", "main", "render_markdown", "answers_agree"]


@dataclass(frozen=True)
class Preset:
    datasets: tuple[tuple[str, int, str], ...]  # (variant, hosts, duration)
    queries_per_type: int
    query_time_limit_s: float
    ingest_timeout_s: float
    settle_timeout_s: float


PRESETS = {
    # 4.32M values per data set (series as long as the full run's, so bytes/value compare):
    # the whole run (4 systems) stays under 5 minutes.
    "small": Preset((("int", 100, "12h"), ("float", 100, "12h")), 20, 10.0, 120.0, 60.0),
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


def _run_system(
    key: str,
    files: list[tuple[str, DatasetSpec, Path]],
    preset: Preset,
    workdir: Path,
    args: argparse.Namespace,
) -> SystemResult:
    cls = SYSTEMS[key]
    result = SystemResult(cls.name)
    why_not = _available(key)
    if why_not:
        result.status = why_not
        return result
    for variant, spec, path in files:
        sysdir = workdir / f"{key}-{variant}"
        system = cls(sysdir)
        try:
            print(f"== {cls.name}: {variant} ({spec.values:,} values)", file=sys.stderr, flush=True)
            system.start()
            result.version = result.version or system.version()
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
            if variant == files[0][0] and not args.no_queries:
                _run_query_suite(system, spec, preset, result)
        except SystemUnavailableError as exc:
            result.status = f"failed: {exc}"[:300]
        except (OSError, RuntimeError, ValueError) as exc:
            # One system failing (a crashed server, a dead client worker) must not lose the
            # others' results: report it and go on with the next system.
            result.status = f"failed: {type(exc).__name__}: {exc}"[:300]
            result.notes.append(f"{variant}: {result.status}; server log: {system.log_tail(300)}")
        finally:
            system.stop()
            result.notes.extend(n for n in system.notes if n not in result.notes)
            if not args.keep:
                shutil.rmtree(sysdir, ignore_errors=True)
        if result.status != "ok":
            break
    return result


def _run_query_suite(
    system: System, spec: DatasetSpec, preset: Preset, result: SystemResult
) -> None:
    if system.dialect == "influxql":
        why_not = _influxql_available(system)
        if why_not:
            result.query_status = why_not
            return
    for qtype in QUERY_TYPES:
        queries = make_queries(spec, qtype, preset.queries_per_type, system.dialect, db=DB)
        stats = run_queries(system.url, queries, preset.query_time_limit_s)
        result.queries[qtype] = stats.to_dict()
        print(
            f"   {qtype}: p50 {stats.p50_ms:.1f} ms, p99 {stats.p99_ms:.1f} ms, "
            f"{stats.errors} errors, {stats.empty} empty",
            file=sys.stderr,
            flush=True,
        )


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
    keys = [k.strip() for k in args.systems.split(",") if k.strip()]
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
        for key in keys:
            r = _run_system(key, files, preset, workdir, args)
            report["systems"].append(r.__dict__)
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
