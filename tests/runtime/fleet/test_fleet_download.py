"""Artifact downloads over real HTTPS (the test CA, stdlib server): resume, verification, refusal, cancel, install."""

from __future__ import annotations

import base64
import hashlib
import http.server
import re
import ssl
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from tests.support.fleet_cloud import ArtifactServer
from tests.support.pki import CertificateAuthority
from tests.support.waiting import wait_until

from edgewise.runtime.fleet.download import (
    ArtifactDownloader,
    DownloadSettings,
    artifact_context,
    install_offer,
)
from edgewise.runtime.fleet.errors import ArtifactDownloadError
from edgewise.runtime.fleet.resolve import parse_resolve_reply
from edgewise.runtime.paths import RootPaths

DATA = bytes(range(256)) * 2000  # 512,000 bytes
FAST = DownloadSettings(attempts=3, first_delay=0.01, max_delay=0.05, timeout=10)


def digest_of(data: bytes) -> str:
    return base64.b64encode(hashlib.sha256(data).digest()).decode()


@pytest.fixture
def ca(tmp_path: Path) -> CertificateAuthority:
    return CertificateAuthority(tmp_path / "pki")


@pytest.fixture
def server(ca: CertificateAuthority) -> Iterator[ArtifactServer]:
    with ArtifactServer(ca) as running:
        running.files["a.bin"] = DATA
        yield running


@pytest.fixture
def downloader(ca: CertificateAuthority) -> ArtifactDownloader:
    return ArtifactDownloader(artifact_context(ca.certificate), FAST)


def test_an_artifact_is_downloaded_and_verified(
    tmp_path: Path, server: ArtifactServer, downloader: ArtifactDownloader
) -> None:
    target = tmp_path / "out" / "a.bin"

    downloader.fetch(server.url("a.bin"), target, digest=digest_of(DATA), size=len(DATA))

    assert target.read_bytes() == DATA
    assert not target.with_name("a.bin.part").exists()


def test_a_dropped_connection_resumes_from_where_it_stopped(
    tmp_path: Path, server: ArtifactServer, downloader: ArtifactDownloader
) -> None:
    server.drop_once.add("a.bin")
    target = tmp_path / "a.bin"

    downloader.fetch(server.url("a.bin"), target, digest=digest_of(DATA), size=len(DATA))

    assert target.read_bytes() == DATA
    assert [header for _, header in server.requests] == [None, f"bytes={len(DATA) // 2}-"]


def test_a_partial_file_left_by_a_restart_is_resumed(
    tmp_path: Path, server: ArtifactServer, downloader: ArtifactDownloader
) -> None:
    target = tmp_path / "a.bin"
    target.with_name("a.bin.part").write_bytes(DATA[:1000])

    downloader.fetch(server.url("a.bin"), target, digest=digest_of(DATA), size=len(DATA))

    assert target.read_bytes() == DATA
    assert server.requests == [("a.bin", "bytes=1000-")]


def test_an_artifact_already_in_place_is_not_downloaded_again(
    tmp_path: Path, server: ArtifactServer, downloader: ArtifactDownloader
) -> None:
    target = tmp_path / "a.bin"
    target.write_bytes(DATA)

    downloader.fetch(server.url("a.bin"), target, digest=digest_of(DATA), size=len(DATA))

    assert server.requests == []


def test_a_digest_mismatch_discards_the_file(
    tmp_path: Path, server: ArtifactServer, downloader: ArtifactDownloader
) -> None:
    target = tmp_path / "a.bin"

    with pytest.raises(ArtifactDownloadError, match=r"SHA-256 digest .* was expected; it was discarded"):
        downloader.fetch(server.url("a.bin"), target, digest=digest_of(b"other"), size=len(DATA))

    assert not target.exists()
    assert not target.with_name("a.bin.part").exists()


def test_a_size_mismatch_discards_the_file(
    tmp_path: Path, server: ArtifactServer, downloader: ArtifactDownloader
) -> None:
    with pytest.raises(ArtifactDownloadError, match="has 512000 bytes, but 10 were expected"):
        downloader.fetch(server.url("a.bin"), tmp_path / "a.bin", digest=digest_of(DATA), size=10)


def test_a_refused_url_is_not_tried_again(
    tmp_path: Path, server: ArtifactServer, downloader: ArtifactDownloader
) -> None:
    with pytest.raises(ArtifactDownloadError, match="refused /artifacts/missing with HTTP 404"):
        downloader.fetch(server.url("missing"), tmp_path / "m", digest=digest_of(DATA))

    assert len(server.requests) == 1


def test_a_server_that_cannot_be_reached_fails_after_every_attempt(
    tmp_path: Path, downloader: ArtifactDownloader
) -> None:
    with pytest.raises(ArtifactDownloadError, match="after 3 attempts"):
        downloader.fetch("https://127.0.0.1:1/x", tmp_path / "x", digest=digest_of(DATA))


