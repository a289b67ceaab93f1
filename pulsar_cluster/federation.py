"""Federation: named remote clusters, and the client that asks them for partial results.

A coordinator can merge partial aggregates from other PulsarDB clusters exactly as it merges
them from its own shards. A remote cluster receives the same encoded plan
(docs/format/partials.md) at its internal endpoint `POST /api/v1/internal/partial`, answers from
its own storage only (never federating further, so loops cannot happen), and returns an encoded
partial. Transport details: docs/format/federation.md.

Configuration (flags, environment, TOML; docs/federation.md):

    --remote-cluster eu=https://eu.example:8080     repeatable; env PULSAR_REMOTE_CLUSTERS=a=u,b=u
    --remote-timeout 10                             seconds per remote request (default)
    PULSAR_REMOTE_TOKEN_EU=...                      the token sent to cluster "eu" only
    [remote_clusters.eu] url = "..." token = "..." timeout_s = 5     (TOML)

Security: each client holds only its own cluster's token and never follows redirects, so a
token cannot reach another host; https URLs are verified with the system's CA store.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from pulsar_cluster.errors import PulsarError
from pulsar_cluster.nodehttp import NodeResponse, NodeSession, NodeTransportError, call_timeout
from pulsar_cluster.query.partial import Partial, decode_partial, encode_plan
from pulsar_cluster.query.plan import Plan

__all__ = [
    "RemoteCluster",
    "RemoteClusterError",
    "FederationClient",
    "parse_remote_clusters",
    "token_env_name",
    "PARTIAL_PATH",
    "FEDERATED_HEADER",
    "CONTENT_TYPE",
]

PARTIAL_PATH = "/api/v1/internal/partial"
#: Marks a request made by a federating coordinator (for logs; the endpoint never re-federates).
FEDERATED_HEADER = "X-Pulsar-Federated"
CONTENT_TYPE = "application/x-pulsar-plan"
_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_-]{0,62}")
DEFAULT_TIMEOUT_S = 10.0


@dataclass(frozen=True, slots=True)
class RemoteCluster:
    name: str
    url: str
    token: str | None = None
    timeout_s: float = DEFAULT_TIMEOUT_S

    def describe(self) -> dict[str, Any]:
        """What admin endpoints may show: never the token."""
        return {
            "name": self.name,
            "url": self.url,
            "timeout_s": self.timeout_s,
            "token_configured": self.token is not None,
        }


class RemoteClusterError(PulsarError):
    """A remote cluster failed to answer: unreachable, timed out, or answered an error."""

    status_code = 503

    def __init__(self, cluster: str, reason: str, status_code: int = 503) -> None:
        super().__init__(f"cluster '{cluster}': {reason}", cluster=cluster)
        self.cluster = cluster
        self.reason = reason
        self.status_code = status_code


def token_env_name(name: str) -> str:
    return "PULSAR_REMOTE_TOKEN_" + re.sub(r"[^A-Za-z0-9]", "_", name).upper()


def parse_remote_clusters(
    specs: list[str],
    environ: Mapping[str, str],
    file_tables: Mapping[str, Any] | None = None,
    default_timeout_s: float = DEFAULT_TIMEOUT_S,
    local_name: str = "local",
) -> list[RemoteCluster]:
    """Remote clusters from `NAME=URL` flags and `[remote_clusters.NAME]` TOML tables.

    Raises ValueError naming the bad entry (unknown form, bad name, duplicate, non-http URL).
    """
    entries: dict[str, dict[str, Any]] = {}
    for name, table in (file_tables or {}).items():
        if not isinstance(table, Mapping):
            raise ValueError(f"[remote_clusters.{name}] must be a table with url, token, timeout_s")
        entries[name] = dict(table)
    for spec in specs:
        name, sep, url = spec.partition("=")
        if not sep or not name or not url:
            raise ValueError(f"remote cluster '{spec}': use NAME=URL")
        entries.setdefault(name.strip(), {})["url"] = url.strip()
    out = []
    for name, entry in entries.items():
        if not _NAME.fullmatch(name) or name in (local_name, "*"):
            raise ValueError(
                f"invalid remote cluster name '{name}' (letters, digits, _ and -; "
                f"not '{local_name}' or '*')"
            )
        url = str(entry.get("url", "")).rstrip("/")
        if not url.startswith(("http://", "https://")):
            raise ValueError(f"remote cluster '{name}': URL must start with http:// or https://")
        token = environ.get(token_env_name(name), entry.get("token"))
        timeout = float(entry.get("timeout_s", default_timeout_s))
        if timeout <= 0:
            raise ValueError(f"remote cluster '{name}': timeout must be positive")
        out.append(RemoteCluster(name, url, token, timeout))
    return sorted(out, key=lambda c: c.name)


class FederationClient:
    """Sends plans to one remote cluster. One client (and one connection pool) per cluster."""

    def __init__(self, cluster: RemoteCluster) -> None:
        self.cluster = cluster
        headers = {FEDERATED_HEADER: "1", "Content-Type": CONTENT_TYPE}
        if cluster.token:
            headers["Authorization"] = f"Bearer {cluster.token}"
        self._headers = headers
        self._timeout = call_timeout(cluster.timeout_s)
        self._http = NodeSession()  # the pool node calls use (pulsar_cluster/nodehttp.py)

    async def partial(self, plan: Plan) -> Partial:
        """The remote cluster's partial for `plan`; RemoteClusterError on any failure."""
        name = self.cluster.name
        try:
            response = await asyncio.wait_for(
                self._http.request(
                    "POST",
                    self.cluster.url + PARTIAL_PATH,
                    headers=self._headers,
                    timeout=self._timeout,
                    content=encode_plan(plan),
                ),
                self.cluster.timeout_s,
            )
        except TimeoutError:
            raise RemoteClusterError(
                name, f"no answer within {self.cluster.timeout_s:g} s (timeout)", 504
            ) from None
        except NodeTransportError as exc:
            if exc.timed_out:
                raise RemoteClusterError(
                    name, f"no answer within {self.cluster.timeout_s:g} s (timeout)", 504
                ) from None
            raise RemoteClusterError(name, f"unreachable: {exc}") from None
        if response.status_code != 200:
            raise RemoteClusterError(name, _remote_error(response), _status_of(response))
        try:
            return decode_partial(response.content)
        except PulsarError as exc:
            raise RemoteClusterError(name, f"invalid answer: {exc.message}", 502) from None

    async def health(self) -> dict[str, Any]:
        try:
            response = await self._http.request(
                "GET", self.cluster.url + "/health", headers=self._headers, timeout=self._timeout
            )
            ok = response.status_code == 200
            return {"status": "up" if ok else "down", "http_status": response.status_code}
        except NodeTransportError as exc:
            return {"status": "down", "error": str(exc)}

    async def close(self) -> None:
        await self._http.close()


def _remote_error(response: NodeResponse) -> str:
    try:
        body = response.json()
        message = body.get("error") if isinstance(body, dict) else None
    except ValueError:
        message = None
    return f"answered HTTP {response.status_code}: {message or response.text[:200]}"


def _status_of(response: NodeResponse) -> int:
    # The remote's client errors (a bad query, a limit) stay client errors here; anything else
    # means the cluster could not answer.
    return response.status_code if 400 <= response.status_code < 500 else 502
