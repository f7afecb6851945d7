"""The registry over REST: things, groups and memberships, with JSON error bodies that name the field."""

from __future__ import annotations

import httpx
import pytest


async def test_thing_lifecycle_over_the_api(admin_api: httpx.AsyncClient) -> None:
    created = await admin_api.post(
        "/api/v1/things", json={"thingName": "t1", "attributes": {"site": "berlin"}}
    )
    assert created.status_code == 201
    assert created.json()["version"] == 1
    updated = await admin_api.patch(
        "/api/v1/things/t1", json={"attributes": {"floor": "3"}, "merge": True, "expectedVersion": 1}
    )
    assert updated.json()["attributes"] == {"site": "berlin", "floor": "3"}
    stale = await admin_api.patch("/api/v1/things/t1", json={"thingTypeName": "probe", "expectedVersion": 1})
    assert stale.status_code == 409
    assert stale.json()["code"] == "version_conflict"
    listing = (await admin_api.get("/api/v1/things", params={"namePrefix": "t"})).json()
    assert [thing["thingName"] for thing in listing["data"]] == ["t1"]
    assert (await admin_api.delete("/api/v1/things/t1")).status_code == 204
    missing = await admin_api.get("/api/v1/things/t1")
    assert missing.status_code == 404
    assert missing.json() == {"code": "not_found", "message": "Thing 't1' does not exist"}


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"thingName": "bad name"}, "'thingName'"),
        ({"thingName": "t", "attributes": {"k": "no spaces"}}, "'attributes.k'"),
        ({"thingName": "t", "attributes": {"k": 3}}, "'attributes.k'"),
        ({"thingName": 5}, "'thingName'"),
        ({"thingName": "t", "colour": "red"}, "'colour'"),
        ({}, "'thingName'"),
    ],
)
async def test_invalid_thing_is_422_naming_the_field(
    admin_api: httpx.AsyncClient, body: dict[str, object], field: str
) -> None:
    response = await admin_api.post("/api/v1/things", json=body)
    assert response.status_code == 422
    assert response.json()["code"] == "invalid_request"
    assert field in response.json()["message"]


async def test_malformed_json_is_422(admin_api: httpx.AsyncClient) -> None:
    response = await admin_api.post(
        "/api/v1/things", content=b"{not json", headers={"Content-Type": "application/json"}
    )
    assert response.status_code == 422
    assert response.json()["code"] == "invalid_request"


async def test_invalid_path_name_is_422_naming_the_parameter(admin_api: httpx.AsyncClient) -> None:
    response = await admin_api.get("/api/v1/things/bad%20name")
    assert response.status_code == 422
    assert "'thingName' in the path" in response.json()["message"]


async def test_groups_hierarchy_and_membership_over_the_api(admin_api: httpx.AsyncClient) -> None:
    for body in [
        {"thingGroupName": "europe"},
        {"thingGroupName": "berlin", "parentGroupName": "europe", "description": "Berlin site"},
        {"thingGroupName": "floor-3", "queryString": "attributes.floor:3"},
    ]:
        response = await admin_api.post("/api/v1/thing-groups", json=body)
        assert response.status_code == 201, response.text
    await admin_api.post("/api/v1/things", json={"thingName": "t1", "attributes": {"floor": "3"}})
    assert (await admin_api.put("/api/v1/thing-groups/berlin/things/t1")).status_code == 204
    groups = (await admin_api.get("/api/v1/things/t1/groups")).json()
    assert groups["data"] == [
        {"thingGroupName": "berlin", "dynamic": False, "direct": True},
        {"thingGroupName": "europe", "dynamic": False, "direct": False},
        {"thingGroupName": "floor-3", "dynamic": True, "direct": True},
    ]
    members = (await admin_api.get("/api/v1/thing-groups/europe/things", params={"recursive": "true"})).json()
    assert [thing["thingName"] for thing in members["data"]] == ["t1"]
    dynamic = (await admin_api.get("/api/v1/thing-groups/floor-3/things")).json()
    assert dynamic["count"] == 1
    refused = await admin_api.put("/api/v1/thing-groups/floor-3/things/t1")
    assert refused.status_code == 409
    assert (await admin_api.delete("/api/v1/thing-groups/berlin/things/t1")).status_code == 204
    blocked = await admin_api.delete("/api/v1/thing-groups/europe")
    assert blocked.status_code == 409
    assert "'berlin'" in blocked.json()["message"]
    children = (await admin_api.get("/api/v1/thing-groups", params={"parentGroupName": "europe"})).json()
    assert [group["thingGroupName"] for group in children["data"]] == ["berlin"]
    assert children["data"][0]["parentGroupName"] == "europe"


async def test_invalid_dynamic_query_is_422_naming_query_string(admin_api: httpx.AsyncClient) -> None:
    response = await admin_api.post(
        "/api/v1/thing-groups", json={"thingGroupName": "d", "queryString": "attributes.floor:3 AND"}
    )
    assert response.status_code == 422
    assert response.json()["message"].startswith("Field 'queryString' is invalid")


async def test_unknown_route_and_method_keep_error_body(admin_api: httpx.AsyncClient) -> None:
    missing = await admin_api.get("/api/v1/nothing-here")
    assert (missing.status_code, missing.json()["code"]) == (404, "not_found")
    wrong = await admin_api.put("/api/v1/things")
    assert (wrong.status_code, wrong.json()["code"]) == (405, "method_not_allowed")
    assert wrong.headers["allow"]


@pytest.mark.parametrize(
    ("query", "problem"),
    [
        ("colour=red", "Field 'colour' is invalid: is not a query parameter"),
        ("limit=1&limit=2", "Field 'limit' is invalid: is given 2 times"),
    ],
)
async def test_unknown_or_repeated_query_parameter_is_422(
    admin_api: httpx.AsyncClient, query: str, problem: str
) -> None:
    response = await admin_api.get(f"/api/v1/things?{query}")
    assert response.status_code == 422
    assert response.json()["message"].startswith(problem)
