"""Deterministic generator of the TSBS "devops cpu-only" data set, as InfluxDB line protocol.

One point per host every `interval_s` (10 s), measurement `cpu`, the ten TSBS tags and the ten
`usage_*` fields, each a random walk bounded to [0, 100] (N(0, 1) steps, like TSBS's
ClampedRandomWalk; here reflected at the bounds so the whole walk is one vectorised cumsum):

    cpu,hostname=host_0,region=eu-west-1,datacenter=eu-west-1b,rack=41,os=Ubuntu16.04LTS,arch=x64,
    team=LON,service=7,service_version=1,service_environment=staging usage_user=58i,...,
    usage_guest_nice=38i 1767225600000000000

(one line; wrapped here). Lines are time-major like TSBS's output: every host at t0, then at t1...

Variants:
- `int` (default): integer fields (`58i`), like TSBS's influx output.
- `float`: the same walks with 4 decimals (`58.0312`), the harder case for compression.
- `highcard`: integer fields, but every host is replaced by a new hostname (`host_7_g3`) every
  `churn_s` seconds: many short-lived series, as from autoscaled containers.
- `ooo`: integer fields, lines shuffled within windows of `ooo_window_s`: out-of-order arrival.

Deterministic: the same spec (including `start_ns`) gives the same bytes, whatever the chunking.
The default start is "now minus duration" floored to the interval, because VictoriaMetrics drops
samples older than its retention (1 month by default); pass `start_ns` to pin it.

Run `python -m bench.tsbs --hosts 100 --duration 1h --out cpu.lp` to write a file; a JSON sidecar
(`cpu.lp.json`) records the spec so the query driver knows the time range and host names.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np

from bench.ragged import Vocabulary, assemble

__all__ = [
    "FIELDS",
    "TAG_KEYS",
    "REGIONS",
    "VARIANTS",
    "DatasetSpec",
    "generate_chunks",
    "write_dataset",
    "read_spec",
    "parse_duration",
    "host_tags",
]

FIELDS = (
    "usage_user",
    "usage_system",
    "usage_idle",
    "usage_nice",
    "usage_iowait",
    "usage_irq",
    "usage_softirq",
    "usage_steal",
    "usage_guest",
    "usage_guest_nice",
)
TAG_KEYS = (
    "hostname",
    "region",
    "datacenter",
    "rack",
    "os",
    "arch",
    "team",
    "service",
    "service_version",
    "service_environment",
)
# TSBS's devops regions and their data centers (pkg/data/usecases/devops/host.go).
REGIONS: dict[str, tuple[str, ...]] = {
    "us-east-1": ("us-east-1a", "us-east-1b", "us-east-1c", "us-east-1e"),
    "us-west-1": ("us-west-1a", "us-west-1b"),
    "us-west-2": ("us-west-2a", "us-west-2b", "us-west-2c"),
    "eu-west-1": ("eu-west-1a", "eu-west-1b", "eu-west-1c"),
    "eu-central-1": ("eu-central-1a", "eu-central-1b"),
    "ap-southeast-1": ("ap-southeast-1a", "ap-southeast-1b"),
    "ap-southeast-2": ("ap-southeast-2a", "ap-southeast-2b"),
    "ap-northeast-1": ("ap-northeast-1a", "ap-northeast-1c"),
    "sa-east-1": ("sa-east-1a", "sa-east-1b", "sa-east-1c"),
}
_OS = ("Ubuntu16.10", "Ubuntu16.04LTS", "Ubuntu15.10")
_ARCH = ("x64", "x86")
_TEAM = ("SF", "NYC", "LON", "CHI")
_ENV = ("production", "staging", "test")
VARIANTS = ("int", "float", "highcard", "ooo")
_MAX = 100.0  # the walks live in [0, _MAX] (percentages)
_TARGET_CHUNK_LINES = 40_000  # ~13 MB of text per chunk: big enough for numpy, small in memory


@dataclass(frozen=True)
class DatasetSpec:
    """What to generate. `start_ns=None` means now minus duration (see `resolved`)."""

    hosts: int = 100
    duration_s: int = 3600
    seed: int = 1
    start_ns: int | None = None
    interval_s: int = 10
    variant: str = "int"
    churn_s: int = 300
    ooo_window_s: int = 60

    def __post_init__(self) -> None:
        if self.hosts < 1 or self.duration_s < 1 or self.interval_s < 1:
            raise ValueError("hosts, duration_s and interval_s must be positive")
        if self.variant not in VARIANTS:
            raise ValueError(f"unknown variant '{self.variant}': use one of {', '.join(VARIANTS)}")
        if self.churn_s < self.interval_s or self.ooo_window_s < self.interval_s:
            raise ValueError("churn_s and ooo_window_s must be at least interval_s")

    def resolved(self) -> DatasetSpec:
        """This spec with `start_ns` fixed (now minus duration, floored to the interval)."""
        if self.start_ns is not None:
            return self
        step = self.interval_s * 1_000_000_000
        start = (time.time_ns() - self.duration_s * 1_000_000_000) // step * step
        return replace(self, start_ns=start)

    @property
    def steps(self) -> int:
        return -(-self.duration_s // self.interval_s)

    @property
    def lines(self) -> int:
        return self.steps * self.hosts

    @property
    def values(self) -> int:
        return self.lines * len(FIELDS)

    @property
    def end_ns(self) -> int:
        """Exclusive end of the data's time range."""
        assert self.start_ns is not None, "resolve the spec first"
        return self.start_ns + self.steps * self.interval_s * 1_000_000_000

    @property
    def churn_steps(self) -> int:
        return max(1, self.churn_s // self.interval_s)

    @property
    def window_steps(self) -> int:
        return max(1, self.ooo_window_s // self.interval_s)

    @property
    def series(self) -> int:
        """Distinct series (measurement + tag set) in the data set."""
        if self.variant == "highcard":
            return self.hosts * -(-self.steps // self.churn_steps)
        return self.hosts

    def hostnames(self) -> list[str]:
        """The hostnames that have data (for highcard: those of the first generation)."""
        return [
            f"host_{i}_g0" if self.variant == "highcard" else f"host_{i}" for i in range(self.hosts)
        ]


def host_tags(hosts: int, seed: int) -> list[dict[str, str]]:
    """The nine non-hostname tags of every host, drawn like TSBS (uniform choices)."""
    rng = np.random.default_rng([seed, 1])
    regions = list(REGIONS)
    region_i = rng.integers(0, len(regions), hosts)
    dc_u = rng.random(hosts)
    rack = rng.integers(0, 100, hosts)
    os_i = rng.integers(0, len(_OS), hosts)
    arch_i = rng.integers(0, len(_ARCH), hosts)
    team_i = rng.integers(0, len(_TEAM), hosts)
    service = rng.integers(0, 20, hosts)
    version = rng.integers(0, 2, hosts)
    env_i = rng.integers(0, len(_ENV), hosts)
    out = []
    for h in range(hosts):
        region = regions[region_i[h]]
        dcs = REGIONS[region]
        out.append(
            {
                "region": region,
                "datacenter": dcs[int(dc_u[h] * len(dcs))],
                "rack": str(rack[h]),
                "os": _OS[os_i[h]],
                "arch": _ARCH[arch_i[h]],
                "team": _TEAM[team_i[h]],
                "service": str(service[h]),
                "service_version": str(version[h]),
                "service_environment": _ENV[env_i[h]],
            }
        )
    return out


def _head(hostname: str, tags: dict[str, str]) -> bytes:
    rest = ",".join(f"{k}={tags[k]}" for k in TAG_KEYS[1:])
    return f"cpu,hostname={hostname},{rest} ".encode()


class _Layout:
    """The static vocabulary (field names, value tokens) and per-line segment layout."""

    def __init__(self, spec: DatasetSpec) -> None:
        self.spec = spec
        self.tags = host_tags(spec.hosts, spec.seed)
        base = Vocabulary()
        self.field_prefix = base.add_many(
            [(f"{name}=" if i == 0 else f",{name}=").encode() for i, name in enumerate(FIELDS)]
        )
        top = int(_MAX)
        if spec.variant == "float":
            self.int_part = base.add_many([str(i).encode() for i in range(top + 1)])
            self.frac = base.add_many([f".{i:04d}".encode() for i in range(10_000)])
        else:
            self.int_tok = base.add_many([f"{i}i".encode() for i in range(top + 1)])
        self.base = base
        if spec.variant != "highcard":
            self.static_heads = [_head(f"host_{h}", self.tags[h]) for h in range(spec.hosts)]

    def segments_per_line(self) -> int:
        per_field = 3 if self.spec.variant == "float" else 2
        return 1 + per_field * len(FIELDS) + 1  # head, fields, timestamp


def _reflect(pos: np.ndarray) -> np.ndarray:
    """Fold an unbounded walk into [0, _MAX] by reflection at both bounds."""
    y = np.mod(pos, 2 * _MAX)
    return np.where(y > _MAX, 2 * _MAX - y, y)


def generate_chunks(spec: DatasetSpec) -> Iterator[bytes]:
    """The data set as consecutive chunks of whole lines (each chunk a bytes object)."""
    spec = spec.resolved()
    assert spec.start_ns is not None
    layout = _Layout(spec)
    hosts, nf = spec.hosts, len(FIELDS)
    walk_rng = np.random.default_rng([spec.seed, 2])
    shuffle_rng = np.random.default_rng([spec.seed, 3])
    pos = walk_rng.random((hosts, nf)) * _MAX
    window = spec.window_steps if spec.variant == "ooo" else 1
    per_chunk = max(1, _TARGET_CHUNK_LINES // hosts)
    per_chunk = max(window, per_chunk // window * window)
    step_ns = spec.interval_s * 1_000_000_000
    for first in range(0, spec.steps, per_chunk):
        n = min(per_chunk, spec.steps - first)
        # Walk: cumulative N(0,1) steps from the carried position; draws are consumed in the
        # same order whatever the chunk size, so output does not depend on chunking.
        walk = pos[None, :, :] + np.cumsum(walk_rng.standard_normal((n, hosts, nf)), axis=0)
        pos = walk[-1]
        bounded = _reflect(walk).reshape(n * hosts, nf)

        vocab = layout.base.copy()
        times = spec.start_ns + (first + np.arange(n, dtype=np.int64)) * step_ns
        ts_ids = vocab.add_many([f" {t}\n".encode() for t in times.tolist()])
        if spec.variant == "highcard":
            gens = sorted({(first + s) // spec.churn_steps for s in range(n)})
            head_ids = {}
            for g in gens:
                ids = vocab.add_many(
                    [_head(f"host_{h}_g{g}", layout.tags[h]) for h in range(hosts)]
                )
                head_ids[g] = ids
            gen_of_step = (first + np.arange(n)) // spec.churn_steps
            line_heads = np.concatenate([head_ids[int(g)] for g in gen_of_step])
        else:
            ids = vocab.add_many(layout.static_heads)
            line_heads = np.tile(ids, n)

        seg = np.empty((n * hosts, layout.segments_per_line()), np.int64)
        seg[:, 0] = line_heads
        if spec.variant == "float":
            scaled = np.rint(bounded * 10_000).astype(np.int64)
            seg[:, 1:-1:3] = layout.field_prefix
            seg[:, 2:-1:3] = layout.int_part[scaled // 10_000]
            seg[:, 3:-1:3] = layout.frac[scaled % 10_000]
        else:
            seg[:, 1:-1:2] = layout.field_prefix
            seg[:, 2:-1:2] = layout.int_tok[np.rint(bounded).astype(np.int64)]
        seg[:, -1] = np.repeat(ts_ids, hosts)
        if spec.variant == "ooo":
            per_window = window * hosts
            order = np.concatenate(
                [
                    w + shuffle_rng.permutation(min(per_window, seg.shape[0] - w))
                    for w in range(0, seg.shape[0], per_window)
                ]
            )
            seg = seg[order]
        yield assemble(vocab, seg)


@dataclass(frozen=True)
class WriteResult:
    spec: DatasetSpec
    path: str
    bytes: int
    seconds: float


def write_dataset(spec: DatasetSpec, path: str | os.PathLike[str]) -> WriteResult:
    """Stream the data set to `path` (and its spec to `path.json`); returns sizes and time."""
    spec = spec.resolved()
    path = Path(path)
    t0 = time.perf_counter()
    size = 0
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as f:
        for chunk in generate_chunks(spec):
            f.write(chunk)
            size += len(chunk)
    tmp.replace(path)  # a file that exists is complete
    Path(str(path) + ".json").write_text(json.dumps(asdict(spec), indent=1) + "\n")
    return WriteResult(spec, str(path), size, time.perf_counter() - t0)


def read_spec(path: str | os.PathLike[str]) -> DatasetSpec:
    """The spec a data file was generated with (from its `.json` sidecar)."""
    return DatasetSpec(**json.loads(Path(str(path) + ".json").read_text()))


def parse_duration(text: str) -> int:
    """'90s', '15m', '12h', '2d' or plain seconds -> seconds."""
    units = {"s": 1, "m": 60, "h": 3600, "d": 86400}
    text = text.strip()
    if text and text[-1] in units:
        return int(float(text[:-1]) * units[text[-1]])
    return int(text)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description="Generate TSBS devops cpu-only line protocol")
    p.add_argument("--hosts", type=int, default=100)
    p.add_argument("--duration", default="1h", help="e.g. 1h, 12h, 3600 (seconds)")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--start-ns", type=int, default=None, help="default: now minus duration")
    p.add_argument("--variant", choices=VARIANTS, default="int")
    p.add_argument("--churn", default="5m", help="highcard: lifetime of a hostname")
    p.add_argument("--ooo-window", default="1m", help="ooo: lines shuffled within this window")
    p.add_argument("--out", required=True, help="output file ('-' for stdout)")
    args = p.parse_args(argv)
    spec = DatasetSpec(
        hosts=args.hosts,
        duration_s=parse_duration(args.duration),
        seed=args.seed,
        start_ns=args.start_ns,
        variant=args.variant,
        churn_s=parse_duration(args.churn),
        ooo_window_s=parse_duration(args.ooo_window),
    )
    if args.out == "-":
        for chunk in generate_chunks(spec):
            sys.stdout.buffer.write(chunk)
        return 0
    res = write_dataset(spec, args.out)
    mb = res.bytes / 1e6
    print(
        f"{res.path}: {spec.lines:,} lines, {spec.values:,} values, {mb:,.1f} MB "
        f"in {res.seconds:.2f} s ({spec.values / max(res.seconds, 1e-9) / 1e6:.1f} M values/s)",
        file=sys.stderr,
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
