"""Federated queries across real clusters (`pulsar standalone` processes on 127.0.0.1).

Three clusters (eu, us and an edge box) hold different data; a fourth holds the union of it.
A federated query on eu over all three must equal the same query on the union cluster.
"""

from __future__ import annotations

import random
import signal
import time

import httpx
import pytest

from tests.support.processes import ServerProcess, free_port

T0 = 1_767_225_600_000_000_000
MINUTE = 60_000_000_000
CLUSTERS = ("eu", "us", "edge")


def lines_for(cluster: str) -> list[str]:
    rng = random.Random(cluster)
    out = []
    for host in (f"{cluster}-a", f"{cluster}-b", "shared"):
        for i in range(90):  # 15 minutes at 10 s
            ts = T0 + i * 10_000_000_000 + (CLUSTERS.index(cluster) if host == "shared" else 0)
            out.append(f"cpu,host={host},dc={cluster} usage={rng.uniform(0, 100):.4f},n={i}i {ts}")
    return out


@pytest.fixture(scope="module")
def clusters(tmp_path_factory: pytest.TempPathFactory):
    base = tmp_path_factory.mktemp("fed")
    ports = {name: free_port() for name in (*CLUSTERS, "union")}
    url = {name: f"http://127.0.0.1:{port}" for name, port in ports.items()}

    def start(name: str, args: list[str], env: dict[str, str]) -> ServerProcess:
        proc = ServerProcess(
            base / name,
            ports[name],
            ["--parse-workers", "0", "--cluster-name", name, *args],
            env=env,
        )
        return proc.start()

    procs = {
        # eu federates to us and edge; us federates back to eu (a loop that must not loop)
        "eu": start(
            "eu",
            [
                "--remote-cluster",
                f"us={url['us']}",
                "--remote-cluster",
                f"edge={url['edge']}",
                "--remote-timeout",
                "2",
                "--federation-token",
                "tok-eu",
            ],
            {"PULSAR_REMOTE_TOKEN_US": "tok-us", "PULSAR_REMOTE_TOKEN_EDGE": "tok-edge"},
        ),
        "us": start(
            "us",
            ["--federation-token", "tok-us", "--remote-cluster", f"eu={url['eu']}"],
            {"PULSAR_REMOTE_TOKEN_EU": "tok-eu"},
        ),
        "edge": start("edge", ["--federation-token", "tok-edge"], {}),
        "union": start("union", [], {}),
    }
    for name in CLUSTERS:
        body = "\n".join(lines_for(name))
        for target in (name, "union"):
            r = httpx.post(f"{url[target]}/write", params={"db": "fed"}, content=body)
            assert r.status_code == 204, r.text
    yield procs
    for proc in procs.values():
        if proc.proc is not None and proc.proc.poll() is None:
            proc.proc.send_signal(signal.SIGCONT)
        proc.stop()


def native(url: str, timeout: float = 30, **query: object) -> httpx.Response:
    return httpx.post(
        f"{url}/api/v1/query",
        json={"db": "fed", "measurement": "cpu", "start": T0, "end": T0 + 15 * MINUTE, **query},
        timeout=timeout,
    )


def approx_series(series: list[dict]) -> list:
    return [
        (
            s["name"],
            s["tags"],
            s["columns"],
            [
                [pytest.approx(v, rel=1e-9, abs=1e-9) if isinstance(v, float) else v for v in row]
                for row in s["values"]
            ],
        )
        for s in series
    ]


@pytest.mark.parametrize(
    "query",
    [
        {"fields": ["usage"], "aggregate": "mean", "every": "5m", "group_by": ["host"]},
        {"fields": ["usage", "n"], "aggregate": "max", "group_by": ["dc"]},
        {"fields": ["usage"], "aggregate": "count", "every": "1m"},
        {"fields": ["usage"], "aggregate": "stddev", "group_by": ["host"]},
        {"fields": ["usage"], "aggregate": "percentile_90"},
        {"fields": ["usage"], "aggregate": "spread", "every": "5m"},
        {"fields": ["n"], "aggregate": "sum", "where": "host = 'shared' OR dc =~ /^e/"},
        {"fields": ["usage"], "where": "host = 'shared'", "limit": 50},
    ],
)
def test_federated_answer_equals_the_union(clusters, query: dict) -> None:
    union = native(clusters["union"].url, **query)
    assert union.status_code == 200, union.text
    federated = native(clusters["eu"].url, clusters=["*"], **query)
    assert federated.status_code == 200, federated.text
    assert federated.json()["series"], "the query should find data"
    assert approx_series(federated.json()["series"]) == approx_series(union.json()["series"])


