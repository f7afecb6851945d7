"""Where artifact files live: a content-addressed store behind one interface, a local directory by default.

Every file is kept under its SHA-256 (lowercase hex), so the same bytes published by two components are
stored once and a digest is all a reader needs. :class:`ArtifactStore` is the interface;
:class:`LocalArtifactStore` keeps files in a directory; ``S3ArtifactStore`` (:mod:`.s3`, needs boto3) keeps
them in an S3-compatible bucket. :func:`open_artifact_store` picks one from a store URL: empty for the
directory, ``s3://bucket/prefix`` for a bucket.

Every method blocks (file or network I/O): call it via ``asyncio.to_thread`` from the event loop.
"""

from __future__ import annotations

import hashlib
import os
import re
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from edgewise.cloud.components.errors import ArtifactNotFoundError, ArtifactStoreError, DigestMismatchError

SHA256_PATTERN = "^[0-9a-f]{64}$"
CHUNK_SIZE = 1024 * 1024
_SHA256 = re.compile(SHA256_PATTERN)
_S3_URL = re.compile(r"s3://(?P<bucket>[a-z0-9][a-z0-9.-]{1,61}[a-z0-9])(?:/(?P<prefix>[^?#]*))?")


class Readable(Protocol):
    """A binary stream read front to back: a file, a socket's body, an S3 object's body."""

    def read(self, size: int = -1, /) -> bytes: ...


class ArtifactReader(Readable, Protocol):
    """A stored artifact opened for reading; close it when done."""

    def close(self) -> None: ...


@dataclass(frozen=True)
class StoredArtifact:
    """A file in the store: its SHA-256 (lowercase hex) and size in bytes."""

    sha256: str
    size: int


class ArtifactStore(Protocol):
    """A content-addressed file store. Every method blocks."""

    @property
    def location(self) -> str:
        """Where the store keeps its files, for messages (a directory or ``s3://bucket/prefix``)."""
        ...

    def put(self, stream: Readable, *, expected_sha256: str | None = None) -> StoredArtifact:
        """Store everything ``stream`` yields, under its SHA-256.

        Raises:
            DigestMismatchError: ``expected_sha256`` is given and the bytes have another; nothing is stored.
            ArtifactStoreError: the store failed.
        """
        ...

    def open(self, sha256: str, offset: int = 0) -> ArtifactReader:
        """The stored bytes from ``offset`` on.

        Raises:
            ArtifactNotFoundError: nothing is stored under ``sha256``.
        """
        ...

    def size(self, sha256: str) -> int:
        """The size of the stored file.

        Raises:
            ArtifactNotFoundError: nothing is stored under ``sha256``.
        """
        ...

    def exists(self, sha256: str) -> bool:
        """Whether a file is stored under ``sha256``."""
        ...

    def delete(self, sha256: str) -> None:
        """Remove the file stored under ``sha256``; nothing happens when there is none."""
        ...

    def key(self, sha256: str) -> str:
        """The name the store keeps ``sha256`` under (a path or an object key)."""
        ...


class HashingReader:
    """Passes a stream's bytes through while computing their SHA-256 and counting them.

    It has no ``seek``, on purpose: uploaders then read it once, front to back.
    """

    def __init__(self, stream: Readable) -> None:
        self._stream = stream
        self._hash = hashlib.sha256()
        self.size = 0

    def read(self, size: int = -1, /) -> bytes:
        data = self._stream.read(size)
        self._hash.update(data)
        self.size += len(data)
        return data

    @property
    def sha256(self) -> str:
        """The SHA-256 (lowercase hex) of what was read so far."""
        return self._hash.hexdigest()


def artifact_chunks(reader: ArtifactReader) -> Iterator[bytes]:
    """An opened artifact's bytes, :data:`CHUNK_SIZE` at a time, closing it at the end: a download's body.
    Sync: Starlette iterates it in its thread pool, off the event loop."""
    try:
        while chunk := reader.read(CHUNK_SIZE):
            yield chunk
    finally:
        reader.close()


def check_sha256(sha256: str) -> str:
    """``sha256`` if it is 64 lowercase hex digits; raises ValueError otherwise (a programming error here)."""
    if not _SHA256.fullmatch(sha256):
        raise ValueError(f"{sha256!r} is not a SHA-256 in lowercase hex")
    return sha256


