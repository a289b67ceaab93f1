"""The chart's rendered processes really form a working cluster.

Takes the StatefulSet's and the Deployment's container args and env exactly as `helm template`
renders them (env resolved from the rendered Secret/ConfigMaps and the downward API, `$(VAR)`
expanded as the kubelet does, the image ENTRYPOINT from the Dockerfile), maps every pod to its own
loopback address (pulsardb-node-i -> 127.0.0.(2+i); Linux routes all of 127/8 to lo) and its
headless DNS name to that address, starts 3 nodes and a coordinator, then writes and reads
through the coordinator and checks the admin token from the rendered Secret.

`pulsar node` / `pulsar coordinator` (CLI-SPEC.md) are built on another branch: until they exist
here the cluster test skips, saying so; the plumbing test runs always.
"""

from __future__ import annotations

import os
import random
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.support.dockerfile import entrypoint_process, parse_dockerfile
from tests.support.helm import Manifests, expand, find, helm_binary, pod_env, render
from tests.support.processes import free_port, pulsar_command, wait_until

pytestmark = pytest.mark.skipif(
    helm_binary() is None, reason="helm is not installed: run `make helm` (installs ./.tools/helm)"
)

NODES = 3
SHARDS = 4
# deploy/grafana and deploy/prometheus use these names (tests/integration/test_helm_observability)
RAFT_METRICS = {
    "pulsar_raft_term",
    "pulsar_raft_commit_index",
    "pulsar_raft_applied_index",
    "pulsar_raft_is_leader",
}
NAMESPACE = "default"
DATA = "/var/lib/pulsardb"


def node_ip(i: int) -> str:
    return f"127.0.0.{2 + i}"


def node_dns(i: int) -> str:
    return f"pulsardb-node-{i}.pulsardb-node.{NAMESPACE}.svc.cluster.local"


@dataclass(slots=True)
class PodProcess:
    name: str
    argv: list[str]
    env: dict[str, str]


