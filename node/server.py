"""The node's HTTP API (internal: coordinators and admin tools), port 7100 by default.

Every route under /v1 requires `Authorization: Bearer <cluster secret>`; /health, /ready and
/metrics answer without it (probes and scrapers), and reveal no data. Routes and bodies:
docs/format/node-api.md. Errors are JSON `{"error": ..., ...}` with the PulsarError's status;
a request for a shard this node does not lead answers 421 with `shard`, `leader`, `map_version`.
"""

from __future__ import annotations

import asyncio
import hmac
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import orjson
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

from node.backup import stream_file
from node.memberapi import membership_routes
from node.membership import Membership
from node.reads import PlanAnswer
from node.service import NodeService
from pulsar_cluster.errors import BadRequestError, OverloadedError, PulsarError
from pulsar_cluster.logs import get_logger
from pulsar_cluster.nodeapi import ScanRequest, TagMatcher
from pulsar_cluster.serving import serve
from pulsar_cluster.storagemetrics import StorageCollector
from pulsar_cluster.tagprobe import TAG_KEYS_HEADER, TAG_PROBE_HEADER, decode_names, encode_names

__all__ = ["create_node_app", "serve_node", "TOKEN_HEADER"]

TOKEN_HEADER = "authorization"
log = get_logger(__name__)


