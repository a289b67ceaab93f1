"""The ingest driver against a real HTTP server: every line sent once; errors, retries counted."""

from __future__ import annotations

import itertools
import os
from pathlib import Path

from bench_sinkserver import sink_server
from hypothesis import given, settings
from hypothesis import strategies as st

from bench.ingest import batch_offsets, ingest_file, values_per_line
from bench.tsbs import DatasetSpec, write_dataset

START = 1_767_225_600_000_000_000


@settings(max_examples=50, deadline=None)
@given(
    lines=st.lists(
        st.binary(min_size=0, max_size=20).filter(lambda b: b"\n" not in b), max_size=60
    ),
    batch=st.integers(1, 15),
    trailing_newline=st.booleans(),
)
def test_batches_are_whole_lines(
    tmp_path_factory, lines: list[bytes], batch: int, trailing_newline: bool
) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path_factory.mktemp("b") / "f.lp"
    data = b"\n".join(lines) + (b"\n" if trailing_newline and lines else b"")
    path.write_bytes(data)
    offs = batch_offsets(path, batch).tolist()
    assert offs[0] == 0 and offs[-1] == len(data)
    assert offs == sorted(offs) and len(set(offs)) == len(offs)
    pieces = [data[a:b] for a, b in itertools.pairwise(offs)]
    assert b"".join(pieces) == data
    for piece in pieces[:-1]:
        assert piece.endswith(b"\n") and piece.count(b"\n") == batch
    if pieces:
        assert 1 <= pieces[-1].count(b"\n") + (not pieces[-1].endswith(b"\n")) <= batch


def _dataset(tmp_path: Path, hosts: int = 10, duration_s: int = 600) -> tuple[Path, DatasetSpec]:
    spec = DatasetSpec(hosts=hosts, duration_s=duration_s, seed=1, start_ns=START)
    path = tmp_path / "cpu.lp"
    write_dataset(spec, path)
    return path, spec


def test_every_line_arrives_once_over_two_processes(tmp_path: Path) -> None:
    path, spec = _dataset(tmp_path)
    assert values_per_line(path) == 10
    with sink_server(lambda *_: (204, {}, b"")) as sink:
        res = ingest_file(
            sink.url + "/write?db=x",
            path,
            batch_lines=70,
            workers=2,
            timeout_s=60,
            server_pid=os.getpid(),
        )
    assert res.errors == 0 and not res.timed_out
    assert res.lines == spec.lines == 600
    assert res.values == spec.values
    assert res.batches == -(-600 // 70)
    bodies = [b for _, p, b in sink.requests]
    assert all(p == "/write?db=x" for _, p, _ in sink.requests)
    assert sorted(line for b in bodies for line in b.splitlines()) == sorted(
        path.read_bytes().splitlines()
    )
    assert res.peak_rss_kb > 0 and res.values_per_s > 0


def test_errors_and_retries_are_counted(tmp_path: Path) -> None:
    path, _ = _dataset(tmp_path, hosts=10, duration_s=100)  # 100 lines -> 10 batches of 10

    def answer(method: str, p: str, body: bytes, n: int) -> tuple[int, dict[str, str], bytes]:
        if n <= 2:
            return 429, {"Retry-After": "0"}, b'{"error": "busy"}'
        if n == 3:  # the first batch, after two 429s: rejected for good
            return 400, {}, b'{"error": "bad line 1"}'
        return 204, {}, b""

    with sink_server(answer) as sink:
        res = ingest_file(sink.url + "/write", path, batch_lines=10, workers=1, timeout_s=60)
    assert res.retries == 2
    assert res.errors == 1 and "bad line 1" in res.first_error
    assert res.lines == 90
    assert res.statuses == {"429": 2, "400": 1, "204": 9}


def test_unreachable_server_counts_errors_not_crashes(tmp_path: Path) -> None:
    path, _ = _dataset(tmp_path, hosts=2, duration_s=50)
    with sink_server(lambda *_: (204, {}, b"")) as sink:
        url = sink.url
    res = ingest_file(url + "/write", path, batch_lines=5, workers=1, timeout_s=30, max_retries=0)
    assert res.lines == 0 and res.errors == 2
    assert res.first_error.startswith("HTTP 0")
