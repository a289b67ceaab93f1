"""Helm for tests: find the binary, render the chart, and turn a rendered pod template into the
process a kubelet would start (argv from the image ENTRYPOINT + container args, env resolved from
the rendered Secrets/ConfigMaps and the downward API, `$(VAR)` expanded as Kubernetes does).
"""

from __future__ import annotations

import base64
import re
import shutil
import subprocess
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import yaml

from tests.support.dockerfile import ROOT

__all__ = ["CHART", "helm_binary", "render", "find", "pod_env", "expand", "Manifests"]

CHART = ROOT / "deploy" / "helm" / "pulsardb"
Manifests = list[dict[str, Any]]


def helm_binary() -> str | None:
    """`make helm` installs into ./.tools; a helm in .venv/bin or on PATH works too."""
    for candidate in (ROOT / ".tools" / "helm", ROOT / ".venv" / "bin" / "helm"):
        if candidate.is_file():
            return str(candidate)
    return shutil.which("helm")


def helm_env(tmp: Path) -> dict[str, str]:
    """Keep helm's config/cache out of $HOME: tests must not leave state behind."""
    import os

    return {
        **os.environ,
        "HELM_CONFIG_HOME": str(tmp / "config"),
        "HELM_CACHE_HOME": str(tmp / "cache"),
        "HELM_DATA_HOME": str(tmp / "data"),
    }


def run_helm(args: list[str], tmp: Path) -> subprocess.CompletedProcess[str]:
    helm = helm_binary()
    assert helm is not None
    return subprocess.run(
        [helm, *args], capture_output=True, text=True, timeout=60, env=helm_env(tmp), check=False
    )


def render(
    tmp: Path,
    values_files: Iterable[Path] = (),
    sets: dict[str, str] | None = None,
    release: str = "pulsardb",
    namespace: str = "default",
    kubeconfig: Path | None = None,
) -> Manifests:
    """`helm template`; with a kubeconfig, as an upgrade against that cluster (lookup works)."""
    args = ["template", release, str(CHART), "--namespace", namespace]
    if kubeconfig is not None:
        args += ["--dry-run=server", "--kubeconfig", str(kubeconfig), "--is-upgrade"]
    for f in values_files:
        args += ["-f", str(f)]
    for key, value in (sets or {}).items():
        args += ["--set", f"{key}={value}"]
    result = run_helm(args, tmp)
    if result.returncode != 0:
        raise RuntimeError(f"helm template failed: {result.stderr}")
    return [doc for doc in yaml.safe_load_all(result.stdout) if doc]


def find(manifests: Manifests, kind: str, name: str | None = None) -> list[dict[str, Any]]:
    return [
        m
        for m in manifests
        if m["kind"] == kind and (name is None or m["metadata"]["name"] == name)
    ]


def _one(manifests: Manifests, kind: str, name: str) -> dict[str, Any]:
    found = find(manifests, kind, name)
    if len(found) != 1:
        raise KeyError(f"{kind}/{name} not rendered (or rendered {len(found)} times)")
    return found[0]


_VAR = re.compile(r"\$\(([A-Za-z_][A-Za-z0-9_]*)\)")


def expand(text: str, env: dict[str, str]) -> str:
    """Kubernetes' `$(VAR)` expansion in args and env values; unknown references stay as written."""
    return _VAR.sub(lambda m: env.get(m.group(1), m.group(0)), text)


def pod_env(
    manifests: Manifests, container: dict[str, Any], pod_name: str, namespace: str = "default"
) -> dict[str, str]:
    """The environment the kubelet gives `container` of pod `pod_name` (envFrom, then env)."""
    env: dict[str, str] = {}
    for source in container.get("envFrom", []):
        if "configMapRef" in source:
            cm = _one(manifests, "ConfigMap", source["configMapRef"]["name"])
            env.update({k: str(v) for k, v in cm.get("data", {}).items()})
        elif "secretRef" in source:
            secret = _one(manifests, "Secret", source["secretRef"]["name"])
            env.update({k: base64.b64decode(v).decode() for k, v in secret["data"].items()})
    for item in container.get("env", []):
        name = item["name"]
        if "value" in item:
            env[name] = expand(str(item["value"]), env)
            continue
        ref = item["valueFrom"]
        if "fieldRef" in ref:
            field = ref["fieldRef"]["fieldPath"]
            env[name] = {"metadata.name": pod_name, "metadata.namespace": namespace}[field]
        elif "secretKeyRef" in ref:
            key = ref["secretKeyRef"]
            secret = _one(manifests, "Secret", key["name"])
            if key["key"] not in secret["data"] and key.get("optional"):
                continue  # the kubelet leaves an optional variable out
            env[name] = base64.b64decode(secret["data"][key["key"]]).decode()
        elif "configMapKeyRef" in ref:
            key = ref["configMapKeyRef"]
            env[name] = str(_one(manifests, "ConfigMap", key["name"])["data"][key["key"]])
        else:
            raise NotImplementedError(f"env source {ref}")
    return env
