"""The component and artifact routes: uploads (skipped, staged, resumed, checked), publish, reads, delete, roles,
and bad input named by field, through the real app; the broken-off upload through a real server socket."""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
import yaml
from fastapi import FastAPI

from edgewise.cloud.app import create_app, initialize
from tests.cloud.components.conftest import recipe, sha256_of
from tests.support.ports import free_port
from tests.support.waiting import wait_until

ApiClientFactory = Callable[[str | None], httpx.AsyncClient]
APP = b"#!/bin/sh\necho hello\n" * 100
LIB = b"\x7fELF library bytes" * 50


async def put(
    api: httpx.AsyncClient, data: bytes, *, size: int | None = None, offset: int = 0, sha: str | None = None
) -> httpx.Response:
    sha = sha or sha256_of(data if size is None else b"")
    return await api.put(
        f"/api/v1/artifacts/{sha}",
        params={"size": len(data) if size is None else size, "offset": offset},
        content=data,
    )


async def upload(api: httpx.AsyncClient, data: bytes) -> str:
    response = await api.put(f"/api/v1/artifacts/{sha256_of(data)}", params={"size": len(data)}, content=data)
    assert response.status_code == 200, response.text
    assert response.json()["stored"] is True
    return sha256_of(data)


async def publish_hello(api: httpx.AsyncClient, version: str = "1.0.0") -> httpx.Response:
    sha_app, sha_lib = await upload(api, APP), await upload(api, LIB)
    return await api.post(
        "/api/v1/components",
        json={
            "recipe": json.dumps(recipe(version=version, uris=("s3://b/app.zip", "s3://b/lib.so"))),
            "artifacts": {"app.zip": sha_app, "lib.so": sha_lib},
        },
    )


async def test_an_upload_can_be_staged_in_parts_then_is_stored(admin_api: httpx.AsyncClient) -> None:
    sha = sha256_of(APP)
    state = await admin_api.get(f"/api/v1/artifacts/{sha}")
    assert state.json() == {"sha256": sha, "stored": False, "size": None, "receivedBytes": 0}
    first = await admin_api.put(f"/api/v1/artifacts/{sha}", params={"size": len(APP)}, content=APP[:1000])
    assert first.json() == {"sha256": sha, "stored": False, "size": None, "receivedBytes": 1000}
    assert (await admin_api.get(f"/api/v1/artifacts/{sha}")).json()["receivedBytes"] == 1000
    rest = await admin_api.put(
        f"/api/v1/artifacts/{sha}", params={"size": len(APP), "offset": 1000}, content=APP[1000:]
    )
    assert rest.json() == {"sha256": sha, "stored": True, "size": len(APP), "receivedBytes": len(APP)}
    again = await admin_api.put(f"/api/v1/artifacts/{sha}", params={"size": len(APP)}, content=APP)
    assert again.json()["stored"] is True


async def test_an_upload_at_the_wrong_offset_is_a_conflict_naming_the_right_one(
    admin_api: httpx.AsyncClient,
) -> None:
    sha = sha256_of(APP)
    await admin_api.put(f"/api/v1/artifacts/{sha}", params={"size": len(APP)}, content=APP[:500])
    response = await admin_api.put(
        f"/api/v1/artifacts/{sha}", params={"size": len(APP), "offset": 400}, content=APP[400:]
    )
    assert response.status_code == 409
    assert response.json() == {
        "code": "upload_offset_mismatch",
        "message": f"The upload of artifact {sha} has 500 bytes staged, so it continues at offset 500, not 400",
    }


async def test_a_body_beyond_the_size_leaves_the_staged_bytes_unchanged(admin_api: httpx.AsyncClient) -> None:
    sha = sha256_of(APP)
    await admin_api.put(f"/api/v1/artifacts/{sha}", params={"size": len(APP)}, content=APP[:500])
    response = await admin_api.put(
        f"/api/v1/artifacts/{sha}", params={"size": len(APP), "offset": 500}, content=APP[500:] + b"extra"
    )
    assert response.status_code == 422
    assert "Field 'size' is invalid: the body goes beyond the announced size" in response.json()["message"]
    assert (await admin_api.get(f"/api/v1/artifacts/{sha}")).json()["receivedBytes"] == 500


async def test_bytes_with_another_digest_are_refused_and_dropped(admin_api: httpx.AsyncClient) -> None:
    claimed = sha256_of(b"what the client claims")
    response = await admin_api.put(f"/api/v1/artifacts/{claimed}", params={"size": len(APP)}, content=APP)
    assert response.status_code == 422
    assert response.json()["message"].startswith(
        "Field 'sha256' is invalid: the 2100 bytes received have SHA-256"
    )
    assert (await admin_api.get(f"/api/v1/artifacts/{claimed}")).json()["receivedBytes"] == 0


