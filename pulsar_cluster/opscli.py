"""`pulsar admin caches|reload`: the operations actions of the admin CLI (pulsar_cluster/cli.py).

pulsar admin caches [--json]                  cache statistics per node (a table)
pulsar admin caches --clear [--cache NAME]    empty the caches, then print the statistics
pulsar admin reload [--json]                  re-read the configuration files everywhere
"""

from __future__ import annotations

import argparse
from typing import Any

__all__ = ["OPS_ACTIONS", "add_ops_flags", "run_ops_action", "format_caches", "format_reload"]

OPS_ACTIONS = ("caches", "reload")


def add_ops_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("--clear", action="store_true", help="caches: empty them first")
    p.add_argument(
        "--cache",
        default="all",
        choices=["all", "block", "last_value"],
        help="caches --clear: which cache (default all)",
    )


def _size(n: int | None) -> str:
    if n is None:
        return "-"
    value = float(n)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{n} B"


def _row(name: str, doc: dict[str, Any] | None) -> list[str]:
    if doc is None:
        return [name, "-", "-", "-", "-", "-"]
    ratio = doc.get("hit_ratio")
    return [
        name,
        str(doc.get("entries", 0)),
        _size(doc.get("bytes")),
        str(doc.get("hits", 0)),
        str(doc.get("misses", 0)),
        "-" if ratio is None else f"{100 * ratio:.1f}%",
    ]


def format_caches(doc: dict[str, Any]) -> str:
    """A table per cache: one line per node, then the total."""
    lines = []
    for key, title in (
        ("block_cache", "block cache"),
        ("last_value_cache", "last-value cache"),
        ("rollup_cache", "rollup cache"),
    ):
        rows = [["node", "entries", "bytes", "hits", "misses", "hit ratio"]]
        unreachable = []
        for node, info in sorted(doc.get("nodes", {}).items()):
            if "error" in info:
                unreachable.append(f"  {node}: unreachable: {info['error']}")
            else:
                rows.append(_row(node, info["totals"].get(key)))
        rows.append(_row("total", doc.get("totals", {}).get(key)))
        widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
        lines.append(f"{title}:")
        for row in rows:
            cells = "  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True))
            lines.append(("  " + cells).rstrip())
        lines.extend(unreachable)
    return "\n".join(lines)


def format_reload(doc: dict[str, Any]) -> str:
    """One line per process: what changed, what needs a restart, or why the reload failed."""
    lines = []
    for name, result in [("coordinator", doc), *sorted(doc.get("nodes", {}).items())]:
        if "error" in result:
            lines.append(f"{name}: FAILED, old configuration kept: {result['error']}")
            continue
        applied = ", ".join(sorted(result.get("applied", []))) or "nothing changed"
        lines.append(f"{name}: applied: {applied}")
        restart = result.get("needs_restart", [])
        if restart:
            lines.append(f"  needs a restart (ignored until then): {', '.join(sorted(restart))}")
    return "\n".join(lines)


def run_ops_action(args: argparse.Namespace, client: Any) -> Any:
    """The JSON document to print (--json), or None after printing a table."""
    if args.action == "caches":
        if args.clear:
            doc = client.admin("POST", "caches/clear", cache=args.cache)
        else:
            doc = client.admin("GET", "caches")
    else:
        doc = client.admin("POST", "reload")
    if args.json:
        return doc
    print(format_caches(doc) if args.action == "caches" else format_reload(doc))
    if args.action == "reload" and _failed(doc):
        raise SystemExit(1)
    return None


def _failed(doc: dict[str, Any]) -> bool:
    return "error" in doc or any("error" in n for n in doc.get("nodes", {}).values())
