"""The coordinator's HTTP client to one storage node's API (docs/format/node-api.md).

The coordinator reaches nodes only through this module. Every call has a timeout; transport
failures become UnavailableError naming the node, and the node's JSON errors are turned back
into the PulsarError they came from (NotLeaderError keeps its shard, leader and map version).
The connection pool (aiohttp) is pulsar_cluster/nodehttp.py's NodeSession, shared by the
process's clients.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable
from typing import Any

import orjson

from pulsar_cluster.batchcodec import decode_batch
from pulsar_cluster.errors import (
    BadRequestError,
    NotLeaderError,
    OverloadedError,
    PulsarError,
    UnavailableError,
)
from pulsar_cluster.nodeapi import ScanRequest, SeriesData, TagMatcher
from pulsar_cluster.nodehttp import (
    NodeResponse,
    NodeSession,
    NodeTransportError,
    call_timeout,
)
from pulsar_cluster.shardmap import ShardMap
from pulsar_cluster.tagprobe import TAG_KEYS_HEADER, TAG_PROBE_HEADER, decode_names, encode_names
from pulsar_cluster.tracing import client_span

__all__ = ["NodeClient", "NodeAuthError"]


class NodeAuthError(PulsarError):
    """The node refused our cluster token: a configuration error, not a transient one."""

    status_code = 500


class NodeClient:
    def __init__(
        self,
        base_url: str,
        token: str,
        timeout_s: float = 10.0,
        session: NodeSession | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self._headers = {"Authorization": f"Bearer {token}"}
        self._timeout = call_timeout(timeout_s)
        self._session = session or NodeSession()
        self._owns_session = session is None

    async def close(self) -> None:
        if self._owns_session:
            await self._session.close()

    async def _request(
        self,
        method: str,
        path: str,
        *,
        params: dict[str, str] | None = None,
        content: bytes | None = None,
        timeout: float | None = None,
        headers: dict[str, str] | None = None,
    ) -> NodeResponse:
        with client_span(f"node {method} {path}", self.base_url) as trace_headers:
            if trace_headers:  # traceparent when tracing is on (pulsar_cluster/tracing.py)
                headers = {**(headers or {}), **trace_headers}
            try:
                response = await self._session.request(
                    method,
                    self.base_url + path,
                    headers={**self._headers, **headers} if headers else self._headers,
                    timeout=self._timeout if timeout is None else call_timeout(timeout),
                    params=params,
                    content=content,
                )
            except NodeTransportError as exc:
                raise UnavailableError(
                    f"node {self.base_url} unreachable: {exc}", node=self.base_url
                ) from None
            if response.status_code >= 400:
                raise _error_from(self.base_url, response)
            return response

    async def shard_map(self) -> ShardMap:
        return ShardMap.from_dict((await self._request("GET", "/v1/map")).json())

    async def status(self) -> dict[str, Any]:
        return (await self._request("GET", "/v1/status")).json()  # type: ignore[no-any-return]

    async def write(self, shard: int, encoded_batch: bytes, timeout_s: float | None = None) -> None:
        await self._request(
            "POST", f"/v1/shards/{shard}/write", content=encoded_batch, timeout=timeout_s
        )

    async def scan(self, shard: int, request: ScanRequest, consistency: str) -> list[SeriesData]:
        body = orjson.dumps(
            {
                "database": request.database,
                "measurement": request.measurement,
                "start": request.start,
                "end": request.end,
                "tags": request.tags,
                "fields": request.fields,
                "consistency": consistency,
            }
        )
        response = await self._request("POST", f"/v1/shards/{shard}/scan", content=body)
        batch = decode_batch(response.content)
        return [SeriesData(key, columns) for key, columns in batch.series.items()]

    async def delete(self, shard: int, encoded_plan: bytes, timeout_s: float | None = None) -> None:
        await self._request(
            "POST", f"/v1/shards/{shard}/delete", content=encoded_plan, timeout=timeout_s
        )

    async def ddl(self, shard: int, command: bytes, timeout_s: float | None = None) -> None:
        """Propose a DDL Raft command (docs/format/raft-command.md) on the shard's group."""
        await self._request("POST", f"/v1/shards/{shard}/ddl", content=command, timeout=timeout_s)

    async def query(
        self,
        shard: int,
        encoded_plan: bytes,
        consistency: str,
        tag_probe: Iterable[str] | None = None,
    ) -> tuple[bytes, list[str] | None]:
        """The encoded partial (docs/format/partials.md) of one shard for an encoded plan, and
        which of the `tag_probe` names are tag keys there (pulsar_cluster/tagprobe.py; None
        when not probed or when the node does not answer probes)."""
        response = await self._request(
            "POST",
            f"/v1/shards/{shard}/query",
            params={"consistency": consistency},
            content=encoded_plan,
            headers=_probe_headers(tag_probe),
        )
        return response.content, _probe_answer(self.base_url, response, tag_probe)

    async def query_shards(
        self,
        shards: list[int],
        encoded_plan: bytes,
        consistency: str,
        tag_probe: Iterable[str] | None = None,
    ) -> tuple[bytes, list[str] | None]:
        """One merged partial of several shards this node serves (docs/format/node-api.md),
        and the answer of the tag-key probe as `query`'s."""
        response = await self._request(
            "POST",
            "/v1/query",
            params={"shards": ",".join(map(str, shards)), "consistency": consistency},
            content=encoded_plan,
            headers=_probe_headers(tag_probe),
        )
        return response.content, _probe_answer(self.base_url, response, tag_probe)

    async def select(
        self,
        shard: int,
        consistency: str,
        database: str,
        measurement: str,
        matchers: list[TagMatcher],
        start: int,
        end: int,
        fields: list[str] | None,
    ) -> list[SeriesData]:
        body = orjson.dumps(
            {
                "consistency": consistency,
                "database": database,
                "measurement": measurement,
                "matchers": [[m.name, m.op, m.value] for m in matchers],
                "start": start,
                "end": end,
                "fields": fields,
            }
        )
        response = await self._request("POST", f"/v1/shards/{shard}/select", content=body)
        batch = decode_batch(response.content)
        return [SeriesData(key, columns) for key, columns in batch.series.items()]

    async def compact(self, timeout_s: float = 3600.0) -> None:
        await self._request("POST", "/v1/compact", timeout=timeout_s)

    async def databases(self) -> list[str]:
        return list((await self._request("GET", "/v1/databases")).json()["databases"])

    async def measurements(self, database: str) -> list[str]:
        response = await self._request("GET", "/v1/measurements", params={"db": database})
        return list(response.json()["measurements"])

    async def flush(self, timeout_s: float = 300.0) -> None:
        await self._request("POST", "/v1/flush", timeout=timeout_s)

    async def call_json(
        self, method: str, path: str, body: Any = None, timeout_s: float | None = None
    ) -> Any:
        """A JSON call of the membership routes (docs/format/node-api.md), JSON answer."""
        content = None if body is None else orjson.dumps(body)
        return (await self._request(method, path, content=content, timeout=timeout_s)).json()

    # --- backup checkpoints (docs/format/node-api.md) --------------------------------------------

    async def backup_checkpoint(
        self, shards: list[int], min_index: dict[int, int] | None = None, timeout_s: float = 600.0
    ) -> Any:
        body = orjson.dumps(
            {"shards": shards, "min_index": {str(k): v for k, v in (min_index or {}).items()}}
        )
        response = await self._request(
            "POST", "/v1/backup/checkpoints", content=body, timeout=timeout_s
        )
        return response.json()

    async def backup_stream(self, checkpoint: str, shard: int, path: str) -> AsyncIterator[bytes]:
        """The bytes of one checkpoint file, streamed (the caller iterates to the end)."""
        url = f"{self.base_url}/v1/backup/checkpoints/{checkpoint}/shards/{shard}/files/{path}"
        try:
            async for part in self._session.stream(
                url, headers=self._headers, timeout=self._timeout, chunk_bytes=1 << 20
            ):
                if isinstance(part, NodeResponse):
                    raise _error_from(self.base_url, part)
                yield part
        except NodeTransportError as exc:
            raise UnavailableError(
                f"node {self.base_url} unreachable: {exc}", node=self.base_url
            ) from None

    async def backup_release(self, checkpoint: str) -> bool:
        response = await self._request("DELETE", f"/v1/backup/checkpoints/{checkpoint}")
        return bool(response.json()["released"])

    async def caches(self) -> dict[str, Any]:
        """This node's cache statistics (pulsar_cluster/cachestats.py)."""
        return (await self._request("GET", "/v1/caches")).json()  # type: ignore[no-any-return]

    async def reload(self) -> dict[str, Any]:
        """Make the node re-read its configuration (pulsar_cluster/reload.py)."""
        return (await self._request("POST", "/v1/reload")).json()  # type: ignore[no-any-return]

    async def clear_caches(self, cache: str = "all") -> None:
        await self._request("POST", "/v1/caches/clear", params={"cache": cache})


