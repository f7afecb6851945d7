"""Provisioning templates over REST: CRUD, and errors that name the field."""

from __future__ import annotations

import httpx

from tests.cloud.test_provisioning_service import DEVICE_POLICY, fleet_template


async def test_template_lifecycle_over_the_api(admin_api: httpx.AsyncClient) -> None:
    await admin_api.post("/api/v1/policies", json={"policyName": "device", "policyDocument": DEVICE_POLICY})
    await admin_api.post("/api/v1/thing-groups", json={"thingGroupName": "fleet"})
    body = fleet_template()
    created = await admin_api.post(
        "/api/v1/provisioning-templates",
        json={"templateName": "fleet", "description": "sensors", "templateBody": body},
    )
    assert created.status_code == 201, created.text
    assert created.json()["templateBody"] == body
    assert created.json()["enabled"] is True
    updated = await admin_api.patch("/api/v1/provisioning-templates/fleet", json={"enabled": False})
    assert updated.json()["enabled"] is False
    assert updated.json()["description"] == "sensors"
    listing = (await admin_api.get("/api/v1/provisioning-templates")).json()
    assert [item["templateName"] for item in listing["data"]] == ["fleet"]
    assert listing["count"] == 1
    assert (await admin_api.delete("/api/v1/provisioning-templates/fleet")).status_code == 204
    assert (await admin_api.get("/api/v1/provisioning-templates/fleet")).status_code == 404


async def test_bad_template_body_is_422_naming_the_path(admin_api: httpx.AsyncClient) -> None:
    response = await admin_api.post(
        "/api/v1/provisioning-templates",
        json={"templateName": "fleet", "templateBody": {"Resources": {"x": {"Type": "AWS::S3::Bucket"}}}},
    )
    assert response.status_code == 422
    assert response.json()["code"] == "invalid_request"
    assert "templateBody.Resources.x" in response.json()["message"]


async def test_bad_template_name_is_422(admin_api: httpx.AsyncClient) -> None:
    response = await admin_api.post(
        "/api/v1/provisioning-templates", json={"templateName": "no spaces", "templateBody": fleet_template()}
    )
    assert response.status_code == 422
    assert "templateName" in response.json()["message"]
