"""Prometheus compatibility against a real `pulsar standalone` and a real Prometheus server.

Prometheus (Debian's package; `make test-deps` installs it) runs on 127.0.0.1 with its own
config and data directory: it scrapes itself every second, remote-writes to PulsarDB and
remote-reads from it (`read_recent: true`, so every PromQL query also asks PulsarDB).
Malformed remote write/read bodies are checked without Prometheus.
"""

from __future__ import annotations

import shutil
import subprocess
import time
from pathlib import Path

import httpx
import pytest

from pulsar_cluster.prometheus import remote_pb2
from pulsar_cluster.prometheus.remote import snappy_decode, snappy_encode, uvarint
from tests.support.processes import ServerProcess, free_port, wait_until

PROM_HEADERS = {
    "Content-Type": "application/x-protobuf",
    "Content-Encoding": "snappy",
    "X-Prometheus-Remote-Write-Version": "0.1.0",
}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory):
    proc = ServerProcess(
        Path(tmp_path_factory.mktemp("prom")) / "data", extra_args=["--max-body-mb", "1"]
    )
    proc.start()
    yield proc
    proc.stop()


def rows(url: str, db: str, measurement: str, where: str | None = None) -> list:
    body: dict = {"db": db, "measurement": measurement, "start": 0, "end": 2**62}
    if where:
        body["where"] = where
    r = httpx.post(f"{url}/api/v1/query", json=body, timeout=10)
    assert r.status_code == 200, r.text
    return r.json()["series"]


def write_request(*series: tuple[dict[str, str], list[tuple[int, float]]]) -> bytes:
    req = remote_pb2.WriteRequest()
    for labels, samples in series:
        ts = req.timeseries.add()
        for k, v in sorted(labels.items()):
            ts.labels.add(name=k, value=v)
        for t, v in samples:
            ts.samples.add(timestamp=t, value=v)
    return req.SerializeToString()


def remote_read(
    url: str, db: str, matchers: list[tuple[int, str, str]], start_ms: int, end_ms: int
):
    req = remote_pb2.ReadRequest()
    q = req.queries.add(start_timestamp_ms=start_ms, end_timestamp_ms=end_ms)
    for kind, name, value in matchers:
        q.matchers.add(type=kind, name=name, value=value)
    r = httpx.post(
        f"{url}/api/v1/prom/read",
        params={"db": db},
        content=snappy_encode(req.SerializeToString()),
        headers={**PROM_HEADERS, "X-Prometheus-Remote-Read-Version": "0.1.0"},
    )
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == "application/x-protobuf"
    assert r.headers["content-encoding"] == "snappy"
    return remote_pb2.ReadResponse.FromString(snappy_decode(r.content, 1 << 30))


# --- without Prometheus: our own client ---------------------------------------------------------


def test_remote_write_then_remote_read_with_each_matcher(server: ServerProcess) -> None:
    body = write_request(
        ({"__name__": "http_requests", "job": "api", "code": "200"}, [(1000, 5.0), (2000, 6.0)]),
        ({"__name__": "http_requests", "job": "api", "code": "500"}, [(1000, 1.0)]),
        ({"__name__": "http_requests", "job": "db", "code": "200"}, [(1500, 2.0)]),
        ({"__name__": "other_metric", "job": "api"}, [(1000, 9.0)]),
    )
    r = httpx.post(
        f"{server.url}/api/v1/prom/write",
        params={"db": "p1"},
        content=snappy_encode(body),
        headers=PROM_HEADERS,
    )
    assert (r.status_code, r.content) == (204, b"")
    # Stored as measurement = __name__, tags = labels, field value, ms -> ns.
    (series,) = rows(server.url, "p1", "http_requests", where="job = 'db'")
    assert series["tags"] == {"code": "200", "job": "db"}
    assert series["values"] == [[1_500_000_000, 2.0]]

    eq, neq, re_, nre = 0, 1, 2, 3

    def read(*matchers, start=0, end=10_000):
        resp = remote_read(server.url, "p1", list(matchers), start, end)
        assert len(resp.results) == 1
        return sorted(
            (
                tuple((lb.name, lb.value) for lb in ts.labels),
                [(s.timestamp, s.value) for s in ts.samples],
            )
            for ts in resp.results[0].timeseries
        )

    got = read((eq, "__name__", "http_requests"), (eq, "job", "api"))
    assert got == [
        (
            (("__name__", "http_requests"), ("code", "200"), ("job", "api")),
            [(1000, 5.0), (2000, 6.0)],
        ),
        ((("__name__", "http_requests"), ("code", "500"), ("job", "api")), [(1000, 1.0)]),
    ]
    assert [g[0][1][1] for g in read((eq, "__name__", "http_requests"), (neq, "code", "200"))] == [
        "500"
    ]
    # Regexes are anchored: "5" does not match "500", "5.*" does.
    assert read((eq, "__name__", "http_requests"), (re_, "code", "5")) == []
    assert len(read((eq, "__name__", "http_requests"), (re_, "code", "5.*"))) == 1
    assert len(read((eq, "__name__", "http_requests"), (nre, "job", "a.i"))) == 1
    # __name__ by regex spans measurements; the time range is inclusive at both ends (ms).
    assert {g[0][0][1] for g in read((re_, "__name__", ".*_(requests|metric)"))} == {
        "http_requests",
        "other_metric",
    }
    assert read((eq, "__name__", "http_requests"), (eq, "code", "200"), start=2000, end=2000)[0][
        1
    ] == [(2000, 6.0)]
    # A missing label matches the empty string.
    assert len(read((eq, "__name__", "other_metric"), (eq, "code", ""))) == 1