def test_a_server_with_another_certificate_authority_is_refused(
    tmp_path: Path, server: ArtifactServer
) -> None:
    stranger = CertificateAuthority(tmp_path / "other-pki", name="Someone Else")
    downloader = ArtifactDownloader(artifact_context(stranger.certificate), FAST)

    with pytest.raises(ArtifactDownloadError, match="CERTIFICATE_VERIFY_FAILED"):
        downloader.fetch(server.url("a.bin"), tmp_path / "a.bin", digest=digest_of(DATA))


def test_a_plain_http_url_is_refused(tmp_path: Path, downloader: ArtifactDownloader) -> None:
    with pytest.raises(ArtifactDownloadError, match="is not an https:// URL"):
        downloader.fetch("http://example.com/a", tmp_path / "a", digest=digest_of(DATA))


class _Stalling(http.server.BaseHTTPRequestHandler):
    """Sends the headers and a first chunk, then nothing until released."""

    release = threading.Event()

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("Content-Length", str(len(DATA)))
        self.end_headers()
        self.wfile.write(DATA[:1000])
        self.wfile.flush()
        self.release.wait(30)


def test_cancel_stops_a_download_in_progress(tmp_path: Path, ca: CertificateAuthority) -> None:
    credentials = ca.issue("stalling", server=True)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(str(credentials.certificate), str(credentials.private_key))
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Stalling)
    httpd.socket = context.wrap_socket(httpd.socket, server_side=True)
    threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    downloader = ArtifactDownloader(artifact_context(ca.certificate), DownloadSettings(timeout=30))
    failure: list[BaseException] = []

    def download() -> None:
        try:
            downloader.fetch(
                f"https://localhost:{httpd.server_address[1]}/a", tmp_path / "a", digest=digest_of(DATA)
            )
        except ArtifactDownloadError as exc:
            failure.append(exc)

    worker = threading.Thread(target=download)
    worker.start()
    try:
        wait_until((tmp_path / "a.part").exists, what="the download to start writing")
        downloader.cancel()
        worker.join(10)
        assert not worker.is_alive()
        assert "cancelled" in str(failure[0])
    finally:
        _Stalling.release.set()
        httpd.shutdown()
        httpd.server_close()


def test_an_offer_is_downloaded_into_the_component_store(
    tmp_path: Path, server: ArtifactServer, downloader: ArtifactDownloader
) -> None:
    paths = RootPaths.at(tmp_path / "root")
    paths.create()
    recipe = {
        "RecipeFormatVersion": "2020-01-25",
        "ComponentName": "com.example.App",
        "ComponentVersion": "1.0.0",
        "Manifests": [
            {
                "Artifacts": [
                    {"Uri": "s3://bucket/a.bin", "Digest": digest_of(DATA), "Algorithm": "SHA-256"}
                ],
                "Lifecycle": {"Run": "true"},
            }
        ],
    }
    source = {"url": server.url("a.bin"), "size": len(DATA), "digest": digest_of(DATA)}
    reply = {
        "components": {
            "com.example.App": [
                {"version": "1.0.0", "recipe": recipe, "artifacts": {"s3://bucket/a.bin": source}}
            ]
        }
    }
    offer = parse_resolve_reply(reply)["com.example.App"][0]

    install_offer(offer, paths=paths, platform={"os": "linux"}, downloader=downloader)
    install_offer(offer, paths=paths, platform={"os": "linux"}, downloader=downloader)

    assert (paths.component_artifacts("com.example.App", "1.0.0") / "a.bin").read_bytes() == DATA
    assert (paths.recipes_dir / "com.example.App@1.0.0.recipe.yaml").exists()
    assert len(server.requests) == 1  # installed once; the second time it was already there
    assert not (paths.deployments_dir / "downloads" / "com.example.App").exists()


def test_an_offer_without_a_url_for_its_artifact_is_refused(
    tmp_path: Path, downloader: ArtifactDownloader
) -> None:
    recipe = {
        "RecipeFormatVersion": "2020-01-25",
        "ComponentName": "com.example.App",
        "ComponentVersion": "1.0.0",
        "Manifests": [{"Artifacts": [{"Uri": "s3://bucket/a.bin"}], "Lifecycle": {"Run": "true"}}],
    }
    offer = parse_resolve_reply(
        {"components": {"com.example.App": [{"version": "1.0.0", "recipe": recipe}]}}
    )["com.example.App"][0]

    with pytest.raises(
        ArtifactDownloadError, match=re.escape("no download URL for artifact s3://bucket/a.bin")
    ):
        install_offer(offer, paths=RootPaths.at(tmp_path), platform={"os": "linux"}, downloader=downloader)
