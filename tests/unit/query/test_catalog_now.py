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
