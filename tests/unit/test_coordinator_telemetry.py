"""FastAPI's own OpenTelemetry instrumentation stays off (coordinator/app.py): a global tracer
provider, as `opentelemetry-instrument` or the OTel operator installs, must not make every
request a span carrying its query string (InfluxDB clients send `u=`/`p=` credentials there).

Run in a child interpreter: a global tracer provider can be set only once per process.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from pulsar_cluster.tracing import tracing_available

ROOT = Path(__file__).resolve().parents[2]

CHILD = """
import sys, tempfile, warnings
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

exporter = InMemorySpanExporter()
provider = TracerProvider()
provider.add_span_processor(SimpleSpanProcessor(exporter))
trace.set_tracer_provider(provider)

from coordinator.app import create_app
from node.local import LocalNode
with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from starlette.testclient import TestClient

with tempfile.TemporaryDirectory() as d, TestClient(create_app(LocalNode(d))) as client:
    r = client.get("/query", params={"q": "SHOW DATABASES", "u": "admin", "p": "s3cret"})
    assert r.status_code == 200, r.text
spans = exporter.get_finished_spans()
print(len(spans), [dict(s.attributes) for s in spans])
"""


@pytest.mark.skipif(tracing_available() is not None, reason=f"tracing extra: {tracing_available()}")
def test_a_global_tracer_provider_records_no_request_spans() -> None:
    out = subprocess.run(
        [sys.executable, "-c", CHILD],
        check=False,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr
    count, _, attributes = out.stdout.strip().splitlines()[-1].partition(" ")
    assert "s3cret" not in out.stdout + out.stderr
    assert count == "0", attributes
