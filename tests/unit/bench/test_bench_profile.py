"""The py-spy raw-profile summary: counts, per-process split, path shortening."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from bench.profile_ingest import summarise

ROOT = "/repo/"
SERVER = 'process 10:"/venv/bin/python /venv/bin/pulsar standalone --port 1"'
WORKER = 'process 11:"/venv/bin/python -c from multiprocessing.spawn import spawn_main; x"'


def test_summary_tables() -> None:
    raw = "\n".join(
        [
            f"{SERVER};main (/repo/pulsar_cluster/cli.py:9);"
            "apply (/repo/node/engine/engine.py:5) 30",
            f"{SERVER};{WORKER};<module> (<string>:1);parse (/repo/pulsar_cluster/lp.py:7) 60",
            f"{SERVER};run (/usr/lib/python3.11/asyncio/runners.py:1) 10",
            "garbage line",
        ]
    )
    s = summarise(raw, root_pid=10, top=10, root=ROOT)
    assert s["samples"] == 100
    assert s["own"][0] == ("parse (pulsar_cluster/lp.py)", 60.0)
    assert ("run (asyncio/runners.py)", 10.0) in s["own"]
    incl = dict(s["inclusive"])  # type: ignore[arg-type]
    assert incl == {
        "parse (pulsar_cluster/lp.py)": 60.0,
        "main (pulsar_cluster/cli.py)": 30.0,
        "apply (node/engine/engine.py)": 30.0,
    }
    assert dict(s["process"]) == {"parse workers": 60.0, "server": 40.0}  # type: ignore[arg-type]


@given(counts=st.lists(st.integers(1, 1000), min_size=1, max_size=20))
def test_percentages_add_up(counts: list[int]) -> None:
    raw = "\n".join(
        f"{SERVER};f{i % 3} (/repo/node/x.py:{i});g{i} (/repo/node/y.py:1) {c}"
        for i, c in enumerate(counts)
    )
    s = summarise(raw, root_pid=10, top=100, root=ROOT)
    assert s["samples"] == sum(counts)
    assert abs(sum(p for _, p in s["own"]) - 100.0) < 1e-6  # type: ignore[attr-defined]
    assert dict(s["process"]) == {"server": 100.0}  # type: ignore[arg-type]
