"""Operations of a real `pulsar standalone` process: cache statistics and clear, configuration
reload (SIGHUP and the admin route), per-shard storage metrics, and the core without the
tracing extra."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from pulsar_cluster.tracing import tracing_available
from tests.support.processes import ServerProcess, free_port, wait_until

T0 = 1_767_225_600_000_000_000  # 2026-01-01T00:00:00Z
TOKEN_1 = "first-admin-token"
TOKEN_2 = "second-admin-token"


def _auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture
def configured(tmp_path: Path):
    config = tmp_path / "pulsar.toml"
    config.write_text(f'log_level = "warning"\nadmin_token = "{TOKEN_1}"\n')
    args = ["--config", str(config), "--block-cache-mb", "3"]
    proc = ServerProcess(tmp_path / "data", extra_args=args).start()
    yield proc, config
    proc.stop()


def _query(url: str, **body: object) -> dict:
    r = httpx.post(f"{url}/api/v1/query", json=body, timeout=10)
    assert r.status_code == 200, r.text
    return r.json()


def _caches(url: str, token: str = TOKEN_1) -> dict:
    r = httpx.get(f"{url}/api/v1/admin/caches", headers=_auth(token), timeout=10)
    assert r.status_code == 200, r.text
    return r.json()


def test_cache_stats_rise_with_repeated_queries_and_clear_keeps_answers(configured) -> None:
    server, _ = configured
    url = server.url
    lines = "".join(f"cpu,host=h{i % 4} v={i} {T0 + i * 10**9}\n" for i in range(400))
    assert httpx.post(f"{url}/write", params={"db": "c"}, content=lines).status_code == 204
    r = httpx.post(f"{url}/api/v1/admin/flush", headers=_auth(TOKEN_1), timeout=30)
    assert r.status_code == 200, r.text

    raw = {"db": "c", "measurement": "cpu", "where": "host = 'h1'"}
    last = {"db": "c", "measurement": "cpu", "aggregate": "last", "group_by": ["host"]}
    first_raw, first_last = _query(url, **raw), _query(url, **last)
    after_one = _caches(url)["totals"]
    assert _query(url, **raw) == first_raw and _query(url, **last) == first_last
    after_two = _caches(url)["totals"]
    # The second run reads the same decoded blocks and the same last values from the caches.
    assert after_two["block_cache"]["hits"] > after_one["block_cache"]["hits"]
    assert after_two["last_value_cache"]["hits"] > after_one["last_value_cache"]["hits"]
    assert after_two["block_cache"]["bytes"] > 0 and after_two["block_cache"]["entries"] > 0
    assert after_two["last_value_cache"]["entries"] == 4
    shard = _caches(url)["nodes"]["local"]["shards"]["0"]
    assert shard["block_cache"]["capacity_bytes"] == 3 * 1024 * 1024  # --block-cache-mb 3

    r = httpx.post(f"{url}/api/v1/admin/caches/clear", headers=_auth(TOKEN_1), timeout=10)
    assert r.status_code == 200, r.text
    cleared = r.json()["totals"]
    for cache in ("block_cache", "last_value_cache"):
        assert cleared[cache]["bytes"] == 0 and cleared[cache]["entries"] == 0, cache
        assert cleared[cache]["hits"] == after_two[cache]["hits"]  # counters keep counting
    assert _query(url, **raw) == first_raw and _query(url, **last) == first_last

    # One cache only; a bad name is a 400 that clears nothing.
    _query(url, **raw)
    r = httpx.post(
        f"{url}/api/v1/admin/caches/clear", params={"cache": "nope"}, headers=_auth(TOKEN_1)
    )
    assert r.status_code == 400 and "unknown cache 'nope'" in r.json()["error"]
    assert _caches(url)["totals"]["block_cache"]["bytes"] > 0
    r = httpx.post(
        f"{url}/api/v1/admin/caches/clear", params={"cache": "block"}, headers=_auth(TOKEN_1)
    )
    assert r.json()["totals"]["block_cache"]["bytes"] == 0
    assert r.json()["totals"]["last_value_cache"]["entries"] == 4

    # The CLI prints the same numbers as a table, and clears.
    cli = [sys.executable, "-m", "pulsar_cluster.cli", "admin", "caches", "--url", url]
    env = {**os.environ, "PULSAR_ADMIN_TOKEN": TOKEN_1}
    out = subprocess.run(
        [*cli, "--clear"], check=False, capture_output=True, text=True, env=env, timeout=30
    )
    assert out.returncode == 0, out.stderr
    assert "block cache:" in out.stdout and "last-value cache:" in out.stdout
    total_line = [x for x in out.stdout.splitlines() if x.strip().startswith("total")][-1]
    assert total_line.split()[1:3] == ["0", "0"], out.stdout  # entries, bytes ("0 B")

    # The same statistics as Prometheus metrics, per shard (shard "0" here).
    families = {f.name: f for f in text_string_to_metric_families(httpx.get(f"{url}/metrics").text)}
    hits = families["pulsar_block_cache_hits"].samples
    assert hits and hits[0].labels == {"shard": "0"} and hits[0].value > 0
    tables = families["pulsar_engine_sstables"].samples
    assert {s.labels["database"] for s in tables} == {"c"}
    assert tables[0].labels["partition"] == "2026-01-01T00:00:00Z" and tables[0].value >= 1
    assert families["pulsar_last_value_cache_entries"].samples[0].value == 0
    # uvicorn's connection and request counts (this scrape's connection is open)
    assert families["pulsar_http_connections_open"].samples[0].value >= 1
    assert families["pulsar_http_requests_served"].samples[0].value >= 10


def test_sighup_and_admin_reload_apply_the_file_and_keep_it_on_errors(configured) -> None:
    server, config = configured
    url = server.url
    assert server.proc is not None
    assert httpx.get(f"{url}/api/v1/admin/status").status_code == 401
    assert httpx.get(f"{url}/api/v1/admin/status", headers=_auth(TOKEN_1)).status_code == 200
    httpx.get(f"{url}/health")
    assert '"path":"/health"' not in server.log()  # probes log at debug; level is warning

    config.write_text(
        f'log_level = "debug"\nadmin_token = "{TOKEN_2}"\nquery_max_series = 1\n'
        # fsync cannot change while running: reported, not applied
        'fsync = "never"\n'
    )
    server.proc.send_signal(signal.SIGHUP)

    def token_two_works() -> bool:
        r = httpx.get(f"{url}/api/v1/admin/status", headers=_auth(TOKEN_2))
        return r.status_code == 200

    wait_until(token_two_works, 10, 0.05, "the reloaded admin token")
    assert httpx.get(f"{url}/api/v1/admin/status", headers=_auth(TOKEN_1)).status_code == 401
    httpx.get(f"{url}/health")
    wait_until(lambda: '"path":"/health"' in server.log(), 5, 0.05, "a debug log line")
    assert '"event":"config_change_needs_restart"' in server.log()
    assert '"setting":"fsync"' in server.log()
    # Query limits changed too: a query matching two series now exceeds max_series = 1.
    lines = f"m,host=a v=1 {T0}\nm,host=b v=2 {T0}\n"
    assert httpx.post(f"{url}/write", params={"db": "q"}, content=lines).status_code == 204
    r = httpx.post(f"{url}/api/v1/query", json={"db": "q", "measurement": "m"})
    assert r.status_code == 422, r.text

    # The admin route does the same and says what happened.
    config.write_text(
        f'log_level = "info"\nadmin_token = "{TOKEN_2}"\nfsync = "never"\naccess_log = "off"\n'
    )
    r = httpx.post(f"{url}/api/v1/admin/reload", headers=_auth(TOKEN_2))
    assert r.status_code == 200, r.text
    assert sorted(r.json()["applied"]) == ["access_log", "log_level", "query_max_series"]
    assert r.json()["needs_restart"] == ["fsync"]
    r = httpx.post(
        f"{url}/api/v1/query",
        json={"db": "q", "measurement": "m"},
        headers={"X-Request-ID": "unlogged-query"},
    )
    assert r.status_code == 200 and len(r.json()["series"]) == 2
    assert r.headers["x-request-id"] == "unlogged-query"  # ids still assigned and echoed
    # `pulsar admin reload` says the same in words.
    cli = [sys.executable, "-m", "pulsar_cluster.cli", "admin", "reload", "--url", url]
    env = {**os.environ, "PULSAR_ADMIN_TOKEN": TOKEN_2}
    out = subprocess.run(cli, check=False, capture_output=True, text=True, env=env, timeout=30)
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines() == [
        "coordinator: applied: nothing changed",
        "  needs a restart (ignored until then): fsync",
    ]
    # The access log is off: that query left no line (the reload's own request logged before
    # the switch, the CLI's after it; neither is a query).
    assert "unlogged-query" not in server.log()

    # A broken file changes nothing and says why, over HTTP and in the log (SIGHUP).
    config.write_text('admin_token = "third\nlog_level = 3\n')
    r = httpx.post(f"{url}/api/v1/admin/reload", headers=_auth(TOKEN_2))
    assert r.status_code == 400
    assert "invalid TOML" in r.json()["error"] and "old configuration is kept" in r.json()["error"]
    out = subprocess.run(cli, check=False, capture_output=True, text=True, env=env, timeout=30)
    assert out.returncode == 1 and "HTTP 400: invalid TOML" in out.stderr, out.stderr
    server.proc.send_signal(signal.SIGHUP)
    wait_until(
        lambda: server.log().count('"event":"config_reload_failed"') >= 2, 10, 0.05, "failure"
    )
    assert httpx.get(f"{url}/api/v1/admin/status", headers=_auth(TOKEN_2)).status_code == 200
    # A value that does not validate is refused the same way (nothing of the file applied).
    config.write_text(f'admin_token = "{TOKEN_1}"\nlog_level = "loud"\n')
    r = httpx.post(f"{url}/api/v1/admin/reload", headers=_auth(TOKEN_2))
    assert r.status_code == 400 and "unknown log level 'loud'" in r.json()["error"]
    assert httpx.get(f"{url}/api/v1/admin/status", headers=_auth(TOKEN_2)).status_code == 200
    assert server.proc.poll() is None


BLOCK_TRACING_SDK = (
    "import sys\n"
    "sys.modules['opentelemetry.sdk'] = None\n"  # import opentelemetry.sdk -> ImportError
    "sys.modules['opentelemetry.exporter'] = None\n"
    "from pulsar_cluster.cli import main\n"
    "sys.exit(main(sys.argv[1:]))\n"
)


def test_core_runs_without_the_tracing_extra(tmp_path: Path) -> None:
    port = free_port()
    args = ["standalone", "--data-dir", str(tmp_path / "d"), "--port", str(port)]
    refused = subprocess.run(
        [sys.executable, "-c", BLOCK_TRACING_SDK, *args, "--tracing", "console"],
        check=False,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert refused.returncode != 0
    assert "needs the tracing extra" in refused.stderr and "pulsardb[tracing]" in refused.stderr
    log = open(tmp_path / "server.log", "wb")  # noqa: SIM115 - handed to the child
    proc = subprocess.Popen(
        [sys.executable, "-c", BLOCK_TRACING_SDK, *args], stdout=log, stderr=subprocess.STDOUT
    )
    log.close()
    try:

        def ready() -> bool:
            assert proc.poll() is None, (tmp_path / "server.log").read_text()
            try:
                return httpx.get(f"http://127.0.0.1:{port}/ready", timeout=1).status_code == 200
            except httpx.HTTPError:
                return False

        wait_until(ready, 30, 0.1, "standalone without the tracing extra")
        r = httpx.post(f"http://127.0.0.1:{port}/write", params={"db": "x"}, content=b"m v=1 1")
        assert r.status_code == 204
    finally:
        proc.kill()
        proc.wait(timeout=30)


@pytest.mark.skipif(tracing_available() is not None, reason=f"tracing extra: {tracing_available()}")
def test_otlp_exports_request_spans_to_a_collector(tmp_path: Path) -> None:
    """`--tracing otlp` sends spans over OTLP/HTTP to OTEL_EXPORTER_OTLP_ENDPOINT (a receiver
    here that decodes the protobuf export requests, as an OpenTelemetry collector would)."""
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

    received: list[ExportTraceServiceRequest] = []

    class Receiver(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            if self.path == "/v1/traces":
                received.append(ExportTraceServiceRequest.FromString(body))
            self.send_response(200)
            self.send_header("Content-Type", "application/x-protobuf")
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args: object) -> None:
            return  # quiet test output

    collector = ThreadingHTTPServer(("127.0.0.1", 0), Receiver)
    thread = threading.Thread(target=collector.serve_forever, daemon=True)
    thread.start()
    env = {
        "OTEL_EXPORTER_OTLP_ENDPOINT": f"http://127.0.0.1:{collector.server_port}",
        "OTEL_BSP_SCHEDULE_DELAY": "100",  # ms: export batches quickly
        "OTEL_RESOURCE_ATTRIBUTES": "deployment.environment=test",
    }
    server = ServerProcess(tmp_path / "data", extra_args=["--tracing", "otlp"], env=env)
    try:
        server.start()
        r = httpx.post(f"{server.url}/write", params={"db": "o", "p": "secret"}, content=b"m v=1 1")
        assert r.status_code == 204

        def spans() -> list[tuple[dict[str, str], Any]]:
            out = []
            for request in list(received):
                for resource_spans in request.resource_spans:
                    attrs = {
                        a.key: a.value.string_value for a in resource_spans.resource.attributes
                    }
                    for scope in resource_spans.scope_spans:
                        out.extend((attrs, span) for span in scope.spans)
            return out

        wait_until(
            lambda: any(s.name == "POST /write" for _, s in spans()), 15, 0.1, "exported span"
        )
        attrs, span = next((a, s) for a, s in spans() if s.name == "POST /write")
        assert attrs["service.name"] == "pulsardb-standalone"
        assert attrs["deployment.environment"] == "test"  # OTEL_RESOURCE_ATTRIBUTES honoured
        values = {a.key: a.value for a in span.attributes}
        assert values["http.response.status_code"].int_value == 204
        assert values["url.path"].string_value == "/write"
        assert not any("secret" in str(v) for v in values.values())  # no query strings
    finally:
        server.stop()
        collector.shutdown()
        collector.server_close()