def test_cluster_selection_and_cluster_tag(clusters) -> None:
    r = native(
        clusters["eu"].url,
        fields=["n"],
        aggregate="count",
        group_by=["_cluster"],
        clusters=["eu", "edge"],
    )
    assert r.status_code == 200, r.text
    got = {s["tags"]["_cluster"]: s["values"][0][1] for s in r.json()["series"]}
    assert got == {"eu": 270, "edge": 270}
    # Only the remote one: the local data is not included.
    r = native(clusters["eu"].url, fields=["n"], aggregate="count", clusters=["us"])
    assert r.json()["series"][0]["values"][0][1] == 270
    # Unknown names are a 400 naming them.
    r = native(clusters["eu"].url, fields=["n"], aggregate="count", clusters=["mars"])
    assert r.status_code == 400 and "mars" in r.json()["error"]


def test_influxql_with_clusters_parameter(clusters) -> None:
    q = (
        'SELECT count("usage") FROM "cpu" WHERE time >= 1767225600000000000 '
        'AND time < 1767226500000000000 GROUP BY "_cluster"'
    )
    r = httpx.get(
        f"{clusters['eu'].url}/query",
        params={"db": "fed", "q": q, "clusters": "*", "epoch": "ns"},
        timeout=30,
    )
    assert r.status_code == 200, r.text
    series = r.json()["results"][0]["series"]
    assert {s["tags"]["_cluster"]: s["values"][0][1] for s in series} == {
        "eu": 270,
        "us": 270,
        "edge": 270,
    }


def test_a_federation_loop_is_answered_once(clusters) -> None:
    """us federates to eu and eu to us: a query still counts each point exactly once."""
    r = native(clusters["us"].url, fields=["n"], aggregate="count", clusters=["*"])
    assert r.status_code == 200, r.text
    assert r.json()["series"][0]["values"][0][1] == 540  # us + eu, not more


def test_admin_federation_shows_remotes_and_health(clusters) -> None:
    body = httpx.get(f"{clusters['eu'].url}/api/v1/admin/federation").json()
    assert body["cluster"] == "eu"
    remotes = {r["name"]: r for r in body["remotes"]}
    assert set(remotes) == {"us", "edge"}
    assert remotes["us"]["status"] == "up" and remotes["us"]["token_configured"] is True
    assert "tok-us" not in str(body)  # tokens are never shown


def test_internal_endpoint_requires_the_token(clusters) -> None:
    url = clusters["us"].url + "/api/v1/internal/partial"
    assert httpx.post(url, content=b"x").status_code == 401
    assert (
        httpx.post(url, content=b"x", headers={"Authorization": "Bearer nope"}).status_code == 401
    )
    closed = clusters["union"].url + "/api/v1/internal/partial"
    assert (
        httpx.post(closed, content=b"x", headers={"Authorization": "Bearer x"}).status_code == 403
    )


def test_stopped_cluster_strict_fails_partial_answers(clusters) -> None:
    edge = clusters["edge"]
    edge.stop()
    try:
        r = native(clusters["eu"].url, fields=["n"], aggregate="count", clusters=["*"])
        assert r.status_code == 503 and "edge" in r.json()["error"]
        r = native(
            clusters["eu"].url,
            fields=["n"],
            aggregate="count",
            clusters=["*"],
            federation="partial",
        )
        assert r.status_code == 200, r.text
        assert r.json()["series"][0]["values"][0][1] == 540
        assert [m["cluster"] for m in r.json()["missing_clusters"]] == ["edge"]
    finally:
        edge.start()


def test_slow_cluster_hits_its_timeout(clusters) -> None:
    us = clusters["us"]
    assert us.proc is not None
    us.proc.send_signal(signal.SIGSTOP)  # accepts connections, never answers
    try:
        started = time.monotonic()
        r = native(clusters["eu"].url, fields=["n"], aggregate="count", clusters=["*"])
        assert r.status_code == 504 and "us" in r.json()["error"] and "timeout" in r.text
        assert time.monotonic() - started < 10  # bounded by the 2 s remote timeout
        r = native(
            clusters["eu"].url,
            fields=["n"],
            aggregate="count",
            clusters=["*"],
            federation="partial",
        )
        assert r.status_code == 200
        assert [m["cluster"] for m in r.json()["missing_clusters"]] == ["us"]
    finally:
        us.proc.send_signal(signal.SIGCONT)
