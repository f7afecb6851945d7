"""The objects devices uploaded through S3 export tasks, as the API lists and serves them: filed under the thing,
replaced when uploaded again, listed by thing, bucket and key prefix with a cursor, downloaded by any role, and
a bad parameter answered with 422 naming it."""

from __future__ import annotations

import hashlib
import io
import json
from collections.abc import Callable
from pathlib import Path

import httpx
from fastapi import FastAPI

from edgewise.cloud.app import FirstStart
from edgewise.cloud.telemetry.objects import record_object
from tests.cloud.telemetry.test_cli import LiveApi, ok, run
from tests.cloud.telemetry.test_cli import live_api as live_api  # the fixture, shared with the CLI tests

ApiClientFactory = Callable[[str | None], httpx.AsyncClient]


def upload(app: FastAPI, thing: str, bucket: str, key: str, data: bytes) -> None:
    """What the HTTPS listener does once an upload is in: the bytes into the store, the object filed."""
    services = app.state.services
    stored = services.artifact_store.put(io.BytesIO(data))
    with services.sessions() as session:
        record_object(
            session,
            thing_name=thing,
            bucket=bucket,
            key=key,
            sha256=stored.sha256,
            size=stored.size,
            user_metadata={"origin": thing},
            certificate_id="c" * 64,
        )


async def test_objects_are_listed_by_filter_and_page_and_downloaded_by_a_reader(
    app: FastAPI, admin_api: httpx.AsyncClient, api_client: ApiClientFactory
) -> None:
    upload(app, "cam-1", "frames", "2026/12/a.jpg", b"first")
    upload(app, "cam-1", "frames", "2026/12/b.jpg", b"second")
    upload(app, "cam-2", "frames", "2026/12/a.jpg", b"other thing")
    upload(app, "cam-1", "logs", "x.log", b"log")
    upload(app, "cam-1", "frames", "2026/12/a.jpg", b"replaced")

    answer = await admin_api.get("/api/v1/telemetry/objects", params={"thing": "cam-1", "bucket": "frames"})
    assert answer.status_code == 200, answer.text
    listed = answer.json()
    assert [(item["key"], item["size"]) for item in listed["data"]] == [
        ("2026/12/a.jpg", len(b"replaced")),
        ("2026/12/b.jpg", len(b"second")),
    ]
    first = listed["data"][0]
    assert first["sha256"] == hashlib.sha256(b"replaced").hexdigest()
    assert first["userMetadata"] == {"origin": "cam-1"}
    page = (await admin_api.get("/api/v1/telemetry/objects", params={"limit": 2})).json()
    rest = (await admin_api.get("/api/v1/telemetry/objects", params={"after": page["cursor"]})).json()
    assert page["more"] is True
    assert rest["more"] is False
    assert len(page["data"]) + len(rest["data"]) == 4
    prefixed = (await admin_api.get("/api/v1/telemetry/objects", params={"prefix": "x."})).json()
    assert [item["bucket"] for item in prefixed["data"]] == ["logs"]

    response = await admin_api.post("/api/v1/tokens", json={"name": "viewer", "role": "read-only"})
    async with api_client(response.json()["token"]) as viewer:
        content = await viewer.get(f"/api/v1/telemetry/objects/{first['id']}/content")
    assert content.status_code == 200
    assert content.content == b"replaced"
    assert content.headers["etag"] == f'"{first["sha256"]}"'


async def test_a_missing_object_is_404_and_bad_parameters_are_422_naming_them(
    admin_api: httpx.AsyncClient,
) -> None:
    missing = await admin_api.get("/api/v1/telemetry/objects/12345/content")
    assert missing.status_code == 404
    for name, value in (("bucket", "Not_A_Bucket"), ("limit", "0"), ("thing", "")):
        answer = await admin_api.get("/api/v1/telemetry/objects", params={name: value})
        assert answer.status_code == 422, (name, answer.text)
        assert name in answer.text


def test_the_cli_lists_and_downloads_objects(
    app: FastAPI, live_api: LiveApi, first_start: FirstStart, tmp_path: Path
) -> None:
    upload(app, "cam-1", "frames", "2026/12/a.jpg", b"jpeg bytes")
    upload(app, "cam-2", "frames", "2026/12/a.jpg", b"other")

    listed = json.loads(ok(live_api, first_start, "objects", "list", "--thing", "cam-1", "--json"))
    table = ok(live_api, first_start, "objects", "list", "--bucket", "frames")
    written = ok(
        live_api,
        first_start,
        "objects",
        "get",
        "cam-1",
        "frames",
        "2026/12/a.jpg",
        "--out",
        str(tmp_path / "a"),
    )
    missing = run(
        live_api, first_start, "objects", "get", "cam-1", "frames", "nope", "--out", str(tmp_path / "b")
    )

    assert [(item["thing"], item["key"]) for item in listed] == [("cam-1", "2026/12/a.jpg")]
    assert "cam-2" in table
    assert "Wrote 10 bytes" in written
    assert (tmp_path / "a").read_bytes() == b"jpeg bytes"
    assert missing.exit_code != 0
    assert "uploaded no object 'nope'" in missing.stderr
    assert not (tmp_path / "b").exists()
