"""Catalog look-ups answered at once by an in-process node (LocalNode.answer_now) equal
those through the query call; plans that need a series walk still take the query call."""

from __future__ import annotations

import asyncio
from pathlib import Path

from node.engine.engine import EngineOptions
from node.local import LocalNode
from pulsar_cluster.lineprotocol import parse_line_protocol
from pulsar_cluster.query.partial import Partial
from pulsar_cluster.query.plan import Plan
from pulsar_cluster.query.run import Catalog


class QueryOnly:
    """The node seen through the query call alone (as a cluster backend is)."""

    def __init__(self, node: LocalNode) -> None:
        self.node = node
        self.calls = 0

    async def query(self, plan: Plan) -> Partial:
        self.calls += 1
        return await self.node.query(plan)


def test_catalog_answers_now_like_through_the_query_call(tmp_path: Path) -> None:
    node = LocalNode(str(tmp_path), EngineOptions(fsync="never"))

    async def go() -> None:
        text = b"cpu,host=a,dc=x v=1 1\ncpu,host=b v=2i 2\ndisk,path=/ free=3 3"
        await node.write(parse_line_protocol(text, "db"))
        slow = QueryOnly(node)
        for catalog_backend in (node, slow):
            c = Catalog(catalog_backend)
            assert await c.databases() == ["db"]
            assert await c.measurements("db") == ["cpu", "disk"]
            assert await c.tag_keys("db", "cpu") == {"host", "dc"}
            assert await c.tag_keys("db", "nope") == set()
            assert await c.field_types("db", "cpu") == {"v": {"float", "integer"}}
        assert slow.calls == 5
        assert node.answer_now(Plan(kind="meta", database="db", meta="field_keys")) is None
        await node.close()

    asyncio.run(go())


def test_tag_keys_read_from_the_index_are_never_stale(tmp_path: Path) -> None:
    """Catalog.tag_keys over a LocalNode reads the index on every call (tag_keys_now): a tag
    key written a moment ago is a tag in the next query, and it agrees with the meta plan."""
    from pulsar_cluster.query.influxql.parser import parse_query
    from pulsar_cluster.query.influxql.planner import execute_statement

    node = LocalNode(str(tmp_path), EngineOptions(fsync="never"))

    async def go() -> None:
        await node.write(parse_line_protocol(b"cpu,host=a v=1 1", "db"))
        select = parse_query("SELECT v FROM cpu WHERE rack = 'r1'")[0]
        assert await execute_statement(select, "db", node, 10) == {}
        for lines, expected in (
            (b"cpu,host=a,rack=r1 v=2 2", {"host", "rack"}),
            (b"cpu,host=b,zone=z v=3 3\ndisk,d=1 v=1 1", {"host", "rack", "zone"}),
        ):
            await node.write(parse_line_protocol(lines, "db"))
            assert await Catalog(node).tag_keys("db", "cpu") == expected
            assert await Catalog(QueryOnly(node)).tag_keys("db", "cpu") == expected
        # rack is a tag now: the comparison selects the series, not a field value
        answer = await execute_statement(select, "db", node, 10)
        assert answer["series"][0]["values"] == [[2, 2.0]]
        assert await Catalog(node).tag_keys("db", "nope") == set()
        assert await Catalog(node).tag_keys("nodb", "cpu") == set()
        await node.close()

    asyncio.run(go())
