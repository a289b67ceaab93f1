"""The TSBS generator: format, determinism, bounds, and the variants' shapes."""

from __future__ import annotations

import time

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bench import tsbs
from bench.tsbs import FIELDS, TAG_KEYS, DatasetSpec, generate_chunks, read_spec, write_dataset
from pulsar_cluster.lineprotocol import parse_line_protocol

START = 1_767_225_600_000_000_000  # 2026-01-01T00:00:00Z


def _text(spec: DatasetSpec) -> bytes:
    return b"".join(generate_chunks(spec))


def _parse(line: bytes) -> tuple[dict[str, str], dict[str, str], int]:
    head, fields, ts = line.split(b" ")
    parts = head.decode().split(",")
    assert parts[0] == "cpu"
    tags = dict(p.split("=") for p in parts[1:])
    values = dict(p.split("=") for p in fields.decode().split(","))
    return tags, values, int(ts)


def test_int_lines_have_tsbs_shape() -> None:
    spec = DatasetSpec(hosts=7, duration_s=120, seed=3, start_ns=START)
    lines = _text(spec).splitlines()
    assert len(lines) == spec.lines == 7 * 12
    times = []
    for i, line in enumerate(lines):
        tags, values, ts = _parse(line)
        assert tuple(tags) == TAG_KEYS
        assert tags["hostname"] == f"host_{i % 7}"
        assert tags["datacenter"] in tsbs.REGIONS[tags["region"]]
        assert tuple(values) == FIELDS
        for v in values.values():
            assert v.endswith("i")
            assert 0 <= int(v[:-1]) <= 100
        times.append(ts)
    # Time-major: every host at t0, then every host at t0 + 10 s, ...
    assert times == [START + (i // 7) * 10_000_000_000 for i in range(len(lines))]


def test_pulsar_parser_accepts_every_variant() -> None:
    for variant in tsbs.VARIANTS:
        spec = DatasetSpec(hosts=5, duration_s=600, seed=1, start_ns=START, variant=variant)
        batch = parse_line_protocol(_text(spec), "bench")
        assert batch.point_count() == spec.lines
        assert batch.value_count() == spec.values


def test_float_variant_has_four_decimals_and_same_walk() -> None:
    base = dict(hosts=4, duration_s=300, seed=9, start_ns=START)
    ints = _text(DatasetSpec(**base)).splitlines()
    floats = _text(DatasetSpec(**base, variant="float")).splitlines()
    for li, lf in zip(ints, floats, strict=True):
        _, vi, _ = _parse(li)
        _, vf, _ = _parse(lf)
        for name in FIELDS:
            _, frac = vf[name].split(".")
            assert len(frac) == 4
            x = float(vf[name])
            assert 0.0 <= x <= 100.0
            # The int variant is the same walk, rounded.
            assert abs(int(vi[name][:-1]) - x) <= 0.5 + 1e-9


def test_walk_moves_in_small_steps() -> None:
    spec = DatasetSpec(hosts=3, duration_s=3600, seed=5, start_ns=START, variant="float")
    lines = _text(spec).splitlines()
    vals = np.array([[float(v) for v in _parse(line)[1].values()] for line in lines])
    per_host = vals.reshape(spec.steps, spec.hosts, len(FIELDS))
    steps = np.abs(np.diff(per_host, axis=0))
    assert steps.max() < 7.0  # N(0,1) steps; reflection only shortens them
    assert steps.mean() > 0.3  # and it does move


@settings(max_examples=25, deadline=None)
@given(
    hosts=st.integers(1, 30),
    steps=st.integers(1, 60),
    seed=st.integers(0, 2**32),
    variant=st.sampled_from(tsbs.VARIANTS),
    chunk=st.integers(1, 200),
)
def test_output_is_deterministic_and_independent_of_chunking(
    hosts: int, steps: int, seed: int, variant: str, chunk: int
) -> None:
    spec = DatasetSpec(
        hosts=hosts,
        duration_s=steps * 10,
        seed=seed,
        start_ns=START,
        variant=variant,
        churn_s=30,
        ooo_window_s=30,
    )
    reference = _text(spec)
    assert reference == _text(spec)
    saved = tsbs._TARGET_CHUNK_LINES
    tsbs._TARGET_CHUNK_LINES = chunk
    try:
        assert _text(spec) == reference
    finally:
        tsbs._TARGET_CHUNK_LINES = saved


def test_seed_changes_data() -> None:
    a = _text(DatasetSpec(hosts=3, duration_s=60, seed=1, start_ns=START))
    b = _text(DatasetSpec(hosts=3, duration_s=60, seed=2, start_ns=START))
    assert a != b


def test_highcard_rotates_hostnames() -> None:
    spec = DatasetSpec(
        hosts=4, duration_s=600, seed=1, start_ns=START, variant="highcard", churn_s=120
    )
    lines = _text(spec).splitlines()
    names = {_parse(line)[0]["hostname"] for line in lines}
    assert len(names) == spec.series == 4 * 5
    assert "host_3_g4" in names


def test_ooo_is_a_shuffle_of_the_int_data_within_windows() -> None:
    base = dict(hosts=6, duration_s=600, seed=4, start_ns=START, ooo_window_s=60)
    ordered = _text(DatasetSpec(**base)).splitlines()
    shuffled = _text(DatasetSpec(**base, variant="ooo")).splitlines()
    assert shuffled != ordered
    assert sorted(shuffled) == sorted(ordered)
    window_ns = 60 * 1_000_000_000
    for pos, line in enumerate(shuffled):
        ts = _parse(line)[2]
        # Line number `pos` lies in window pos // (6 lines * 6 steps); so does its timestamp.
        assert (ts - START) // window_ns == pos // 36


def test_default_start_is_recent_and_aligned() -> None:
    spec = DatasetSpec(hosts=1, duration_s=3600).resolved()
    assert spec.start_ns is not None
    now = time.time_ns()
    assert now - 3600 * 10**9 - 20 * 10**9 <= spec.start_ns <= now - 3600 * 10**9
    assert spec.start_ns % (10 * 10**9) == 0


def test_write_dataset_streams_file_and_sidecar(tmp_path) -> None:  # type: ignore[no-untyped-def]
    spec = DatasetSpec(hosts=3, duration_s=100, seed=2, start_ns=START, variant="float")
    res = write_dataset(spec, tmp_path / "cpu.lp")
    data = (tmp_path / "cpu.lp").read_bytes()
    assert data == _text(spec)
    assert res.bytes == len(data)
    assert read_spec(tmp_path / "cpu.lp") == spec


@pytest.mark.parametrize(
    "kwargs",
    [{"hosts": 0}, {"duration_s": 0}, {"variant": "nope"}, {"churn_s": 1}],
)
def test_bad_specs_are_refused(kwargs: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        DatasetSpec(**kwargs)  # type: ignore[arg-type]


def test_parse_duration() -> None:
    assert tsbs.parse_duration("12h") == 43200
    assert tsbs.parse_duration("90s") == 90
    assert tsbs.parse_duration("15m") == 900
    assert tsbs.parse_duration("3600") == 3600
