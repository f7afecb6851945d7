"""Identity over REST: certificates, policies and attachments, with roles and JSON errors naming the field."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

import httpx
import pytest

from edgewise.cloud.identity import DEFAULT_DEVICE_POLICY_NAME, CertificateAuthority
from tests.cloud.conftest import ApiClientFactory
from tests.support.pki import signing_request


async def _client_with_role(
    admin_api: httpx.AsyncClient, api_client: ApiClientFactory, role: str
) -> httpx.AsyncClient:
    issued = await admin_api.post("/api/v1/tokens", json={"name": f"{role}-token", "role": role})
    assert issued.status_code == 201, issued.text
    return api_client(issued.json()["token"])


@pytest.fixture
async def operator_api(
    admin_api: httpx.AsyncClient, api_client: ApiClientFactory
) -> AsyncIterator[httpx.AsyncClient]:
    async with await _client_with_role(admin_api, api_client, "operator") as client:
        yield client


@pytest.fixture
async def reader_api(
    admin_api: httpx.AsyncClient, api_client: ApiClientFactory
) -> AsyncIterator[httpx.AsyncClient]:
    async with await _client_with_role(admin_api, api_client, "read-only") as client:
        yield client


async def test_first_start_creates_the_default_policy(reader_api: httpx.AsyncClient) -> None:
    response = await reader_api.get(f"/api/v1/policies/{DEFAULT_DEVICE_POLICY_NAME}")
    assert response.status_code == 200
    assert "iot:Connect" in json.loads(response.json()["policyDocument"])["Statement"][0]["Action"]


async def test_device_onboarding_as_operator(operator_api: httpx.AsyncClient, app: object) -> None:
    assert (await operator_api.post("/api/v1/things", json={"thingName": "sensor-1"})).status_code == 201
    created = await operator_api.post(
        "/api/v1/certificates", json={"generateKeyPair": True, "thingName": "sensor-1"}
    )
    assert created.status_code == 201, created.text
    body = created.json()
    assert "PRIVATE KEY" in body["privateKey"]
    assert body["commonName"] == "sensor-1"
    assert body["status"] == "ACTIVE"
    certificate_id = body["certificateId"]
    authority: CertificateAuthority = app.state.services.certificate_authority  # type: ignore[attr-defined]
    assert authority.verify(body["certificatePem"]).certificate_id == certificate_id

    described = (await operator_api.get(f"/api/v1/certificates/{certificate_id}")).json()
    assert "privateKey" not in described
    principals = (await operator_api.get("/api/v1/things/sensor-1/principals")).json()
    assert [item["certificateId"] for item in principals["data"]] == [certificate_id]

    attach = f"/api/v1/policies/{DEFAULT_DEVICE_POLICY_NAME}/targets/certificates/{certificate_id}"
    assert (await operator_api.put(attach)).status_code == 204
    targets = (await operator_api.get(f"/api/v1/policies/{DEFAULT_DEVICE_POLICY_NAME}/targets")).json()
    assert targets == {"certificateIds": [certificate_id], "thingGroupNames": []}

    revoked = await operator_api.patch(f"/api/v1/certificates/{certificate_id}", json={"status": "REVOKED"})
    assert revoked.json()["status"] == "REVOKED"
    again = await operator_api.patch(f"/api/v1/certificates/{certificate_id}", json={"status": "ACTIVE"})
    assert again.status_code == 409
    assert again.json()["code"] == "conflict"

    still_attached = await operator_api.delete(f"/api/v1/certificates/{certificate_id}")
    assert still_attached.status_code == 409
    assert (await operator_api.delete(attach)).status_code == 204
    principal = f"/api/v1/things/sensor-1/principals/{certificate_id}"
    assert (await operator_api.delete(principal)).status_code == 204
    assert (await operator_api.delete(f"/api/v1/certificates/{certificate_id}")).status_code == 204
    assert (await operator_api.get(f"/api/v1/certificates/{certificate_id}")).status_code == 404


async def test_certificate_from_csr_returns_no_key(operator_api: httpx.AsyncClient) -> None:
    created = await operator_api.post(
        "/api/v1/certificates", json={"csr": signing_request("device"), "setAsActive": False}
    )
    assert created.status_code == 201, created.text
    assert created.json()["privateKey"] is None
    assert created.json()["status"] == "INACTIVE"
    listing = (await operator_api.get("/api/v1/certificates", params={"status": "INACTIVE"})).json()
    assert listing["count"] == 1


async def test_group_attachment_over_the_api(operator_api: httpx.AsyncClient) -> None:
    await operator_api.post("/api/v1/thing-groups", json={"thingGroupName": "fleet"})
    path = f"/api/v1/policies/{DEFAULT_DEVICE_POLICY_NAME}/targets/thing-groups/fleet"
    assert (await operator_api.put(path)).status_code == 204
    in_use = await operator_api.delete(f"/api/v1/policies/{DEFAULT_DEVICE_POLICY_NAME}")
    assert in_use.status_code == 409
    assert "thing group 'fleet'" in in_use.json()["message"]
    assert (await operator_api.delete(path)).status_code == 204
    missing = await operator_api.put(
        f"/api/v1/policies/{DEFAULT_DEVICE_POLICY_NAME}/targets/thing-groups/nope"
    )
    assert missing.json() == {"code": "not_found", "message": "Thing group 'nope' does not exist"}


async def test_policy_crud_over_the_api(operator_api: httpx.AsyncClient) -> None:
    document = json.dumps(
        {
            "Version": "2012-10-17",
            "Statement": [{"Effect": "Allow", "Action": "iot:Connect", "Resource": "*"}],
        }
    )
    created = await operator_api.post(
        "/api/v1/policies", json={"policyName": "connect-only", "policyDocument": document}
    )
    assert created.status_code == 201, created.text
    duplicate = await operator_api.post(
        "/api/v1/policies", json={"policyName": "connect-only", "policyDocument": document}
    )
    assert duplicate.json()["code"] == "already_exists"
    bad = await operator_api.patch("/api/v1/policies/connect-only", json={"policyDocument": '{"Version": 1}'})
    assert bad.status_code == 422
    assert "'policyDocument'" in bad.json()["message"]
    assert "Statement" in bad.json()["message"]
    names = [p["policyName"] for p in (await operator_api.get("/api/v1/policies")).json()["data"]]
    assert names == [DEFAULT_DEVICE_POLICY_NAME, "connect-only"]
    assert (await operator_api.delete("/api/v1/policies/connect-only")).status_code == 204


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"csr": "garbage"}, "'csr'"),
        ({"generateKeyPair": True, "thingName": "no such thing!"}, "thingName"),
        ({"generateKeyPair": False}, "generateKeyPair"),
        ({"csr": "x", "generateKeyPair": True}, "generateKeyPair"),
        ({"generateKeyPair": True, "validDays": 0}, "validDays"),
    ],
)
async def test_invalid_certificate_request_is_422_naming_the_field(
    operator_api: httpx.AsyncClient, body: dict[str, object], field: str
) -> None:
    response = await operator_api.post("/api/v1/certificates", json=body)
    assert response.status_code == 422
    assert response.json()["code"] == "invalid_request"
    assert field in response.json()["message"]


async def test_certificate_for_another_thing_cannot_be_attached(operator_api: httpx.AsyncClient) -> None:
    for name in ("a", "b"):
        await operator_api.post("/api/v1/things", json={"thingName": name})
    created = await operator_api.post(
        "/api/v1/certificates", json={"generateKeyPair": True, "thingName": "a"}
    )
    response = await operator_api.put(f"/api/v1/things/b/principals/{created.json()['certificateId']}")
    assert response.status_code == 409
    assert "issued for 'a'" in response.json()["message"]


async def test_read_only_may_read_but_not_write(reader_api: httpx.AsyncClient) -> None:
    assert (await reader_api.get("/api/v1/certificates")).status_code == 200
    assert (await reader_api.get("/api/v1/policies")).status_code == 200
    refused = await reader_api.post("/api/v1/certificates", json={"generateKeyPair": True})
    assert refused.status_code == 403
    assert refused.json()["code"] == "forbidden"
    refused = await reader_api.delete(f"/api/v1/policies/{DEFAULT_DEVICE_POLICY_NAME}")
    assert refused.status_code == 403


async def test_identity_routes_need_a_token(api_client: ApiClientFactory) -> None:
    async with api_client(None) as anonymous:
        response = await anonymous.get("/api/v1/certificates")
    assert response.status_code == 401


async def test_malformed_certificate_id_in_the_path_is_422(reader_api: httpx.AsyncClient) -> None:
    response = await reader_api.get("/api/v1/certificates/XYZ")
    assert response.status_code == 422
    assert "'certificateId' in the path" in response.json()["message"]
