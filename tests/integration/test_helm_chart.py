"""The Helm chart: `helm lint`, `helm template` with the default values and every documented
variant (deploy/helm/pulsardb/ci/*-values.yaml), every rendered object validated against the
Kubernetes JSON schemas (kubernetes-validate, offline, strict), and the topology the cluster
relies on (peers from the replica count, stable DNS, quorum-keeping PDBs, secrets).
"""

from __future__ import annotations

import base64
import copy
import re
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from tests.support.dockerfile import ROOT
from tests.support.helm import CHART, find, helm_binary, render, run_helm

pytestmark = pytest.mark.skipif(
    helm_binary() is None, reason="helm is not installed: run `make helm` (installs ./.tools/helm)"
)

VARIANTS = sorted((CHART / "ci").glob("*-values.yaml"))
# The chart's kubeVersion floor and the newest schemas the pinned kubernetes-validate ships.
K8S_VERSIONS = ("1.25.0", kubernetes_validate.latest_version() + ".0")


def _variant_id(path: Path | None) -> str:
    return "default" if path is None else path.name.removesuffix("-values.yaml")


def _args(container: dict[str, Any]) -> dict[str, str]:
    """`--flag value` pairs of a container's args (after the role)."""
    args = container["args"][1:]
    return {args[i]: args[i + 1] for i in range(0, len(args) - 1, 2) if args[i].startswith("--")}


def _container(manifests: list[dict[str, Any]], kind: str) -> dict[str, Any]:
    (obj,) = find(manifests, kind)
    (container,) = obj["spec"]["template"]["spec"]["containers"]
    return container


def test_variants_exist() -> None:
    names = {_variant_id(p) for p in VARIANTS}
    assert {"nodes5", "loadbalancer-hpa", "existing-secret", "servicemonitor"} <= names


@pytest.mark.parametrize("values", [None, *VARIANTS], ids=_variant_id)
def test_helm_lint_strict(values: Path | None, tmp_path: Path) -> None:
    args = ["lint", "--strict", str(CHART)] + (["-f", str(values)] if values else [])
    result = run_helm(args, tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr


def _check_service_monitor(obj: dict[str, Any]) -> None:
    """A CRD: no schema in kubernetes-validate; check the fields Prometheus Operator needs."""
    assert obj["apiVersion"] == "monitoring.coreos.com/v1"
    spec = obj["spec"]
    assert spec["selector"]["matchLabels"]
    for endpoint in spec["endpoints"]:
        assert set(endpoint) <= {"port", "path", "interval", "scrapeTimeout"}
        assert endpoint["path"] == "/metrics" and endpoint["port"] in ("http", "api")


@pytest.mark.parametrize("values", [None, *VARIANTS], ids=_variant_id)
def test_every_rendered_object_matches_the_kubernetes_schemas(
    values: Path | None, tmp_path: Path
) -> None:
    manifests = render(tmp_path, [values] if values else [])
    kinds = {m["kind"] for m in manifests}
    assert {"StatefulSet", "Deployment", "Service", "ConfigMap", "PodDisruptionBudget"} <= kinds
    for obj in manifests:
        name = f"{obj['kind']}/{obj['metadata']['name']}"
        assert len(obj["metadata"]["name"]) <= 63, name
        assert obj["metadata"]["labels"]["app.kubernetes.io/instance"] == "pulsardb", name
        if obj["kind"] == "ServiceMonitor":
            _check_service_monitor(obj)
            continue
        if obj["kind"] == "PrometheusRule":  # a CRD too; its content is checked below
            assert obj["apiVersion"] == "monitoring.coreos.com/v1" and obj["spec"]["groups"]
            continue
        for version in K8S_VERSIONS:
            try:
                kubernetes_validate.validate(obj, version, strict=True)
            except kubernetes_validate.ValidationError as exc:
                path = ".".join(str(p) for p in exc.path)
                pytest.fail(f"{name} invalid for Kubernetes {version}: {path}: {exc.message}")


def test_the_schema_check_can_fail(tmp_path: Path) -> None:
    """Guard against a validator that accepts anything (e.g. a missing schema)."""
    (sts,) = find(render(tmp_path), "StatefulSet")
    broken = copy.deepcopy(sts)
    broken["spec"]["podManagementPolicy"] = 7
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, K8S_VERSIONS[0], strict=True)
    typo = copy.deepcopy(sts)
    typo["spec"]["template"]["spec"]["containers"][0]["readinesProbe"] = {}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(typo, K8S_VERSIONS[0], strict=True)


