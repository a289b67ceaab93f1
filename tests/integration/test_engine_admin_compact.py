"""POST /api/v1/admin/compact?wait=true against a real `pulsar standalone` process."""

from __future__ import annotations

import httpx

from tests.support.processes import ServerProcess


def test_admin_compact_merges_tables_and_keeps_the_data(tmp_path):
    server = ServerProcess(tmp_path / "data").start()
    try:
        with httpx.Client(base_url=server.url, timeout=30) as client:
            for round_ in range(4):
                lines = "\n".join(
                    f"cpu,host=h{h} usage={round_ * 10 + h} {1767225600000000000 + i * 10**9}"
                    for h in range(3)
                    for i in range(50)
                )
                assert client.post("/write", params={"db": "t"}, content=lines).status_code == 204
                assert (
                    client.post("/api/v1/admin/flush", params={"wait": "true"}).status_code == 200
                )
            before = client.get("/api/v1/admin/status").json()
            assert before["sstables"] == 4
            r = client.post("/api/v1/admin/compact", params={"wait": "true"})
            assert r.status_code == 200 and r.json() == {"status": "done"}
            after = client.get("/api/v1/admin/status").json()
            assert after["sstables"] == 1
            assert after["sstable_points"] == 3 * 50  # overwritten points were dropped
            q = client.post(
                "/api/v1/query",
                json={"db": "t", "measurement": "cpu", "where": "host = 'h2'"},
            )
            assert q.status_code == 200, q.text
            values = q.json()["series"][0]["values"]
            assert len(values) == 50 and {v[1] for v in values} == {32}
    finally:
        server.stop()