@pytest.mark.parametrize(
    ("path", "params", "field"),
    [
        ("/api/v1/artifacts/ABC", {"size": 1}, "sha256"),
        (f"/api/v1/artifacts/{'a' * 64}", {}, "size"),
        (f"/api/v1/artifacts/{'a' * 64}", {"size": -1}, "size"),
        (f"/api/v1/artifacts/{'a' * 64}", {"size": 1, "offset": "x"}, "offset"),
        (f"/api/v1/artifacts/{'a' * 64}", {"size": 1, "chunk": 2}, "chunk"),
    ],
)
async def test_bad_upload_requests_name_the_field(
    admin_api: httpx.AsyncClient, path: str, params: dict[str, Any], field: str
) -> None:
    response = await admin_api.put(path, params=params, content=b"x")
    assert response.status_code == 422
    assert f"'{field}'" in response.json()["message"]


async def test_offset_beyond_size_is_refused(admin_api: httpx.AsyncClient) -> None:
    response = await admin_api.put(
        f"/api/v1/artifacts/{'b' * 64}", params={"size": 2, "offset": 3}, content=b""
    )
    assert response.status_code == 422
    assert response.json()["message"] == "Field 'offset' is invalid: 3 is beyond the file's size of 2 bytes"


async def test_publish_then_read_every_way(admin_api: httpx.AsyncClient) -> None:
    response = await publish_hello(admin_api)
    assert response.status_code == 201, response.text
    published = response.json()
    assert published["componentName"] == "com.example.Hello"
    assert published["publishedBy"] == "admin"
    assert [(a["fileName"], a["size"], a["algorithm"]) for a in published["artifacts"]] == [
        ("app.zip", len(APP), "SHA-256"),
        ("lib.so", len(LIB), "SHA-256"),
    ]
    assert (
        published["recipe"]["Manifests"][0]["Artifacts"][0]["Digest"] == published["artifacts"][0]["digest"]
    )

    again = await publish_hello(admin_api)
    assert again.status_code == 200
    assert again.json()["createdAt"] == published["createdAt"]
    assert (await publish_hello(admin_api, "1.1.0")).status_code == 201

    listed = (await admin_api.get("/api/v1/components")).json()
    assert listed["count"] == 1
    assert listed["data"][0] | {"updatedAt": None} == {
        "componentName": "com.example.Hello",
        "latestVersion": "1.1.0",
        "description": "com.example.Hello for tests",
        "publisher": "Edgewise tests",
        "versionCount": 2,
        "updatedAt": None,
    }
    versions = (await admin_api.get("/api/v1/components/com.example.Hello/versions")).json()
    assert [item["componentVersion"] for item in versions["data"]] == ["1.1.0", "1.0.0"]
    described = (await admin_api.get("/api/v1/components/com.example.Hello/versions/1.0.0")).json()
    assert described == published
    as_json = await admin_api.get("/api/v1/components/com.example.Hello/versions/1.0.0/recipe")
    assert as_json.headers["content-type"] == "application/json"
    assert as_json.json() == published["recipe"]
    as_yaml = await admin_api.get(
        "/api/v1/components/com.example.Hello/versions/1.0.0/recipe", params={"format": "yaml"}
    )
    assert as_yaml.headers["content-type"].startswith("application/yaml")
    assert yaml.safe_load(as_yaml.text) == published["recipe"]

    deleted = await admin_api.delete("/api/v1/components/com.example.Hello/versions/1.0.0")
    assert deleted.status_code == 204
    missing = await admin_api.get("/api/v1/components/com.example.Hello/versions/1.0.0")
    assert missing.status_code == 404
    assert missing.json()["message"] == "Component version 'com.example.Hello@1.0.0' does not exist"


async def test_republishing_differently_is_409(admin_api: httpx.AsyncClient) -> None:
    await publish_hello(admin_api)
    sha = await upload(admin_api, b"different app")
    response = await admin_api.post(
        "/api/v1/components",
        json={"recipe": recipe(uris=("s3://b/app.zip",)), "artifacts": {"app.zip": sha}},
    )
    assert response.status_code == 409
    assert response.json()["code"] == "conflict"


@pytest.mark.parametrize(
    ("body", "needle"),
    [
        ({"recipe": "RecipeFormatVersion: 2020-01-25\n"}, "recipe.ComponentName: is required"),
        ({"recipe": recipe(), "artifacts": {}}, "recipe.Manifests[0].Artifacts[0].Uri: no uploaded artifact"),
        ({"recipe": recipe(), "artifacts": {"app.zip": "NOTHEX"}}, "field 'artifacts.app.zip' in the body"),
        ({"recipe": recipe(), "artifacts": {"a/b": "a" * 64}}, "field 'artifacts.a/b.[key]' in the body"),
        ({"recipe": 42}, "field 'recipe"),
        ({"recipe": recipe(), "extra": 1}, "field 'extra' in the body"),
        ({}, "field 'recipe' in the body"),
    ],
)
async def test_bad_publish_requests_name_the_field(
    admin_api: httpx.AsyncClient, body: dict[str, Any], needle: str
) -> None:
    response = await admin_api.post("/api/v1/components", json=body)
    assert response.status_code == 422, response.text
    assert response.json()["code"] == "invalid_request"
    assert needle in response.json()["message"]
    assert (await admin_api.get("/api/v1/components")).json()["count"] == 0


