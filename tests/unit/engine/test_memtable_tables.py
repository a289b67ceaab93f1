"""Table batches kept whole by the memtable must read exactly like per-series inserts.

Several writes are applied before anything reads, so the deferred split (`_absorb`) has to
fold many pending tables, interleaved with per-series inserts, in arrival order.
"""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from node.engine.memtable import Memtable
from pulsar_cluster.lineprotocol import parse_line_protocol
from pulsar_cluster.series import SEP

HOSTS = ["a", "b", "c"]
row = st.tuples(st.sampled_from(HOSTS), st.integers(0, 8), st.integers(0, 99))
write = st.tuples(
    st.sampled_from(["table", "series", "table_other_fields"]),
    st.lists(row, min_size=1, max_size=8),
)


@settings(max_examples=150, deadline=None)
@given(writes=st.lists(write, min_size=1, max_size=10))
def test_pending_tables_fold_in_arrival_order(writes) -> None:
    memtable = Memtable()
    model: dict[tuple[str, str, int], float] = {}
    prefix = b"db" + SEP
    for kind, rows in writes:
        fields = ("f", "g") if kind != "table_other_fields" else ("g", "h")
        body = "\n".join(
            f"cpu,host={h} " + ",".join(f"{n}={v}.25" for n in fields) + f" {t}" for h, t, v in rows
        )
        batch = parse_line_protocol(body.encode(), "db")
        assert batch.table is not None
        if kind == "series":
            for key, columns in batch.series.items():  # the per-series path
                memtable.insert_series(prefix + key, columns)
        else:
            memtable.insert_table(prefix, batch.table)
        for h, t, v in rows:
            for n in fields:
                model[(h, n, t)] = v + 0.25
    got: dict[tuple[str, str, int], float] = {}
    for skey in memtable.series_keys():
        host = skey.split(SEP)[3].decode()
        for name in memtable.fields_of(skey):
            found = memtable.read(skey, name)
            assert found is not None
            _, ts, values = found
            assert list(ts) == sorted(set(ts.tolist()))
            for t, v in zip(ts.tolist(), values.tolist(), strict=True):
                got[(host, name, t)] = v
    assert got == model
    assert memtable.points >= len(model)