def test_line_protocol_data_is_readable_through_remote_read(server: ServerProcess) -> None:
    r = httpx.post(
        f"{server.url}/write",
        params={"db": "p2", "precision": "ms"},
        content=b"lp_metric,host=a value=42i 3000",
    )
    assert r.status_code == 204
    resp = remote_read(server.url, "p2", [(0, "__name__", "lp_metric")], 0, 10_000)
    ((ts,),) = [list(r.timeseries) for r in resp.results]
    assert [(lb.name, lb.value) for lb in ts.labels] == [("__name__", "lp_metric"), ("host", "a")]
    assert [(s.timestamp, s.value) for s in ts.samples] == [(3000, 42.0)]


def _nothing_written(server: ServerProcess) -> None:
    assert rows(server.url, "perr", "shouldnt") == []


@pytest.mark.parametrize(
    ("case", "status"),
    [
        ("bad_snappy", 400),
        ("bad_protobuf", 400),
        ("no_name", 400),
        ("content_type", 415),
        ("content_encoding", 415),
        ("remote_write_2", 415),
        ("oversized", 413),
        ("snappy_bomb", 413),
    ],
)
def test_malformed_remote_write_writes_nothing(
    server: ServerProcess, case: str, status: int
) -> None:
    good = write_request(({"__name__": "shouldnt", "job": "x"}, [(1000, 1.0)]))
    headers = dict(PROM_HEADERS)
    body = snappy_encode(good)
    if case == "bad_snappy":
        body = good  # protobuf not snappy-compressed
    elif case == "bad_protobuf":
        body = snappy_encode(good[:-3] + b"\xff\xff\xff")
    elif case == "no_name":
        body = snappy_encode(write_request(({"job": "x"}, [(1000, 1.0)])) + good)
    elif case == "content_type":
        headers["Content-Type"] = "application/json"
    elif case == "content_encoding":
        headers["Content-Encoding"] = "gzip"
    elif case == "remote_write_2":
        headers["Content-Type"] = "application/x-protobuf;proto=io.prometheus.write.v2.Request"
    elif case == "oversized":
        body = b"\x00" * (1024 * 1024 + 1)
    elif case == "snappy_bomb":
        body = uvarint(1 << 31) + b"\x00" * 16  # declares 2 GiB once inflated
    r = httpx.post(
        f"{server.url}/api/v1/prom/write", params={"db": "perr"}, content=body, headers=headers
    )
    assert r.status_code == status, r.text
    assert r.json()["error"]
    _nothing_written(server)


def test_malformed_remote_read(server: ServerProcess) -> None:
    url = f"{server.url}/api/v1/prom/read"
    assert httpx.post(url, content=b"junk", headers=PROM_HEADERS).status_code == 400
    assert (
        httpx.post(url, content=snappy_encode(b"\xff\xff"), headers=PROM_HEADERS).status_code == 400
    )
    req = remote_pb2.ReadRequest()
    req.queries.add(start_timestamp_ms=0, end_timestamp_ms=1).matchers.add(
        type=2, name="job", value="("
    )
    r = httpx.post(url, content=snappy_encode(req.SerializeToString()), headers=PROM_HEADERS)
    assert r.status_code == 400 and "regex" in r.json()["error"]
    r = httpx.post(
        url, content=snappy_encode(b""), headers={**PROM_HEADERS, "Content-Type": "text/plain"}
    )
    assert r.status_code == 415


