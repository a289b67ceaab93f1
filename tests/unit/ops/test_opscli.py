"""The tables `pulsar admin caches` and `pulsar admin reload` print."""

from __future__ import annotations

from pulsar_cluster.opscli import format_caches, format_reload


def test_caches_table_lists_nodes_unreachable_ones_and_the_total() -> None:
    block = {"entries": 3, "bytes": 3 * 1024 * 1024, "hits": 9, "misses": 1, "hit_ratio": 0.9}
    doc = {
        "nodes": {
            "node-0": {"totals": {"block_cache": block, "last_value_cache": None}},
            "node-1": {"error": "node http://h:7100 unreachable"},
        },
        "totals": {"block_cache": block, "last_value_cache": None},
    }
    lines = format_caches(doc).splitlines()
    assert lines[0] == "block cache:"
    assert lines[1].split() == ["node", "entries", "bytes", "hits", "misses", "hit", "ratio"]
    assert lines[2].split() == ["node-0", "3", "3.0", "MiB", "9", "1", "90.0%"]
    assert lines[3].split() == ["total", "3", "3.0", "MiB", "9", "1", "90.0%"]
    assert lines[4] == "  node-1: unreachable: node http://h:7100 unreachable"
    assert lines[5] == "last-value cache:"
    assert lines[7].split() == ["node-0", "-", "-", "-", "-", "-"]
    assert all(line == line.rstrip() for line in lines)


def test_reload_report_per_process() -> None:
    doc = {
        "applied": ["admin_token"],
        "needs_restart": [],
        "nodes": {
            "node-0": {"applied": [], "needs_restart": ["memtable_mb", "fsync"]},
            "node-1": {"error": "invalid TOML in /etc/p.toml; the old configuration is kept"},
        },
    }
    assert format_reload(doc).splitlines() == [
        "coordinator: applied: admin_token",
        "node-0: applied: nothing changed",
        "  needs a restart (ignored until then): fsync, memtable_mb",
        "node-1: FAILED, old configuration kept: invalid TOML in /etc/p.toml; the old "
        "configuration is kept",
    ]