def _json(doc: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(orjson.dumps(doc), status, headers, media_type="application/json")


class _UnauthorizedError(PulsarError):
    status_code = 401


def create_node_app(
    service: NodeService,
    secret: str,
    balance_interval_s: float = 5.0,
    rebalance_after_start: bool = False,
) -> Starlette:
    expected = f"Bearer {secret}".encode()
    registry = CollectorRegistry()
    # Per shard replica: engine, caches and Raft (names: pulsar_cluster/storagemetrics.py; the
    # Helm chart's alerts and dashboard use them, deploy/prometheus, deploy/grafana).
    registry.register(StorageCollector(service.shard_metrics))

    def authorize(request: Request) -> None:
        got = request.headers.get(TOKEN_HEADER, "").encode()
        if not hmac.compare_digest(got, expected):
            raise _UnauthorizedError("missing or wrong cluster token")

    async def health(_: Request) -> Response:
        return _json({"status": "pass", "node_id": service.node_id})

    async def ready(_: Request) -> Response:
        if service.ready():
            return _json({"status": "ready"})
        return _json({"status": "not ready: a shard has no leader yet"}, 503)

    async def metrics(_: Request) -> Response:
        text = await asyncio.to_thread(generate_latest, registry)
        return Response(text, media_type=CONTENT_TYPE_LATEST)

    async def shard_map(request: Request) -> Response:
        authorize(request)
        return _json(service.map.to_dict())

    async def status(request: Request) -> Response:
        authorize(request)
        return _json(service.status())

    async def write(request: Request) -> Response:
        authorize(request)
        shard = int(request.path_params["shard"])
        body = await request.body()
        commands = await service.write(shard, body)
        return _json({"commands": commands})

    async def delete(request: Request) -> Response:
        authorize(request)
        await service.delete(int(request.path_params["shard"]), await request.body())
        return _json({"status": "done"})

    async def ddl(request: Request) -> Response:
        authorize(request)
        await service.ddl(int(request.path_params["shard"]), await request.body())
        return _json({"status": "done"})

    async def scan(request: Request) -> Response:
        authorize(request)
        shard = int(request.path_params["shard"])
        req, consistency = _parse_scan(await request.body())
        data = await service.scan(shard, req, consistency)
        return Response(data, media_type="application/octet-stream")

    async def query(request: Request) -> Response:
        authorize(request)
        shard = int(request.path_params["shard"])
        consistency = _consistency(request.query_params.get("consistency", "leader"))
        answer = await service.query(shard, await request.body(), consistency, _probe(request))
        return _partial(answer)

    async def query_shards(request: Request) -> Response:
        authorize(request)
        try:
            shards = [int(x) for x in request.query_params.get("shards", "").split(",")]
        except ValueError:
            raise BadRequestError("shards must be comma-separated shard ids") from None
        consistency = _consistency(request.query_params.get("consistency", "leader"))
        body = await request.body()
        return _partial(await service.query_shards(shards, body, consistency, _probe(request)))

    async def select(request: Request) -> Response:
        authorize(request)
        shard = int(request.path_params["shard"])
        args = _parse_select(await request.body())
        data = await service.select(shard, *args)
        return Response(data, media_type="application/octet-stream")

    async def compact(request: Request) -> Response:
        authorize(request)
        await service.compact()
        return _json({"status": "done"})

    async def checksum(request: Request) -> Response:
        authorize(request)
        return _json(await service.checksum(int(request.path_params["shard"])))

    async def databases(request: Request) -> Response:
        authorize(request)
        return _json({"databases": service.databases()})

    async def measurements(request: Request) -> Response:
        authorize(request)
        db = request.query_params.get("db", "")
        return _json({"measurements": service.measurements(db)})

    async def flush(request: Request) -> Response:
        authorize(request)
        await service.flush()
        return _json({"status": "done"})

    async def backup_checkpoint(request: Request) -> Response:
        authorize(request)
        try:
            doc = orjson.loads(await request.body())
            shards = [int(s) for s in doc["shards"]]
            min_index = {int(k): int(v) for k, v in (doc.get("min_index") or {}).items()}
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError, AttributeError) as exc:
            raise BadRequestError(f"malformed checkpoint request: {exc}") from None
        return _json(await service.backup_checkpoint(shards, min_index))

    async def backup_file(request: Request) -> Response:
        authorize(request)
        assert service.checkpoints is not None
        p = request.path_params
        path = service.checkpoints.file_path(p["cid"], int(p["shard"]), p["path"])
        return StreamingResponse(stream_file(path), media_type="application/octet-stream")

    async def backup_release(request: Request) -> Response:
        authorize(request)
        assert service.checkpoints is not None
        return _json({"released": service.checkpoints.release(request.path_params["cid"])})

    async def caches(request: Request) -> Response:
        authorize(request)
        return _json(service.caches())

    async def clear_caches(request: Request) -> Response:
        authorize(request)
        service.clear_caches(request.query_params.get("cache", "all"))
        return _json({"status": "done"})

    async def reload(request: Request) -> Response:
        authorize(request)
        reloader = getattr(request.app.state, "reloader", None)
        if reloader is None:
            raise BadRequestError("this node has no configuration to reload")
        return _json(reloader.reload("http"))

    async def pulsar_error(_: Request, exc: Exception) -> Response:
        assert isinstance(exc, PulsarError)
        headers = {}
        if isinstance(exc, OverloadedError):
            headers["Retry-After"] = str(max(1, round(exc.retry_after_s)))
        return _json(exc.to_dict(), exc.status_code, headers)

    async def balance_loop() -> None:
        # Leader balancing: every few seconds, not faster than elections settle.
        while True:
            await asyncio.sleep(balance_interval_s)
            try:
                asked = service.balance_leaders()
            except Exception:  # a bug here must not stop the node; it is logged loudly
                log.exception("leader_balancing_failed")
                continue
            if asked:
                log.info("leader_transfer_requested", shards=asked)

    membership = Membership(service, secret)

    @asynccontextmanager
    async def lifespan(_: Starlette) -> AsyncIterator[None]:
        task = asyncio.create_task(balance_loop()) if balance_interval_s > 0 else None
        member_task = asyncio.create_task(membership.run())
        # A node that has just joined asks for its share of the replicas (--rebalance-on-join).
        rebalance_task = (
            asyncio.create_task(membership.rebalance_until_balanced())
            if rebalance_after_start
            else None
        )
        yield
        if rebalance_task is not None:
            rebalance_task.cancel()
        if task is not None:
            task.cancel()
        member_task.cancel()
        await membership.close()
        await asyncio.to_thread(service.close)
        log.info("node_stopped", node=service.node_id)

    app = Starlette(
        routes=[
            Route("/health", health),
            Route("/ready", ready),
            Route("/metrics", metrics),
            Route("/v1/map", shard_map),
            Route("/v1/status", status),
            Route("/v1/shards/{shard:int}/write", write, methods=["POST"]),
            Route("/v1/shards/{shard:int}/scan", scan, methods=["POST"]),
            Route("/v1/shards/{shard:int}/delete", delete, methods=["POST"]),
            Route("/v1/shards/{shard:int}/ddl", ddl, methods=["POST"]),
            Route("/v1/shards/{shard:int}/query", query, methods=["POST"]),
            Route("/v1/query", query_shards, methods=["POST"]),
            Route("/v1/shards/{shard:int}/select", select, methods=["POST"]),
            Route("/v1/shards/{shard:int}/checksum", checksum),
            Route("/v1/compact", compact, methods=["POST"]),
            Route("/v1/databases", databases),
            Route("/v1/measurements", measurements),
            Route("/v1/flush", flush, methods=["POST"]),
            *membership_routes(membership, authorize),
            Route("/v1/backup/checkpoints", backup_checkpoint, methods=["POST"]),
            Route("/v1/backup/checkpoints/{cid}/shards/{shard:int}/files/{path:path}", backup_file),
            Route("/v1/backup/checkpoints/{cid}", backup_release, methods=["DELETE"]),
            Route("/v1/caches", caches),
            Route("/v1/caches/clear", clear_caches, methods=["POST"]),
            Route("/v1/reload", reload, methods=["POST"]),
        ],
        exception_handlers={PulsarError: pulsar_error},
        lifespan=lifespan,
    )
    app.state.metrics_registry = registry  # more collectors may join (pulsar_cluster/cli.py)
    return app


