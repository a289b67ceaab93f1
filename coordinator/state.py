"""What the routes share, kept on `app.state`: the storage backend, settings and metrics."""

from __future__ import annotations

from dataclasses import dataclass, field

import orjson
from fastapi import Request
from fastapi.responses import JSONResponse

from coordinator.federation import Federation
from coordinator.metrics import CoordinatorMetrics
from coordinator.parsepool import ParsePool
from pulsar_cluster.federation import RemoteCluster
from pulsar_cluster.nodeapi import StorageBackend
from pulsar_cluster.query.plan import Limits

__all__ = ["CoordinatorSettings", "AppState", "app_state", "ORJSONResponse"]


@dataclass(slots=True)
class CoordinatorSettings:
    #: Largest accepted write body, after gunzip (InfluxDB's default max-body-size is 25 MB).
    max_body_bytes: int = 25 * 1024 * 1024
    default_database: str = "default"
    #: Worker processes parsing write bodies; 0 parses in threads of the server process.
    parse_workers: int = 0
    #: Bearer token for /api/v1/admin/*; None: loopback clients only (coordinator/auth.py)
    admin_token: str | None = None
    #: Token remote coordinators must present to query this cluster (None: federation closed)
    federation_token: str | None = None
    #: This cluster's name in federated queries and in the `_cluster` tag
    cluster_name: str = "local"
    #: Remote clusters this coordinator may query (pulsar_cluster/federation.py)
    remote_clusters: list[RemoteCluster] = field(default_factory=list)
    #: Per-query bounds: points read, series, windows, answer rows, time (docs/api.md)
    query_limits: Limits = field(default_factory=Limits)
    #: One `http_request` log line per request; off: only failures (coordinator/requestlog.py)
    access_log: bool = True


@dataclass(slots=True)
class AppState:
    backend: StorageBackend
    settings: CoordinatorSettings
    metrics: CoordinatorMetrics
    parser: ParsePool
    federation: Federation


def app_state(request: Request) -> AppState:
    return request.app.state.pulsar  # type: ignore[no-any-return]


class ORJSONResponse(JSONResponse):
    def render(self, content: object) -> bytes:
        return orjson.dumps(content, option=orjson.OPT_SERIALIZE_NUMPY)
