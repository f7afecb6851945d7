"""Artifact uploads that can be resumed: bytes are staged on disk until the whole file is there, then
checked against the SHA-256 they were announced with and moved into the artifact store.

An upload is addressed by the file's SHA-256, so a client asks first whether the store has the file (then it
uploads nothing) or how many bytes of it are staged (then it sends only the rest). A request that breaks off
keeps the bytes that arrived. One request at a time may write to an upload (a file lock, so this holds across
API processes sharing the data directory); a second gets a conflict.

Staged files live in ``DATA_DIR/uploads/<sha256>.partial`` whichever store is configured.
"""

from __future__ import annotations

import asyncio
import fcntl
import logging
import os
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

from edgewise.cloud.components.errors import DigestMismatchError
from edgewise.cloud.components.store import ArtifactStore, check_sha256
from edgewise.cloud.errors import CloudConflictError, InvalidRequestError

logger = logging.getLogger(__name__)

_WRITE_BATCH = 1024 * 1024


@dataclass(frozen=True)
class UploadStatus:
    """Where an upload stands: stored (``size`` known), or ``received_bytes`` staged so far."""

    sha256: str
    stored: bool
    size: int | None
    received_bytes: int


class UploadOffsetError(CloudConflictError):
    """A request that does not continue the upload where it stands."""

    code = "upload_offset_mismatch"

    def __init__(self, sha256: str, *, offset: int, received: int) -> None:
        super().__init__(
            f"The upload of artifact {sha256} has {received} bytes staged, so it continues at offset "
            f"{received}, not {offset}"
        )
        self.received = received


class ArtifactUploads:
    """Resumable uploads into ``store``, staged in ``directory``."""

    def __init__(self, directory: Path, store: ArtifactStore) -> None:
        self.directory = directory
        self.store = store

    def _partial(self, sha256: str) -> Path:
        return self.directory / f"{check_sha256(sha256)}.partial"

    def status(self, sha256: str) -> UploadStatus:
        """Where the upload of ``sha256`` stands. Blocks."""
        if self.store.exists(sha256):
            size = self.store.size(sha256)
            return UploadStatus(sha256, stored=True, size=size, received_bytes=size)
        try:
            received = self._partial(sha256).stat().st_size
        except FileNotFoundError:
            received = 0
        return UploadStatus(sha256, stored=False, size=None, received_bytes=received)

    async def receive(
        self, sha256: str, *, offset: int, size: int, chunks: AsyncIterator[bytes]
    ) -> UploadStatus:
        """Append ``chunks`` (the file's bytes from ``offset`` on) to the upload of a ``size``-byte file.

        When the last byte arrives the file is checked and stored. Bytes that arrived before ``chunks``
        broke off (a client that went away) stay staged, and the exception propagates.

        Raises:
            UploadOffsetError: ``offset`` is not the number of bytes staged.
            CloudConflictError: another request is writing to this upload.
            InvalidRequestError: ``offset`` is beyond ``size``, or the bytes go beyond it.
            DigestMismatchError: the whole file does not have SHA-256 ``sha256``; the staged bytes are dropped.
        """
        status = await asyncio.to_thread(self.status, sha256)
        if status.stored:
            return status
        if offset > size:
            raise InvalidRequestError("offset", f"{offset} is beyond the file's size of {size} bytes")
        await asyncio.to_thread(self.directory.mkdir, mode=0o700, parents=True, exist_ok=True)
        partial = self._partial(sha256)
        descriptor = await asyncio.to_thread(os.open, partial, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            try:
                fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                raise CloudConflictError(
                    f"Artifact {sha256} is being uploaded by another request; retry when it has ended"
                ) from None
            received = os.fstat(descriptor).st_size
            if received != offset:
                raise UploadOffsetError(sha256, offset=offset, received=received)
            received = await self._append(descriptor, offset=offset, size=size, chunks=chunks)
            if received < size:
                return UploadStatus(sha256, stored=False, size=None, received_bytes=received)
            await asyncio.to_thread(self._store, partial, sha256)
        finally:
            os.close(descriptor)  # releases the lock
        logger.info("artifact-uploaded sha256=%s size=%d store=%s", sha256, size, self.store.location)
        return UploadStatus(sha256, stored=True, size=size, received_bytes=size)

    async def _append(self, descriptor: int, *, offset: int, size: int, chunks: AsyncIterator[bytes]) -> int:
        """Write ``chunks`` at ``offset``; the number of bytes staged afterwards."""
        os.lseek(descriptor, offset, os.SEEK_SET)
        received = offset
        batch = bytearray()
        try:
            async for chunk in chunks:
                if received + len(batch) + len(chunk) > size:
                    batch.clear()
                    await asyncio.to_thread(os.ftruncate, descriptor, offset)
                    received = offset
                    raise InvalidRequestError(
                        "size", f"the body goes beyond the announced size of {size} bytes"
                    )
                batch += chunk
                if len(batch) >= _WRITE_BATCH:
                    await asyncio.to_thread(_write_all, descriptor, bytes(batch))
                    received += len(batch)
                    batch.clear()
        finally:
            # Also when the body broke off: what arrived is kept for the resumption.
            if batch:
                _write_all(descriptor, bytes(batch))
                received += len(batch)
        return received

    def _store(self, partial: Path, sha256: str) -> None:
        try:
            with partial.open("rb") as staged:
                self.store.put(staged, expected_sha256=sha256)
        except DigestMismatchError:
            partial.unlink(missing_ok=True)
            raise
        partial.unlink(missing_ok=True)


def _write_all(descriptor: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        written = os.write(descriptor, view)
        view = view[written:]
