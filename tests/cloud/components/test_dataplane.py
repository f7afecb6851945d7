"""The data plane over real HTTPS (a server certificate from the cloud's CA, a client trusting only that CA):
signed downloads from both stores, ranges and resumption, and refusals of bad, tampered and expired URLs."""

from __future__ import annotations

import asyncio
import hashlib
import io
import os
import ssl
import stat
import time
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from edgewise.cloud.components.store import ArtifactStore
from edgewise.cloud.dataplane import DataPlaneServer, DataPlaneSettings, DataPlaneStartError, UrlSigner
from edgewise.cloud.dataplane.signing import SigningKeyError, load_or_create_signing_key
from edgewise.cloud.identity import CertificateAuthority
from tests.support.ports import free_port

DATA = os.urandom(3 * 1024 * 1024 + 123)
SHA = hashlib.sha256(DATA).hexdigest()


@pytest.fixture
def tls(tmp_path: Path) -> tuple[Path, Path, Path]:
    """The CA file, and a server certificate and key for 127.0.0.1 and localhost issued by it."""
    authority = CertificateAuthority.create("Edgewise test CA")
    issued, key_pem = authority.server_certificate(["127.0.0.1", "localhost"])
    directory = tmp_path / "tls"
    directory.mkdir()
    (directory / "ca.pem").write_text(authority.certificate_pem)
    (directory / "server.pem").write_text(issued.certificate_pem)
    (directory / "server.key").write_text(key_pem)
    return directory / "ca.pem", directory / "server.pem", directory / "server.key"


@pytest.fixture
async def data_plane(
    store: ArtifactStore, tls: tuple[Path, Path, Path], tmp_path: Path
) -> AsyncIterator[DataPlaneServer]:
    port = free_port()
    _, certificate, key = tls
    settings = DataPlaneSettings(
        host="127.0.0.1",
        port=port,
        url=f"https://127.0.0.1:{port}",
        certfile=certificate,
        keyfile=key,
        key_dir=tmp_path / "dataplane",
    )
    await asyncio.to_thread(store.put, io.BytesIO(DATA))
    server = DataPlaneServer(settings, store)
    await server.start()
    try:
        yield server
    finally:
        await server.stop()


@pytest.fixture
async def client(tls: tuple[Path, Path, Path]) -> AsyncIterator[httpx.AsyncClient]:
    context = ssl.create_default_context(cafile=str(tls[0]))
    async with httpx.AsyncClient(verify=context, timeout=30) as https:
        yield https


async def test_a_signed_url_downloads_the_whole_file(
    data_plane: DataPlaneServer, client: httpx.AsyncClient
) -> None:
    response = await client.get(data_plane.signer.sign(SHA))
    assert response.status_code == 200
    assert hashlib.sha256(response.content).hexdigest() == SHA
    assert response.headers["content-length"] == str(len(DATA))
    assert response.headers["accept-ranges"] == "bytes"
    assert response.headers["etag"] == f'"{SHA}"'


async def test_an_interrupted_download_resumes_from_where_it_stopped(
    data_plane: DataPlaneServer, client: httpx.AsyncClient
) -> None:
    url = data_plane.signer.sign(SHA)
    received = bytearray()
    async with client.stream("GET", url) as response:
        async for chunk in response.aiter_bytes():
            received += chunk
            if len(received) > 1024 * 1024:
                break  # the connection drops here
    resumed = await client.get(url, headers={"Range": f"bytes={len(received)}-"})
    assert resumed.status_code == 206
    assert resumed.headers["content-range"] == f"bytes {len(received)}-{len(DATA) - 1}/{len(DATA)}"
    assert hashlib.sha256(bytes(received) + resumed.content).hexdigest() == SHA


@pytest.mark.parametrize(
    ("header", "first", "last"),
    [
        ("bytes=10-19", 10, 19),
        ("bytes=-5", len(DATA) - 5, len(DATA) - 1),
        ("bytes=100-99999999999", 100, len(DATA) - 1),
    ],
)
async def test_ranges_are_served_as_206(
    data_plane: DataPlaneServer, client: httpx.AsyncClient, header: str, first: int, last: int
) -> None:
    response = await client.get(data_plane.signer.sign(SHA), headers={"Range": header})
    assert response.status_code == 206
    assert response.content == DATA[first : last + 1]
    assert response.headers["content-range"] == f"bytes {first}-{last}/{len(DATA)}"


