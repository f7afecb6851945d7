"""The data plane's ASGI app: artifact downloads from signed URLs, streamed from the artifact store.

``GET /artifacts/<sha256>?expires=..&signature=..`` (and ``HEAD``) answers 200 with the file, or 206 with
the part a ``Range`` header asks for, so an interrupted download resumes; 403 when the signature is wrong
or expired (checked first, so an unsigned request learns nothing about what is stored), 404 when nothing
is stored under that digest, 416 when the range lies beyond the file. The body is read from the store in
1 MiB chunks, each in a worker thread, so neither memory nor the event loop depends on the file's size.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
from collections.abc import AsyncIterator

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

from edgewise.cloud.components.errors import ArtifactNotFoundError
from edgewise.cloud.components.store import CHUNK_SIZE, SHA256_PATTERN, ArtifactStore
from edgewise.cloud.dataplane.ranges import RangeNotSatisfiableError, parse_range
from edgewise.cloud.dataplane.signing import SignatureError, UrlSigner

logger = logging.getLogger(__name__)

_SHA256 = re.compile(SHA256_PATTERN)


def _error(status: int, code: str, message: str, headers: dict[str, str] | None = None) -> Response:
    body = json.dumps({"code": code, "message": message})
    return Response(body, status_code=status, media_type="application/json", headers=headers)


async def _chunks(store: ArtifactStore, sha256: str, first: int, length: int) -> AsyncIterator[bytes]:
    reader = await asyncio.to_thread(store.open, sha256, first)
    try:
        remaining = length
        while remaining > 0:
            chunk = await asyncio.to_thread(reader.read, min(CHUNK_SIZE, remaining))
            if not chunk:
                raise OSError(f"artifact {sha256} ended {remaining} bytes early")
            remaining -= len(chunk)
            yield chunk
    finally:
        # Synchronous on purpose: this also runs when the client went away and the task is being cancelled.
        reader.close()


def create_data_plane_app(store: ArtifactStore, signer: UrlSigner) -> Starlette:
    """The data plane app serving ``store``'s artifacts to requests ``signer`` signed."""

    async def download(request: Request) -> Response:
        sha256: str = request.path_params["sha256"]
        if not _SHA256.fullmatch(sha256):
            return _error(404, "not_found", f"{request.url.path} names no artifact (a lowercase hex SHA-256)")
        try:
            signer.check(request.url.path, request.url.query)
        except SignatureError as exc:
            logger.info("artifact-download-refused sha256=%s: %s", sha256, exc)
            return _error(403, "forbidden", str(exc))
        try:
            size = await asyncio.to_thread(store.size, sha256)
        except ArtifactNotFoundError as exc:
            return _error(404, "not_found", str(exc))
        try:
            span = parse_range(request.headers.get("range"), size)
        except RangeNotSatisfiableError as exc:
            return _error(416, "range_not_satisfiable", str(exc), {"Content-Range": f"bytes */{size}"})
        first, last = span if span is not None else (0, size - 1)
        length = last - first + 1
        headers = {
            "Accept-Ranges": "bytes",
            "Content-Length": str(length),
            "ETag": f'"{sha256}"',
            "Cache-Control": "private, no-transform",
        }
        status = 200
        if span is not None:
            status = 206
            headers["Content-Range"] = f"bytes {first}-{last}/{size}"
        if request.method == "HEAD" or length == 0:
            return Response(status_code=status, headers=headers, media_type="application/octet-stream")
        logger.debug("artifact-download sha256=%s first=%d length=%d", sha256, first, length)
        return StreamingResponse(
            _chunks(store, sha256, first, length),
            status_code=status,
            headers=headers,
            media_type="application/octet-stream",
        )

    async def http_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, HTTPException)
        return _error(exc.status_code, "http_error", f"{request.method} {request.url.path}: {exc.detail}")

    return Starlette(
        routes=[Route("/artifacts/{sha256}", download, methods=["GET", "HEAD"])],
        exception_handlers={HTTPException: http_error},
    )
