"""Upgrades against a cluster (Helm's `lookup`, served by tests/support/fakekube.py): generated
secrets are kept, and a change of the running cluster's shape is refused."""

from __future__ import annotations

import base64
import re
from pathlib import Path

import pytest

from tests.support.fakekube import FakeKube
from tests.support.helm import find, helm_binary, render

pytestmark = pytest.mark.skipif(
    helm_binary() is None, reason="helm is not installed: run `make helm` (installs ./.tools/helm)"
)


def _secret_data(manifests: list[dict]) -> dict[str, bytes]:
    (secret,) = find(manifests, "Secret")
    return {k: base64.b64decode(v) for k, v in secret["data"].items()}


def test_generated_secrets_survive_upgrades(tmp_path: Path) -> None:
    with FakeKube(tmp_path) as kube:
        first = _secret_data(render(tmp_path, kubeconfig=kube.kubeconfig))
        again = _secret_data(render(tmp_path, kubeconfig=kube.kubeconfig))
        assert first["cluster-secret"] != again["cluster-secret"], "nothing to look up: new"
        # install done: the Secret exists in the cluster now
        (secret,) = find(render(tmp_path, kubeconfig=kube.kubeconfig), "Secret")
        secret["metadata"]["namespace"] = "default"
        kube.put(secret)
        installed = {k: base64.b64decode(v) for k, v in secret["data"].items()}
        upgraded = _secret_data(
            render(tmp_path, sets={"image.tag": "0.2.0"}, kubeconfig=kube.kubeconfig)
        )
        assert upgraded == installed, "an upgrade must not rotate the cluster secret"
        assert "/api/v1/namespaces/default/secrets/pulsardb-auth" in kube.requests
        # an explicitly configured value wins over the stored one
        explicit = _secret_data(
            render(tmp_path, sets={"auth.adminToken": "rotated"}, kubeconfig=kube.kubeconfig)
        )
        assert explicit["admin-token"] == b"rotated"
        assert explicit["cluster-secret"] == installed["cluster-secret"]


@pytest.mark.parametrize(
    ("sets", "flag"),
    [
        ({"node.replicas": "5"}, "--peers"),
        ({"cluster.shards": "32"}, "--shards"),
        ({"cluster.replicationFactor": "1"}, "--replication-factor"),
        ({"node.ports.raft": "7300"}, "--peers"),
        ({"clusterDomain": "corp.local"}, "--peers"),
    ],
)
def test_a_change_of_the_cluster_shape_is_refused(
    sets: dict[str, str], flag: str, tmp_path: Path
) -> None:
    with FakeKube(tmp_path) as kube:
        (sts,) = find(render(tmp_path), "StatefulSet")
        sts["metadata"]["namespace"] = "default"
        kube.put(sts)
        # what an upgrade may change: image, resources, settings
        ok = {"image.tag": "0.2.0", "cluster.fsync": "interval", "node.memtableMb": "256"}
        assert find(render(tmp_path, sets=ok, kubeconfig=kube.kubeconfig), "StatefulSet")
        with pytest.raises(RuntimeError, match=re.escape(f"{flag} of the running cluster is")):
            render(tmp_path, sets=sets, kubeconfig=kube.kubeconfig)
        # the scaling procedure's explicit step lets it through
        allowed = {**sets, "node.allowTopologyChange": "true"}
        assert find(render(tmp_path, sets=allowed, kubeconfig=kube.kubeconfig), "StatefulSet")
