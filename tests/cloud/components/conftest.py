"""Fixtures of the component tests: an S3-compatible server (moto), artifact stores of both kinds, recipes."""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto.server import ThreadedMotoServer

from edgewise.cloud.components.s3 import S3ArtifactStore
from edgewise.cloud.components.store import ArtifactStore, LocalArtifactStore

S3_CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
}


@pytest.fixture(scope="session")
def s3_endpoint() -> Iterator[str]:
    """The URL of a moto S3 server for the whole session (credentials: :data:`S3_CREDENTIALS`)."""
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    try:
        yield f"http://{host}:{port}"
    finally:
        server.stop()


@pytest.fixture
def s3_bucket(s3_endpoint: str, monkeypatch: pytest.MonkeyPatch) -> str:
    """A new, empty bucket; boto3 finds the credentials in the environment, as it would in production."""
    for name, value in S3_CREDENTIALS.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    bucket = f"artifacts-{uuid.uuid4().hex[:12]}"
    boto3.client("s3", endpoint_url=s3_endpoint).create_bucket(Bucket=bucket)
    return bucket


@pytest.fixture(params=["local", "s3"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> ArtifactStore:
    """An empty artifact store: a directory, or a prefix in a bucket on the S3-compatible server."""
    if request.param == "local":
        return LocalArtifactStore(tmp_path / "artifacts")
    bucket: str = request.getfixturevalue("s3_bucket")
    return S3ArtifactStore(bucket, "edgewise/artifacts", endpoint_url=request.getfixturevalue("s3_endpoint"))


def sha256_of(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def recipe(
    name: str = "com.example.Hello",
    version: str = "1.0.0",
    uris: tuple[str, ...] = ("s3://bucket/hello/app.zip",),
    **extra: Any,
) -> dict[str, Any]:
    """A recipe with one manifest whose artifacts are ``uris``."""
    return {
        "RecipeFormatVersion": "2020-01-25",
        "ComponentName": name,
        "ComponentVersion": version,
        "ComponentDescription": f"{name} for tests",
        "ComponentPublisher": "Edgewise tests",
        "Manifests": [
            {
                "Platform": {"os": "linux"},
                "Artifacts": [{"Uri": uri} for uri in uris],
                "Lifecycle": {"Run": "python3 {artifacts:path}/app.py"},
            }
        ],
        **extra,
    }


def recipe_text(document: dict[str, Any]) -> str:
    return json.dumps(document)