def _parse_scan(body: bytes) -> tuple[ScanRequest, str]:
    try:
        doc = orjson.loads(body)
        fields = doc.get("fields")
        req = ScanRequest(
            database=str(doc["database"]),
            measurement=str(doc["measurement"]),
            start=int(doc["start"]),
            end=int(doc["end"]),
            tags={str(k): str(v) for k, v in (doc.get("tags") or {}).items()},
            fields=None if fields is None else [str(f) for f in fields],
        )
        consistency = str(doc.get("consistency", "leader"))
    except (orjson.JSONDecodeError, KeyError, TypeError, ValueError, AttributeError) as exc:
        raise BadRequestError(f"malformed scan request: {exc}") from None
    return req, _consistency(consistency)


def _consistency(value: str) -> str:
    if value not in ("leader", "any"):
        raise BadRequestError("consistency must be 'leader' or 'any'")
    return value


def _probe(request: Request) -> list[str] | None:
    """The names of a query's tag-key probe (pulsar_cluster/tagprobe.py), None when not asked."""
    value = request.headers.get(TAG_PROBE_HEADER)
    if value is None:
        return None
    try:
        return decode_names(value)
    except ValueError as exc:
        raise BadRequestError(f"{TAG_PROBE_HEADER}: {exc}") from None


def _partial(answer: PlanAnswer) -> Response:
    data, tag_keys = answer
    headers = None if tag_keys is None else {TAG_KEYS_HEADER: encode_names(tag_keys)}
    return Response(data, media_type="application/octet-stream", headers=headers)


def _parse_select(body: bytes) -> tuple[Any, ...]:
    """(consistency, database, measurement, matchers, start, end, fields) of a select body."""
    try:
        doc = orjson.loads(body)
        matchers = []
        for name, op, value in doc["matchers"]:
            if op not in ("=", "!=", "=~", "!~"):
                raise ValueError(f"unknown matcher operator {op!r}")
            matchers.append(TagMatcher(str(name), op, str(value)))
        for m in matchers:
            m.compiled()
        fields = doc.get("fields")
        return (
            _consistency(str(doc.get("consistency", "leader"))),
            str(doc["database"]),
            str(doc["measurement"]),
            matchers,
            int(doc["start"]),
            int(doc["end"]),
            None if fields is None else [str(f) for f in fields],
        )
    except (orjson.JSONDecodeError, KeyError, TypeError, ValueError, re.error) as exc:
        raise BadRequestError(f"malformed select request: {exc}") from None


def serve_node(app: Starlette, host: str, port: int, graceful_timeout_s: float = 30.0) -> None:
    """Serve until SIGTERM/SIGINT; the lifespan then stops Raft and closes the engines."""
    serve(app, host, port, "PulsarDB node API", graceful_timeout_s)