async def test_a_range_beyond_the_file_is_416_and_odd_ranges_get_the_whole_file(
    data_plane: DataPlaneServer, client: httpx.AsyncClient
) -> None:
    url = data_plane.signer.sign(SHA)
    beyond = await client.get(url, headers={"Range": f"bytes={len(DATA)}-"})
    assert beyond.status_code == 416
    assert beyond.headers["content-range"] == f"bytes */{len(DATA)}"
    several = await client.get(url, headers={"Range": "bytes=0-1,5-6"})
    assert several.status_code == 200
    assert len(several.content) == len(DATA)


async def test_head_answers_size_without_a_body(
    data_plane: DataPlaneServer, client: httpx.AsyncClient
) -> None:
    response = await client.head(data_plane.signer.sign(SHA))
    assert response.status_code == 200
    assert response.headers["content-length"] == str(len(DATA))
    assert response.content == b""


def tampered(url: str, old: str, new: str) -> str:
    assert old in url
    return url.replace(old, new, 1)


async def test_bad_signatures_are_403_and_unknown_artifacts_404(
    data_plane: DataPlaneServer, client: httpx.AsyncClient
) -> None:
    url = data_plane.signer.sign(SHA)
    signature = url.rsplit("signature=", 1)[1]
    flipped = signature[:-1] + ("0" if signature[-1] != "0" else "1")
    expires = url.split("expires=")[1].split("&")[0]
    other = hashlib.sha256(b"another artifact").hexdigest()
    cases = {
        "tampered signature": tampered(url, signature, flipped),
        "later expiry": tampered(url, f"expires={expires}", f"expires={int(expires) + 3600}"),
        "other artifact": tampered(url, SHA, other),
        "no signature": url.split("&signature=")[0],
        "no query": url.split("?")[0],
        "extra parameter": url + "&download=1",
        "signed by another key": UrlSigner(b"k" * 32, data_plane.signer.base_url).sign(SHA),
    }
    for case, bad in cases.items():
        response = await client.get(bad)
        assert response.status_code == 403, case
        assert response.json()["code"] == "forbidden", case
    unknown = await client.get(data_plane.signer.sign(other))
    assert unknown.status_code == 404
    malformed = await client.get(data_plane.signer.base_url + "/artifacts/not-a-digest")
    assert malformed.status_code == 404
    elsewhere = await client.get(data_plane.signer.base_url + "/api/v1/health")
    assert elsewhere.status_code == 404


async def test_an_expired_url_is_403(
    data_plane: DataPlaneServer, client: httpx.AsyncClient, tmp_path: Path
) -> None:
    key = load_or_create_signing_key(data_plane.settings.key_dir)
    two_hours_ago = UrlSigner(key, data_plane.signer.base_url, clock=lambda: time.time() - 7200)
    response = await client.get(two_hours_ago.sign(SHA))
    assert response.status_code == 403
    assert "expired" in response.json()["message"]
    an_hour_ago = UrlSigner(key, data_plane.signer.base_url, clock=lambda: time.time() - 3500)
    assert (await client.get(an_hour_ago.sign(SHA), headers={"Range": "bytes=0-0"})).status_code == 206


async def test_a_client_that_does_not_trust_the_ca_cannot_connect(data_plane: DataPlaneServer) -> None:
    async with httpx.AsyncClient(verify=ssl.create_default_context()) as untrusting:
        with pytest.raises(httpx.ConnectError):
            await untrusting.get(data_plane.signer.sign(SHA))


async def test_a_port_in_use_is_a_start_error(
    data_plane: DataPlaneServer, store: ArtifactStore, tmp_path: Path
) -> None:
    second = DataPlaneServer(data_plane.settings, store)
    with pytest.raises(DataPlaneStartError, match=f"cannot listen on 127.0.0.1:{data_plane.settings.port}"):
        await second.start()


def test_the_signing_key_is_created_once_and_private(tmp_path: Path) -> None:
    key = load_or_create_signing_key(tmp_path / "dataplane")
    assert len(key) == 32
    assert load_or_create_signing_key(tmp_path / "dataplane") == key
    key_file = tmp_path / "dataplane" / "signing.key"
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    key_file.write_text("not a key\n")
    with pytest.raises(SigningKeyError, match="does not hold a signing key"):
        load_or_create_signing_key(tmp_path / "dataplane")
