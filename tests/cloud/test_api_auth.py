"""API tokens and roles: who may call what, the error bodies when they may not, and what a token may be called."""

from __future__ import annotations

from collections.abc import Callable

import httpx
import pytest
from sqlalchemy.orm import Session

from edgewise.cloud.app import FirstStart
from edgewise.cloud.auth import service
from edgewise.cloud.auth.models import ApiToken
from edgewise.cloud.auth.roles import Role
from edgewise.cloud.db import create_database_engine, create_session_factory
from edgewise.cloud.errors import InvalidRequestError

ApiClientFactory = Callable[[str | None], httpx.AsyncClient]


async def _token(admin_api: httpx.AsyncClient, name: str, role: str) -> str:
    response = await admin_api.post("/api/v1/tokens", json={"name": name, "role": role})
    assert response.status_code == 201, response.text
    secret: str = response.json()["token"]
    return secret


async def test_health_needs_no_token(api_client: ApiClientFactory) -> None:
    async with api_client(None) as client:
        response = await client.get("/api/v1/health")
    assert response.status_code == 200
    assert response.json()["status"] == "ok"


async def test_request_without_token_is_401_with_error_body(api_client: ApiClientFactory) -> None:
    async with api_client(None) as client:
        response = await client.get("/api/v1/things")
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == "Bearer"
    assert response.json() == {
        "code": "unauthenticated",
        "message": "The request has no 'Authorization: Bearer <token>' header",
    }


@pytest.mark.parametrize("token", ["ewt_not-a-real-token", "something-else"])
async def test_request_with_unknown_token_is_401(api_client: ApiClientFactory, token: str) -> None:
    async with api_client(token) as client:
        response = await client.get("/api/v1/things")
    assert response.status_code == 401
    assert response.json()["code"] == "unauthenticated"


async def test_read_only_token_reads_but_cannot_write(
    api_client: ApiClientFactory, admin_api: httpx.AsyncClient
) -> None:
    secret = await _token(admin_api, "viewer", "read-only")
    async with api_client(secret) as viewer:
        assert (await viewer.get("/api/v1/things")).status_code == 200
        response = await viewer.post("/api/v1/things", json={"thingName": "t"})
        assert (await viewer.get("/api/v1/tokens")).status_code == 403
    assert response.status_code == 403
    body = response.json()
    assert body["code"] == "forbidden"
    assert "'viewer' has role 'read-only'" in body["message"]
    assert "POST /api/v1/things" in body["message"]


async def test_operator_token_writes_registry_but_not_tokens(
    api_client: ApiClientFactory, admin_api: httpx.AsyncClient
) -> None:
    secret = await _token(admin_api, "ops", "operator")
    async with api_client(secret) as operator:
        assert (await operator.post("/api/v1/things", json={"thingName": "t"})).status_code == 201
        assert (await operator.delete("/api/v1/things/t")).status_code == 204
        response = await operator.post("/api/v1/tokens", json={"name": "sneaky", "role": "admin"})
    assert response.status_code == 403
    assert "needs admin access" in response.json()["message"]


async def test_tokens_are_listed_without_secrets_and_revoked(
    api_client: ApiClientFactory, admin_api: httpx.AsyncClient
) -> None:
    secret = await _token(admin_api, "temporary", "operator")
    listing = (await admin_api.get("/api/v1/tokens")).json()
    assert [(token["name"], token["role"]) for token in listing["data"]] == [
        ("admin", "admin"),
        ("temporary", "operator"),
    ]
    assert secret not in str(listing)
    assert (await admin_api.delete("/api/v1/tokens/temporary")).status_code == 204
    async with api_client(secret) as revoked:
        assert (await revoked.get("/api/v1/things")).status_code == 401


async def test_last_admin_token_cannot_be_revoked(admin_api: httpx.AsyncClient) -> None:
    response = await admin_api.delete("/api/v1/tokens/admin")
    assert response.status_code == 409
    assert "last admin token" in response.json()["message"]


async def test_duplicate_token_name_is_409(admin_api: httpx.AsyncClient) -> None:
    response = await admin_api.post("/api/v1/tokens", json={"name": "admin", "role": "read-only"})
    assert response.status_code == 409
    assert response.json() == {"code": "already_exists", "message": "API token 'admin' already exists"}


async def test_unknown_role_names_the_field(admin_api: httpx.AsyncClient) -> None:
    response = await admin_api.post("/api/v1/tokens", json={"name": "x", "role": "root"})
    assert response.status_code == 422
    assert response.json()["code"] == "invalid_request"
    assert "'role'" in response.json()["message"]


@pytest.mark.parametrize("name", [".", "..", "ci.deploy", "a/b", "x" * 129])
async def test_token_names_follow_the_registry_s_naming_rule(admin_api: httpx.AsyncClient, name: str) -> None:
    response = await admin_api.post("/api/v1/tokens", json={"name": name, "role": "operator"})
    assert response.status_code == 422
    assert response.json()["code"] == "invalid_request"
    assert "'name'" in response.json()["message"]
    listing = (await admin_api.get("/api/v1/tokens")).json()
    assert [token["name"] for token in listing["data"]] == ["admin"]


def test_the_service_refuses_a_dot_name_with_the_registry_s_message(session: Session) -> None:
    with pytest.raises(InvalidRequestError) as raised:
        service.create_token(session, "..", role=Role.OPERATOR)
    assert raised.value.field == "name"
    assert str(raised.value) == (
        "Field 'name' is invalid: '..' must be 1-128 characters of letters, digits, ':', '_' and '-'"
    )
    assert service.count_tokens(session) == 0


async def test_a_token_named_before_the_rule_can_still_be_revoked(
    admin_api: httpx.AsyncClient, first_start: FirstStart
) -> None:
    engine = create_database_engine(first_start.settings.database_url)
    try:
        with create_session_factory(engine)() as session:
            session.add(ApiToken(name="ci.deploy", role=Role.OPERATOR, secret_sha256="0" * 64))
            session.commit()
    finally:
        engine.dispose()
    assert (await admin_api.delete("/api/v1/tokens/ci.deploy")).status_code == 204
    listing = (await admin_api.get("/api/v1/tokens")).json()
    assert [token["name"] for token in listing["data"]] == ["admin"]