def _probe_headers(tag_probe: Iterable[str] | None) -> dict[str, str] | None:
    return None if tag_probe is None else {TAG_PROBE_HEADER: encode_names(tag_probe)}


def _probe_answer(
    node: str, response: NodeResponse, tag_probe: Iterable[str] | None
) -> list[str] | None:
    if tag_probe is None:
        return None
    value = response.headers.get(TAG_KEYS_HEADER)
    if value is None:
        return None  # a node that does not answer probes: the caller plans afresh
    try:
        return decode_names(value)
    except ValueError as exc:
        raise UnavailableError(f"node {node}: bad {TAG_KEYS_HEADER}: {exc}", node=node) from None


def _error_from(node: str, response: NodeResponse) -> PulsarError:
    try:
        doc = orjson.loads(response.content)
        message = str(doc.pop("error"))
    except (orjson.JSONDecodeError, KeyError, TypeError, AttributeError):
        doc, message = {}, response.text[:200] or response.reason_phrase
    status = response.status_code
    if status == 421:
        err = NotLeaderError(
            int(doc.get("shard", -1)), doc.get("leader"), int(doc.get("map_version", 0)), ""
        )
        err.message = message
        err.args = (message,)
        return err
    if status == 401:
        return NodeAuthError(f"node {node} rejected the cluster token: {message}")
    if status in (429, 503) and "retry_after" in doc:
        return OverloadedError(message, float(doc["retry_after"]), status)
    if status == 503:
        return UnavailableError(message, node=node, **doc)
    if 400 <= status < 500:
        err400 = BadRequestError(message, **doc)
        err400.status_code = status
        return err400
    return UnavailableError(f"node {node} failed ({status}): {message}", node=node)
