"""What a coordinator (or standalone) process can change at runtime on a configuration reload.

The settings of coordinator.state.CoordinatorSettings that every request reads afresh: the
access log switch, the admin token (coordinator/auth.py reads it per request), the largest write
body, the query limits and the federation (remote clusters, their timeouts and tokens, this
cluster's name, the token remote coordinators present). The mechanism is pulsar_cluster/reload.py.
"""

from __future__ import annotations

import argparse
import asyncio
import os
from typing import Any

from coordinator.federation import Federation
from coordinator.requestlog import access_log_enabled
from coordinator.state import AppState
from pulsar_cluster.federation import parse_remote_clusters
from pulsar_cluster.querylimits import QUERY_LIMIT_KEYS, query_limits
from pulsar_cluster.reload import FILE_PREFIX, Commit, LiveSetting

__all__ = ["coordinator_live_settings"]

FEDERATION_KEYS = (
    "cluster_name",
    "remote_cluster",
    "remote_timeout",
    "federation_token",
    FILE_PREFIX + "remote_clusters",
)


def coordinator_live_settings(state: AppState) -> list[LiveSetting]:
    settings = state.settings

    def admin_token(args: argparse.Namespace, _: dict[str, Any]) -> Commit:
        token = args.admin_token or None

        def commit() -> None:
            settings.admin_token = token

        return commit

    def max_body(args: argparse.Namespace, _: dict[str, Any]) -> Commit:
        mb = int(args.max_body_mb)
        if mb <= 0:
            raise ValueError(f"--max-body-mb must be positive, got {mb}")

        def commit() -> None:
            settings.max_body_bytes = mb * 1024 * 1024

        return commit

    def limits(args: argparse.Namespace, _: dict[str, Any]) -> Commit:
        new = query_limits(args)

        def commit() -> None:
            settings.query_limits = new

        return commit

    def federation(args: argparse.Namespace, file_values: dict[str, Any]) -> Commit:
        remotes = parse_remote_clusters(
            args.remote_cluster,
            os.environ,
            file_values.get("remote_clusters"),
            args.remote_timeout,
            args.cluster_name,
        )

        def commit() -> None:
            old = state.federation
            settings.cluster_name = args.cluster_name
            settings.remote_clusters = remotes
            settings.federation_token = args.federation_token
            state.federation = Federation(args.cluster_name, remotes)
            _retire(old, max([10.0, *(2 * r.timeout_s for r in old.clusters.values())]))

        return commit

    def access_log(args: argparse.Namespace, _: dict[str, Any]) -> Commit:
        enabled = access_log_enabled(args.access_log)

        def commit() -> None:
            settings.access_log = enabled

        return commit

    return [
        LiveSetting(("access_log",), access_log),
        LiveSetting(("admin_token",), admin_token),
        LiveSetting(("max_body_mb",), max_body),
        LiveSetting(tuple(QUERY_LIMIT_KEYS), limits),
        LiveSetting(FEDERATION_KEYS, federation),
    ]


def _retire(old: Federation, grace_s: float) -> None:
    """Close the replaced federation's HTTP clients once queries that hold them are done."""
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:  # no loop (a reload outside the server): the clients are collected
        return
    loop.call_later(grace_s, lambda: loop.create_task(old.close()))
