"""Observability assets: deploy/prometheus/alerts.yaml and deploy/grafana/pulsardb-operations.json
name only metrics that PulsarDB exports (scraped from a real app), use only real
pulsar_storage{stat} values, and link runbooks that exist in docs/operations.md."""

from __future__ import annotations

import json
import re
import warnings
from typing import Any

import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from coordinator.app import create_app
from coordinator.metrics import CoordinatorMetrics
from node.local import LocalNode
from pulsar_cluster.storagemetrics import metric_names
from tests.support.dockerfile import ROOT

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from starlette.testclient import TestClient

ALERTS = ROOT / "deploy" / "prometheus" / "alerts.yaml"
DASHBOARD = ROOT / "deploy" / "grafana" / "pulsardb-operations.json"
OPERATIONS = ROOT / "docs" / "operations.md"

# Raft metrics by their planned names (issue 8); the node exports them once the Raft layer
# lands. Everything else must be exported today.
PLANNED_RAFT = {
    "pulsar_raft_term",
    "pulsar_raft_commit_index",
    "pulsar_raft_applied_index",
    "pulsar_raft_is_leader",
}
PROMETHEUS_SYNTHETIC = {"up"}  # written by Prometheus itself for every target

FUNCTIONS = {
    "abs", "absent", "avg", "avg_over_time", "ceil", "changes", "clamp_max", "clamp_min",
    "count", "count_over_time", "delta", "deriv", "floor", "histogram_quantile", "increase",
    "irate", "label_replace", "max", "max_over_time", "min", "min_over_time", "predict_linear",
    "quantile", "rate", "resets", "round", "scalar", "sort", "sort_desc", "stddev", "sum",
    "sum_over_time", "time", "topk", "bottomk", "vector",
}  # fmt: skip
KEYWORDS = {"and", "or", "unless", "bool", "offset", "inf", "nan"}


def promql_names(expr: str) -> tuple[set[str], set[str]]:
    """(metric names, function names) of a PromQL expression (a pragmatic tokenizer)."""
    s = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)
    s = re.sub(r"\{[^}]*\}", " ", s)  # label matchers
    s = re.sub(r"\[[^\]]*\]", " ", s)  # range selectors
    s = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", s)
    s = re.sub(r"\$\w+", " ", s)
    s = re.sub(r"\b\d+(\.\d+)?([eE][+-]?\d+)?\b", " ", s)
    metrics, functions = set(), set()
    for match in re.finditer(r"([A-Za-z_:][A-Za-z0-9_:]*)\s*(\()?", s):
        name, call = match.group(1), match.group(2)
        if call:
            functions.add(name)
        elif name.lower() not in KEYWORDS:
            metrics.add(name)
    return metrics, functions


def stat_values(expr: str) -> set[str]:
    found = set()
    for matchers in re.findall(r"pulsar_storage\{([^}]*)\}", expr):
        found.update(re.findall(r'stat\s*=\s*"([^"]+)"', matchers))
    return found


def _balanced(expr: str) -> bool:
    pairs = {")": "(", "]": "[", "}": "{"}
    stack: list[str] = []
    for ch in re.sub(r'"(?:[^"\\]|\\.)*"', "", expr):
        if ch in "([{":
            stack.append(ch)
        elif ch in pairs and (not stack or stack.pop() != pairs[ch]):
            return False
    return not stack


def test_tokenizer_finds_metrics_and_can_fail() -> None:
    metrics, functions = promql_names(
        'histogram_quantile(0.99, sum by (job, le) (rate(pulsar_x_bucket{route=~"/a|b"}[5m])))'
        " / clamp_min(sum(up), 1e-9) > 4 * 1024 and on (shard) pulsar_y"
    )
    assert metrics == {"pulsar_x_bucket", "up", "pulsar_y"}
    assert functions == {"histogram_quantile", "sum", "rate", "clamp_min"}
    assert stat_values('pulsar_storage{job=~"x", stat="wal_bytes"} > 1') == {"wal_bytes"}


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> tuple[set[str], set[str]]:
    """(sample names, pulsar_storage stat values) of a real app after a write and a query."""
    names = set()
    for family in CoordinatorMetrics().registry.collect():
        suffixes = {
            "counter": ["_total", "_created"],
            "histogram": ["_bucket", "_sum", "_count", "_created"],
            "gauge": [""],
        }[family.type]
        names.update(family.name + s for s in suffixes)
    # Per-shard storage metrics (nodes, and standalone); reload and connection metrics (every
    # server process).
    names |= metric_names() | {
        "pulsar_config_reloads_total",
        "pulsar_config_last_reload_successful",
        "pulsar_http_connections_open",  # pulsar_cluster/serving.py, every server process
        "pulsar_http_requests_served_total",
    }
    app = create_app(LocalNode(str(tmp_path_factory.mktemp("metrics"))))
    with TestClient(app) as client:
        r = client.post("/write?db=m", content=b"cpu,host=a v=1 1\ncpu,host=b v=2 2")
        assert r.status_code == 204
        client.post("/api/v1/query", json={"db": "m", "measurement": "cpu"})
        text = client.get("/metrics").text
    stats = set()
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            assert sample.name in names, f"{sample.name} exported but not declared"
            if sample.name == "pulsar_storage":
                stats.add(sample.labels["stat"])
    assert {"memtable_bytes", "wal_bytes", "sstables"} <= stats
    return names, stats


