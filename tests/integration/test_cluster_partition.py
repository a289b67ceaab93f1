"""A network partition with Linux network namespaces (root only; skipped with the reason).

Each node runs in its own namespace on a private bridge. The leader of shard 0 is cut off:
it must acknowledge nothing (tried directly on its node API from inside its namespace), the
majority must keep serving writes through a coordinator, and after healing every shard's
replicas must converge to identical data.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from pulsar_cluster.batch import BatchBuilder, FieldType
from pulsar_cluster.batchcodec import encode_batch
from pulsar_cluster.series import make_series_key, shard_for
from tests.integration.test_cluster_faults import (
    Writer,
    assert_all_acked_readable,
    assert_converged,
)
from tests.support.cluster import SECRET, Cluster
from tests.support.netns import NetNamespaces, available

T0 = 1_767_225_600_000_000_000
REASON = available()
pytestmark = pytest.mark.skipif(REASON is not None, reason=f"partition test: {REASON}")


def _batch_for_shard(shard: int, shards: int) -> bytes:
    builder = BatchBuilder("f")
    for i in range(1000):
        key = make_series_key("minority", {"s": str(i)})
        if shard_for("f", key, shards) == shard:
            builder.add(key, "v", FieldType.INTEGER, T0, 1)
            return encode_batch(builder.build())
    raise AssertionError("no series of that shard")


def _writes_from_inside(netns: NetNamespaces, i: int, url: str, body: Path, seconds: float) -> str:
    """POST the batch again and again from inside namespace i; the status codes seen."""
    script = textwrap.dedent(
        f"""
        import time, httpx
        body = open({str(body)!r}, "rb").read()
        seen = []
        end = time.monotonic() + {seconds}
        while time.monotonic() < end:
            try:
                r = httpx.post({url!r}, content=body, timeout=2.5,
                               headers={{"Authorization": "Bearer {SECRET}"}})
                seen.append(str(r.status_code))
            except httpx.HTTPError as exc:
                seen.append(type(exc).__name__)
        print(" ".join(seen))
        """
    )
    out = subprocess.run(
        [*netns.exec_prefix(i), sys.executable, "-c", script],
        capture_output=True,
        text=True,
        timeout=seconds + 30,
        check=False,
    )
    assert out.returncode == 0, out.stderr
    return out.stdout.strip()


def test_partitioned_leader_acknowledges_nothing_majority_serves_then_converges(
    tmp_path: Path,
) -> None:
    netns = NetNamespaces(3).create()
    cluster = Cluster(tmp_path, netns=netns)
    try:
        cluster.start()
        writer = Writer(cluster.url)
        writer.start()
        time.sleep(1.0)
        victim = cluster.leader_of(0)
        body = tmp_path / "minority-batch"
        body.write_bytes(_batch_for_shard(0, cluster.shards))
        netns.isolate(victim)
        cut_at = time.monotonic()
        seen = _writes_from_inside(
            netns, victim, cluster.node_url(victim) + "/v1/shards/0/write", body, 4.0
        )
        assert seen, "no write attempt was made on the minority side"
        assert "200" not in seen.split(), f"the minority acknowledged a write: {seen}"
        print(f"minority write attempts: {seen}")
        # The majority elected a new leader for shard 0 and kept acknowledging writes.
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and not any(t > cut_at + 4 for _, t in writer.acked):
            time.sleep(0.05)
        assert any(t > cut_at + 4 for _, t in writer.acked), "the majority stopped serving"
        netns.heal(victim)
        time.sleep(1.0)
        writer.finish()
        cluster.wait_node_ready(victim)
        assert_converged(cluster)
        assert_all_acked_readable(cluster, writer.acked)
    finally:
        cluster.stop()
        netns.destroy()
