"""The client-device API in process: associations in AWS's batch shape (error entries naming each thing that could
not be applied, the rest stored), connectivity checked field by field with the state unchanged on refusal, and
writes refused to a read-only token."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.cloud.conftest import ApiClientFactory

CORE = "/api/v1/core-devices/core-1"


@pytest.fixture
async def api(admin_api: httpx.AsyncClient) -> httpx.AsyncClient:
    """The admin client, with things core-1, sensor-1 and sensor-2."""
    for name in ("core-1", "sensor-1", "sensor-2"):
        response = await admin_api.post("/api/v1/things", json={"thingName": name})
        assert response.status_code == 201, response.text
    return admin_api


def entries(*things: str) -> dict[str, Any]:
    return {"entries": [{"thingName": thing} for thing in things]}


async def associated(api: httpx.AsyncClient) -> list[dict[str, Any]]:
    response = await api.get(f"{CORE}/client-devices")
    assert response.status_code == 200, response.text
    devices: list[dict[str, Any]] = response.json()["associatedClientDevices"]
    return devices


async def test_associate_stores_the_known_things_and_names_the_others(api: httpx.AsyncClient) -> None:
    response = await api.post(f"{CORE}/client-devices/associate", json=entries("sensor-1", "ghost", "core-1"))
    assert response.status_code == 200, response.text
    errors = {entry["thingName"]: entry for entry in response.json()["errorEntries"]}
    assert errors["ghost"]["code"] == "ResourceNotFoundException"
    assert "ghost" in errors["ghost"]["message"]
    assert errors["core-1"]["code"] == "ValidationException"
    assert "core device itself" in errors["core-1"]["message"]
    assert [device["thingName"] for device in await associated(api)] == ["sensor-1"]


async def test_associating_twice_keeps_the_first_association(api: httpx.AsyncClient) -> None:
    first = await api.post(f"{CORE}/client-devices/associate", json=entries("sensor-1"))
    assert first.json() == {"errorEntries": []}
    [before] = await associated(api)
    again = await api.post(f"{CORE}/client-devices/associate", json=entries("sensor-1", "sensor-2"))
    assert again.json() == {"errorEntries": []}
    devices = await associated(api)
    assert [device["thingName"] for device in devices] == ["sensor-1", "sensor-2"]
    assert devices[0] == before


async def test_disassociate_removes_only_the_named_devices(api: httpx.AsyncClient) -> None:
    await api.post(f"{CORE}/client-devices/associate", json=entries("sensor-1", "sensor-2"))
    response = await api.post(f"{CORE}/client-devices/disassociate", json=entries("sensor-1", "ghost"))
    assert response.status_code == 200, response.text
    assert [entry["thingName"] for entry in response.json()["errorEntries"]] == ["ghost"]
    assert [device["thingName"] for device in await associated(api)] == ["sensor-2"]


async def test_a_core_device_that_is_no_thing_is_404(api: httpx.AsyncClient) -> None:
    response = await api.post(
        "/api/v1/core-devices/nobody/client-devices/associate", json=entries("sensor-1")
    )
    assert response.status_code == 404
    assert "nobody" in response.json()["message"]
    assert (await api.get("/api/v1/core-devices/nobody/connectivity")).status_code == 404


async def test_connectivity_is_replaced_and_versioned(api: httpx.AsyncClient) -> None:
    assert (await api.get(f"{CORE}/connectivity")).json()["version"] == 0
    info = [
        {"id": "eth0", "hostAddress": "192.0.2.7", "portNumber": 8883, "metadata": "wired"},
        {"id": "dns", "hostAddress": "core-1.plant.example", "portNumber": 443, "metadata": ""},
    ]
    response = await api.put(f"{CORE}/connectivity", json={"connectivityInfo": info})
    assert response.status_code == 200, response.text
    assert response.json()["version"] == 1
    again = await api.put(f"{CORE}/connectivity", json={"connectivityInfo": info[:1]})
    assert again.json()["version"] == 2
    stored = (await api.get(f"{CORE}/connectivity")).json()
    assert (stored["connectivityInfo"], stored["version"]) == (info[:1], 2)


def address(**fields: Any) -> dict[str, Any]:
    entry: dict[str, Any] = {"id": "eth0", "hostAddress": "192.0.2.7", "portNumber": 8883}
    entry.update(fields)
    return entry


@pytest.mark.parametrize(
    ("info", "field"),
    [
        ([address(portNumber=0)], "connectivityInfo.0.portNumber"),
        ([address(portNumber=70000)], "connectivityInfo.0.portNumber"),
        ([address(hostAddress="not a host!")], "connectivityInfo[0].hostAddress"),
        ([address(id=f"a{index}") for index in range(65)], "connectivityInfo"),
        ([address(), address()], "connectivityInfo[1].id"),
    ],
)
async def test_bad_connectivity_is_refused_naming_the_field(
    api: httpx.AsyncClient, info: list[dict[str, Any]], field: str
) -> None:
    await api.put(f"{CORE}/connectivity", json={"connectivityInfo": [address()]})
    response = await api.put(f"{CORE}/connectivity", json={"connectivityInfo": info})
    assert response.status_code == 422, response.text
    assert response.json()["code"] == "invalid_request"
    assert field in response.json()["message"]
    stored = (await api.get(f"{CORE}/connectivity")).json()
    assert (stored["version"], len(stored["connectivityInfo"])) == (1, 1)


async def test_a_read_only_token_reads_but_cannot_associate(
    api: httpx.AsyncClient, api_client: ApiClientFactory
) -> None:
    issued = await api.post("/api/v1/tokens", json={"name": "viewer", "role": "read-only"})
    assert issued.status_code == 201, issued.text
    async with api_client(issued.json()["token"]) as viewer:
        assert (await viewer.get(f"{CORE}/client-devices")).status_code == 200
        refused = await viewer.post(f"{CORE}/client-devices/associate", json=entries("sensor-1"))
        assert refused.status_code == 403
        assert refused.json()["code"] == "forbidden"
        put = await viewer.put(f"{CORE}/connectivity", json={"connectivityInfo": [address()]})
        assert put.status_code == 403
    assert await associated(api) == []
