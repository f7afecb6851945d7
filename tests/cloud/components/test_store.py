"""The artifact store interface, run against the local directory and a real S3-compatible server (moto)."""

from __future__ import annotations

import hashlib
import io
import os
import stat
from pathlib import Path

import pydantic
import pytest

from edgewise.cloud.components.errors import ArtifactNotFoundError, DigestMismatchError
from edgewise.cloud.components.s3 import S3ArtifactStore
from edgewise.cloud.components.store import (
    ArtifactStore,
    LocalArtifactStore,
    StoreLocation,
    open_artifact_store,
    parse_store_url,
)
from edgewise.cloud.settings import CloudSettings
from tests.cloud.components.conftest import sha256_of


class PatternStream:
    """``size`` bytes of a repeating pattern, produced as they are read: never all in memory."""

    def __init__(self, size: int) -> None:
        self.remaining = size
        self.hash = hashlib.sha256()
        self.largest_read = 0

    def read(self, size: int = -1, /) -> bytes:
        if size < 0:
            raise AssertionError("the store asked for the whole stream at once")
        self.largest_read = max(self.largest_read, size)
        count = min(size, self.remaining)
        data = os.urandom(count)
        self.remaining -= count
        self.hash.update(data)
        return data


def read_all(store: ArtifactStore, sha256: str, offset: int = 0) -> bytes:
    reader = store.open(sha256, offset)
    try:
        return reader.read()
    finally:
        reader.close()


def test_put_stores_under_the_sha256_and_reads_back_from_an_offset(store: ArtifactStore) -> None:
    data = b"hello artifact\n" * 1000
    stored = store.put(io.BytesIO(data))
    assert (stored.sha256, stored.size) == (sha256_of(data), len(data))
    assert store.exists(stored.sha256)
    assert store.size(stored.sha256) == len(data)
    assert read_all(store, stored.sha256) == data
    assert read_all(store, stored.sha256, 7000) == data[7000:]
    assert read_all(store, stored.sha256, len(data)) == b""


def test_put_with_the_expected_digest_stores(store: ArtifactStore) -> None:
    data = b"expected"
    stored = store.put(io.BytesIO(data), expected_sha256=sha256_of(data))
    assert stored.sha256 == sha256_of(data)
    assert read_all(store, stored.sha256) == data


def test_put_with_another_digest_stores_nothing(store: ArtifactStore) -> None:
    wrong = sha256_of(b"something else")
    with pytest.raises(DigestMismatchError, match=f"not the expected {wrong}") as caught:
        store.put(io.BytesIO(b"actual bytes"), expected_sha256=wrong)
    assert caught.value.field == "sha256"
    assert not store.exists(wrong)
    assert not store.exists(sha256_of(b"actual bytes"))


def test_putting_the_same_bytes_twice_keeps_one_file(store: ArtifactStore) -> None:
    first = store.put(io.BytesIO(b"same"))
    second = store.put(io.BytesIO(b"same"))
    assert first == second
    assert read_all(store, first.sha256) == b"same"


def test_an_empty_file_is_an_artifact_too(store: ArtifactStore) -> None:
    stored = store.put(io.BytesIO(b""))
    assert stored.size == 0
    assert store.size(stored.sha256) == 0
    assert read_all(store, stored.sha256) == b""


def test_a_large_file_is_streamed_in_bounded_reads(store: ArtifactStore) -> None:
    size = 20 * 1024 * 1024 + 17  # several S3 multipart parts, and an odd tail
    stream = PatternStream(size)
    stored = store.put(stream)
    assert stored == type(stored)(stream.hash.hexdigest(), size)
    assert stream.largest_read <= 8 * 1024 * 1024
    assert store.size(stored.sha256) == size
    reader = store.open(stored.sha256, size - 100)
    try:
        assert len(reader.read(1000)) == 100
    finally:
        reader.close()