def test_default_topology(tmp_path: Path) -> None:
    m = render(tmp_path, namespace="tsdb")
    (sts,) = find(m, "StatefulSet")
    (headless,) = find(m, "Service", "pulsardb-node")
    spec = sts["spec"]
    assert spec["replicas"] == 3
    assert spec["podManagementPolicy"] == "Parallel"
    assert spec["serviceName"] == headless["metadata"]["name"]
    assert headless["spec"]["clusterIP"] == "None"
    assert headless["spec"]["publishNotReadyAddresses"] is True
    assert headless["spec"]["selector"].items() <= spec["template"]["metadata"]["labels"].items()
    (claim,) = spec["volumeClaimTemplates"]
    pod = spec["template"]["spec"]
    node = _container(m, "StatefulSet")
    assert {"name": claim["metadata"]["name"], "mountPath": "/var/lib/pulsardb"} in node[
        "volumeMounts"
    ]
    args = _args(node)
    assert node["args"][0] == "node" and "command" not in node, "ENTRYPOINT stays tini + pulsar"
    assert args["--node-id"] == "$(POD_NAME)"
    assert args["--data-dir"] == "/var/lib/pulsardb"
    assert args["--advertise-host"] == "$(POD_NAME).pulsardb-node.tsdb.svc.cluster.local"
    peers = args["--peers"].split(",")
    assert peers == [
        f"pulsardb-node-{i}=pulsardb-node-{i}.pulsardb-node.tsdb.svc.cluster.local:7100:7200"
        for i in range(3)
    ]
    assert (args["--shards"], args["--replication-factor"]) == ("16", "3")
    coordinator = _container(m, "Deployment")
    assert coordinator["args"][0] == "coordinator"
    assert _args(coordinator)["--nodes"].split(",") == [p.split("=")[1][:-5] for p in peers]
    # probes: readiness on /ready, liveness on /health, on the named ports
    for c, port in ((node, "api"), (coordinator, "http")):
        assert c["readinessProbe"]["httpGet"] == {"path": "/ready", "port": port}
        assert c["livenessProbe"]["httpGet"] == {"path": "/health", "port": port}
        sc = c["securityContext"]
        assert sc["readOnlyRootFilesystem"] and not sc["allowPrivilegeEscalation"]
        assert sc["capabilities"]["drop"] == ["ALL"]
        assert {"name": "tmp", "mountPath": "/tmp"} in c["volumeMounts"]
        assert c["resources"]["requests"] and c["resources"]["limits"]["memory"]
    assert pod["securityContext"]["runAsNonRoot"] and pod["securityContext"]["runAsUser"] == 10001
    assert pod["affinity"]["podAntiAffinity"]["preferredDuringSchedulingIgnoredDuringExecution"]
    # quorum: with replication factor 3 at most one node may be disrupted voluntarily
    (node_pdb,) = find(m, "PodDisruptionBudget", "pulsardb-node")
    assert node_pdb["spec"]["maxUnavailable"] == 1
    (coord_pdb,) = find(m, "PodDisruptionBudget", "pulsardb-coordinator")
    assert coord_pdb["spec"]["minAvailable"] == 1
    (secret,) = find(m, "Secret")
    assert secret["metadata"]["annotations"]["helm.sh/resource-policy"] == "keep"
    for key in ("cluster-secret", "admin-token"):
        assert len(base64.b64decode(secret["data"][key])) == 40
    assert set(secret["data"]) == {"cluster-secret", "admin-token"}, "federation stays closed"
    assert "--cluster-name" not in coordinator["args"]
    assert "PULSAR_FEDERATION_TOKEN" not in {e["name"] for e in coordinator["env"]}
    (svc,) = find(m, "Service", "pulsardb-coordinator")
    assert svc["spec"]["type"] == "ClusterIP"
    assert not find(m, "HorizontalPodAutoscaler") and not find(m, "ServiceMonitor")


