"""A minimal read-only Kubernetes API server for Helm's `lookup` in tests.

No kube-apiserver can run here. Helm (`helm template --dry-run=server`) needs API discovery and
GETs of single objects; this serves exactly that from a dict of objects, on 127.0.0.1, and writes
a kubeconfig pointing at itself. Anything else is 404 (a Kubernetes Status body), which Helm's
lookup treats as "object absent".
"""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

__all__ = ["FakeKube"]


def _resources(group_version: str, *kinds: tuple[str, str]) -> dict[str, Any]:
    return {
        "kind": "APIResourceList",
        "groupVersion": group_version,
        "resources": [
            {"name": plural, "singularName": "", "namespaced": True, "kind": kind,
             "verbs": ["get", "list"]}
            for plural, kind in kinds
        ],
    }  # fmt: skip


_GROUPS = {
    "apps/v1": [("statefulsets", "StatefulSet"), ("deployments", "Deployment")],
    "policy/v1": [("poddisruptionbudgets", "PodDisruptionBudget")],
    "autoscaling/v2": [("horizontalpodautoscalers", "HorizontalPodAutoscaler")],
    "monitoring.coreos.com/v1": [("servicemonitors", "ServiceMonitor")],
}
_CORE = [
    ("secrets", "Secret"),
    ("configmaps", "ConfigMap"),
    ("services", "Service"),
    ("serviceaccounts", "ServiceAccount"),
    ("pods", "Pod"),
]
_PLURAL = {kind: plural for gv in _GROUPS.values() for plural, kind in gv} | {
    kind: plural for plural, kind in _CORE
}


class FakeKube:
    """`with FakeKube(tmp) as kube: kube.put(obj); helm(..., "--kubeconfig", kube.kubeconfig)`."""

    def __init__(self, tmp: Path) -> None:
        self.objects: dict[str, Any] = {}
        self.requests: list[str] = []
        discovery: dict[str, Any] = {
            "/version": {"major": "1", "minor": "30", "gitVersion": "v1.30.0"},
            "/api": {"kind": "APIVersions", "versions": ["v1"]},
            "/api/v1": _resources("v1", *_CORE),
            "/apis": {
                "kind": "APIGroupList",
                "apiVersion": "v1",
                "groups": [
                    {
                        "name": gv.split("/")[0],
                        "versions": [{"groupVersion": gv, "version": gv.split("/")[1]}],
                        "preferredVersion": {"groupVersion": gv, "version": gv.split("/")[1]},
                    }
                    for gv in _GROUPS
                ],
            },
        }
        for gv, kinds in _GROUPS.items():
            discovery[f"/apis/{gv}"] = _resources(gv, *kinds)
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                path = self.path.split("?", 1)[0]
                fake.requests.append(path)
                body = discovery.get(path) or fake.objects.get(path)
                status = 200 if body is not None else 404
                if body is None:
                    body = {"kind": "Status", "apiVersion": "v1", "status": "Failure",
                            "reason": "NotFound", "code": 404}  # fmt: skip
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        port = self._server.server_address[1]
        self.kubeconfig = tmp / "kubeconfig"
        self.kubeconfig.write_text(
            "apiVersion: v1\nkind: Config\n"
            f"clusters: [{{name: fake, cluster: {{server: 'http://127.0.0.1:{port}'}}}}]\n"
            "users: [{name: u, user: {token: t}}]\n"
            "contexts: [{name: c, context: {cluster: fake, user: u}}]\n"
            "current-context: c\n"
        )
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def put(self, obj: dict[str, Any]) -> None:
        api = obj["apiVersion"]
        prefix = "/api/v1" if api == "v1" else f"/apis/{api}"
        meta = obj["metadata"]
        namespace = meta.get("namespace", "default")
        path = f"{prefix}/namespaces/{namespace}/{_PLURAL[obj['kind']]}/{meta['name']}"
        self.objects[path] = obj

    def __enter__(self) -> FakeKube:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=10)
