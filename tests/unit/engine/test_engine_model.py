"""The engine against a naive reference model (a dict) over random operation sequences.

Operations: writes (overwrites, out-of-order and in-batch duplicates included), flushes,
background and full compactions, deletes by tag and time range, reopen (with or without a
flush: the WAL replay path), and snapshot + restore of the engine from it. After every
operation the engine must return exactly the model.
"""

from __future__ import annotations

import os
import tempfile

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from node.engine.engine import DeleteRequest, Engine, EngineOptions
from pulsar_cluster.lineprotocol import parse_line_protocol
from tests.unit.engine.helpers import batch_of, read_all

HOSTS = ["a", "b", "c"]
ts_st = st.integers(-60, 60)  # few timestamps: many overwrites; several partitions of 25
point = st.tuples(st.sampled_from(HOSTS), st.sampled_from(["f", "g"]), ts_st, st.integers(0, 9))
# Rows with both fields, sent as line protocol: the parser's table batches (kept whole by the
# memtable until read or flushed), interleaved with the per-series batches above.
row = st.tuples(st.sampled_from(HOSTS), ts_st, st.integers(0, 9), st.integers(0, 9))
op_st = st.one_of(
    st.tuples(st.just("write"), st.lists(point, min_size=1, max_size=12)),
    st.tuples(st.just("write_table"), st.lists(row, min_size=1, max_size=12)),
    st.tuples(st.just("flush")),
    st.tuples(st.just("compact"), st.booleans()),
    st.tuples(st.just("delete"), st.sampled_from([None, *HOSTS]), ts_st, st.integers(1, 60)),
    st.tuples(st.just("reopen"), st.booleans()),
    st.tuples(st.just("snapshot_restore")),
)


def _opts() -> EngineOptions:
    return EngineOptions(
        partition_ns=25, block_points=4, compaction_trigger=2, compaction_small_bytes=10**9
    )


@settings(
    max_examples=50,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(ops=st.lists(op_st, max_size=25))
def test_engine_matches_a_dict(ops):
    model: dict[tuple[str, str, int], float] = {}
    snaps = 0
    with tempfile.TemporaryDirectory() as d, tempfile.TemporaryDirectory() as snap_root:
        engine = Engine(d, _opts())
        try:
            for op in ops:
                kind = op[0]
                if kind == "write":
                    pts = [(h, f, t, float(v)) for h, f, t, v in op[1]]
                    engine.apply(batch_of(pts))
                    for h, f, t, v in pts:
                        model[(h, f, t)] = v
                elif kind == "write_table":
                    body = "\n".join(f"cpu,host={h} f={a}.5,g={b}.5 {t}" for h, t, a, b in op[1])
                    batch = parse_line_protocol(body.encode(), "db")
                    assert batch.table is not None  # the table path is what is under test
                    engine.apply(batch)
                    for h, t, a, b in op[1]:
                        model[(h, "f", t)] = a + 0.5
                        model[(h, "g", t)] = b + 0.5
                elif kind == "flush":
                    engine.flush()
                elif kind == "compact":
                    engine.compact(full=op[1])
                elif kind == "delete":
                    _, host, start, length = op
                    tags = {} if host is None else {"host": host}
                    engine.delete(DeleteRequest("db", "cpu", start, start + length, tags))
                    for key in [k for k in model if host in (None, k[0])]:
                        if start <= key[2] < start + length:
                            del model[key]
                elif kind == "reopen":
                    engine.close(flush=op[1])
                    engine = Engine(d, _opts())
                    assert not engine.status()["recovery_problems"]
                elif kind == "snapshot_restore":
                    snaps += 1
                    info = engine.create_snapshot(os.path.join(snap_root, str(snaps)))
                    engine.restore_snapshot(info.path)
                    assert engine.last_index == info.last_index
                assert read_all(engine) == model, op
        finally:
            engine.close()
