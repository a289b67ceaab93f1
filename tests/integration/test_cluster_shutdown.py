"""A node stopped with SIGTERM (what Kubernetes sends) shuts down cleanly and exits 0."""

from __future__ import annotations

import signal
from pathlib import Path

from tests.support.cluster import Cluster


def test_sigterm_stops_a_node_with_exit_code_zero(tmp_path: Path) -> None:
    cluster = Cluster(tmp_path)
    try:
        cluster.start()
        proc = cluster.procs["node-2"]
        cluster.kill("node-2", signal.SIGTERM)
        assert proc.returncode == 0, cluster.log("node-2")
    finally:
        cluster.stop()
