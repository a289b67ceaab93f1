"""Property test: any interleaving of writes, DROP SERIES, DROP DATABASE, flushes, full
compactions and reopenings (with and without a flush at close) leaves the engine answering like
a naive reference model: a dict of the points that were written after their series' last drop."""

from __future__ import annotations

import shutil
import tempfile

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from node import ddl
from node.engine.engine import Engine, EngineOptions
from pulsar_cluster.query.plan import MAX_TIME, MIN_TIME, Plan
from tests.unit.engine.helpers import batch_of, read_all

DBS = ("d1", "d2")
HOSTS = ("a", "b", "c")

op = st.one_of(
    st.tuples(
        st.just("write"),
        st.sampled_from(DBS),
        st.sampled_from(HOSTS),
        st.integers(0, 299),
        st.integers(0, 9),
    ),
    st.tuples(st.just("drop_series"), st.sampled_from(DBS), st.sampled_from(HOSTS)),
    st.tuples(st.just("drop_db"), st.sampled_from(DBS)),
    st.tuples(st.just("flush")),
    st.tuples(st.just("compact")),
    st.tuples(st.just("reopen"), st.booleans()),
)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(op, min_size=1, max_size=25))
def test_engine_matches_reference(ops) -> None:  # type: ignore[no-untyped-def]
    directory = tempfile.mkdtemp(prefix="drops-")
    options = EngineOptions(partition_ns=100, block_points=4)
    e = Engine(directory, options)
    model: dict[str, dict[str, dict[int, float]]] = {db: {} for db in DBS}
    try:
        for o in ops:
            kind = o[0]
            if kind == "write":
                _, db, host, t, v = o
                e.apply(batch_of([(host, "f", t, float(v))], database=db))
                model[db].setdefault(host, {})[t] = float(v)
            elif kind == "drop_series":
                _, db, host = o
                plan = Plan(
                    kind="delete", database=db, measurement="cpu", start=MIN_TIME,
                    end=MAX_TIME, tags=["cmp", "host", "=", host],
                )  # fmt: skip
                ddl.drop_series(e, plan)
                model[db].pop(host, None)
            elif kind == "drop_db":
                ddl.drop_database(e, o[1])
                model[o[1]] = {}
            elif kind == "flush":
                e.flush()
            elif kind == "compact":
                e.flush()
                e.compact(full=True)
            else:
                e.close(flush=o[1])
                e = Engine(directory, options)
            for db in DBS:
                expected = {
                    (h, "f", t): v for h, points in model[db].items() for t, v in points.items()
                }
                assert read_all(e, db) == expected, (o, db)
                assert e.tag_values(db, "cpu", "host") == sorted(model[db])
            assert e.databases() == sorted(db for db in DBS if model[db])
    finally:
        e.close(flush=False)
        shutil.rmtree(directory, ignore_errors=True)
