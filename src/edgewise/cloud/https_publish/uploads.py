"""Object uploads on the HTTPS publish listener: the stream manager's S3 export tasks land in the cloud's store.

A device ``PUT``\\ s a file to ``/streams/s3/<bucket>/<key>`` with its certificate over mutual TLS (the request
is defined in :mod:`edgewise.protocol.object_uploads`, shared with the device). The bucket and key follow S3's
rules (the same the ``stream-manager`` SDK checks in ``S3ExportTaskDefinition``): a bucket is
3 to 63 lowercase letters, digits, ``.`` and ``-``, starting and ending with a letter or digit, without ``..``
and not shaped like an IP address; a key is 1 to 1024 bytes of UTF-8 (percent-encoded in the path) without
control characters or the characters the SDK refuses. Two headers are required: ``Content-Length`` (at most the
listener's ``max_object_bytes``; a chunked body is refused with 411, so the size is known before a byte is
stored) and ``x-amz-content-sha256``, the SHA-256 of the body in hex, as S3's signature version 4 sends it:
the object is kept only when its bytes have that digest. Optional ``x-amz-meta-<name>`` headers are the
object's user metadata (at most 2 KiB together, as S3 allows).

:func:`parse_upload` reads a request's target and headers into an :class:`ObjectUpload` (pure, no I/O);
:class:`BodyReader` hands the body, as it arrives, to the object store's blocking ``put`` in a worker thread,
so an upload is never held whole in memory.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Final
from urllib.parse import unquote

from edgewise.cloud.https_publish.errors import (
    InvalidPublishRequestError,
    PublishMethodNotAllowedError,
    PublishPayloadTooLargeError,
    UploadLengthRequiredError,
)
from edgewise.protocol import object_uploads

UPLOAD_PREFIX: Final = object_uploads.UPLOAD_PATH
MAX_OBJECT_BYTES: Final = object_uploads.MAX_OBJECT_BYTES
_SHA256: Final = re.compile(r"[0-9a-fA-F]{64}")


@dataclass(frozen=True)
class ObjectUpload:
    """A valid upload request: where the object goes, its size, its SHA-256 (lowercase hex) and metadata."""

    bucket: str
    key: str
    size: int
    sha256: str
    user_metadata: dict[str, str] = field(default_factory=dict)


def is_upload_target(target: bytes) -> bool:
    """Whether a request target names an object upload (and not a topic)."""
    return target.startswith(UPLOAD_PREFIX.encode())


def parse_upload(
    method: str, target: str, headers: Sequence[tuple[bytes, bytes]], *, max_object_bytes: int
) -> ObjectUpload:
    """The upload that ``method`` on ``target`` with ``headers`` (lowercase names, as h11 gives them) asks for.

    Raises:
        PublishMethodNotAllowedError: the method is not PUT.
        InvalidPublishRequestError: the bucket, key, digest or metadata is invalid; the message names it.
        UploadLengthRequiredError: there is no ``Content-Length``.
        PublishPayloadTooLargeError: ``Content-Length`` is over ``max_object_bytes``.
    """
    if method != "PUT":
        raise PublishMethodNotAllowedError(f"Method {method[:20]!r} is not allowed; upload with PUT")
    path, _, query = target.partition("?")
    if query:
        raise InvalidPublishRequestError("query", "an upload takes no query parameters")
    bucket, slash, encoded_key = path[len(UPLOAD_PREFIX) :].partition("/")
    if not slash:
        raise InvalidPublishRequestError("key", "missing; upload to /streams/s3/<bucket>/<key>")
    check_bucket(bucket)
    key = _key(encoded_key)
    values: dict[str, str] = {}
    metadata: dict[str, str] = {}
    for raw_name, raw_value in headers:
        name = raw_name.decode("ascii", "replace").lower()
        value = raw_value.decode("utf-8", "replace")
        if name.startswith(object_uploads.METADATA_PREFIX):
            metadata[name[len(object_uploads.METADATA_PREFIX) :]] = value
        else:
            values[name] = value
    if "transfer-encoding" in values or "content-length" not in values:
        raise UploadLengthRequiredError("content-length: required; an upload is not sent chunked")
    size = int(values["content-length"])  # h11 has checked that it is a decimal number
    if size > max_object_bytes:
        raise PublishPayloadTooLargeError(max_object_bytes)
    digest = values.get(object_uploads.DIGEST_HEADER)
    if digest is None or _SHA256.fullmatch(digest) is None:
        raise InvalidPublishRequestError(
            object_uploads.DIGEST_HEADER,
            f"required: the SHA-256 of the body in 64 hex digits, not {str(digest)[:80]!r}",
        )
    if (
        sum(len(name) + len(value.encode()) for name, value in metadata.items())
        > object_uploads.MAX_METADATA_BYTES
    ):
        raise InvalidPublishRequestError(
            object_uploads.METADATA_PREFIX + "*",
            f"more than {object_uploads.MAX_METADATA_BYTES} bytes together",
        )
    return ObjectUpload(bucket, key, size, digest.lower(), metadata)


def check_bucket(bucket: str) -> str:
    """``bucket`` when it is a valid S3 bucket name.

    Raises:
        InvalidPublishRequestError: it is not; the message says which rule it breaks.
    """
    problem = object_uploads.bucket_problem(bucket)
    if problem is not None:
        raise InvalidPublishRequestError("bucket", problem)
    return bucket


def check_key(key: str) -> str:
    """``key`` when it is a valid object key.

    Raises:
        InvalidPublishRequestError: it is not; the message says why.
    """
    problem = object_uploads.key_problem(key)
    if problem is not None:
        raise InvalidPublishRequestError("key", problem)
    return key


def _key(encoded: str) -> str:
    try:
        key = unquote(encoded, encoding="utf-8", errors="strict")
    except UnicodeDecodeError:
        raise InvalidPublishRequestError("key", "its percent-encoded bytes are not UTF-8") from None
    return check_key(key)


class BodyReader:
    """A request body read by a worker thread while the event loop reads the socket.

    ``receive(size)`` (a coroutine on ``loop``) returns the next bytes of the body, at most ``size``, and
    ``b""`` at its end; :meth:`read` calls it from the thread and waits for it, so the body flows through
    one chunk at a time. Exactly ``expected`` bytes must arrive.
    """

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        receive: Callable[[int], Awaitable[bytes]],
        *,
        expected: int,
        chunk_size: int = 1024 * 1024,
    ) -> None:
        self._loop = loop
        self._receive = receive
        self._expected = expected
        self._chunk_size = chunk_size
        self.received = 0

    def read(self, size: int = -1, /) -> bytes:
        """Blocks; call from a worker thread, never the loop's."""
        if size < 0:
            parts: list[bytes] = []
            while part := self.read(self._chunk_size):
                parts.append(part)
            return b"".join(parts)
        wanted = min(size, self._expected - self.received)
        if wanted <= 0:
            return b""

        async def receive() -> bytes:
            return await self._receive(wanted)

        data = asyncio.run_coroutine_threadsafe(receive(), self._loop).result()
        self.received += len(data)
        return data