# --- with a real Prometheus server ---------------------------------------------------------------


@pytest.fixture(scope="module")
def prometheus(server: ServerProcess, tmp_path_factory: pytest.TempPathFactory):
    binary = shutil.which("prometheus")
    if binary is None:
        pytest.skip("the prometheus binary is not installed (make test-deps installs it as root)")
    base = Path(tmp_path_factory.mktemp("prometheus"))
    port = free_port()
    config = base / "prometheus.yml"
    config.write_text(
        f"""
global:
  scrape_interval: 1s
  evaluation_interval: 1s
scrape_configs:
  - job_name: self
    static_configs:
      - targets: ["127.0.0.1:{port}"]
remote_write:
  - url: {server.url}/api/v1/prom/write?db=promtest
    queue_config:
      batch_send_deadline: 500ms
      min_backoff: 100ms
      max_backoff: 1s
remote_read:
  - url: {server.url}/api/v1/prom/read?db=promtest
    read_recent: true
"""
    )
    log = open(base / "prometheus.log", "wb")  # noqa: SIM115 - handed to the child process
    proc = subprocess.Popen(
        [
            binary,
            f"--config.file={config}",
            f"--storage.tsdb.path={base / 'tsdb'}",
            f"--web.listen-address=127.0.0.1:{port}",
            "--web.console.templates=/dev/null",
            "--web.console.libraries=/dev/null",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    log.close()
    url = f"http://127.0.0.1:{port}"

    def ready() -> bool:
        if proc.poll() is not None:
            raise RuntimeError(
                f"prometheus exited: {(base / 'prometheus.log').read_text()[-3000:]}"
            )
        try:
            return httpx.get(f"{url}/-/ready", timeout=1).status_code == 200
        except httpx.HTTPError:
            return False

    try:
        wait_until(ready, 30, 0.2, "prometheus readiness")
        yield url
    finally:
        proc.kill()
        proc.wait(timeout=30)


def test_prometheus_remote_write_lands_in_pulsardb(server: ServerProcess, prometheus: str) -> None:
    def scraped() -> list:
        return rows(server.url, "promtest", "up", where="job = 'self'")

    series = wait_until(scraped, 60, 0.5, "Prometheus' own 'up' series in PulsarDB")
    assert series[0]["tags"]["instance"].startswith("127.0.0.1:")
    assert series[0]["values"][-1][1] == 1.0
    assert rows(server.url, "promtest", "prometheus_build_info")  # and the rest of its metrics


def test_promql_through_prometheus_reads_pulsardb_only_data(
    server: ServerProcess, prometheus: str
) -> None:
    now_ms = int(time.time() * 1000)
    body = write_request(
        (
            {"__name__": "pulsar_only_metric", "source": "pulsar", "zone": "z1"},
            [(now_ms - 20_000 + i * 5000, 10.0 + i) for i in range(5)],
        ),
        (
            {"__name__": "pulsar_only_metric", "source": "pulsar", "zone": "z2"},
            [(now_ms - 1000, 99.0)],
        ),
    )
    r = httpx.post(
        f"{server.url}/api/v1/prom/write",
        params={"db": "promtest"},
        content=snappy_encode(body),
        headers=PROM_HEADERS,
    )
    assert r.status_code == 204

    def promql(query: str) -> list:
        r = httpx.get(
            f"{prometheus}/api/v1/query", params={"query": query, "time": now_ms / 1000}, timeout=10
        )
        assert r.status_code == 200, r.text
        doc = r.json()
        assert doc["status"] == "success", doc
        return doc["data"]["result"]

    result = promql('pulsar_only_metric{zone="z1"}')
    assert len(result) == 1
    assert result[0]["metric"] == {
        "__name__": "pulsar_only_metric",
        "source": "pulsar",
        "zone": "z1",
    }
    assert float(result[0]["value"][1]) == 14.0
    by_regex = promql('sum by (zone) (pulsar_only_metric{zone=~"z.*", source!="other"})')
    assert {r["metric"]["zone"]: float(r["value"][1]) for r in by_regex} == {"z1": 14.0, "z2": 99.0}
    counted = promql('count_over_time(pulsar_only_metric{zone="z1"}[1m])')
    assert float(counted[0]["value"][1]) == 5.0
