"""What a storage node (or the engine of a standalone process) can change on a configuration
reload (pulsar_cluster/reload.py): the retention rules of its engines.

Retention applies at once to reads, and the background worker drops expired partitions on its
next pass (node/background.py); a database no longer listed keeps its data from then on.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import Any

from node.engine.engine import Engine, RetentionPolicy
from pulsar_cluster.config import parse_retention
from pulsar_cluster.reload import Commit, LiveSetting

__all__ = ["retention_setting"]


def retention_setting(engines: Callable[[], list[Engine]]) -> LiveSetting:
    def prepare(args: argparse.Namespace, _: dict[str, Any]) -> Commit:
        policies = {
            db: RetentionPolicy(duration, overrides)
            for db, (duration, overrides) in parse_retention(list(args.retention)).items()
        }

        def commit() -> None:
            for engine in engines():
                for db in set(engine.options.retention) | set(policies):
                    engine.set_retention(db, policies.get(db))

        return commit

    return LiveSetting(("retention",), prepare)
