"""Artifacts in an S3-compatible bucket (AWS S3, MinIO, Ceph RGW, ...), through boto3.

Objects are ``PREFIX/sha256/<sha256>``. Credentials and region come from boto3's usual sources (environment,
shared config and credentials files, instance roles); ``endpoint_url`` points at an S3-compatible server.
An upload whose digest is known goes straight to its key and is removed again if the bytes do not match;
one whose digest is not known goes to ``PREFIX/tmp/`` first and is copied into place. boto3 comes with the
``cloud`` extra and is imported only when a bucket is configured. Every method blocks.
"""

from __future__ import annotations

import io
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, cast

import boto3
from boto3.s3.transfer import TransferConfig
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from edgewise.cloud.components.errors import ArtifactNotFoundError, ArtifactStoreError, DigestMismatchError
from edgewise.cloud.components.store import (
    ArtifactReader,
    HashingReader,
    Readable,
    StoredArtifact,
    check_sha256,
)

if TYPE_CHECKING:
    from types_boto3_s3.client import S3Client

_NOT_FOUND = frozenset({"404", "NoSuchKey", "NotFound"})
# Parts are buffered in memory while they upload: a few 8 MiB parts at a time, whatever the file's size.
_TRANSFER = TransferConfig(multipart_chunksize=8 * 1024 * 1024, max_concurrency=4)


class S3ArtifactStore:
    """Artifacts as objects in ``bucket`` under ``prefix``."""

    def __init__(
        self,
        bucket: str,
        prefix: str = "",
        *,
        endpoint_url: str | None = None,
        client: S3Client | None = None,
    ) -> None:
        self.bucket = bucket
        self.prefix = prefix.strip("/")
        self._client: S3Client = client or boto3.client(
            "s3", endpoint_url=endpoint_url, config=Config(retries={"mode": "standard"})
        )

    @property
    def location(self) -> str:
        return f"s3://{self.bucket}/{self.prefix}" if self.prefix else f"s3://{self.bucket}"

    def key(self, sha256: str) -> str:
        return self._key("sha256", check_sha256(sha256))

    def _key(self, *parts: str) -> str:
        return "/".join([self.prefix, *parts] if self.prefix else parts)

    @contextmanager
    def _translated(self, action: str, sha256: str) -> Iterator[None]:
        """The one place where boto3's errors become ours."""
        try:
            yield
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in _NOT_FOUND:
                raise ArtifactNotFoundError(sha256) from None
            raise ArtifactStoreError(
                f"The artifact store {self.location} failed to {action} {sha256}: {exc}"
            ) from exc
        except BotoCoreError as exc:
            raise ArtifactStoreError(
                f"The artifact store {self.location} failed to {action} {sha256}: {exc}"
            ) from exc

    def put(self, stream: Readable, *, expected_sha256: str | None = None) -> StoredArtifact:
        reader = HashingReader(stream)
        key = self.key(expected_sha256) if expected_sha256 is not None else self._key("tmp", uuid.uuid4().hex)
        with self._translated("store", expected_sha256 or "a new artifact"):
            self._client.upload_fileobj(cast(Any, reader), self.bucket, key, Config=_TRANSFER)
        sha256 = reader.sha256
        if expected_sha256 is not None:
            if sha256 != expected_sha256:
                with self._translated("remove the mismatched upload of", expected_sha256):
                    self._client.delete_object(Bucket=self.bucket, Key=key)
                raise DigestMismatchError(expected=expected_sha256, actual=sha256, size=reader.size)
            return StoredArtifact(sha256, reader.size)
        with self._translated("store", sha256):
            self._client.copy(
                {"Bucket": self.bucket, "Key": key}, self.bucket, self.key(sha256), Config=_TRANSFER
            )
            self._client.delete_object(Bucket=self.bucket, Key=key)
        return StoredArtifact(sha256, reader.size)

    def open(self, sha256: str, offset: int = 0) -> ArtifactReader:
        key = self.key(sha256)
        with self._translated("read", sha256):
            if offset == 0:
                return self._client.get_object(Bucket=self.bucket, Key=key)["Body"]
            try:
                return self._client.get_object(Bucket=self.bucket, Key=key, Range=f"bytes={offset}-")["Body"]
            except ClientError as exc:
                # S3 refuses a range starting at the end of the object; that range is simply empty.
                if exc.response.get("Error", {}).get("Code") != "InvalidRange":
                    raise
                return io.BytesIO(b"")

    def size(self, sha256: str) -> int:
        with self._translated("look up", sha256):
            return self._client.head_object(Bucket=self.bucket, Key=self.key(sha256))["ContentLength"]

    def exists(self, sha256: str) -> bool:
        try:
            self.size(sha256)
        except ArtifactNotFoundError:
            return False
        return True

    def delete(self, sha256: str) -> None:
        with self._translated("delete", sha256):
            self._client.delete_object(Bucket=self.bucket, Key=self.key(sha256))
