"""Throughput of the compatibility codecs (not a test: numbers for docs and reviews).

    .venv/bin/python -m bench.compat

- line protocol: TSBS-devops-shaped lines (the vectorised fast path), and lines with escapes
  and quoted strings (the per-line slow path);
- Prometheus remote write: snappy + protobuf -> WriteBatch, for Prometheus' default batch shape
  (2000 series x 1 sample) and for long series (100 x 1000);
- Prometheus remote read: numpy encoding of ReadResponse samples, 100 series x 10 000 samples.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import numpy as np

from pulsar_cluster.lineprotocol import parse_line_protocol
from pulsar_cluster.prometheus import remote_pb2
from pulsar_cluster.prometheus.remote import (
    decode_write_request,
    encode_read_response,
    encode_timeseries,
    snappy_decode,
    snappy_encode,
    write_request_to_batch,
)

__all__ = ["main"]


def best_of(func: Callable[[], object], repeat: int = 5) -> float:
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        func()
        best = min(best, time.perf_counter() - start)
    return best


def tsbs_lines(n: int) -> bytes:
    lines = [
        f"cpu,hostname=host_{i % 100},region=eu-west-1,datacenter=eu-west-1a,rack=4,"
        f"os=Ubuntu16.10,arch=x64 usage_user={i % 97}.5,usage_system={i % 13}i,"
        f"usage_idle=3.25,usage_nice=0.1 {1_700_000_000_000_000_000 + i * 10_000_000_000}"
        for i in range(n)
    ]
    return "\n".join(lines).encode()


def escaped_lines(n: int) -> bytes:
    lines = [
        f'log\\ lines,host=h\\,{i % 50},path=/var/log\\ x msg="request \\"{i}\\" done",'
        f"code={200 + i % 5}i,ok=true {1_700_000_000_000_000_000 + i}"
        for i in range(n)
    ]
    return "\n".join(lines).encode()


def write_request(series: int, samples: int) -> bytes:
    req = remote_pb2.WriteRequest()
    for s in range(series):
        ts = req.timeseries.add()
        for name, value in (
            ("__name__", "http_requests_total"),
            ("instance", f"10.0.{s // 250}.{s % 250}:9100"),
            ("job", "node"),
            ("code", str(200 + s % 5)),
        ):
            ts.labels.add(name=name, value=value)
        for k in range(samples):
            ts.samples.add(timestamp=1_700_000_000_000 + k * 15_000, value=float(s + k))
    return snappy_encode(req.SerializeToString())


def main() -> None:
    n = 100_000
    body = tsbs_lines(n)
    t = best_of(lambda: parse_line_protocol(body, "db"))
    print(
        f"line protocol, TSBS cpu lines (fast path): {n} lines x 4 fields in {t * 1e3:.0f} ms"
        f" = {n * 4 / t / 1e6:.2f} M values/s"
    )
    body = escaped_lines(n // 4)
    t = best_of(lambda: parse_line_protocol(body, "db"))
    print(
        f"line protocol, escapes + quoted strings (slow path): {n // 4} lines x 3 fields in "
        f"{t * 1e3:.0f} ms = {n // 4 * 3 / t / 1e6:.2f} M values/s"
    )

    for series, samples in ((2000, 1), (100, 1000)):
        payload = write_request(series, samples)

        def decode(payload: bytes = payload) -> object:
            raw = snappy_decode(payload, 1 << 30)
            return write_request_to_batch(decode_write_request(raw), "prometheus")

        t = best_of(decode)
        total = series * samples
        print(
            f"remote write decode, {series} series x {samples} samples ({len(payload)} B): "
            f"{t * 1e3:.1f} ms = {total / t / 1e6:.2f} M samples/s"
        )

    ts = np.arange(10_000, dtype=np.int64) * 15_000 + 1_700_000_000_000
    values = np.random.default_rng(1).random(10_000)
    labels = [("__name__", "m"), ("instance", "10.0.0.1:9100"), ("job", "node")]

    def encode() -> bytes:
        series = [encode_timeseries(labels, ts, values) for _ in range(100)]
        return snappy_encode(encode_read_response([series]))

    t = best_of(encode)
    print(
        f"remote read encode, 100 series x 10000 samples: {t * 1e3:.1f} ms = "
        f"{1_000_000 / t / 1e6:.2f} M samples/s"
    )


if __name__ == "__main__":
    main()
