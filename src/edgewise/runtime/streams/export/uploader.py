"""Sending a file to the cloud's object store: the upload request of an S3 export task, over mutual TLS.

:class:`ObjectUploader` is the device's side of :mod:`edgewise.protocol.object_uploads`: it hashes the file, then
``PUT``\\ s it to the cloud's HTTPS listener with its length, SHA-256 and user metadata, streaming it from disk
(never held in memory) and logging its progress every :data:`PROGRESS_BYTES`. :class:`ObjectSender` is what the
S3 task exporter needs of it. Requests run in a worker thread (http.client blocks).
"""

from __future__ import annotations

import asyncio
import hashlib
import http.client
import json
import logging
import ssl
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO, Final, Protocol

from edgewise.errors import EdgewiseError
from edgewise.protocol import object_uploads
from edgewise.runtime.streams.export.channel import ExportDeliveryError

logger = logging.getLogger(__name__)

#: Progress is logged each time this many more bytes have been sent.
PROGRESS_BYTES: Final = 64 * 1024 * 1024
_CHUNK: Final = 1024 * 1024
_RETRIED_STATUSES: Final = frozenset({408, 429})
_MAX_ANSWER_BYTES: Final = 4096


class TaskFailedError(EdgewiseError):
    """A task that cannot succeed as it is (bad definition, file not allowed, refused by the cloud)."""


@dataclass(frozen=True)
class S3Task:
    """A valid ``S3ExportTaskDefinition``: the file to upload and where it goes."""

    path: Path
    bucket: str
    key: str
    user_metadata: dict[str, str] = field(default_factory=dict)


class ObjectSender(Protocol):
    """Uploads a file as an object of the cloud's store."""

    async def upload(self, task: S3Task, *, label: str) -> int:
        """Send ``task``'s file; the number of bytes sent once the cloud has stored it.

        Raises:
            TaskFailedError: the cloud refused it for good, or the file cannot be read.
            ExportDeliveryError: the cloud could not be reached or asked for the upload again later.
        """
        ...


class ObjectUploader:
    """Uploads files to the cloud's HTTPS listener at ``host``:``port`` with ``context`` (the device's
    certificate, the cloud's CA). Requests run in a worker thread (http.client blocks)."""

    def __init__(self, host: str, port: int, context: ssl.SSLContext, *, timeout: float = 60.0) -> None:
        self._host = host
        self._port = port
        self._context = context
        self._timeout = timeout

    @property
    def url(self) -> str:
        return f"https://{self._host}:{self._port}{object_uploads.UPLOAD_PATH}"

    async def upload(self, task: S3Task, *, label: str) -> int:
        return await asyncio.to_thread(self._upload, task, label)

    def _upload(self, task: S3Task, label: str) -> int:
        """Blocks; call via asyncio.to_thread."""
        try:
            size, digest = _digest(task.path)
            source = task.path.open("rb")
        except OSError as error:
            raise TaskFailedError(f"cannot read {task.path}: {error.strerror}") from error
        headers = {
            "Content-Length": str(size),
            "Content-Type": "application/octet-stream",
            object_uploads.DIGEST_HEADER: digest,
            **{object_uploads.METADATA_PREFIX + name: value for name, value in task.user_metadata.items()},
        }
        target = object_uploads.upload_target(task.bucket, task.key)
        connection = http.client.HTTPSConnection(
            self._host, self._port, context=self._context, timeout=self._timeout, blocksize=_CHUNK
        )
        try:
            with source:
                connection.request("PUT", target, body=_Progress(source, size, label), headers=headers)
                response = connection.getresponse()
                text = response.read(_MAX_ANSWER_BYTES).decode("utf-8", "replace")
        except (OSError, http.client.HTTPException) as error:
            raise ExportDeliveryError(f"upload to {self.url} failed: {error}") from error
        finally:
            connection.close()
        if response.status == 200:
            return size
        problem = f"the cloud answered {response.status}: {_answer_message(text)}"
        if response.status >= 500 or response.status in _RETRIED_STATUSES:
            raise ExportDeliveryError(problem)
        raise TaskFailedError(problem)


class _Progress:
    """A file body that logs how far its upload got every :data:`PROGRESS_BYTES`."""

    def __init__(self, source: BinaryIO, size: int, label: str) -> None:
        self._source = source
        self._size = size
        self._label = label
        self._sent = 0
        self._logged = 0

    def read(self, size: int = -1, /) -> bytes:
        # Never more than the length declared: a file that grew since it was hashed fails its digest instead.
        remaining = self._size - self._sent
        data = self._source.read(remaining if size < 0 else min(size, remaining))
        self._sent += len(data)
        if self._sent - self._logged >= PROGRESS_BYTES:
            self._logged = self._sent
            logger.info(
                "%s: %d of %d bytes sent (%.0f%%)",
                self._label,
                self._sent,
                self._size,
                100 * self._sent / self._size,
            )
        return data


def _digest(path: Path) -> tuple[int, str]:
    """The size and SHA-256 of the file. Blocks."""
    digest = hashlib.sha256()
    size = 0
    with path.open("rb") as file:
        while chunk := file.read(_CHUNK):
            digest.update(chunk)
            size += len(chunk)
    return size, digest.hexdigest()


def _answer_message(text: str) -> str:
    try:
        body = json.loads(text)
    except ValueError:
        return text[:500]
    return str(body.get("message", text))[:500] if isinstance(body, dict) else text[:500]
