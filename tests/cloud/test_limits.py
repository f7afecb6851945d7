"""Request body limits on a real uvicorn: a body is authenticated and capped before the API reads it, so a client
that announces a huge body is answered (401 or 413) while it has sent only its first kilobyte."""

from __future__ import annotations

import asyncio
import hashlib
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn

from edgewise.cloud.app import FirstStart, create_app, initialize
from edgewise.cloud.listening import ServerWithoutSignals, bind
from tests.support.waiting import eventually

UPLOAD_MAX = 2 * 1024 * 1024
BODY_MAX = 1024 * 1024


@pytest.fixture
def first(tmp_path: Path) -> FirstStart:
    return initialize(tmp_path / "cloud", api_upload_max_bytes=UPLOAD_MAX)


@pytest.fixture
async def api(first: FirstStart) -> AsyncIterator[int]:
    """The API served by uvicorn on a free loopback port; yields the port."""
    app = create_app(first.settings)
    sock = bind("127.0.0.1", 0)
    server = ServerWithoutSignals(uvicorn.Config(app, log_config=None, access_log=False, lifespan="off"))
    serving = asyncio.create_task(server.serve(sockets=[sock]))
    await eventually(lambda: server.started or serving.done(), what="uvicorn started")
    yield sock.getsockname()[1]
    server.should_exit = True
    await serving
    sock.close()
    app.state.services.engine.dispose()


async def _answer(port: int, head: str, first_bytes: bytes) -> tuple[int, dict[str, str], dict[str, Any]]:
    """Send ``head`` and the start of a body, then read the answer without sending the rest."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(head.encode() + b"\r\n" + first_bytes)
        await writer.drain()
        async with asyncio.timeout(10):
            response = await reader.read()  # until the server closes the connection
    finally:
        writer.close()
    header_text, _, body = response.partition(b"\r\n\r\n")
    status_line, *lines = header_text.decode().split("\r\n")
    headers = {name.lower(): value.strip() for name, _, value in (line.partition(":") for line in lines)}
    return int(status_line.split()[1]), headers, json.loads(body)


def _head(path: str, *headers: str, method: str = "POST") -> str:
    return "\r\n".join([f"{method} {path} HTTP/1.1", "Host: cloud", *headers, ""])


@pytest.mark.parametrize(
    ("authorization", "problem"),
    [(None, "has no 'Authorization: Bearer <token>' header"), ("Bearer ewt_forged", "not valid")],
)
async def test_an_unauthenticated_body_is_refused_before_it_is_read(
    api: int, authorization: str | None, problem: str
) -> None:
    extra = [] if authorization is None else [f"Authorization: {authorization}"]
    status, headers, body = await _answer(
        api, _head("/api/v1/things", "Content-Length: 200000000", *extra), b"{" + b" " * 1023
    )
    assert (status, body["code"]) == (401, "unauthenticated")
    assert problem in body["message"]
    assert (headers["www-authenticate"], headers["connection"]) == ("Bearer", "close")


async def test_an_authenticated_body_over_the_limit_is_refused_before_it_is_read(
    api: int, first: FirstStart
) -> None:
    status, headers, body = await _answer(
        api,
        _head("/api/v1/things", "Content-Length: 200000000", f"Authorization: Bearer {first.admin_token}"),
        b"{" + b" " * 1023,
    )
    assert (status, body["code"], headers["connection"]) == (413, "payload_too_large", "close")
    assert body["message"] == (
        f"POST /api/v1/things: The request body is larger than the {BODY_MAX} bytes this operation accepts"
    )


async def test_a_chunked_body_is_cut_off_at_the_limit_and_nothing_is_created(
    api: int, first: FirstStart
) -> None:
    chunk = b" " * 65_536
    chunks = b"".join(b"%x\r\n%s\r\n" % (len(chunk), chunk) for _ in range(BODY_MAX // len(chunk) + 1))
    status, _headers, body = await _answer(
        api,
        _head("/api/v1/things", "Transfer-Encoding: chunked", f"Authorization: Bearer {first.admin_token}"),
        chunks,
    )
    assert (status, body["code"]) == (413, "payload_too_large")
    assert f"larger than the {BODY_MAX} bytes" in body["message"]
    async with httpx.AsyncClient(
        base_url=f"http://127.0.0.1:{api}", headers={"Authorization": f"Bearer {first.admin_token}"}
    ) as client:
        assert (await client.get("/api/v1/things")).json()["count"] == 0


async def test_an_artifact_upload_may_be_larger_up_to_its_own_limit(api: int, first: FirstStart) -> None:
    data = b"a" * (BODY_MAX + 1)
    sha256 = hashlib.sha256(data).hexdigest()
    async with httpx.AsyncClient(
        base_url=f"http://127.0.0.1:{api}", headers={"Authorization": f"Bearer {first.admin_token}"}
    ) as client:
        stored = await client.put(f"/api/v1/artifacts/{sha256}", params={"size": len(data)}, content=data)
        assert (stored.status_code, stored.json()["stored"]) == (200, True), stored.text
        refused = await client.put(
            f"/api/v1/artifacts/{'0' * 64}", params={"size": UPLOAD_MAX + 1}, content=b""
        )
        assert refused.status_code == 422
        assert refused.json()["message"] == (
            f"Field 'size' is invalid: {UPLOAD_MAX + 1} bytes is more than the {UPLOAD_MAX} bytes an artifact"
            " may have"
        )
    status, _headers, body = await _answer(
        api,
        _head(
            f"/api/v1/artifacts/{'1' * 64}?size={UPLOAD_MAX + 1}",
            f"Content-Length: {UPLOAD_MAX + 1}",
            f"Authorization: Bearer {first.admin_token}",
            method="PUT",
        ),
        b"b" * 1024,
    )
    assert (status, body["code"]) == (413, "payload_too_large")
    assert f"larger than the {UPLOAD_MAX} bytes" in body["message"]
