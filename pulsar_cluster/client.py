"""A small synchronous Python client for the coordinator's HTTP API."""

from __future__ import annotations

from typing import Any

import httpx
import orjson

from pulsar_cluster.errors import PulsarError

__all__ = ["PulsarClient", "ClientError"]


class ClientError(PulsarError):
    """The server answered with an error; `status_code` and `body` say what it was."""

    def __init__(self, status_code: int, body: Any) -> None:
        message = body.get("error") if isinstance(body, dict) else str(body)
        super().__init__(f"HTTP {status_code}: {message}")
        self.status_code = status_code
        self.body = body


class PulsarClient:
    def __init__(
        self, url: str = "http://127.0.0.1:8080", timeout_s: float = 30.0, token: str | None = None
    ) -> None:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self._http = httpx.Client(base_url=url.rstrip("/"), timeout=timeout_s, headers=headers)

    def __enter__(self) -> PulsarClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    def _check(self, response: httpx.Response) -> Any:
        if response.status_code >= 400:
            try:
                body = response.json()
            except ValueError:
                body = response.text
            raise ClientError(response.status_code, body)
        if response.status_code == 204 or not response.content:
            return None
        return response.json()

    def write_lines(self, db: str, lines: bytes | str, precision: str = "ns") -> None:
        data = lines.encode() if isinstance(lines, str) else lines
        self._check(
            self._http.post("/write", params={"db": db, "precision": precision}, content=data)
        )

    def write_points(self, db: str, points: list[dict[str, Any]]) -> None:
        self._check(
            self._http.post(
                "/api/v1/write", params={"db": db}, content=orjson.dumps({"points": points})
            )
        )

    def query(self, query: dict[str, Any]) -> dict[str, Any]:
        return self._check(self._http.post("/api/v1/query", content=orjson.dumps(query)))

    def influxql(self, db: str, q: str, epoch: str | None = None) -> dict[str, Any]:
        params = {"db": db, "q": q}
        if epoch:
            params["epoch"] = epoch
        return self._check(self._http.post("/query", params=params))

    def admin(self, method: str, path: str, **params: Any) -> Any:
        return self._check(self._http.request(method, f"/api/v1/admin/{path}", params=params))

    def ping(self) -> bool:
        return self._http.get("/ping").status_code == 204