@pytest.mark.parametrize(
    ("path", "status", "needle"),
    [
        ("/api/v1/components/bad%20name/versions", 422, "componentName"),
        ("/api/v1/components/com.example.None/versions", 404, "Component 'com.example.None' does not exist"),
        ("/api/v1/components/com.example.None/versions/one", 422, "componentVersion"),
        ("/api/v1/components?namePrefix=%25", 422, "namePrefix"),
        ("/api/v1/components/x/versions/1.0.0/recipe?format=xml", 422, "format"),
    ],
)
async def test_bad_reads_name_the_problem(
    admin_api: httpx.AsyncClient, path: str, status: int, needle: str
) -> None:
    response = await admin_api.get(path)
    assert response.status_code == status
    assert needle in response.json()["message"]


async def test_read_only_tokens_read_but_cannot_upload_publish_or_delete(
    admin_api: httpx.AsyncClient, api_client: ApiClientFactory
) -> None:
    await publish_hello(admin_api)
    created = await admin_api.post("/api/v1/tokens", json={"name": "viewer", "role": "read-only"})
    async with api_client(created.json()["token"]) as viewer:
        assert (await viewer.get("/api/v1/components")).status_code == 200
        assert (await viewer.get(f"/api/v1/artifacts/{sha256_of(APP)}")).status_code == 200
        assert (await put(viewer, b"data")).status_code == 403
        assert (await viewer.post("/api/v1/components", json={"recipe": recipe()})).status_code == 403
        assert (await viewer.delete("/api/v1/components/com.example.Hello/versions/1.0.0")).status_code == 403
    async with api_client(None) as anonymous:
        assert (await anonymous.get("/api/v1/components")).status_code == 401


async def test_uploads_and_publish_work_with_the_s3_store(
    tmp_path: Path, s3_bucket: str, s3_endpoint: str
) -> None:
    first = initialize(
        tmp_path / "cloud", artifact_store=f"s3://{s3_bucket}/edge", artifact_store_endpoint_url=s3_endpoint
    )
    app = create_app(first.settings)
    try:
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app),
            base_url="http://cloud",
            headers={"Authorization": f"Bearer {first.admin_token}"},
        ) as api:
            response = await publish_hello(api)
            assert response.status_code == 201, response.text
            assert response.json()["artifacts"][0]["sha256"] == sha256_of(APP)
            assert app.state.services.artifact_store.exists(sha256_of(LIB))
    finally:
        app.state.services.engine.dispose()


class LiveServer:
    """The API under a real uvicorn in a thread, for what only a real socket shows."""

    def __init__(self, app: FastAPI) -> None:
        self.port = free_port()
        self.server = uvicorn.Server(
            uvicorn.Config(
                app, host="127.0.0.1", port=self.port, log_config=None, access_log=False, lifespan="off"
            )
        )
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> LiveServer:
        self.thread.start()
        wait_until(lambda: self.server.started, what="uvicorn to start")
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.server.should_exit = True
        self.thread.join(10)


@pytest.fixture
def live_api(app: FastAPI) -> Iterator[LiveServer]:
    with LiveServer(app) as server:
        yield server


def test_an_upload_that_breaks_off_keeps_what_arrived_and_resumes(
    live_api: LiveServer, first_start: Any
) -> None:
    data = bytes(range(256)) * 4096  # 1 MiB
    sha = sha256_of(data)
    head = (
        f"PUT /api/v1/artifacts/{sha}?size={len(data)} HTTP/1.1\r\nHost: cloud\r\n"
        f"Authorization: Bearer {first_start.admin_token}\r\nContent-Length: {len(data)}\r\n\r\n"
    ).encode()
    with socket.create_connection(("127.0.0.1", live_api.port)) as connection:
        connection.sendall(head + data[:300_000])
    headers = {"Authorization": f"Bearer {first_start.admin_token}"}
    with httpx.Client(base_url=f"http://127.0.0.1:{live_api.port}/api/v1", headers=headers) as api:
        staged = wait_until(
            lambda: api.get(f"/artifacts/{sha}").json()["receivedBytes"] == 300_000 or None,
            what="the broken-off upload's bytes to be staged",
        )
        assert staged
        rest = api.put(
            f"/artifacts/{sha}", params={"size": len(data), "offset": 300_000}, content=data[300_000:]
        )
        assert rest.json()["stored"] is True, rest.text
