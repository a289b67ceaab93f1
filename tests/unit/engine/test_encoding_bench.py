"""The codec benchmark's data generator and a smoke run (no timing is asserted), and concurrent
use of the codecs from several threads."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import numpy as np

from bench.bench_codecs import generate_cpu, main
from node.engine.encoding import decode_block, encode_block
from pulsar_cluster.batch import FieldType


def test_generator_is_deterministic_and_tsbs_shaped() -> None:
    ts, ints = generate_cpu(2, 500, integer=True)
    ts2, ints2 = generate_cpu(2, 500, integer=True)
    assert np.array_equal(ts, ts2) and np.array_equal(ints, ints2)
    assert ints.shape == (20, 500) and ints.dtype == np.int64
    assert ints.min() >= 0 and ints.max() <= 100
    assert np.all(np.diff(ts) == 10 * 10**9)
    _, floats = generate_cpu(2, 500, integer=False)
    assert floats.min() >= 0 and floats.max() <= 100
    assert np.array_equal(np.round(floats, 4), floats)
    jts, _ = generate_cpu(1, 500, integer=True, jitter_ms=2.0)
    assert np.all(jts % 10**6 == 0) and not np.all(np.diff(jts) == 10 * 10**9)


def test_bench_smoke(capsys) -> None:
    main(["--hosts", "1", "--points", "1200", "--blocks", "1000", "--repeat", "1"])
    out = capsys.readouterr().out
    assert "integer  2" in out and "float4   2" in out and "int+jit" in out


def test_codecs_are_thread_safe() -> None:
    rng = np.random.default_rng(4)
    ts = 10**10 * np.arange(3000, dtype=np.int64)
    columns = [np.round(rng.uniform(0, 100, 3000), 3) for _ in range(16)]

    def work(values: np.ndarray) -> bool:
        ok = True
        for level in (1, 3, 5):
            _, got_ts, got = decode_block(encode_block(FieldType.FLOAT, ts, values, level))
            ok &= np.array_equal(got_ts, ts) and np.array_equal(got, values)
        return ok

    with ThreadPoolExecutor(max_workers=4) as pool:
        assert all(pool.map(work, columns))
