"""The chart's nodes beyond cluster.initialNodes join the running cluster (--join), while the
initial peers keep the same --peers; the upgrade that grows node.replicas keeps --peers."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from tests.support.helm import find, helm_binary, render

pytestmark = pytest.mark.skipif(
    helm_binary() is None, reason="helm is not installed: run `make helm` (installs ./.tools/helm)"
)


def _node_args(manifests: Any) -> dict[str, str]:
    (sts,) = find(manifests, "StatefulSet")
    (container,) = [c for c in sts["spec"]["template"]["spec"]["containers"] if c["name"] == "node"]
    args = container["args"][1:]
    return {args[i]: args[i + 1] for i in range(0, len(args) - 1, 2) if args[i].startswith("--")}


def test_pods_beyond_the_initial_nodes_join(tmp_path: Path) -> None:
    grown = _node_args(render(tmp_path, sets={"node.replicas": "5", "cluster.initialNodes": "3"}))
    created = _node_args(render(tmp_path, sets={"node.replicas": "3"}))
    # Growing the StatefulSet does not change the creation peers (checkFixedTopology compares).
    assert grown["--peers"] == created["--peers"]
    assert [p.split("=")[0] for p in grown["--peers"].split(",")] == [
        f"pulsardb-node-{i}" for i in range(3)
    ]
    # Every pod gets --join to pod 0's node API; the CLI ignores it on initial peers.
    assert grown["--join"] == "pulsardb-node-0.pulsardb-node.default.svc.cluster.local:7100"


def test_joined_pods_rebalance_by_default(tmp_path: Path) -> None:
    def setting(sets: dict[str, str]) -> str:
        maps = find(render(tmp_path, sets=sets), "ConfigMap")
        (node,) = [m for m in maps if m["metadata"]["name"] == "pulsardb-node"]
        return str(node["data"]["PULSAR_REBALANCE_ON_JOIN"])

    assert setting({}) == "true"  # scaling the StatefulSet up needs no admin call
    assert setting({"cluster.rebalanceOnJoin": "false"}) == "false"


@pytest.mark.parametrize(
    ("sets", "message"),
    [
        ({"node.replicas": "3", "cluster.initialNodes": "4"}, "must be <= node.replicas"),
        ({"node.replicas": "5", "cluster.initialNodes": "1"}, "must be >= cluster.replication"),
    ],
)
def test_bad_initial_nodes_are_refused(sets: dict[str, str], message: str, tmp_path: Path) -> None:
    with pytest.raises(RuntimeError, match=re.escape(message)):
        render(tmp_path, sets=sets)