def test_unknown_artifacts_are_not_found(store: ArtifactStore) -> None:
    missing = sha256_of(b"never stored")
    assert not store.exists(missing)
    with pytest.raises(ArtifactNotFoundError, match=missing):
        store.size(missing)
    with pytest.raises(ArtifactNotFoundError):
        store.open(missing)


def test_delete_removes_and_is_idempotent(store: ArtifactStore) -> None:
    stored = store.put(io.BytesIO(b"to delete"))
    store.delete(stored.sha256)
    assert not store.exists(stored.sha256)
    store.delete(stored.sha256)


def test_keys_are_content_addressed(store: ArtifactStore) -> None:
    sha256 = sha256_of(b"key")
    assert store.key(sha256).endswith(f"sha256/{sha256}") or store.key(sha256).endswith(
        f"sha256/{sha256[:2]}/{sha256}"
    )
    with pytest.raises(ValueError, match="not a SHA-256"):
        store.key("ABC")


def test_local_store_leaves_no_temporary_files_and_files_are_readable(tmp_path: Path) -> None:
    store = LocalArtifactStore(tmp_path / "artifacts")
    stored = store.put(io.BytesIO(b"local"))
    with pytest.raises(DigestMismatchError):
        store.put(io.BytesIO(b"other"), expected_sha256=stored.sha256)
    assert list((tmp_path / "artifacts" / "tmp").iterdir()) == []
    path = tmp_path / "artifacts" / store.key(stored.sha256)
    assert stat.S_IMODE(path.stat().st_mode) == 0o644


def test_s3_store_keeps_objects_under_its_prefix(s3_bucket: str, s3_endpoint: str) -> None:
    import boto3

    store = S3ArtifactStore(s3_bucket, "/fleet/a/", endpoint_url=s3_endpoint)
    stored = store.put(io.BytesIO(b"prefixed"))
    listed = boto3.client("s3", endpoint_url=s3_endpoint).list_objects_v2(Bucket=s3_bucket)
    assert [item["Key"] for item in listed["Contents"]] == [f"fleet/a/sha256/{stored.sha256}"]
    assert store.location == f"s3://{s3_bucket}/fleet/a"


@pytest.mark.parametrize(
    ("url", "location"),
    [
        ("", StoreLocation()),
        ("s3://bucket", StoreLocation("bucket", "")),
        ("s3://my.bucket-1/", StoreLocation("my.bucket-1", "")),
        ("s3://bucket/edge/artifacts/", StoreLocation("bucket", "edge/artifacts")),
    ],
)
def test_store_urls_parse(url: str, location: StoreLocation) -> None:
    assert parse_store_url(url) == location


@pytest.mark.parametrize(
    "url",
    [
        "/var/artifacts",
        "s3://",
        "s3://Bucket",
        "s3://ab",
        "s3://bucket/a//b",
        "s3://bucket/../x",
        "gs://bucket",
        "s3://a..b",
    ],
)
def test_bad_store_urls_are_refused_naming_the_form(url: str) -> None:
    with pytest.raises(ValueError, match="artifact store URL"):
        parse_store_url(url)


def test_settings_refuse_a_bad_store_url_naming_the_field(tmp_path: Path) -> None:
    with pytest.raises(pydantic.ValidationError, match="artifact_store") as caught:
        CloudSettings(data_dir=tmp_path, artifact_store="ftp://bucket")
    assert "s3://bucket[/prefix]" in str(caught.value)
    with pytest.raises(pydantic.ValidationError, match="artifact_store_endpoint_url"):
        CloudSettings(
            data_dir=tmp_path, artifact_store="s3://bucket", artifact_store_endpoint_url="minio:9000"
        )


def test_open_artifact_store_picks_the_kind(tmp_path: Path, s3_endpoint: str) -> None:
    local = open_artifact_store("", data_dir=tmp_path)
    assert isinstance(local, LocalArtifactStore)
    assert local.root == tmp_path / "artifacts"
    bucket = open_artifact_store("s3://bucket/p", data_dir=tmp_path, endpoint_url=s3_endpoint)
    assert isinstance(bucket, S3ArtifactStore)
    assert bucket.location == "s3://bucket/p"
