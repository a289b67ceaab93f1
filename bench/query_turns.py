"""The query phase of the side-by-side benchmark: the systems take turns, type by type.

Measured one after the other, the systems' query phases ran minutes apart, and this shared
2-core machine's speed drifts by 10-30 % over minutes, enough to decide a ratio of two
sub-millisecond query types. So every system is loaded first and kept running, and then, for each
query type, the type's queries are cut into `rounds` consecutive slices; in round r every system
runs slice r (at most `time_limit_s / rounds` seconds), in an order that rotates from round to
round (A B C, B C A, C A B, ...; the rotation goes on across types). Every system gets the same
query texts in the same order (`make_queries` with the same seed). A system's latencies of all
rounds are pooled into its stats for the type (`QueryRun`), and each round's queries/s is kept,
so drift within the phase shows. A system that fails (its process exits, the client raises) is
reported and left out of later rounds; the others go on.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from bench.query_driver import QueryRun
from bench.systems import DB
from bench.tsbs import DatasetSpec
from bench.tsbs_queries import QUERY_TYPES, make_queries

__all__ = ["Contender", "TurnsResult", "round_bounds", "take_turns"]


@dataclass
class Contender:
    """A running system in the query phase."""

    name: str
    url: str
    dialect: str  # influxql | promql
    # '' while the system runs, else why not (e.g. "exited with code -9"): checked after each
    # of its turns, so that a crashed server is dropped instead of timing connection errors.
    gone: Callable[[], str] = lambda: ""


@dataclass
class TurnsResult:
    rounds: int
    stats: dict[str, dict[str, dict[str, Any]]] = field(default_factory=dict)  # name -> type ->
    failed: dict[str, str] = field(default_factory=dict)  # name -> why it left the phase
    # One entry per round: {"type", "round", "order": [names]}.
    orders: list[dict[str, Any]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {"rounds": self.rounds, "failed": self.failed, "orders": self.orders}


def round_bounds(count: int, rounds: int) -> list[tuple[int, int]]:
    """`rounds` consecutive [first, stop) slices of `count` queries, as even as can be."""
    if rounds < 1:
        raise ValueError("rounds must be positive")
    return [(count * r // rounds, count * (r + 1) // rounds) for r in range(rounds)]


def _log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def take_turns(
    contenders: Sequence[Contender],
    spec: DatasetSpec,
    *,
    queries_per_type: int,
    time_limit_s: float,
    rounds: int,
    types: Sequence[str] = QUERY_TYPES,
    log: Callable[[str], None] = _log,
) -> TurnsResult:
    """Run every query type on every contender, taking turns (see the module docstring)."""
    out = TurnsResult(rounds)
    bounds = round_bounds(queries_per_type, rounds)
    round_limit_s = time_limit_s / rounds
    turn = 0  # rounds so far over all types: the rotation goes on from type to type
    for qtype in types:
        runs = {
            c.name: QueryRun(
                c.url, make_queries(spec, qtype, queries_per_type, c.dialect, db=DB), time_limit_s
            )
            for c in contenders
            if c.name not in out.failed
        }
        for r, (first, stop) in enumerate(bounds):
            active = [c for c in contenders if c.name not in out.failed]
            if not active:
                break
            k = turn % len(active)
            order = active[k:] + active[:k]
            turn += 1
            out.orders.append({"type": qtype, "round": r, "order": [c.name for c in order]})
            for pos, c in enumerate(order):
                try:
                    runs[c.name].run_round(first, stop, round_limit_s, r, pos)
                except (OSError, RuntimeError, ValueError) as exc:
                    out.failed[c.name] = f"{qtype} round {r}: {type(exc).__name__}: {exc}"[:300]
                    continue
                why = c.gone()
                if why:
                    out.failed[c.name] = f"{why} during {qtype} round {r}"[:300]
        for name, run in runs.items():
            if not run.rounds:
                continue
            stats = run.result()
            out.stats.setdefault(name, {})[qtype] = stats.to_dict()
            per_round = "/".join(f"{rs.qps:.0f}" for rs in run.rounds)
            log(
                f"   {name} {qtype}: p50 {stats.p50_ms:.1f} ms, p99 {stats.p99_ms:.1f} ms, "
                f"{stats.qps:.1f} q/s (rounds {per_round}), {stats.errors} errors, "
                f"{stats.empty} empty"
            )
    return out