def _bindable(host: str, port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind((host, port))
        except OSError:
            return False
        return True


def _free_raft_base(hosts: list[str], width: int) -> int:
    """A port range free on every host (Raft uses base..base+shards)."""
    rng = random.Random()
    for _ in range(200):
        base = rng.randrange(20000, 60000 - width)
        if all(_bindable(h, p) for h in hosts for p in range(base, base + width)):
            return base
    raise RuntimeError("no free Raft port range on the loopback addresses")


def _pod(manifests: Manifests, kind: str, pod_name: str, pod_ip: str, data_dir: Path) -> PodProcess:
    (obj,) = find(manifests, kind)
    (container,) = obj["spec"]["template"]["spec"]["containers"]
    env = pod_env(manifests, container, pod_name, NAMESPACE)
    args = [expand(a, env) for a in container["args"]]
    # What the cluster's DNS and network namespaces do: names -> addresses; 0.0.0.0 -> the pod's
    # own address (tests bind loopback only); the volume mount -> a temp dir.
    for i in range(NODES):
        args = [a.replace(node_dns(i), node_ip(i)) for a in args]
    args = [a.replace("0.0.0.0", pod_ip).replace(DATA, str(data_dir)) for a in args]
    # the container's args replace the image's CMD; the ENTRYPOINT (tini -- pulsar) stays
    argv, image_env = entrypoint_process(parse_dockerfile()[-1], replace={DATA: str(data_dir)})
    return PodProcess(pod_name, argv + args, {**image_env, **env})


def cluster_processes(tmp: Path, api_port: int, raft_base: int, http_port: int) -> list[PodProcess]:
    manifests = render(
        tmp / "helm",
        sets={
            "node.replicas": str(NODES),
            "node.ports.api": str(api_port),
            "node.ports.raft": str(raft_base),
            "cluster.shards": str(SHARDS),
            "cluster.fsync": "interval",
            "coordinator.port": str(http_port),
        },
        namespace=NAMESPACE,
    )
    pods = [
        _pod(manifests, "StatefulSet", f"pulsardb-node-{i}", node_ip(i), tmp / f"node-{i}")
        for i in range(NODES)
    ]
    pods.append(
        _pod(manifests, "Deployment", "pulsardb-coordinator-7d4b9-x2x5q", "127.0.0.1", tmp / "c")
    )
    return pods


def test_rendered_pod_processes_are_fully_resolved(tmp_path: Path) -> None:
    """The plumbing of the cluster test, checked even before `pulsar node` exists."""
    pods = cluster_processes(tmp_path, 7100, 7200, 8080)
    assert [p.name for p in pods[:NODES]] == [f"pulsardb-node-{i}" for i in range(NODES)]
    for i, pod in enumerate(pods):
        text = " ".join(pod.argv)
        assert "$(" not in text and "svc.cluster.local" not in text and "0.0.0.0" not in text
        assert pod.argv[: len(pulsar_command())] == pulsar_command()
        assert len(pod.env["PULSAR_CLUSTER_SECRET"]) == 40
        assert pod.env["PULSAR_LOG_LEVEL"] == "info"
        if i < NODES:
            role = pod.argv[len(pulsar_command())]
            assert role == "node"
            assert pod.argv[pod.argv.index("--node-id") + 1] == f"pulsardb-node-{i}"
            assert pod.argv[pod.argv.index("--host") + 1] == node_ip(i)
            assert pod.argv[pod.argv.index("--advertise-host") + 1] == node_ip(i)
            assert pod.argv[pod.argv.index("--data-dir") + 1] == str(tmp_path / f"node-{i}")
            assert pod.env["PULSAR_FSYNC"] == "interval"
    coordinator = pods[-1]
    assert coordinator.argv[coordinator.argv.index("--nodes") + 1] == ",".join(
        f"{node_ip(i)}:7100" for i in range(NODES)
    )
    assert coordinator.env["PULSAR_ADMIN_TOKEN"] != coordinator.env["PULSAR_CLUSTER_SECRET"]
    # one secret for the whole cluster
    assert len({p.env["PULSAR_CLUSTER_SECRET"] for p in pods}) == 1


def _missing_roles() -> str | None:
    for role in ("node", "coordinator"):
        result = subprocess.run(
            [*pulsar_command(), role, "--help"],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
        if result.returncode != 0:
            last = (result.stderr.strip().splitlines() or ["?"])[-1]
            return f"`pulsar {role} --help` exited {result.returncode} ({last})"
    return None


def test_rendered_chart_runs_a_3_node_cluster(tmp_path: Path) -> None:
    missing = _missing_roles()
    if missing:
        reason = f"the cluster roles of CLI-SPEC.md are not on this branch yet: {missing}"
        print(reason)
        pytest.skip(reason)
    if not _bindable(node_ip(NODES - 1), 0):
        pytest.skip(f"cannot bind {node_ip(NODES - 1)}: this OS does not route 127/8 to lo")
    api_port = free_port()
    raft_base = _free_raft_base([node_ip(i) for i in range(NODES)], SHARDS + 2)
    http_port = free_port()
    pods = cluster_processes(tmp_path, api_port, raft_base, http_port)
    procs: list[tuple[PodProcess, subprocess.Popen[bytes], Path]] = []
    try:
        for pod in pods:
            log_path = tmp_path / f"{pod.name}.log"
            with open(log_path, "wb") as log:
                proc = subprocess.Popen(
                    pod.argv,
                    env={**os.environ, **pod.env},
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    cwd=tmp_path,
                )
            procs.append((pod, proc, log_path))

        def logs() -> str:
            return "\n".join(f"--- {p.name}\n{path.read_text()[-3000:]}" for p, _, path in procs)

        url = f"http://127.0.0.1:{http_port}"

        def ready() -> bool:
            for pod, proc, _ in procs:
                if proc.poll() is not None:
                    raise AssertionError(f"{pod.name} exited {proc.returncode}\n{logs()}")
            try:
                return httpx.get(url + "/ready", timeout=2).status_code == 200
            except httpx.HTTPError:
                return False

        try:
            wait_until(ready, 40, 0.25, "the coordinator to be ready")
        except TimeoutError as exc:
            raise AssertionError(f"{exc}\n{logs()}") from None
        for i in range(NODES):  # the probes' endpoints answer on every node
            base = f"http://{node_ip(i)}:{api_port}"
            assert httpx.get(base + "/health", timeout=5).status_code == 200, logs()

        start = 1_767_225_600_000_000_000
        points = [
            {
                "measurement": "cpu",
                "tags": {"host": f"h{h}"},
                "fields": {"usage": float(h * 10 + k)},
                "timestamp": start + k * 1_000_000_000,
            }
            for h in range(8)
            for k in range(5)
        ]
        deadline = time.monotonic() + 15
        while True:  # leaders may still be settling right after readiness: bounded retries
            r = httpx.post(url + "/api/v1/write?db=k8s", json={"points": points}, timeout=10)
            if r.status_code < 300 or time.monotonic() > deadline or r.status_code < 500:
                break
            time.sleep(0.25)
        assert r.status_code in (200, 204), f"{r.status_code} {r.text}\n{logs()}"
        lines = b"mem,host=h1 used=42i " + str(start).encode()
        r = httpx.post(url + "/write?db=k8s", content=lines, timeout=10)
        assert r.status_code == 204, r.text

        r = httpx.post(
            url + "/api/v1/query",
            json={"db": "k8s", "measurement": "cpu", "fields": ["usage"]},
            timeout=10,
        )
        assert r.status_code == 200, r.text
        series = r.json()["series"]
        got = {(s["tags"]["host"], v[0], v[1]) for s in series for v in s["values"]}
        want = {(p["tags"]["host"], p["timestamp"], p["fields"]["usage"]) for p in points}
        assert got == want
        r = httpx.post(url + "/api/v1/query", json={"db": "k8s", "measurement": "mem"}, timeout=10)
        assert r.json()["series"][0]["values"] == [[start, 42]]

        # the Raft metrics the dashboard and alerts use (by name and `shard` label), on every
        # node's API port where the chart's ServiceMonitor scrapes them; one leader per shard
        def leaders() -> dict[str, float] | None:
            per_shard: dict[str, float] = {}
            for i in range(NODES):
                text = httpx.get(f"http://{node_ip(i)}:{api_port}/metrics", timeout=5).text
                names = set()
                for family in text_string_to_metric_families(text):
                    for sample in family.samples:
                        names.add(sample.name)
                        if sample.name == "pulsar_raft_is_leader":
                            shard = sample.labels["shard"]
                            per_shard[shard] = per_shard.get(shard, 0) + sample.value
                assert names >= RAFT_METRICS, f"node {i} lacks {RAFT_METRICS - names}"
            ok = len(per_shard) == SHARDS and all(v == 1 for v in per_shard.values())
            return per_shard if ok else None

        wait_until(leaders, 15, 0.5, "exactly one Raft leader per shard in the node metrics")

        # the admin API wants the token from the rendered Secret
        token = pods[-1].env["PULSAR_ADMIN_TOKEN"]
        anonymous = httpx.get(url + "/api/v1/admin/status", timeout=10)
        assert anonymous.status_code == 401, (
            "the coordinator ignores PULSAR_ADMIN_TOKEN, which the chart sets: give "
            "`pulsar coordinator` the --admin-token flag (cli._add_admin_token_flag) and pass "
            "admin_token=args.admin_token to CoordinatorSettings"
        )
        r = httpx.get(
            url + "/api/v1/admin/status", headers={"Authorization": f"Bearer {token}"}, timeout=10
        )
        assert r.status_code == 200, r.text
    finally:
        for _, proc, _ in procs:
            if proc.poll() is None:
                proc.terminate()
        for _, proc, _ in procs:
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=15)