@pytest.mark.parametrize(("replicas", "rf", "max_unavailable"), [(1, 1, 0), (4, 3, 1), (7, 5, 2)])
def test_peers_follow_the_replica_count(
    replicas: int, rf: int, max_unavailable: int, tmp_path: Path
) -> None:
    m = render(
        tmp_path,
        sets={"node.replicas": str(replicas), "cluster.replicationFactor": str(rf)},
    )
    peers = _args(_container(m, "StatefulSet"))["--peers"].split(",")
    assert [p.split("=")[0] for p in peers] == [f"pulsardb-node-{i}" for i in range(replicas)]
    assert len(_args(_container(m, "Deployment"))["--nodes"].split(",")) == replicas
    (pdb,) = find(m, "PodDisruptionBudget", "pulsardb-node")
    assert pdb["spec"]["maxUnavailable"] == max_unavailable


def test_nodes5_variant(tmp_path: Path) -> None:
    m = render(tmp_path, [CHART / "ci" / "nodes5-values.yaml"])
    (sts,) = find(m, "StatefulSet")
    assert sts["spec"]["replicas"] == 5
    args = _args(_container(m, "StatefulSet"))
    assert len(args["--peers"].split(",")) == 5
    assert (args["--shards"], args["--replication-factor"]) == ("32", "5")
    affinity = sts["spec"]["template"]["spec"]["affinity"]["podAntiAffinity"]
    assert affinity["requiredDuringSchedulingIgnoredDuringExecution"]
    (claim,) = sts["spec"]["volumeClaimTemplates"]
    assert claim["spec"]["storageClassName"] == "fast-ssd"
    assert claim["spec"]["resources"]["requests"]["storage"] == "100Gi"
    (pdb,) = find(m, "PodDisruptionBudget", "pulsardb-node")
    assert pdb["spec"]["maxUnavailable"] == 2


def test_loadbalancer_hpa_variant(tmp_path: Path) -> None:
    m = render(tmp_path, [CHART / "ci" / "loadbalancer-hpa-values.yaml"])
    (svc,) = find(m, "Service", "pulsardb-coordinator")
    assert svc["spec"]["type"] == "LoadBalancer"
    assert svc["spec"]["externalTrafficPolicy"] == "Local"
    assert svc["spec"]["loadBalancerSourceRanges"] == ["10.0.0.0/8"]
    (hpa,) = find(m, "HorizontalPodAutoscaler")
    assert hpa["spec"]["scaleTargetRef"]["name"] == "pulsardb-coordinator"
    assert (hpa["spec"]["minReplicas"], hpa["spec"]["maxReplicas"]) == (3, 12)
    assert {x["resource"]["name"] for x in hpa["spec"]["metrics"]} == {"cpu", "memory"}
    (deployment,) = find(m, "Deployment")
    assert "replicas" not in deployment["spec"], "the HPA owns the replica count"


def test_existing_secret_variant(tmp_path: Path) -> None:
    m = render(tmp_path, [CHART / "ci" / "existing-secret-values.yaml"])
    assert not find(m, "Secret"), "the chart must not create (or overwrite) the user's Secret"
    refs = {
        (e["valueFrom"]["secretKeyRef"]["name"], e["valueFrom"]["secretKeyRef"]["key"])
        for kind in ("StatefulSet", "Deployment")
        for e in _container(m, kind)["env"]
        if "secretKeyRef" in e.get("valueFrom", {})
    }
    assert refs == {
        ("pulsardb-secrets", "cluster"),
        ("pulsardb-secrets", "admin"),
        ("pulsardb-secrets", "federation-token"),  # optional: used when the Secret has it
    }
    (fed,) = [
        e for e in _container(m, "Deployment")["env"] if e["name"] == "PULSAR_FEDERATION_TOKEN"
    ]
    assert fed["valueFrom"]["secretKeyRef"]["optional"] is True


