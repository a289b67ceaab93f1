"""Membership routes of the node API (docs/format/node-api.md, "Membership").

Map changes (join, remove, drain, rebalance) are compare-and-sets in the metadata group: a
member runs them, any other node forwards the request to a member. Shard membership and
leadership transfer act on the shard's leader (the mover calls them).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from node.membership import Membership
from pulsar_cluster.errors import BadRequestError
from pulsar_cluster.moveplan import add_peer, plan_drain, plan_rebalance, remove_peer
from pulsar_cluster.shardmap import Peer, ShardMap

__all__ = ["membership_routes"]


def _json(doc: Any, status: int = 200) -> Response:
    return Response(orjson.dumps(doc), status, media_type="application/json")


async def _body(request: Request) -> dict[str, Any]:
    raw = await request.body()
    if not raw:
        return {}
    try:
        doc = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise BadRequestError(f"malformed JSON body: {exc}") from None
    if not isinstance(doc, dict):
        raise BadRequestError("the body must be a JSON object")
    return doc


def _peer(doc: dict[str, Any]) -> Peer:
    try:
        peer = Peer(str(doc["id"]), str(doc["host"]), int(doc["api_port"]), int(doc["raft_port"]))
    except (KeyError, TypeError, ValueError) as exc:
        raise BadRequestError(f"a node needs id, host, api_port, raft_port: {exc}") from None
    # The same checks as --peers (ids, ranges).
    from pulsar_cluster.shardmap import parse_peers

    parse_peers(f"{peer.id}={peer.host}:{peer.api_port}:{peer.raft_port}")
    return peer


def membership_routes(membership: Membership, authorize: Callable[[Request], None]) -> list[Route]:
    service = membership.service

    async def change(
        request: Request, make: Callable[[ShardMap], ShardMap], body: Any = None
    ) -> Response:
        if service.meta is None:
            return _json(await membership.forward(request.method, request.url.path, body))
        new = await membership.change_map(make)
        return _json(new.to_dict())

    async def join(request: Request) -> Response:
        authorize(request)
        doc = await _body(request)
        peer = _peer(doc)
        return await change(request, lambda m: add_peer(m, peer), doc)

    async def leave(request: Request) -> Response:
        authorize(request)
        node = str(request.path_params["node"])
        return await change(request, lambda m: remove_peer(m, node))

    async def drain(request: Request) -> Response:
        authorize(request)
        node = str(request.path_params["node"])
        return await change(request, lambda m: plan_drain(m, node))

    async def rebalance(request: Request) -> Response:
        authorize(request)
        return await change(request, plan_rebalance)

    async def shard_members(request: Request) -> Response:
        authorize(request)
        doc = await _body(request)
        shard = int(request.path_params["shard"])
        done = await service.change_shard_membership(
            shard, str(doc.get("op", "")), str(doc.get("node", ""))
        )
        return _json({"status": done})

    async def transfer(request: Request) -> Response:
        authorize(request)
        doc = await _body(request)
        to = doc.get("to")
        service.transfer_leadership(
            int(request.path_params["shard"]), None if to is None else str(to)
        )
        return _json({"status": "requested"})

    return [
        Route("/v1/members", join, methods=["POST"]),
        Route("/v1/members/{node}", leave, methods=["DELETE"]),
        Route("/v1/members/{node}/drain", drain, methods=["POST"]),
        Route("/v1/rebalance", rebalance, methods=["POST"]),
        Route("/v1/shards/{shard:int}/members", shard_members, methods=["POST"]),
        Route("/v1/shards/{shard:int}/transfer", transfer, methods=["POST"]),
    ]
