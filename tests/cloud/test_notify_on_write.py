"""Which API requests re-sync the broker's authorization: successful writes to what can change a device's rights."""

from __future__ import annotations

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from edgewise.cloud.writes import AUTHORIZATION_PATHS, NotifyOnWrite


async def _answer(request: Request) -> Response:
    return Response(status_code=int(request.query_params.get("status", "200")))


@pytest.mark.parametrize(
    ("method", "path", "status", "notified"),
    [
        ("POST", "/api/v1/things", 201, True),
        ("PUT", "/api/v1/thing-groups/plant/things/a", 204, True),
        ("PATCH", "/api/v1/certificates/abc", 200, True),
        ("PUT", "/api/v1/policies/p/targets/certificates/abc", 204, True),
        ("POST", "/api/v1/claim-certificates", 201, True),
        ("POST", "/api/v1/things", 422, False),
        ("GET", "/api/v1/things", 200, False),
        ("PUT", "/api/v1/artifacts/0123", 201, False),
        ("POST", "/api/v1/components", 201, False),
        ("POST", "/api/v1/deployments", 201, False),
        ("POST", "/api/v1/jobs", 201, False),
    ],
)
async def test_only_successful_writes_that_can_change_rights_resync(
    method: str, path: str, status: int, notified: bool
) -> None:
    calls: list[None] = []
    app = Starlette(
        routes=[Route("/{rest:path}", _answer, methods=["GET", "POST", "PUT", "PATCH", "DELETE"])]
    )
    wrapped = NotifyOnWrite(app, lambda: calls.append(None), paths=AUTHORIZATION_PATHS)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=wrapped), base_url="http://cloud"
    ) as client:
        answer = await client.request(method, path, params={"status": status})
    assert answer.status_code == status
    assert bool(calls) is notified
