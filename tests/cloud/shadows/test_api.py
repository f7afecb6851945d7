"""Shadows through the REST API in AWS IoT's data-plane shapes: GetThingShadow, UpdateThingShadow,
DeleteThingShadow with ``?name=``, ListNamedShadowsForThing; AWS's statuses for refusals; reads for any role."""

from __future__ import annotations

import json

import httpx

from tests.cloud.conftest import ApiClientFactory

SHADOW = "/api/v1/things/Pump-1/shadow"


async def test_update_get_delete_the_classic_shadow(admin_api: httpx.AsyncClient) -> None:
    updated = await admin_api.post(SHADOW, json={"state": {"desired": {"speed": 3}}, "clientToken": "c1"})
    assert updated.status_code == 200, updated.text
    assert (updated.json()["version"], updated.json()["clientToken"]) == (1, "c1")
    assert updated.json()["metadata"]["desired"]["speed"]["timestamp"] == updated.json()["timestamp"]

    got = (await admin_api.get(SHADOW)).json()
    assert got["state"] == {"desired": {"speed": 3}, "delta": {"speed": 3}}

    deleted = await admin_api.delete(SHADOW)
    assert deleted.status_code == 200, deleted.text
    assert deleted.json()["version"] == 1
    missing = await admin_api.get(SHADOW)
    assert missing.status_code == 404, missing.text
    assert missing.json()["code"] == "not_found"


async def test_named_shadows_are_listed_and_kept_apart(admin_api: httpx.AsyncClient) -> None:
    for name in ("b", "a"):
        response = await admin_api.post(
            SHADOW, params={"name": name}, json={"state": {"reported": {"n": name}}}
        )
        assert response.status_code == 200, response.text

    listed = (await admin_api.get("/api/v1/things/shadow/ListNamedShadowsForThing/Pump-1")).json()
    assert (listed["results"], listed["nextToken"]) == (["a", "b"], None)
    paged = (await admin_api.get("/api/v1/things/shadow/ListNamedShadowsForThing/Pump-1?pageSize=1")).json()
    assert paged["results"] == ["a"]
    assert paged["nextToken"]
    assert (await admin_api.get(SHADOW, params={"name": "a"})).json()["state"] == {"reported": {"n": "a"}}
    assert (await admin_api.get(SHADOW)).status_code == 404


async def test_refusals_use_aws_statuses(admin_api: httpx.AsyncClient) -> None:
    await admin_api.post(SHADOW, json={"state": {"reported": {"x": 1}}})

    stale = await admin_api.post(SHADOW, json={"state": {"reported": {"x": 2}}, "version": 0})
    assert stale.status_code == 409, stale.text
    assert stale.json()["code"] == "version_conflict"
    big = await admin_api.post(SHADOW, json={"state": {"reported": {"blob": "x" * 9000}}})
    assert big.status_code == 413, big.text
    assert "maximum size" in big.json()["message"]
    bad = await admin_api.post(SHADOW, content=b"{not json", headers={"Content-Type": "application/json"})
    assert bad.status_code == 400, bad.text
    assert bad.json()["message"] == "Invalid JSON"
    deep = await admin_api.post(
        SHADOW, content=json.dumps({"state": {"desired": {"a": {"b": {"c": {"d": {"e": {"f": 1}}}}}}}})
    )
    assert deep.status_code == 400, deep.text
    assert "nesting" in deep.json()["message"]
    assert (await admin_api.get(SHADOW)).json()["version"] == 1


async def test_a_read_only_token_reads_but_cannot_update(
    admin_api: httpx.AsyncClient, api_client: ApiClientFactory
) -> None:
    await admin_api.post(SHADOW, json={"state": {"reported": {"x": 1}}})
    created = await admin_api.post("/api/v1/tokens", json={"name": "viewer", "role": "read-only"})
    async with api_client(created.json()["token"]) as viewer:
        assert (await viewer.get(SHADOW)).status_code == 200
        assert (await viewer.post(SHADOW, json={"state": {"reported": {"x": 2}}})).status_code == 403
