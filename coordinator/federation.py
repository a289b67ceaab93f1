"""Federated queries: one plan answered by this cluster and named remote clusters, merged.

`Federation` holds the configured remote clusters (pulsar_cluster/federation.py). For a query
that names clusters (`"clusters": ["eu", "*"]` or `clusters=eu,us`), `Federation.backend(...)`
returns a `FederatedQueryBackend`: it sends the plan to every selected cluster concurrently
(this one through its own storage, remote ones through their internal endpoint), each bounded
by that cluster's timeout, and merges the partials with the same `merge` that combines shards.

The tag `_cluster`: when a plan groups by `_cluster` explicitly, each partial's groups are
labelled with the name of the cluster that computed them, so results can be grouped by
cluster. Storage never sees the tag (nodes answer it as an absent tag, "").

Failure modes, chosen per query: `strict` (default) fails the query with an error naming the
first cluster that failed; `partial` answers from the clusters that did answer and lists the
missing ones with their errors.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field, replace
from typing import Any

from pulsar_cluster.errors import BadRequestError, PulsarError
from pulsar_cluster.federation import FederationClient, RemoteCluster, RemoteClusterError
from pulsar_cluster.query.partial import GroupKey, Partial, RawBlock, merge
from pulsar_cluster.query.plan import Plan
from pulsar_cluster.query.run import QueryBackend

__all__ = ["Federation", "FederatedQueryBackend", "CLUSTER_TAG", "MODES"]

CLUSTER_TAG = "_cluster"
MODES = ("strict", "partial")


@dataclass(slots=True)
class FederatedQueryBackend:
    """A QueryBackend over several clusters. `missing` lists the clusters that failed."""

    local: QueryBackend | None
    local_name: str
    remotes: list[FederationClient]
    mode: str = "strict"
    missing: list[dict[str, Any]] = field(default_factory=list)

    async def query(self, plan: Plan) -> Partial:
        label = _labels_cluster(plan)
        names: list[str] = []
        calls = []
        if self.local is not None:
            names.append(self.local_name)
            calls.append(self.local.query(plan))
        for client in self.remotes:
            names.append(client.cluster.name)
            calls.append(client.partial(plan))
        results = await asyncio.gather(*calls, return_exceptions=True)
        partials: list[Partial] = []
        for name, result in zip(names, results, strict=True):
            if isinstance(result, BaseException):
                if not isinstance(result, PulsarError):
                    raise result
                if self.mode == "strict" or name == self.local_name:
                    raise result  # the local cluster's own errors are never hidden
                error = result.reason if isinstance(result, RemoteClusterError) else result.message
                if not any(m["cluster"] == name for m in self.missing):
                    self.missing.append({"cluster": name, "error": error})
                continue
            partials.append(_with_cluster(result, name) if label else result)
        return merge(plan, partials)


def _labels_cluster(plan: Plan) -> bool:
    # Only on request: GROUP BY * keeps answering as one big cluster would.
    return plan.group_by is not None and CLUSTER_TAG in plan.group_by


def _relabel(key: GroupKey, name: str) -> GroupKey:
    """Storage answers `_cluster` as an absent tag (""); put the cluster's name there."""
    return tuple((k, name if k == CLUSTER_TAG else v) for k, v in key)


def _with_cluster(partial: Partial, name: str) -> Partial:
    groups = {_relabel(key, name): states for key, states in partial.groups.items()}
    raw = {
        _relabel(key, name): [
            RawBlock({**b.tags, CLUSTER_TAG: name}, b.t, b.values, b.present) for b in blocks
        ]
        for key, blocks in partial.raw.items()
    }
    return replace(partial, groups=groups, raw=raw)


class Federation:
    """The remote clusters a coordinator knows, and the choice of clusters per query."""

    def __init__(self, local_name: str, clusters: list[RemoteCluster]) -> None:
        self.local_name = local_name
        self.clusters = {c.name: c for c in clusters}
        self._clients = {c.name: FederationClient(c) for c in clusters}

    def select(self, requested: list[str]) -> tuple[bool, list[FederationClient]]:
        """(include local?, remote clients) for a query's `clusters` list.

        `*` means this cluster and every remote one; this cluster's own name selects it.
        An unknown name is a 400 naming it.
        """
        include_local = False
        chosen: dict[str, FederationClient] = {}
        for name in requested:
            if name == "*":
                include_local = True
                chosen.update(self._clients)
            elif name == self.local_name:
                include_local = True
            elif name in self._clients:
                chosen[name] = self._clients[name]
            else:
                known = ", ".join([self.local_name, *sorted(self._clients)])
                raise BadRequestError(
                    f"unknown cluster '{name}' (known: {known}, or '*')", cluster=name
                )
        if not include_local and not chosen:
            raise BadRequestError("'clusters' selects no cluster")
        return include_local, list(chosen.values())

    def backend(
        self, local: QueryBackend, requested: list[str] | None, mode: str | None
    ) -> tuple[QueryBackend, FederatedQueryBackend | None]:
        """The backend a query runs against; the second item reports missing clusters."""
        mode = mode or "strict"
        if mode not in MODES:
            raise BadRequestError(f"invalid federation mode '{mode}': use strict or partial")
        if not requested:
            return local, None
        include_local, remotes = self.select(requested)
        federated = FederatedQueryBackend(
            local if include_local else None, self.local_name, remotes, mode
        )
        return federated, federated

    async def health(self) -> list[dict[str, Any]]:
        async def one(client: FederationClient) -> dict[str, Any]:
            return {**client.cluster.describe(), **await client.health()}

        return list(await asyncio.gather(*(one(c) for c in self._clients.values())))

    async def close(self) -> None:
        for client in self._clients.values():
            await client.close()