def test_servicemonitor_variant(tmp_path: Path) -> None:
    m = render(tmp_path, [CHART / "ci" / "servicemonitor-values.yaml"])
    monitors = {sm["metadata"]["name"]: sm for sm in find(m, "ServiceMonitor")}
    assert set(monitors) == {"pulsardb-coordinator", "pulsardb-node"}
    for name, sm in monitors.items():
        assert sm["metadata"]["labels"]["release"] == "prometheus"
        (svc,) = find(m, "Service", name)
        assert sm["spec"]["selector"]["matchLabels"].items() <= svc["metadata"]["labels"].items()
        (endpoint,) = sm["spec"]["endpoints"]
        assert endpoint["port"] in {p["name"] for p in svc["spec"]["ports"]}
        assert endpoint["interval"] == "15s"
    coordinator = _container(m, "Deployment")
    assert coordinator["args"][-2:] == ["--remote-cluster", "eu=https://pulsar-eu.example.com"]
    assert any(e["name"] == "PULSAR_REMOTE_TOKEN_EU" for e in coordinator["env"])
    args = coordinator["args"]
    assert args[args.index("--cluster-name") + 1] == "us"
    (secret,) = find(m, "Secret")
    assert base64.b64decode(secret["data"]["federation-token"]) == b"shared-with-the-eu-cluster"
    assert any(e["name"] == "PULSAR_FEDERATION_TOKEN" for e in coordinator["env"])
    # the alerting rules, verbatim (Prometheus's {{ $labels }} templates untouched by Helm)
    (rule,) = find(m, "PrometheusRule")
    assert rule["metadata"]["labels"]["release"] == "prometheus"
    alerts = yaml.safe_load((ROOT / "deploy/prometheus/alerts.yaml").read_text())
    assert rule["spec"] == {"groups": alerts["groups"]}
    # one coordinator: a PDB with minAvailable 1 would block every drain, so none is rendered
    assert not find(m, "PodDisruptionBudget", "pulsardb-coordinator")


@pytest.mark.parametrize(
    ("sets", "message"),
    [
        ({"node.replicas": "2"}, "node.replicas (2) must be >= cluster.replicationFactor (3)"),
        ({"cluster.replicationFactor": "4", "node.replicas": "5"}, "must be odd"),
        ({"node.antiAffinity": "sometimes"}, "node.antiAffinity must be one of the following"),
        # values.schema.json: typos, types and enumerations
        ({"cluster.shards": "0"}, "cluster.shards: Must be greater than or equal to 1"),
        ({"nodes.replicas": "5"}, "Additional property nodes is not allowed"),
        ({"node.replicas": "three"}, "node.replicas: Invalid type. Expected: integer"),
        ({"cluster.fsync": "sometimes"}, "cluster.fsync must be one of the following"),
        ({"coordinator.service.type": "Ingress"}, "coordinator.service.type must be one of"),
    ],
)
def test_values_that_would_break_the_cluster_are_refused(
    sets: dict[str, str], message: str, tmp_path: Path
) -> None:
    with pytest.raises(RuntimeError, match=re.escape(message)):
        render(tmp_path, sets=sets)


def test_chart_alert_rules_are_the_documented_ones() -> None:
    """Helm cannot read files outside the chart: files/alerts.yaml is a copy, kept identical."""
    copy_ = (CHART / "files" / "alerts.yaml").read_bytes()
    assert copy_ == (ROOT / "deploy/prometheus/alerts.yaml").read_bytes(), (
        "cp deploy/prometheus/alerts.yaml deploy/helm/pulsardb/files/alerts.yaml"
    )


def test_helm_test_pod_asks_the_coordinator_with_the_admin_token(tmp_path: Path) -> None:
    m = render(tmp_path, [CHART / "ci" / "existing-secret-values.yaml"], namespace="tsdb")
    (pod,) = [p for p in find(m, "Pod") if p["metadata"]["annotations"]["helm.sh/hook"] == "test"]
    (container,) = pod["spec"]["containers"]
    assert container["args"] == [
        "admin",
        "status",
        "--url",
        "http://pulsardb-coordinator.tsdb.svc.cluster.local:8080",
    ]
    (token,) = container["env"]
    assert token["name"] == "PULSAR_ADMIN_TOKEN"
    assert token["valueFrom"]["secretKeyRef"] == {"name": "pulsardb-secrets", "key": "admin"}
    assert pod["spec"]["securityContext"]["runAsNonRoot"]


def test_config_change_rolls_the_pods(tmp_path: Path) -> None:
    def checksum(sets: dict[str, str]) -> str:
        (sts,) = find(render(tmp_path, sets=sets), "StatefulSet")
        return str(sts["spec"]["template"]["metadata"]["annotations"]["checksum/config"])

    assert checksum({}) == checksum({})
    assert checksum({}) != checksum({"cluster.fsync": "interval"})