class LocalArtifactStore:
    """Artifacts in a directory: ``ROOT/sha256/<first two hex digits>/<sha256>``.

    A file is written to ``ROOT/tmp``, flushed to disk and renamed into place, so a reader (or a crash)
    never sees a partial artifact.
    """

    def __init__(self, root: Path) -> None:
        self.root = root

    @property
    def location(self) -> str:
        return str(self.root)

    def _path(self, sha256: str) -> Path:
        check_sha256(sha256)
        return self.root / "sha256" / sha256[:2] / sha256

    def key(self, sha256: str) -> str:
        return str(self._path(sha256).relative_to(self.root))

    def put(self, stream: Readable, *, expected_sha256: str | None = None) -> StoredArtifact:
        temporary_dir = self.root / "tmp"
        try:
            temporary_dir.mkdir(parents=True, exist_ok=True)
            descriptor, temporary = tempfile.mkstemp(dir=temporary_dir, prefix="upload-")
        except OSError as exc:
            raise ArtifactStoreError(f"The artifact store {self.root} cannot write: {exc.strerror}") from exc
        try:
            reader = HashingReader(stream)
            with os.fdopen(descriptor, "wb") as output:
                while chunk := reader.read(CHUNK_SIZE):
                    output.write(chunk)
                output.flush()
                os.fsync(output.fileno())
            if expected_sha256 is not None and reader.sha256 != expected_sha256:
                raise DigestMismatchError(expected=expected_sha256, actual=reader.sha256, size=reader.size)
            final = self._path(reader.sha256)
            final.parent.mkdir(parents=True, exist_ok=True)
            os.chmod(temporary, 0o644)
            # Same digest, same bytes: replacing a file another upload just stored changes nothing.
            os.replace(temporary, final)
        except OSError as exc:
            Path(temporary).unlink(missing_ok=True)
            raise ArtifactStoreError(f"The artifact store {self.root} cannot write: {exc.strerror}") from exc
        except BaseException:
            Path(temporary).unlink(missing_ok=True)
            raise
        _fsync_directory(final.parent)
        return StoredArtifact(reader.sha256, reader.size)

    def open(self, sha256: str, offset: int = 0) -> ArtifactReader:
        try:
            stream = self._path(sha256).open("rb")
        except FileNotFoundError:
            raise ArtifactNotFoundError(sha256) from None
        except OSError as exc:
            raise ArtifactStoreError(f"The artifact store {self.root} cannot read {sha256}: {exc}") from exc
        stream.seek(offset)
        return stream

    def size(self, sha256: str) -> int:
        try:
            return self._path(sha256).stat().st_size
        except FileNotFoundError:
            raise ArtifactNotFoundError(sha256) from None

    def exists(self, sha256: str) -> bool:
        return self._path(sha256).is_file()

    def delete(self, sha256: str) -> None:
        self._path(sha256).unlink(missing_ok=True)


def _fsync_directory(directory: Path) -> None:
    descriptor = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


@dataclass(frozen=True)
class StoreLocation:
    """A parsed store URL: ``bucket`` is None for the local directory."""

    bucket: str | None = None
    prefix: str = ""


def parse_store_url(url: str) -> StoreLocation:
    """Parse an artifact store URL: empty (the local directory) or ``s3://bucket[/prefix]``.

    Raises:
        ValueError: anything else; the message says what is expected.
    """
    if not url:
        return StoreLocation()
    match = _S3_URL.fullmatch(url)
    if match is None or ".." in match["bucket"]:
        raise ValueError(
            f"{url!r} is not an artifact store URL: expected s3://bucket[/prefix] with a bucket name of 3 "
            "to 63 lowercase letters, digits, '.' and '-' (or nothing, for the local directory)"
        )
    prefix = (match["prefix"] or "").strip("/")
    if any(part in ("", ".", "..") for part in prefix.split("/")) and prefix:
        raise ValueError(f"{url!r} is not an artifact store URL: the prefix has an empty, '.' or '..' part")
    return StoreLocation(match["bucket"], prefix)


def open_artifact_store(url: str, *, data_dir: Path, endpoint_url: str | None = None) -> ArtifactStore:
    """The store ``url`` names: ``DATA_DIR/artifacts`` when empty, else an S3 bucket (boto3 credentials).

    Raises:
        ValueError: ``url`` is not a store URL.
    """
    location = parse_store_url(url)
    if location.bucket is None:
        return LocalArtifactStore(data_dir / "artifacts")
    from edgewise.cloud.components.s3 import S3ArtifactStore

    return S3ArtifactStore(location.bucket, location.prefix, endpoint_url=endpoint_url)
