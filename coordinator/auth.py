"""Access control of the admin API (/api/v1/admin/*): a pure ASGI middleware.

Policy (docs/operations.md, "Admin API access"):

- An admin token is configured (`--admin-token`, env PULSAR_ADMIN_TOKEN, or TOML `admin_token`):
  every admin request must send `Authorization: Bearer <token>`; the comparison takes constant
  time. No or another token: 401 with `WWW-Authenticate: Bearer`.
- No token configured: the admin API answers clients on the loopback interface only (127.0.0.0/8,
  ::1) and refuses others with 403. This keeps `pulsar standalone` on a laptop convenient and
  never leaves flush/compact/remove-node open to the network by omission. Behind a reverse proxy
  on the same host every client looks local: configure a token there.

Only the admin prefix is guarded; writes, queries and /health, /ready, /metrics are not.
"""

from __future__ import annotations

import hmac
import ipaddress
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import orjson

__all__ = [
    "ADMIN_PREFIX",
    "Denial",
    "is_admin_path",
    "is_loopback",
    "check_admin_access",
    "AdminAuthMiddleware",
]

ADMIN_PREFIX = "/api/v1/admin"


@dataclass(frozen=True, slots=True)
class Denial:
    status: int
    message: str


def is_admin_path(path: str) -> bool:
    return path == ADMIN_PREFIX or path.startswith(ADMIN_PREFIX + "/")


def is_loopback(host: str | None) -> bool:
    if not host:
        return False  # unix sockets and unknown peers are not trusted without a token
    try:
        address = ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return address.is_loopback


def _bearer(authorization: str | None) -> str | None:
    if not authorization:
        return None
    scheme, _, credentials = authorization.strip().partition(" ")
    if scheme.lower() != "bearer" or not credentials.strip():
        return None
    return credentials.strip()


def check_admin_access(
    token: str | None, authorization: str | None, client_host: str | None
) -> Denial | None:
    """None when the request may reach the admin API, else why not (status and message)."""
    if not token:
        if is_loopback(client_host):
            return None
        return Denial(
            403,
            "the admin API is restricted to loopback clients because no admin token is "
            "configured; set --admin-token or PULSAR_ADMIN_TOKEN",
        )
    offered = _bearer(authorization)
    if offered is None:
        return Denial(401, "the admin API needs 'Authorization: Bearer <admin token>'")
    if not hmac.compare_digest(offered.encode(), token.encode()):
        return Denial(401, "invalid admin token")
    return None


class AdminAuthMiddleware:
    """Applies check_admin_access to every HTTP request under /api/v1/admin.

    `token` may be a function returning the current token: it is then asked per request, so a
    configuration reload changes the token at once.
    """

    def __init__(self, app: Any, token: str | Callable[[], str | None] | None) -> None:
        self.app = app
        self._token = token

    @property
    def token(self) -> str | None:
        token = self._token() if callable(self._token) else self._token
        return token or None  # an empty string configures nothing

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http" or not is_admin_path(scope["path"]):
            await self.app(scope, receive, send)
            return
        authorization = None
        for name, value in scope.get("headers", []):
            if name == b"authorization":
                authorization = value.decode("latin-1")
                break
        client = scope.get("client")
        denial = check_admin_access(self.token, authorization, client[0] if client else None)
        if denial is None:
            await self.app(scope, receive, send)
            return
        body = orjson.dumps({"error": denial.message})
        headers = [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
        ]
        if denial.status == 401:
            headers.append((b"www-authenticate", b'Bearer realm="pulsardb-admin"'))
        await send({"type": "http.response.start", "status": denial.status, "headers": headers})
        await send({"type": "http.response.body", "body": body})
