"""Internal endpoint for federation: answer a remote coordinator's plan with a partial.

`POST /api/v1/internal/partial`: body = an encoded plan (docs/format/partials.md), answer = the
encoded partial of this cluster's own storage (docs/format/federation.md). It never consults
remote clusters itself, so a federated request is never re-federated and loops are impossible.

Authentication: `Authorization: Bearer <federation token>` (`--federation-token`, env
PULSAR_FEDERATION_TOKEN). Without a configured token the endpoint is closed (403): exposing
partials of every database to anyone who can reach the port is not a safe default.
"""

from __future__ import annotations

import hmac

from fastapi import APIRouter, Request, Response

from coordinator.body import read_body
from coordinator.state import app_state
from pulsar_cluster.errors import PulsarError
from pulsar_cluster.federation import PARTIAL_PATH
from pulsar_cluster.query.partial import decode_plan, encode_partial

__all__ = ["router"]

router = APIRouter(tags=["internal"])


class ForbiddenError(PulsarError):
    status_code = 403


class UnauthorizedError(PulsarError):
    status_code = 401


def _check_token(request: Request, expected: str | None) -> None:
    if not expected:
        raise ForbiddenError(
            "federation is not enabled on this cluster (no --federation-token configured)"
        )
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not hmac.compare_digest(token.encode(), expected.encode()):
        raise UnauthorizedError("missing or wrong federation token")


@router.post(PARTIAL_PATH, summary="Partial result of an encoded plan (federation)")
async def internal_partial(request: Request) -> Response:
    state = app_state(request)
    _check_token(request, state.settings.federation_token)
    body = await read_body(request, state.settings.max_body_bytes)
    plan = decode_plan(body)
    partial = await state.backend.query(plan)  # local storage only: never re-federated
    return Response(encode_partial(partial), media_type="application/x-pulsar-partial")
