"""The rollup cache in a real `pulsar standalone`: a repeated GROUP BY time() query is answered
from it with the same answer, a write into a cached window changes the answer at once, the
statistics show in the caches API and the metrics, `cache=rollup` clears it, and
`--rollup-cache-mb 0` turns it off. The query reads 4 series x 400 one-second windows: plans
below node/queryrollups.py's MIN_CACHED_WINDOWS skip the cache, and one such query checks that."""

from __future__ import annotations

from pathlib import Path

import httpx
from prometheus_client.parser import text_string_to_metric_families

from tests.support.processes import ServerProcess

T0 = 1_767_225_600_000_000_000  # 2026-01-01T00:00:00Z
Q = (
    "SELECT mean(v), max(v) FROM cpu WHERE time >= '2026-01-01T00:00:00Z' "
    "AND time < '2026-01-01T00:06:40Z' GROUP BY time(1s), host"
)
SMALL = Q.replace("time(1s)", "time(1m)")  # 4 series x 7 windows: too small to cache


def _rows(url: str) -> list:
    r = httpx.get(f"{url}/query", params={"db": "c", "q": Q, "epoch": "ns"}, timeout=10)
    assert r.status_code == 200, r.text
    return r.json()["results"][0]["series"]


def _rollup(url: str) -> dict:
    r = httpx.get(f"{url}/api/v1/admin/caches", timeout=10)
    assert r.status_code == 200, r.text
    return r.json()["totals"]["rollup_cache"]


def test_rollup_cache_hits_invalidates_and_clears(tmp_path: Path) -> None:
    server = ServerProcess(tmp_path / "data").start()
    try:
        url = server.url
        lines = "".join(f"cpu,host=h{i % 4} v={i} {T0 + i * 10**9}\n" for i in range(400))
        assert httpx.post(f"{url}/write", params={"db": "c"}, content=lines).status_code == 204
        small = httpx.get(f"{url}/query", params={"db": "c", "q": SMALL}, timeout=10)
        assert small.status_code == 200 and small.json()["results"][0]["series"]
        assert _rollup(url)["entries"] == 0, "a small plan skips the cache"
        first = _rows(url)
        before = _rollup(url)
        assert _rows(url) == first
        after = _rollup(url)
        assert after["hits"] >= before["hits"] + 8  # 4 hosts x 2 columns
        assert after["entries"] == 8 and after["bytes"] > 0

        # Overwrite one point of h1 (second 121): only the answer of that window changes.
        t = T0 + 121 * 10**9
        body = f"cpu,host=h1 v=100000 {t}\n"
        assert httpx.post(f"{url}/write", params={"db": "c"}, content=body).status_code == 204
        changed = _rows(url)
        h1 = next(s for s in changed if s["tags"]["host"] == "h1")
        old_h1 = next(s for s in first if s["tags"]["host"] == "h1")
        assert h1["values"][121][2] == 100000  # max of second 121
        assert h1["values"][121] != old_h1["values"][121]
        assert [r for i, r in enumerate(h1["values"]) if i != 121] == [
            r for i, r in enumerate(old_h1["values"]) if i != 121
        ]
        assert [s for s in changed if s["tags"]["host"] != "h1"] == [
            s for s in first if s["tags"]["host"] != "h1"
        ]
        assert _rollup(url)["invalidations"] >= 1

        families = {
            f.name: f for f in text_string_to_metric_families(httpx.get(f"{url}/metrics").text)
        }
        assert families["pulsar_rollup_cache_hits"].samples[0].value >= after["hits"]

        r = httpx.post(f"{url}/api/v1/admin/caches/clear", params={"cache": "rollup"}, timeout=10)
        assert r.status_code == 200, r.text
        assert r.json()["totals"]["rollup_cache"]["entries"] == 0
        assert _rows(url) == changed
    finally:
        server.stop()

    off = ServerProcess(tmp_path / "data", extra_args=["--rollup-cache-mb", "0"]).start()
    try:
        assert _rows(off.url) == changed
        assert _rows(off.url) == changed
        stats = _rollup(off.url)
        assert stats["capacity_bytes"] == 0 and stats["entries"] == 0 and stats["hits"] == 0
    finally:
        off.stop()