def _check_expr(where: str, expr: str, exported: tuple[set[str], set[str]]) -> None:
    names, stats = exported
    assert _balanced(expr), f"{where}: unbalanced brackets: {expr}"
    metrics, functions = promql_names(expr)
    assert metrics, f"{where}: no metric in {expr}"
    unknown = metrics - names - PLANNED_RAFT - PROMETHEUS_SYNTHETIC
    assert not unknown, f"{where}: unknown metrics {sorted(unknown)}"
    assert functions <= FUNCTIONS, f"{where}: unknown functions {sorted(functions - FUNCTIONS)}"
    bad_stats = stat_values(expr) - stats
    assert not bad_stats, f"{where}: pulsar_storage has no stat {sorted(bad_stats)}"


def _anchors(markdown: str) -> set[str]:
    """GitHub's heading anchors: lower case, punctuation dropped, spaces to hyphens."""
    anchors = set()
    for line in markdown.splitlines():
        m = re.match(r"#{1,6}\s+(.*)", line)
        if m:
            text = re.sub(r"[^\w\- ]", "", m.group(1).strip().lower())
            anchors.add(text.replace(" ", "-"))
    return anchors


def _rules() -> list[dict[str, Any]]:
    doc = yaml.safe_load(ALERTS.read_text())
    assert set(doc) == {"groups"}
    rules = []
    for group in doc["groups"]:
        assert group["name"].startswith("pulsardb.") and group["rules"]
        rules.extend(group["rules"])
    return rules


def test_alert_rules(exported: tuple[set[str], set[str]]) -> None:
    rules = _rules()
    names = [r["alert"] for r in rules]
    assert len(names) == len(set(names)) >= 8, "unique alert names"
    anchors = _anchors(OPERATIONS.read_text())
    for rule in rules:
        where = rule["alert"]
        assert set(rule) <= {"alert", "expr", "for", "labels", "annotations"}, where
        assert re.fullmatch(r"PulsarDB[A-Z]\w+", where)
        assert re.fullmatch(r"\d+[smh]", rule["for"]), where
        assert rule["labels"]["severity"] in ("critical", "warning"), where
        annotations = rule["annotations"]
        assert annotations["summary"] and annotations["description"], where
        page, _, anchor = annotations["runbook_url"].partition("#")
        assert page == "docs/operations.md" and anchor in anchors, f"{where}: no runbook {anchor}"
        _check_expr(where, str(rule["expr"]), exported)
        # Go templates in annotations must be balanced (Prometheus rejects the rule otherwise)
        for text in annotations.values():
            assert text.count("{{") == text.count("}}"), where
    # what an operator needs most is covered
    assert {"PulsarDBTargetDown", "PulsarDBShardWithoutLeader", "PulsarDBHighErrorRate"} <= set(
        names
    )


def test_grafana_dashboard(exported: tuple[set[str], set[str]]) -> None:
    dash = json.loads(DASHBOARD.read_text())
    assert dash["uid"] == "pulsardb-operations" and dash["schemaVersion"] >= 36
    variables = {v["name"] for v in dash["templating"]["list"]}
    assert {"datasource", "job"} <= variables
    panels = [p for p in dash["panels"] if p["type"] != "row"]
    ids = [p["id"] for p in dash["panels"]]
    assert len(ids) == len(set(ids)), "panel ids must be unique"
    cells: set[tuple[int, int]] = set()
    used: set[str] = set()
    for p in dash["panels"]:
        g = p["gridPos"]
        assert g["x"] >= 0 and g["x"] + g["w"] <= 24, p["title"]
        area = {
            (x, y) for x in range(g["x"], g["x"] + g["w"]) for y in range(g["y"], g["y"] + g["h"])
        }
        assert not area & cells, f"panel {p['title']!r} overlaps another"
        cells |= area
    for p in panels:
        assert p["datasource"]["uid"] == "${datasource}", p["title"]
        assert p["targets"], p["title"]
        for target in p["targets"]:
            _check_expr(p["title"], target["expr"], exported)
            used |= promql_names(target["expr"])[0]
            used |= {f"stat={s}" for s in stat_values(target["expr"])}
    # the metrics an operator needs are on it (new exports are welcome, not required here)
    wanted = {"pulsar_points_written_total", "pulsar_write_rejections_total"} | PLANNED_RAFT
    wanted |= {"pulsar_http_request_duration_seconds_bucket", "pulsar_http_requests_in_flight"}
    wanted |= {f"stat={s}" for s in ("memtable_bytes", "immutable_memtables", "sstables")}
    wanted |= {f"stat={s}" for s in ("sstable_bytes", "wal_bytes", "series")}
    assert not wanted - used, f"not on the dashboard: {sorted(wanted - used)}"
