"""The Grafana dashboard (deploy/grafana/tsbs-devops.json) against a real `pulsar standalone`.

Grafana's InfluxDB data source (InfluxQL) sends each panel's query to `/query` after expanding
its macros; this test expands them the way Grafana does ($timeFilter, $__interval, multi-value
variables as regex alternations), sends them with both HTTP methods Grafana offers (GET, and
POST with a form body) and `epoch=ms`, and checks the answers against values computed here from
the TSBS-devops-shaped data it wrote.
"""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest

from tests.support.processes import ServerProcess

DASHBOARD = Path(__file__).resolve().parents[2] / "deploy" / "grafana" / "tsbs-devops.json"
T0 = 1_767_225_600  # s
HOSTS = 4
STEPS = 60  # one point per host every 10 s for 10 minutes, as TSBS devops does


def usage_user(h: int, i: int) -> float:
    return float(10 + h + i % 5)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory):
    proc = ServerProcess(Path(tmp_path_factory.mktemp("grafana")) / "data").start()
    lines = []
    for i in range(STEPS):
        for h in range(HOSTS):
            region = "eu-west-1" if h < 2 else "us-east-1"
            tags = (
                f"hostname=host_{h},region={region},datacenter={region}a,rack={h},"
                f"os=Ubuntu16.10,arch=x64,team=SF,service=6,service_version=0,"
                f"service_environment=production"
            )
            lines.append(
                f"cpu,{tags} usage_user={usage_user(h, i)},usage_system={h + 1}.5,"
                f"usage_idle={80 - h},usage_iowait=0.5 {T0 + i * 10}"
            )
            lines.append(f"mem,{tags} used_percent={50 + h}.25,available=1000i {T0 + i * 10}")
    r = httpx.post(
        f"{proc.url}/write", params={"db": "benchmark", "precision": "s"}, content="\n".join(lines)
    )
    assert r.status_code == 204, r.text
    yield proc
    proc.stop()


def expand(query: str, hosts: list[str], regions: list[str]) -> str:
    """Grafana's macro expansion for an InfluxQL data source."""
    start_ms, end_ms = T0 * 1000, (T0 + STEPS * 10 - 1) * 1000
    return (
        query.replace("$timeFilter", f"time >= {start_ms}ms and time <= {end_ms}ms")
        .replace("$__interval", "1m")
        .replace("$hostname", "(" + "|".join(hosts) + ")")
        .replace("$region", "(" + "|".join(regions) + ")")
    )


def run(server: ServerProcess, query: str, method: str) -> list[dict]:
    params = {"db": "benchmark", "q": query, "epoch": "ms"}
    if method == "GET":
        r = httpx.get(f"{server.url}/query", params=params, timeout=30)
    else:
        r = httpx.post(f"{server.url}/query", data=params, timeout=30)
    assert r.status_code == 200, r.text
    (result,) = r.json()["results"]
    assert "error" not in result, result
    return result.get("series", [])


def test_dashboard_is_a_grafana_import_document() -> None:
    dash = json.loads(DASHBOARD.read_text())
    assert dash["__inputs"][0]["pluginId"] == "influxdb"
    ids = [p["id"] for p in dash["panels"]]
    assert len(ids) == len(set(ids))
    for p in dash["panels"]:
        (target,) = p["targets"]
        assert target["rawQuery"] is True and target["datasource"]["uid"] == "${DS_PULSARDB}"
        assert "$timeFilter" in target["query"]


@pytest.mark.parametrize("method", ["GET", "POST"])
def test_template_variables(server: ServerProcess, method: str) -> None:
    variables = {
        v["name"]: v["query"] for v in json.loads(DASHBOARD.read_text())["templating"]["list"]
    }
    (regions,) = run(server, variables["region"], method)
    assert [v[1] for v in regions["values"]] == ["eu-west-1", "us-east-1"]
    (hosts,) = run(server, expand(variables["hostname"], [], ["us-east-1"]), method)
    assert [v[1] for v in hosts["values"]] == ["host_2", "host_3"]


@pytest.mark.parametrize("method", ["GET", "POST"])
def test_every_panel_answers_with_the_expected_values(server: ServerProcess, method: str) -> None:
    panels = {
        p["id"]: p["targets"][0]["query"] for p in json.loads(DASHBOARD.read_text())["panels"]
    }
    hosts, regions = ["host_0", "host_2"], ["eu-west-1", "us-east-1"]

    by_host = run(server, expand(panels[1], hosts, regions), method)
    assert [s["tags"] for s in by_host] == [{"hostname": h} for h in hosts]
    for s, h in zip(by_host, (0, 2), strict=True):
        assert s["columns"] == ["time", "mean"]
        values = [row for row in s["values"] if row[1] is not None]
        assert len(values) == STEPS // 6
        for minute, (t, mean) in enumerate(values):
            assert t == (T0 + minute * 60) * 1000
            expected = sum(usage_user(h, i) for i in range(minute * 6, minute * 6 + 6)) / 6
            assert mean == pytest.approx(expected)

    by_region = run(server, expand(panels[2], hosts, ["us-east-1"]), method)
    assert [s["tags"] for s in by_region] == [{"region": "us-east-1"}]
    assert {row[1] for row in by_region[0]["values"] if row[1] is not None} == {4.5}

    idle = run(server, expand(panels[3], hosts, regions), method)
    assert [(s["tags"]["hostname"], s["values"][0][1]) for s in idle] == [
        ("host_0", 80.0),
        ("host_2", 78.0),
    ]

    mem = run(server, expand(panels[4], ["host_1"], regions), method)
    assert {row[1] for row in mem[0]["values"] if row[1] is not None} == {51.25}

    (combined,) = run(server, expand(panels[5], hosts, regions), method)
    assert combined["columns"] == ["time", "user", "system", "iowait"]
    first = combined["values"][0]
    assert first[2] == pytest.approx((1.5 + 3.5) / 2) and first[3] == 0.5


@pytest.mark.parametrize("query", ["SHOW MEASUREMENTS LIMIT 1", "SHOW DATABASES"])
def test_save_and_test_queries(server: ServerProcess, query: str) -> None:
    """What Grafana's "Save & test" asks, plus /ping."""
    assert httpx.get(f"{server.url}/ping").status_code == 204
    (series,) = run(server, query, "GET")
    assert series["values"]
