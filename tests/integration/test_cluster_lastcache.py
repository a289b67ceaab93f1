"""The last-value cache on cluster replicas (node/lastquery.py, node/raft/group.py): lastpoint
answers of a 3-node cluster equal a standalone server's, and every replica's cache, filled by
reads and then kept by the replicated apply path only, equals a model of the data, under
writes, after a delete and after the leader of a shard is killed with SIGKILL."""

from __future__ import annotations

import signal
from pathlib import Path
from typing import Any

import httpx
import pytest

from pulsar_cluster.query.columnar import decode_any
from pulsar_cluster.query.partial import encode_plan
from pulsar_cluster.query.plan import ColumnSpec, Plan
from tests.support.cluster import Cluster
from tests.support.processes import ServerProcess

T0 = 1_767_225_600_000_000_000
HOSTS = [f"h{i}" for i in range(12)]
LASTPOINT = 'SELECT last(*) FROM cpu GROUP BY "host"'
#: The lastpoint plan a coordinator sends (fields in name order, one group per host).
PLAN = Plan(
    "select",
    "lp",
    "cpu",
    columns=(ColumnSpec("n", "last"), ColumnSpec("u", "last")),
    group_by=("host",),
)


@pytest.fixture(scope="module")
def systems(tmp_path_factory: pytest.TempPathFactory):
    root = Path(tmp_path_factory.mktemp("lastcache"))
    (root / "cluster").mkdir()
    cluster = Cluster(root / "cluster")
    standalone = ServerProcess(root / "standalone")
    try:
        cluster.start()
        standalone.start()
        yield cluster, standalone
    finally:
        cluster.stop()
        standalone.stop()


class Model:
    """The last point of every (host, field), as storage must answer it."""

    def __init__(self) -> None:
        self.points: dict[tuple[str, str], dict[int, Any]] = {}

    def write(self, rows: list[tuple[str, int, int, float]]) -> str:
        lines = []
        for host, t, n, u in rows:
            self.points.setdefault((host, "n"), {})[t] = n
            self.points.setdefault((host, "u"), {})[t] = u
            lines.append(f"cpu,host={host} n={n}i,u={u} {t}\n")
        return "".join(lines)

    def delete(self, host: str, start: int) -> None:
        for (h, _), pts in self.points.items():
            if h == host:
                for t in [t for t in pts if t >= start]:
                    del pts[t]

    def last(self) -> dict[str, dict[str, tuple[int, Any]]]:
        out: dict[str, dict[str, tuple[int, Any]]] = {}
        for (host, name), pts in self.points.items():
            if pts:
                t = max(pts)
                out.setdefault(host, {})[name] = (t, pts[t])
        return out


def _write(cluster: Cluster, standalone: ServerProcess, body: str) -> None:
    for url in (cluster.url, standalone.url):
        r = httpx.post(f"{url}/write", params={"db": "lp"}, content=body, timeout=30)
        assert r.status_code == 204, r.text


def _lastpoint(url: str) -> Any:
    r = httpx.get(f"{url}/query", params={"db": "lp", "q": LASTPOINT, "epoch": "ns"}, timeout=30)
    assert r.status_code == 200, r.text
    return r.json()


def _replica_answer(cluster: Cluster, i: int) -> dict[str, dict[str, tuple[int, Any]]]:
    """Node i's own answer over every shard it holds (consistency=any: followers too)."""
    shards = [int(s) for s, st in cluster.node_get(i, "/v1/status")["shards"].items() if st["role"]]
    r = httpx.post(
        cluster.node_url(i) + "/v1/query",
        headers=cluster.headers,
        content=encode_plan(PLAN),
        params={"shards": ",".join(map(str, sorted(shards))), "consistency": "any"},
        timeout=30,
    )
    assert r.status_code == 200, r.text
    out: dict[str, dict[str, tuple[int, Any]]] = {}
    for key, states in decode_any(r.content).groups.items():
        host = dict(key)["host"]
        for col, st in zip(PLAN.columns, states, strict=True):
            if len(st["w"]):
                out.setdefault(host, {})[col.field] = (int(st["t"][0]), st["v"][0].item())
    return out


def _last_value_hits(cluster: Cluster, i: int) -> int:
    caches = httpx.get(
        cluster.node_url(i) + "/v1/caches", headers=cluster.headers, timeout=10
    ).json()
    return sum((s["last_value_cache"] or {}).get("hits", 0) for s in caches["shards"].values())


def _check(cluster: Cluster, standalone: ServerProcess, model: Model, nodes: list[int]) -> None:
    expected = model.last()
    for i in nodes:  # twice: the first fills a cache, the second answers from it
        assert _replica_answer(cluster, i) == expected, f"node-{i}"
        assert _replica_answer(cluster, i) == expected, f"node-{i} (cached)"
    assert _lastpoint(cluster.url) == _lastpoint(standalone.url)


def test_cluster_lastpoint_equals_standalone_under_writes_delete_and_failover(
    systems: tuple[Cluster, ServerProcess],
) -> None:
    cluster, standalone = systems
    model = Model()
    rows = [
        (h, T0 + k * 10**9, k * 10 + j, k + j / 4) for j, h in enumerate(HOSTS) for k in range(5)
    ]
    _write(cluster, standalone, model.write(rows))
    _check(cluster, standalone, model, [0, 1, 2])
    assert all(_last_value_hits(cluster, i) > 0 for i in range(3))
    # Writes applied through Raft move every replica's cached entries: newer points, an
    # overwrite of the newest point (last write wins), an older point that changes nothing.
    more = [(h, T0 + 9 * 10**9, 900 + j, 0.5) for j, h in enumerate(HOSTS[:6])]
    more += [(h, T0 + 4 * 10**9, 400 + j, 1.5) for j, h in enumerate(HOSTS[6:])]
    more += [(HOSTS[0], T0 + 1 * 10**9, -1, -1.0)]
    _write(cluster, standalone, model.write(more))
    _check(cluster, standalone, model, [0, 1, 2])
    # A replicated delete empties the caches on every replica.
    q = f"DELETE FROM cpu WHERE host = '{HOSTS[1]}' AND time >= {T0 + 3 * 10**9}"
    for url in (cluster.url, standalone.url):
        r = httpx.post(f"{url}/query", params={"db": "lp", "q": q}, timeout=30)
        assert r.status_code == 200 and "error" not in r.json()["results"][0], r.text
    model.delete(HOSTS[1], T0 + 3 * 10**9)
    _check(cluster, standalone, model, [0, 1, 2])
    # Kill the leader of shard 0; a follower whose cache the apply path kept takes over.
    victim = cluster.leader_of(0)
    cluster.kill(f"node-{victim}", signal.SIGKILL)
    survivors = [i for i in range(3) if i != victim]
    cluster.leader_of(0)
    newest = [(h, T0 + 20 * 10**9, 2000 + j, 20.0) for j, h in enumerate(HOSTS)]
    _write(cluster, standalone, model.write(newest))
    _check(cluster, standalone, model, survivors)
